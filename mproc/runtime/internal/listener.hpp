// A node's TCP listening socket and the server side of the handshake, on the loop thread.
//
// Before a connection has proven the authkey it is only a fixed-size byte buffer: nothing is
// decoded, at most max_pending such connections exist at once, and each gets handshake_timeout
// to finish. Failures are logged at most once a second, with a count of the rest.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "mproc/runtime/internal/io_loop.hpp"
#include "mproc/runtime/internal/tcp.hpp"

namespace mproc::detail {

class listener {
public:
  // Loop thread: `fd` is the authenticated socket, ready for frames; `from` the peer's address.
  using accepted_handler = std::function<void(int fd, const std::string& from)>;

  static constexpr std::size_t max_pending = 64;
  static constexpr std::chrono::seconds handshake_timeout{5};

  // Any thread: binds now (so errors reach the caller); starts accepting on the loop.
  listener(io_loop& loop, const endpoint& at, std::string key, accepted_handler on_accepted);
  // Loop thread.
  ~listener();
  listener(const listener&) = delete;
  listener& operator=(const listener&) = delete;

  void start();  // loop thread
  std::uint16_t port() const { return port_; }
  const endpoint& address() const { return at_; }
  // Handshakes refused so far (wrong key, garbage, timeouts): for tests and logs.
  std::uint64_t refused() const { return refused_; }

private:
  struct pending;
  void on_acceptable();
  void pause_accepting(const std::string& why);
  void on_readable(int fd);
  void refuse(int fd, const std::string& why);
  void finish(int fd);

  io_loop& loop_;
  endpoint at_;
  std::string key_;
  accepted_handler on_accepted_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint64_t token_ = 0;
  std::uint64_t resume_timer_ = 0;
  std::unordered_map<int, std::unique_ptr<pending>> pending_;
  std::uint64_t refused_ = 0;
  std::uint64_t unlogged_ = 0;
  io_loop::clock::time_point last_log_{};
};

} // namespace mproc::detail
