// A root node's introspection socket: a Unix socket only this user can open, where `mproc ps`
// (or inspect_node()) asks for the node's snapshot. One thread waits in poll() and answers one
// connection at a time; nothing runs while nobody asks. docs/introspection.md has the
// protocol and the snapshot's fields.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "mproc/runtime/internal/inspect_wire.hpp"

namespace mproc::detail {

class inspector {
public:
  using snapshot_fn = std::function<value(inspect_clock::time_point deadline)>;

  // Listens at inspect_directory()/<pid>.sock, first removing the sockets there of processes
  // that no longer exist (roots that were SIGKILLed). Logs a warning and stays off when the
  // directory is not this user's alone or the socket cannot be made.
  explicit inspector(snapshot_fn snapshot);
  // Stops answering and removes the socket.
  ~inspector();
  inspector(const inspector&) = delete;
  inspector& operator=(const inspector&) = delete;

  const std::string& path() const { return path_; }  // empty when off

private:
  bool listen_at(const std::string& dir);
  void stop();  // closes and removes the socket
  void serve();
  void answer(int fd);
  value reply_to(const value& request);

  snapshot_fn snapshot_;
  std::string path_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // an eventfd the destructor signals
  std::thread thread_;
};

} // namespace mproc::detail
