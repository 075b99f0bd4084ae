#include "mproc/runtime/internal/inspect_wire.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <thread>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/errors.hpp"
#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/frame.hpp"
#include "mproc/serialization/unpack.hpp"

namespace mproc::detail {

namespace {

[[noreturn]] void fail(errc code, const std::string& what) {
  throw mproc::error{make_error(code, what), what};
}

// Waits until `fd` is ready for `events` or the deadline passes (errc::timeout).
void await(int fd, short events, inspect_clock::time_point deadline) {
  for (;;) {
    auto ms = poll_ms(deadline);
    if (ms == 0)
      fail(errc::timeout, "the introspection socket did not answer in time");
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0)
      return;
    if (n < 0 && errno != EINTR)
      fail(errc::link_lost, std::string{"poll: "} + std::strerror(errno));
  }
}

void read_exactly(int fd, char* out, std::size_t n, inspect_clock::time_point deadline) {
  while (n > 0) {
    await(fd, POLLIN, deadline);
    auto got = ::recv(fd, out, n, MSG_DONTWAIT);
    if (got == 0)
      fail(errc::closed, "the introspection socket closed before a whole frame");
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      fail(errc::link_lost, std::string{"recv: "} + std::strerror(errno));
    }
    out += got;
    n -= static_cast<std::size_t>(got);
  }
}

// A socket connected to `path`, or -1 with errno set.
int try_connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

} // namespace

bool private_directory(const std::string& dir) {
  struct stat st {};
  return ::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::getuid()
         && (st.st_mode & 077) == 0;
}

pid_t socket_pid(const char* name) {
  char* end = nullptr;
  errno = 0;
  long pid = std::strtol(name, &end, 10);
  if (errno != 0 || end == name || pid <= 0 || std::strcmp(end, ".sock") != 0)
    return 0;
  return static_cast<pid_t>(pid);
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

bool stale_socket(const std::string& path) {
  int fd = try_connect(path);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == ECONNREFUSED;
}

int connect_inspect_socket(const std::string& path, inspect_clock::time_point deadline) {
  for (;;) {
    int fd = try_connect(path);
    if (fd >= 0) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::getuid()) {
        ::close(fd);
        fail(errc::unreachable, path + " is served by another user");
      }
      return fd;
    }
    if (errno != EAGAIN)  // refused, missing: no root there
      fail(errc::unreachable, "no mproc root answers at " + path + " (" + std::strerror(errno) + ")");
    if (inspect_clock::now() >= deadline)
      fail(errc::timeout, path + ": its root accepts no connection (stopped?)");
    std::this_thread::sleep_for(std::chrono::milliseconds{10});  // the backlog is full
  }
}

std::string inspect_frame(const value& v) {
  wire::buffer buf;
  wire::packer pk{buf};
  wire::codec_state st;
  wire::codec<value>::encode(pk, v, st);
  std::string out(wire::frame_header_size, '\0');
  wire::put_frame_length(out.data(), static_cast<std::uint32_t>(buf.size()));
  out.append(buf.data(), buf.size());
  return out;
}

void write_inspect_frame(int fd, const value& v, inspect_clock::time_point deadline) {
  auto bytes = inspect_frame(v);
  std::string_view left{bytes};
  while (!left.empty()) {
    await(fd, POLLOUT, deadline);
    auto sent = ::send(fd, left.data(), left.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      fail(errc::link_lost, std::string{"send: "} + std::strerror(errno));
    }
    left.remove_prefix(static_cast<std::size_t>(sent));
  }
}

value read_inspect_frame(int fd, std::uint32_t max, inspect_clock::time_point deadline) {
  char header[wire::frame_header_size];
  read_exactly(fd, header, sizeof header, deadline);
  auto length = wire::get_frame_length(header);
  if (length > max)
    fail(errc::bad_message, "an introspection frame of " + std::to_string(length)
                              + " bytes (at most " + std::to_string(max) + ")");
  std::string payload(length, '\0');
  read_exactly(fd, payload.data(), length, deadline);
  try {
    auto h = wire::unpack_bounded(payload.data(), payload.size());
    value out;
    wire::codec_state st;
    if (!wire::codec<value>::decode(h.get(), out, st))
      fail(errc::bad_message, "an introspection frame that is not a value: " + st.error);
    return out;
  } catch (const wire::unpack_error& e) {
    fail(errc::bad_message, e.what());
  }
}

} // namespace mproc::detail
