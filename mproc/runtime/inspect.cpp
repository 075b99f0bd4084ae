#include "mproc/runtime/inspect.hpp"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/inspect_sources.hpp"
#include "mproc/runtime/internal/inspect_wire.hpp"

namespace mproc {

namespace {

struct registry {
  struct entry {
    std::string kind;
    std::shared_ptr<const inspect_source::report_fn> report;
  };
  std::mutex mtx;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, entry> entries;  // by id: reports in the order of registration
};

registry& sources() {
  static auto* r = new registry;  // never destroyed: sources may end after static destructors
  return *r;
}

} // namespace

inspect_source::inspect_source(std::string kind, report_fn report) {
  auto& r = sources();
  std::lock_guard guard{r.mtx};
  id_ = r.next_id++;
  r.entries.emplace(id_, registry::entry{std::move(kind),
                                         std::make_shared<const report_fn>(std::move(report))});
}

inspect_source::~inspect_source() {
  if (id_ == 0)
    return;
  auto& r = sources();
  std::lock_guard guard{r.mtx};
  r.entries.erase(id_);
}

inspect_source::inspect_source(inspect_source&& other) noexcept
  : id_{std::exchange(other.id_, 0)} {}

inspect_source& inspect_source::operator=(inspect_source&& other) noexcept {
  if (this != &other) {
    inspect_source gone{std::move(*this)};
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

std::string inspect_directory() {
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run == '/')
    return std::string{run} + "/mproc";
  return "/tmp/mproc-" + std::to_string(::getuid());
}

namespace {

// A connected socket to root `pid`'s introspection socket, or -1 (errno set).
int connect_to(pid_t pid) {
  auto path = inspect_directory() + "/" + std::to_string(pid) + ".sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int saved = errno;
    ::close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

struct closer {
  int fd;
  ~closer() { ::close(fd); }
};

} // namespace

std::vector<pid_t> inspect_roots() {
  std::vector<pid_t> out;
  DIR* d = ::opendir(inspect_directory().c_str());
  if (!d)
    return out;
  while (const dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid > 0 && end != e->d_name && std::strcmp(end, ".sock") == 0)
      out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  // A socket nobody listens on any more (its root was SIGKILLed) refuses the connection.
  std::erase_if(out, [](pid_t pid) {
    int fd = connect_to(pid);
    if (fd < 0)
      return true;
    ::close(fd);
    return false;
  });
  std::sort(out.begin(), out.end());
  return out;
}

value inspect_node(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = detail::inspect_clock::now() + timeout;
  int fd = connect_to(pid);
  if (fd < 0) {
    auto what = "no mproc root with pid " + std::to_string(pid) + " answers in "
                + inspect_directory() + " (" + std::strerror(errno) + ")";
    throw error{make_error(errc::unreachable, what), what};
  }
  closer guard{fd};
  detail::write_inspect_frame(fd, value::map_t{{"op", "ps"}}, deadline);
  auto reply = detail::read_inspect_frame(fd, detail::max_inspect_reply, deadline);
  const value* ok = reply.find("ok");
  const value* node = reply.find("node");
  if (!ok || ok->type() != value::kind::boolean || !ok->as<bool>() || !node) {
    const value* why = reply.find("error");
    auto what = "root " + std::to_string(pid) + " refused: "
                + (why ? why->repr() : std::string{"no snapshot in its answer"});
    throw error{make_error(errc::bad_message, what), what};
  }
  return *node;
}

namespace detail {

value::array_t inspect_reports() {
  std::vector<registry::entry> now;
  {
    auto& r = sources();
    std::lock_guard guard{r.mtx};
    for (const auto& [id, e] : r.entries)
      now.push_back(e);
  }
  // Outside the lock: a report may wait for its actor, which may be ending and unregistering.
  value::array_t out;
  for (const auto& e : now) {
    value report;
    try {
      report = (*e.report)();
    } catch (const std::exception& ex) {
      report = value::map_t{{"error", ex.what()}};
    }
    if (report.is_nil())
      continue;
    auto fields = report.type() == value::kind::map ? report.as<value::map_t>()
                                                    : value::map_t{{"report", report}};
    fields.insert(fields.begin(), {"kind", e.kind});
    out.emplace_back(std::move(fields));
  }
  return out;
}

} // namespace detail

} // namespace mproc
