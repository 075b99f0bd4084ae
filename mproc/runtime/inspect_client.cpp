// inspect_roots() and inspect_node(): the client side of the roots' introspection sockets.
#include <algorithm>
#include <set>

#include <dirent.h>
#include <unistd.h>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/inspect.hpp"
#include "mproc/runtime/internal/inspect_wire.hpp"

namespace mproc {

namespace {

// The directories a root of this user may have used: inspect_directory(), and
// /tmp/mproc-<uid> for roots started without XDG_RUNTIME_DIR.
std::vector<std::string> candidate_directories() {
  std::vector<std::string> out{inspect_directory()};
  if (auto tmp = "/tmp/mproc-" + std::to_string(::getuid()); tmp != out.front())
    out.push_back(tmp);
  return out;
}

// Those of them that are this user's alone: the only ones read.
std::vector<std::string> trusted_directories() {
  auto out = candidate_directories();
  std::erase_if(out, [](const std::string& dir) { return !detail::private_directory(dir); });
  return out;
}

struct closer {
  int fd;
  ~closer() { ::close(fd); }
};

[[noreturn]] void fail(errc code, const std::string& what) {
  throw error{make_error(code, what), what};
}

} // namespace

std::vector<pid_t> inspect_roots() {
  std::set<pid_t> out;
  for (const auto& dir : trusted_directories()) {
    DIR* d = ::opendir(dir.c_str());
    if (!d)
      continue;
    // Listed if somebody listens there: a root (a stopped one too, whose backlog accepts),
    // or a root in another pid namespace. A socket that refuses is a killed root's, even
    // when its pid lives again in another process.
    while (const dirent* e = ::readdir(d))
      if (pid_t pid = detail::socket_pid(e->d_name);
          pid != 0 && !detail::stale_socket(dir + "/" + e->d_name))
        out.insert(pid);
    ::closedir(d);
  }
  return {out.begin(), out.end()};
}

value inspect_node(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = detail::inspect_clock::now() + timeout;
  // The socket somebody listens on, before one a killed root left in the other directory.
  std::string path;
  for (const auto& dir : trusted_directories())
    if (auto p = dir + "/" + std::to_string(pid) + ".sock"; ::access(p.c_str(), F_OK) == 0) {
      if (path.empty() || detail::stale_socket(path))
        path = p;
    }
  if (path.empty()) {
    std::string dirs;
    for (const auto& dir : candidate_directories())
      dirs += (dirs.empty() ? "" : " or ") + dir;
    fail(errc::unreachable, "no mproc root with pid " + std::to_string(pid) + " has a socket in "
                              + dirs);
  }
  closer guard{detail::connect_inspect_socket(path, deadline)};
  detail::write_inspect_frame(guard.fd, value::map_t{{"op", "ps"}}, deadline);
  auto reply = detail::read_inspect_frame(guard.fd, detail::max_inspect_reply, deadline);
  const value* ok = reply.find("ok");
  const value* node = reply.find("node");
  if (!ok || ok->type() != value::kind::boolean || !ok->as<bool>() || !node) {
    const value* why = reply.find("error");
    fail(errc::bad_message, "root " + std::to_string(pid) + " refused: "
                              + (why ? why->repr() : std::string{"no snapshot in its answer"}));
  }
  return *node;
}

} // namespace mproc
