#include "mproc/actors/subprocess_actor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <caf/all.hpp>

#include "mproc/actors/subprocess.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/log.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::subprocess {
namespace {
struct program_line;
struct program_end;
} // namespace
} // namespace mproc::subprocess

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::subprocess::program_line)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(mproc::subprocess::program_end)

namespace mproc::subprocess {

namespace {

// From the reader thread to the actor: a line of the program's, and its end (a returncode,
// or the error that ended the watch). Types of this file, never registered for the wire:
// nobody else, in this process or another, can end the actor or speak for its program.
struct program_line {
  bool out;  // stdout, else stderr
  std::string text;
};
struct program_end {
  std::int32_t code = 0;
  caf::error why;  // when set, the actor ends with it
};

// What the reader thread shares with the actor: the program, the way to wake the thread,
// a weak reference to the actor (its end must not wait for the thread). Owned by both, so
// that whichever lets go last frees it.
struct runner_core {
  runner_core(popen p, caf::actor_addr a)
    : program{std::move(p)}, actor{caf::actor_cast<caf::weak_actor_ptr>(a)} {
    wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake < 0) {
      program.kill();  // nobody would watch it
      throw error(make_error(errc::spawn_failed, std::string{"eventfd: "} + std::strerror(errno)),
                  "cannot watch a program: no descriptor left");
    }
  }
  ~runner_core() { ::close(wake); }

  // To the actor, if it still lives.
  template <class... Ts>
  void tell(Ts&&... xs) {
    if (auto a = caf::actor_cast<caf::actor>(caf::actor_cast<caf::strong_actor_ptr>(actor)))
      caf::anon_send(a, std::forward<Ts>(xs)...);
  }

  popen program;
  caf::weak_actor_ptr actor;
  int wake = -1;
  std::atomic<bool> stopping{false};
};

// Reads the program's pipes until it has ended, then sends what is left and its returncode.
// The end is seen on the program's exit descriptor, not on the pipes: a child of the
// program may hold them open long after.
class reader {
  static constexpr std::size_t read_size = 65536;

public:
  explicit reader(std::shared_ptr<runner_core> core) : core_{std::move(core)} {}

  void run() {
    auto& p = core_->program;
    if (p.stdout_fd() >= 0)
      streams_.push_back({p.stdout_fd(), true, {}});
    if (p.stderr_fd() >= 0)
      streams_.push_back({p.stderr_fd(), false, {}});
    for (auto& s : streams_)
      ::fcntl(s.fd, F_SETFL, ::fcntl(s.fd, F_GETFL) | O_NONBLOCK);
    while (!core_->stopping) {
      std::vector<pollfd> fds{{core_->wake, POLLIN, 0}, {p.exit_fd(), POLLIN, 0}};
      for (auto& s : streams_)
        fds.push_back({s.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR)
        break;  // cannot watch any more: report the end once it comes
      if (core_->stopping)
        return;
      read_ready(fds);
      if (fds[1].revents != 0)
        break;
    }
    if (core_->stopping)
      return;
    drain();
    core_->tell(program_end{static_cast<std::int32_t>(p.wait()), {}});
  }

private:
  struct stream {
    int fd;
    bool out;  // stdout, else stderr
    std::string partial;
    bool ended = false;
  };

  void send_line(const stream& s, std::string line) {
    core_->tell(program_line{s.out, std::move(line)});
  }

  // A line, in pieces of at most max_line_bytes (a long one may arrive whole in a read).
  void send_cut(const stream& s, std::string_view line) {
    do {
      auto piece = line.substr(0, max_line_bytes);
      send_line(s, std::string{piece});
      line.remove_prefix(piece.size());
    } while (!line.empty());
  }

  // Sends the complete lines read so far (and, at the end, what is left).
  void flush_lines(stream& s, bool at_end) {
    std::size_t from = 0;
    for (auto nl = s.partial.find('\n'); nl != std::string::npos; nl = s.partial.find('\n', from)) {
      send_cut(s, std::string_view{s.partial}.substr(from, nl - from));
      from = nl + 1;
    }
    s.partial.erase(0, from);
    while (s.partial.size() > max_line_bytes) {
      send_line(s, s.partial.substr(0, max_line_bytes));
      s.partial.erase(0, max_line_bytes);
    }
    if (at_end && !s.partial.empty())
      send_line(s, std::exchange(s.partial, {}));
  }

  // One read of at most `most` bytes; the bytes read, 0 when none were there or it ended.
  std::size_t read_some(stream& s, std::size_t most = read_size) {
    char buf[read_size];
    auto n = ::read(s.fd, buf, std::min(most, read_size));
    if (n > 0) {
      s.partial.append(buf, static_cast<std::size_t>(n));
      flush_lines(s, false);
      return static_cast<std::size_t>(n);
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return 0;
    flush_lines(s, true);
    s.ended = true;
    return 0;
  }

  void read_ready(const std::vector<pollfd>& fds) {
    for (std::size_t i = 0; i < streams_.size(); ++i)
      if (fds[i + 2].revents != 0)
        read_some(streams_[i]);
    std::erase_if(streams_, [](const stream& s) { return s.ended; });
  }

  // The program ended: what it wrote is in the pipes, whoever else still holds them. Only
  // that is read: a child of the program writing on would keep a drain to the end going for
  // ever (and the actor with it).
  void drain() {
    for (auto& s : streams_) {
      int waiting = 0;
      if (::ioctl(s.fd, FIONREAD, &waiting) < 0)
        waiting = 0;
      for (auto left = static_cast<std::size_t>(std::max(waiting, 0));
           left > 0 && !core_->stopping;) {
        auto n = read_some(s, left);
        if (n == 0)
          break;
        left -= n;
      }
      if (!s.ended)
        flush_lines(s, true);
    }
  }

  std::shared_ptr<runner_core> core_;
  std::vector<stream> streams_;
};

// The actor's handle on the program and its reader thread.
class runner {
public:
  runner(popen program, caf::actor_addr actor)
    : core_{std::make_shared<runner_core>(std::move(program), std::move(actor))} {
    try {
      thread_ = std::thread{[core = core_] {
        try {
          reader{core}.run();
        } catch (const std::exception& e) {  // the actor must not wait for an end never told
          log::warn("subprocess actor: ", e.what());
          core->tell(program_end{0, make_error(errc::link_lost, e.what())});
        }
      }};
    } catch (...) {
      core_->program.kill();
      throw;
    }
  }

  // Kills the program (a no-op once it ended) and stops the thread. When the last reference
  // to the actor was the thread's own, this runs on that thread: it lets it finish alone.
  ~runner() {
    core_->program.kill();
    core_->stopping = true;
    std::uint64_t one = 1;
    (void)!::write(core_->wake, &one, sizeof one);
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else
      thread_.join();
  }

  void terminate() { core_->program.terminate(); }

private:
  std::shared_ptr<runner_core> core_;
  std::thread thread_;
};

struct command_state {
  std::unique_ptr<runner> program;
  caf::error stop_reason;  // the first exit message's: the program was asked to end
};

popen start(std::vector<std::string> argv, bool piped) {
  return popen{std::move(argv), piped ? options{.stdin_ = devnull, .stdout_ = pipe, .stderr_ = pipe}
                                      : options{.stdin_ = devnull}};
}

using command_actor = caf::stateful_actor<command_state>;

caf::behavior command_behavior(command_actor* self, popen program, caf::actor listener) {
  try {
    self->state.program = std::make_unique<runner>(std::move(program), self->address());
  } catch (const std::exception& e) {  // no descriptor or thread left: the program was killed
    self->quit(make_error(errc::spawn_failed, e.what()));
    return {};
  }
  // Asked to stop: SIGTERM, and end once the program has (a kill ends the actor at once,
  // and the runner's destructor kills the program).
  self->set_exit_handler([self](caf::exit_msg& msg) {
    if (!msg.reason)
      return;  // a linked actor ended normally: no request to stop
    if (!self->state.stop_reason)
      self->state.stop_reason = std::move(msg.reason);
    self->state.program->terminate();
  });
  return {
    [self, listener](program_line& line) {
      if (line.out)
        self->send(listener, stdout_atom::value, std::move(line.text));
      else
        self->send(listener, stderr_atom::value, std::move(line.text));
    },
    [self](program_end& end) {
      if (end.why)
        self->quit(std::move(end.why));
      else if (self->state.stop_reason)
        self->quit(std::move(self->state.stop_reason));
      else
        self->quit(end.code == 0 ? caf::error{} : make_exit_error(end.code));
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
  } catch (const std::exception& e) {
    self->quit(make_error(errc::spawn_failed, e.what()));
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
