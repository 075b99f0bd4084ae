#include "actors/subprocess_actor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <caf/all.hpp>

#include "actors/subprocess.hpp"
#include "runtime/actor_registry.hpp"
#include "runtime/node.hpp"

namespace mproc::subprocess {

namespace {

// From the reader thread to the actor: the program ended with this returncode.
using cmd_exit_atom = caf::atom_constant<caf::atom("cmd_exit")>;

// The program and the thread that reads its pipes and waits for its end. The thread holds
// only a weak reference to the actor: the actor's end must not wait for it.
class runner {
public:
  runner(popen program, caf::actor_addr actor)
    : program_{std::move(program)},
      actor_{caf::actor_cast<caf::weak_actor_ptr>(actor)},
      wake_{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)} {
    thread_ = std::thread{[this] { run(); }};
  }

  // Kills the program (a no-op once it ended) and stops the thread.
  ~runner() {
    program_.kill();
    stopping_ = true;
    std::uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
    thread_.join();
    ::close(wake_);
  }

  void terminate() { program_.terminate(); }

private:
  struct stream {
    int fd;
    bool out;  // stdout, else stderr
    std::string partial;
  };

  template <class... Ts>
  void tell(Ts&&... xs) {
    if (auto a = caf::actor_cast<caf::actor>(caf::actor_cast<caf::strong_actor_ptr>(actor_)))
      caf::anon_send(a, std::forward<Ts>(xs)...);
  }

  void send_line(const stream& s, std::string line) {
    if (s.out)
      tell(stdout_atom::value, std::move(line));
    else
      tell(stderr_atom::value, std::move(line));
  }

  // Sends the complete lines read so far (and, at the end, what is left).
  void flush_lines(stream& s, bool at_end) {
    std::size_t from = 0;
    for (;;) {
      auto nl = s.partial.find('\n', from);
      if (nl == std::string::npos)
        break;
      send_line(s, s.partial.substr(from, nl - from));
      from = nl + 1;
    }
    s.partial.erase(0, from);
    while (s.partial.size() >= max_line_bytes) {
      send_line(s, s.partial.substr(0, max_line_bytes));
      s.partial.erase(0, max_line_bytes);
    }
    if (at_end && !s.partial.empty())
      send_line(s, std::exchange(s.partial, {}));
  }

  // Reads until both pipes end; false when stopped first.
  bool read_pipes() {
    std::vector<stream> open;
    if (program_.stdout_fd() >= 0)
      open.push_back({program_.stdout_fd(), true, {}});
    if (program_.stderr_fd() >= 0)
      open.push_back({program_.stderr_fd(), false, {}});
    char buf[65536];
    while (!open.empty()) {
      std::vector<pollfd> fds{{wake_, POLLIN, 0}};
      for (auto& s : open)
        fds.push_back({s.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR)
        return false;
      if (stopping_)
        return false;
      for (std::size_t i = open.size(); i-- > 0;) {
        if (fds[i + 1].revents == 0)
          continue;
        auto n = ::read(open[i].fd, buf, sizeof buf);
        if (n > 0) {
          open[i].partial.append(buf, static_cast<std::size_t>(n));
          flush_lines(open[i], false);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          flush_lines(open[i], true);
          open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
        }
      }
    }
    return true;
  }

  void run() {
    if (!read_pipes())
      return;
    while (!stopping_) {
      try {
        tell(cmd_exit_atom::value, static_cast<std::int32_t>(program_.wait(std::chrono::milliseconds{200})));
        return;
      } catch (const timeout_expired&) {
        // still running: look at stopping_ again
      }
    }
  }

  popen program_;
  caf::weak_actor_ptr actor_;
  int wake_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

struct command_state {
  std::unique_ptr<runner> program;
  caf::error stop_reason;  // set by an exit message: the program was asked to end
  bool asked_to_stop = false;
};

popen start(std::vector<std::string> argv, bool piped) {
  return popen{std::move(argv), piped ? options{.stdin_ = devnull, .stdout_ = pipe, .stderr_ = pipe}
                                      : options{.stdin_ = devnull}};
}

using command_actor = caf::stateful_actor<command_state>;

caf::behavior command_behavior(command_actor* self, popen program, caf::actor listener) {
  self->state.program = std::make_unique<runner>(std::move(program), self->address());
  // Asked to stop: SIGTERM, and end once the program has (a kill ends the actor at once,
  // and the runner's destructor kills the program).
  self->set_exit_handler([self](caf::exit_msg& msg) {
    self->state.asked_to_stop = true;
    self->state.stop_reason = std::move(msg.reason);
    self->state.program->terminate();
  });
  return {
    [self, listener](stdout_atom a, std::string& line) { self->send(listener, a, std::move(line)); },
    [self, listener](stderr_atom a, std::string& line) { self->send(listener, a, std::move(line)); },
    [self](cmd_exit_atom, std::int32_t code) {
      if (self->state.asked_to_stop)
        self->quit(std::move(self->state.stop_reason));
      else
        self->quit(code == 0 ? caf::error{} : make_exit_error(code));
    },
  };
}

// The registered face, for supervisors and remote spawns: a program that cannot start ends
// the actor with the spawn error.
caf::behavior mproc_command(command_actor* self, std::vector<std::string> argv,
                            caf::actor listener) {
  try {
    auto program = start(std::move(argv), static_cast<bool>(listener));
    return command_behavior(self, std::move(program), std::move(listener));
  } catch (const error& e) {
    self->quit(e.reason());
    return {};
  }
}

// spawn_actor's: the program already started in the caller.
caf::behavior started_command(command_actor* self, std::shared_ptr<popen> program,
                              caf::actor listener) {
  return command_behavior(self, std::move(*program), std::move(listener));
}

const bool registered =
  detail::register_actor(detail::make_actor_entry<&mproc_command>("mproc_command"));

} // namespace

const char* actor_name() {
  (void)registered;
  return "mproc_command";
}

caf::actor spawn_actor(node& owner, std::vector<std::string> argv, caf::actor listener) {
  // Started here, so that a program that cannot start throws in the caller.
  auto program = std::make_shared<popen>(start(std::move(argv), static_cast<bool>(listener)));
  return owner.system().spawn(started_command, std::move(program), std::move(listener));
}

child_spec supervised(std::string id, std::vector<std::string> argv, caf::actor listener) {
  return {.id = std::move(id),
          .actor = actor_name(),
          .args = caf::make_message(std::move(argv), std::move(listener)),
          .in_process = true};
}

} // namespace mproc::subprocess
