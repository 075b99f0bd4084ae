#include "mproc/runtime/internal/inspector.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>

#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace {

// How long a connection may take to say what it wants, and the snapshot to be gathered.
constexpr auto request_time = std::chrono::seconds{2};
constexpr auto snapshot_time = std::chrono::seconds{4};
constexpr auto reply_time = std::chrono::seconds{2};

// The directory must be ours alone: another user who could create it first (in /tmp) could
// otherwise read what the sockets say, or replace them.
bool make_private_directory(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    log::warn("introspection off: cannot create ", dir, ": ", std::strerror(errno));
    return false;
  }
  if (!private_directory(dir)) {
    log::warn("introspection off: ", dir, " is not a directory of this user's alone (0700)");
    return false;
  }
  return true;
}

// Sockets left by roots that ended without removing them (SIGKILL). The sockets of live
// roots are not even connected to (each connection is work, and a descriptor, in that
// root); one whose pid is gone here, or is ours, is removed once nobody listens on it (a
// root in another pid namespace sharing the directory may).
void remove_stale(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return;
  while (const dirent* e = ::readdir(d)) {
    auto path = dir + "/" + e->d_name;
    if (pid_t pid = socket_pid(e->d_name); pid != 0 && (!process_exists(pid) || pid == ::getpid()))
      if (stale_socket(path))
        ::unlink(path.c_str());
  }
  ::closedir(d);
}

bool same_user(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  return ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == ::getuid();
}

} // namespace

inspector::inspector(snapshot_fn snapshot) : snapshot_{std::move(snapshot)} {
  auto dir = inspect_directory();
  if (!make_private_directory(dir))
    return;
  remove_stale(dir);
  if (!listen_at(dir))
    return;
  try {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (stop_fd_ < 0)
      throw std::system_error{errno, std::generic_category(), "eventfd"};
    thread_ = std::thread{[this] { serve(); }};
  } catch (const std::exception& e) {
    log::warn("introspection off: ", e.what());
    stop();
  }
}

void inspector::stop() {
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    listen_fd_ = -1;
  }
  if (stop_fd_ >= 0) {
    ::close(stop_fd_);
    stop_fd_ = -1;
  }
  path_.clear();
}

inspector::~inspector() {
  if (thread_.joinable()) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  stop();
}

bool inspector::listen_at(const std::string& dir) {
  auto path = dir + "/" + std::to_string(::getpid()) + ".sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    log::warn("introspection off: the socket path is too long: ", path);
    return false;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  // The directory is 0700, so nobody else can reach the socket between bind and chmod.
  if (!bound || ::chmod(path.c_str(), 0600) != 0 || ::listen(fd, 8) != 0) {
    log::warn("introspection off: cannot listen at ", path, ": ", std::strerror(errno));
    if (bound)
      ::unlink(path.c_str());  // ours; a socket that was there already (bind failed) is not
    if (fd >= 0)
      ::close(fd);
    return false;
  }
  listen_fd_ = fd;
  path_ = std::move(path);
  return true;
}

void inspector::serve() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      log::warn("introspection stopped: poll: ", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0)
      return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors or memory the connection stays queued and poll() would return at
      // once: wait a little (for the stop too) before trying again.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        pollfd stop{stop_fd_, POLLIN, 0};
        if (::poll(&stop, 1, 100) > 0)
          return;
      }
      continue;
    }
    if (same_user(fd))
      answer(fd);
    ::close(fd);
  }
}

void inspector::answer(int fd) {
  try {
    auto request = read_inspect_frame(fd, max_inspect_request,
                                      inspect_clock::now() + request_time);
    auto reply = reply_to(request);
    write_inspect_frame(fd, reply, inspect_clock::now() + reply_time);
  } catch (...) {
    // A client that went away or sent nonsense: its own loss, logged for whoever debugs it.
    // Anything else thrown on this thread would end the process: nothing escapes.
    log::debug("introspection request not answered: ", describe_current_exception());
  }
}

value inspector::reply_to(const value& request) {
  const value* op = request.find("op");
  if (!op || op->type() != value::kind::string)
    return value::map_t{{"ok", false}, {"error", "a request is a map with a string \"op\""}};
  if (op->as<std::string>() != "ps")
    return value::map_t{{"ok", false},
                        {"error", "unknown op '" + op->as<std::string>() + "' (known: ps)"}};
  return value::map_t{{"ok", true},
                      {"version", 1},
                      {"node", snapshot_(inspect_clock::now() + snapshot_time)}};
}

} // namespace mproc::detail
