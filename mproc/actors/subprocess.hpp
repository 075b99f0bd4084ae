// Python's subprocess: run a program, feed it input, collect its output.
//
//   namespace sp = mproc::subprocess;
//   auto r = sp::run({"sort"}, {.capture_output = true, .input = "b\na\n"});  // r.stdout_ "a\nb\n"
//   sp::check_call({"make", "-C", "build"});       // throws called_process_error unless 0
//   auto text = sp::check_output({"git", "rev-parse", "HEAD"});
//   sp::popen p{{"cat"}, {.stdin_ = sp::pipe, .stdout_ = sp::pipe}};
//   auto [out, err] = p.communicate("hello", std::chrono::seconds{5});
//
// Programs start through this process's node (runtime/command.hpp): the node reaps them
// whoever drops the handle, they get none of this process's descriptors but 0-2, and they die
// with this process unless `start_new_session`. A missing program, a non-executable file or
// a bad cwd throws mproc::error spawn_failed naming the path and the errno, here.
// Returncodes are Python's: the exit status, or minus the signal that ended the program.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mproc/runtime/command.hpp"
#include "mproc/runtime/errors.hpp"

namespace mproc::subprocess {

using millis = std::chrono::milliseconds;

// Where a standard stream goes (Python's None, PIPE, DEVNULL, STDOUT), or a descriptor >= 0
// of the caller's (dup'ed into the program; the caller keeps its own).
enum stream : int { inherit = -1, pipe = -2, devnull = -3, stdout_stream = -4 };

struct options {
  int stdin_ = inherit;
  int stdout_ = inherit;
  int stderr_ = inherit;  // stdout_stream: into the same place as stdout
  std::optional<std::string> cwd;
  // The whole environment of the program; unset: this process's.
  std::optional<std::map<std::string, std::string>> env;
  bool start_new_session = false;  // its own session: it outlives this process
  // run() and the helpers only:
  bool capture_output = false;     // stdout and stderr to pipes
  std::optional<std::string> input;  // written to its stdin (a pipe), which is then closed
  wait_timeout timeout;            // then the program is killed, and timeout_expired thrown
  bool check = false;              // a non-zero returncode throws called_process_error
};

// Python's CalledProcessError: code errc::command_failed.
class called_process_error : public mproc::error {
public:
  called_process_error(std::vector<std::string> cmd, int returncode, std::string output,
                       std::string stderr_output);
  std::vector<std::string> cmd;
  int returncode;
  std::string output;  // what was captured of stdout, if it was
  std::string stderr_output;
};

// Python's TimeoutExpired: code errc::timeout, with what was read until then.
class timeout_expired : public mproc::error {
public:
  timeout_expired(std::vector<std::string> cmd, millis timeout, std::string output,
                  std::string stderr_output);
  std::vector<std::string> cmd;
  millis timeout;
  std::string output;
  std::string stderr_output;
};

struct completed_process {
  std::vector<std::string> args;
  int returncode = 0;
  std::string stdout_;  // when captured (options::stdout_ = pipe, or capture_output)
  std::string stderr_;
  // Throws called_process_error unless returncode is 0.
  void check_returncode() const;
};

class popen {
public:
  // Starts the program argv[0] (a path, or a name found in PATH). Throws mproc::error:
  // spawn_failed, bad_arguments (argv empty, or `input`/`timeout`, which belong to run()).
  popen(std::vector<std::string> argv, options opts = {});
  ~popen();  // closes the pipes; the node reaps the program whenever it ends
  popen(popen&&) noexcept;
  popen& operator=(popen&&) noexcept;

  const std::vector<std::string>& args() const { return args_; }
  pid_t pid() const { return cmd_.pid(); }
  // The returncode once it ended, without waiting.
  std::optional<int> poll() const { return cmd_.returncode(); }
  std::optional<int> returncode() const { return cmd_.returncode(); }
  int wait();
  // Throws timeout_expired when it runs on past `timeout` (a century or more: no limit).
  int wait(wait_timeout timeout);
  // Writes `input` to stdin (a pipe) and closes it, reads stdout and stderr (where they are
  // pipes) until both end, then waits: all at once, so no pipe fills up and stalls the
  // program. Throws timeout_expired past `timeout` (the program keeps running, as in Python;
  // calling communicate again goes on where this one stopped, with the first call's input:
  // input given again throws bad_arguments, as Python's ValueError).
  std::pair<std::string, std::string> communicate(std::string_view input = {},
                                                  wait_timeout timeout = {});
  // Python's p.stdin.write(data): writes all of `data` to stdin (a pipe), waiting while the
  // pipe is full, up to `timeout` (errc::timeout; part may be written). Throws closed when
  // stdin is no pipe or was closed, or the program no longer reads it (Python's
  // BrokenPipeError), never SIGPIPE. Leaves stdin_fd() non-blocking, as communicate does.
  void write_stdin(std::string_view data, wait_timeout timeout = {});
  void send_signal(int sig) const { cmd_.send_signal(sig); }
  void terminate() const;  // SIGTERM
  void kill() const;       // SIGKILL

  // This side of the pipes (-1 where the stream is not a pipe, or once closed).
  int stdin_fd() const { return in_; }
  int stdout_fd() const { return out_; }
  int stderr_fd() const { return err_; }
  // Polls readable once the program has ended (command::exit_fd).
  int exit_fd() const { return cmd_.exit_fd(); }
  void close_stdin();

private:
  struct launched {
    std::vector<std::string> argv;
    command cmd;
    int fds[3];  // this side's pipe ends
  };
  static launched launch(std::vector<std::string> argv, const options& opts);
  explicit popen(launched l);
  void close_pipes();

  std::vector<std::string> args_;
  command cmd_;
  int in_ = -1;
  int out_ = -1;
  int err_ = -1;
  // communicate's progress, kept across a timeout
  std::optional<std::string> input_;
  std::size_t input_sent_ = 0;
  std::string stdout_;
  std::string stderr_;
};

// Runs argv to its end: its returncode and what was captured. Throws timeout_expired (the
// program is killed and reaped first), called_process_error with `check`, spawn_failed.
completed_process run(std::vector<std::string> argv, options opts = {});
// The returncode (Python's call).
int call(std::vector<std::string> argv, options opts = {});
// Throws called_process_error unless the returncode is 0.
void check_call(std::vector<std::string> argv, options opts = {});
// Its stdout; throws called_process_error (with the output) unless the returncode is 0.
std::string check_output(std::vector<std::string> argv, options opts = {});

} // namespace mproc::subprocess
