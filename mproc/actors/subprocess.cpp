#include "mproc/actors/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/deadline.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::subprocess {

namespace {

using clock_type = std::chrono::steady_clock;

std::string joined(const std::vector<std::string>& cmd) {
  std::string out;
  for (const auto& a : cmd)
    out += (out.empty() ? "" : " ") + a;
  return out;
}

[[noreturn]] void fail(errc code, const std::string& what) {
  throw mproc::error{make_error(code, what), what};
}

void close_fd(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

// The descriptors of one start: the program's ends (closed here once it has them) and
// this side's ends of the pipes.
struct plumbing {
  int child[3] = {-1, -1, -1};
  int mine[3] = {-1, -1, -1};
  bool owned[3] = {false, false, false};  // child[i] was opened here, and is closed here

  ~plumbing() {
    release_child_ends();
    for (int& fd : mine)
      close_fd(fd);
  }
  void release_child_ends() {
    for (int i = 0; i < 3; ++i)
      if (owned[i])
        close_fd(child[i]);
  }

  // Stream i (0 stdin, 1 stdout, 2 stderr) as `how` says.
  void set_up(int i, int how) {
    if (how == inherit)
      return;
    if (how >= 0) {
      child[i] = how;
      return;
    }
    if (how == devnull) {
      child[i] = ::open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
      if (child[i] < 0)
        fail(errc::spawn_failed, std::string{"cannot open /dev/null: "} + std::strerror(errno));
      owned[i] = true;
      return;
    }
    if (how != pipe)
      fail(errc::bad_arguments, "subprocess: stream " + std::to_string(how) + " is not a stream");
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      fail(errc::spawn_failed, std::string{"cannot make a pipe: "} + std::strerror(errno));
    child[i] = i == 0 ? fds[0] : fds[1];
    mine[i] = i == 0 ? fds[1] : fds[0];
    owned[i] = true;
  }
};

// What a C string cannot carry is refused, as Python's ValueError: a NUL would cut the
// argument short, an '=' in a name would set another variable than the one named.
void check_strings(const std::vector<std::string>& argv, const options& o) {
  auto nul_free = [](const std::string& text, const std::string& what) {
    if (text.find('\0') != std::string::npos)
      fail(errc::bad_arguments, "subprocess: " + what + " holds a NUL byte");
  };
  for (std::size_t i = 0; i < argv.size(); ++i)
    nul_free(argv[i], "argument " + std::to_string(i));
  if (o.cwd)
    nul_free(*o.cwd, "cwd");
  if (!o.env)
    return;
  for (const auto& [k, v] : *o.env) {
    nul_free(k, "an environment name");
    nul_free(v, "the environment's " + k);
    if (k.empty() || k.find('=') != std::string::npos)
      fail(errc::bad_arguments, "subprocess: '" + k + "' is no environment name (empty or with '=')");
  }
}

command_spec spec_of(const std::vector<std::string>& argv, const options& o, plumbing& p) {
  check_strings(argv, o);
  if (o.stdin_ == stdout_stream || o.stdout_ == stdout_stream)
    fail(errc::bad_arguments, "subprocess: stdout_stream is only for stderr_");
  p.set_up(0, o.stdin_);
  p.set_up(1, o.stdout_);
  if (o.stderr_ == stdout_stream)
    p.child[2] = p.child[1] >= 0 ? p.child[1] : 1;
  else
    p.set_up(2, o.stderr_);
  command_spec spec{.argv = argv, .cwd = o.cwd};
  if (o.env) {
    std::vector<std::string> env;
    for (const auto& [k, v] : *o.env)
      env.push_back(k + "=" + v);
    spec.env = std::move(env);
  }
  spec.stdin_fd = p.child[0];
  spec.stdout_fd = p.child[1];
  spec.stderr_fd = p.child[2];
  spec.new_session = o.start_new_session;
  return spec;
}

void set_nonblocking(int fd) {
  if (fd >= 0)
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// write(2) to a pipe whose reader is gone, without the SIGPIPE that would end this process
// (the node does not ignore it): blocked in this thread, a pending one taken back.
ssize_t write_quietly(int fd, const char* data, std::size_t size) {
  sigset_t pipe_only;
  sigset_t before;
  ::sigemptyset(&pipe_only);
  ::sigaddset(&pipe_only, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_only, &before);
  auto n = ::write(fd, data, size);
  int err = errno;
  if (n < 0 && err == EPIPE) {
    timespec none{};
    while (::sigtimedwait(&pipe_only, nullptr, &none) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  errno = err;
  return n;
}

// One read of what `fd` has into `out` (one per wake-up, so that a program writing without
// end cannot keep communicate from its timeout); false at EOF or an error.
bool read_some(int fd, std::string& out) {
  char buf[65536];
  auto n = ::read(fd, buf, sizeof buf);
  if (n > 0)
    out.append(buf, static_cast<std::size_t>(n));
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

using clock_point = std::chrono::steady_clock::time_point;

// poll(2)'s wait until `deadline` (-1: none); nullopt once it has passed. The caller is
// about to wait: an actor the node's I/O thread runs hands the loop over first.
std::optional<int> poll_wait_ms(clock_point deadline) {
  auto ms = poll_ms(deadline);
  if (ms == 0)
    return std::nullopt;
  will_block();
  return ms;
}

} // namespace

// ---- errors ----------------------------------------------------------------------------

called_process_error::called_process_error(std::vector<std::string> c, int code, std::string out,
                                           std::string err)
    : mproc::error{make_error(errc::command_failed, joined(c)),
                   "Command '" + joined(c) + "' returned non-zero exit status "
                     + std::to_string(code)},
      cmd{std::move(c)}, returncode{code}, output{std::move(out)}, stderr_output{std::move(err)} {}

timeout_expired::timeout_expired(std::vector<std::string> c, millis t, std::string out,
                                 std::string err)
    : mproc::error{make_error(errc::timeout, joined(c)),
                   "Command '" + joined(c) + "' timed out after " + std::to_string(t.count())
                     + " ms"},
      cmd{std::move(c)}, timeout{t}, output{std::move(out)}, stderr_output{std::move(err)} {}

void completed_process::check_returncode() const {
  if (returncode != 0)
    throw called_process_error{args, returncode, stdout_, stderr_};
}

// ---- popen -----------------------------------------------------------------------------

popen::popen(std::vector<std::string> argv, options opts)
    : popen{launch(std::move(argv), opts)} {}

popen::popen(launched l)
    : args_{std::move(l.argv)}, cmd_{std::move(l.cmd)}, in_{l.fds[0]}, out_{l.fds[1]},
      err_{l.fds[2]} {}

popen::launched popen::launch(std::vector<std::string> argv, const options& opts) {
  if (opts.input || opts.timeout.get() || opts.capture_output || opts.check)
    fail(errc::bad_arguments,
         "popen: input, timeout, capture_output and check belong to run(); use "
         "stdin_/stdout_/stderr_ = pipe and communicate(input, timeout)");
  plumbing p;
  auto cmd = this_node().start_command(spec_of(argv, opts, p));
  launched l{std::move(argv), std::move(cmd), {}};  // nothing throws from here on
  for (int i = 0; i < 3; ++i)
    l.fds[i] = std::exchange(p.mine[i], -1);
  return l;
}

popen::~popen() {
  close_pipes();
}

popen::popen(popen&& other) noexcept
    : args_{std::move(other.args_)}, cmd_{other.cmd_}, in_{std::exchange(other.in_, -1)},
      out_{std::exchange(other.out_, -1)}, err_{std::exchange(other.err_, -1)},
      input_{std::move(other.input_)}, input_sent_{other.input_sent_},
      stdout_{std::move(other.stdout_)},
      stderr_{std::move(other.stderr_)} {}

popen& popen::operator=(popen&& other) noexcept {
  if (this != &other) {
    close_pipes();
    args_ = std::move(other.args_);
    cmd_ = other.cmd_;
    in_ = std::exchange(other.in_, -1);
    out_ = std::exchange(other.out_, -1);
    err_ = std::exchange(other.err_, -1);
    input_ = std::move(other.input_);
    input_sent_ = other.input_sent_;
    stdout_ = std::move(other.stdout_);
    stderr_ = std::move(other.stderr_);
  }
  return *this;
}

void popen::close_pipes() {
  close_fd(in_);
  close_fd(out_);
  close_fd(err_);
}

void popen::close_stdin() {
  close_fd(in_);
}

int popen::wait() {
  return *cmd_.wait(std::nullopt);
}

int popen::wait(wait_timeout timeout) {
  auto code = cmd_.wait(timeout);
  if (!code)
    throw timeout_expired{args_, *timeout.get(), {}, {}};
  return *code;
}

void popen::terminate() const {
  cmd_.send_signal(SIGTERM);
}

void popen::kill() const {
  cmd_.send_signal(SIGKILL);
}

void popen::write_stdin(std::string_view data, wait_timeout timeout) {
  if (in_ < 0)
    fail(errc::closed, "write_stdin: stdin is not a pipe, or was closed");
  auto deadline = deadline_after(timeout);
  set_nonblocking(in_);  // a full pipe is waited for in poll, which keeps the deadline
  while (!data.empty()) {
    auto n = write_quietly(in_, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno != EAGAIN)
      fail(errc::closed, std::string{"write_stdin: the program no longer reads its stdin: "}
                           + std::strerror(errno));
    auto wait_ms = poll_wait_ms(deadline);
    if (!wait_ms)
      fail(errc::timeout, "write_stdin: the program did not read its stdin in time");
    pollfd ready{in_, POLLOUT, 0};
    ::poll(&ready, 1, *wait_ms);
  }
}

std::pair<std::string, std::string> popen::communicate(std::string_view given,
                                                       wait_timeout timeout) {
  auto deadline = deadline_after(timeout);
  if (input_ && !given.empty())  // Python's "Cannot send input after starting communication"
    fail(errc::bad_arguments, "communicate: input given again after a timeout; a retry goes on "
                              "with the first call's input (call it without input)");
  if (!input_) {  // a call after a timeout goes on with the first call's input, as Python
    if (in_ < 0 && !given.empty())
      fail(errc::bad_arguments, "communicate: input given, but stdin is not a pipe");
    input_ = std::string{given};
  }
  std::string_view input = *input_;
  if (in_ >= 0 && input.size() == input_sent_)
    close_stdin();
  set_nonblocking(in_);
  set_nonblocking(out_);
  set_nonblocking(err_);
  while (in_ >= 0 || out_ >= 0 || err_ >= 0) {
    pollfd fds[3] = {{in_, POLLOUT, 0}, {out_, POLLIN, 0}, {err_, POLLIN, 0}};
    auto wait_ms = poll_wait_ms(deadline);
    if (!wait_ms)
      throw timeout_expired{args_, *timeout.get(), stdout_, stderr_};
    if (::poll(fds, 3, *wait_ms) < 0 && errno != EINTR)
      fail(errc::closed, std::string{"communicate: poll: "} + std::strerror(errno));
    if (fds[0].revents != 0) {
      auto n = write_quietly(in_, input.data() + input_sent_, input.size() - input_sent_);
      if (n > 0)
        input_sent_ += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || input_sent_ == input.size())
        close_stdin();  // all written, or the program stopped reading (EPIPE): as Python
    }
    if (fds[1].revents != 0 && !read_some(out_, stdout_))
      close_fd(out_);
    if (fds[2].revents != 0 && !read_some(err_, stderr_))
      close_fd(err_);
  }
  std::optional<millis> left;
  if (deadline != clock_point::max())
    left = std::chrono::ceil<millis>(  // up: pipes closed just before the deadline still wait
      std::max(deadline - clock_type::now(), clock_type::duration::zero()));
  auto code = cmd_.wait(left);
  if (!code)
    throw timeout_expired{args_, *timeout.get(), stdout_, stderr_};
  input_.reset();
  input_sent_ = 0;
  return {std::exchange(stdout_, {}), std::exchange(stderr_, {})};
}

// ---- run and the helpers ---------------------------------------------------------------

completed_process run(std::vector<std::string> argv, options opts) {
  if (opts.capture_output) {
    if (opts.stdout_ != inherit || opts.stderr_ != inherit)
      fail(errc::bad_arguments, "run: capture_output with stdout_ or stderr_ set");
    opts.stdout_ = pipe;
    opts.stderr_ = pipe;
  }
  if (opts.input) {
    if (opts.stdin_ != inherit)
      fail(errc::bad_arguments, "run: input with stdin_ set");
    opts.stdin_ = pipe;
  }
  auto input = std::move(opts.input);
  auto timeout = opts.timeout;
  bool check = opts.check;
  opts.input.reset();
  opts.timeout = std::nullopt;
  opts.capture_output = false;
  opts.check = false;
  popen p{std::move(argv), std::move(opts)};
  std::pair<std::string, std::string> out;
  try {
    out = p.communicate(input ? std::string_view{*input} : std::string_view{}, timeout);
  } catch (...) {
    p.kill();  // as Python's run: killed, and reaped, before any exception goes on
    p.wait();
    throw;
  }
  completed_process done{p.args(), *p.returncode(), std::move(out.first),
                         std::move(out.second)};
  if (check)
    done.check_returncode();
  return done;
}

int call(std::vector<std::string> argv, options opts) {
  return run(std::move(argv), std::move(opts)).returncode;
}

void check_call(std::vector<std::string> argv, options opts) {
  opts.check = true;
  run(std::move(argv), std::move(opts));
}

std::string check_output(std::vector<std::string> argv, options opts) {
  if (opts.stdout_ != inherit)
    fail(errc::bad_arguments, "check_output: stdout_ is taken");
  opts.stdout_ = pipe;
  opts.check = true;
  return run(std::move(argv), std::move(opts)).stdout_;
}

} // namespace mproc::subprocess
