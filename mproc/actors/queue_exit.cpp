#include "mproc/actors/queue_exit.hpp"

#include <cstdio>
#include <mutex>
#include <vector>

#include <caf/send.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc::detail {

namespace {

// The queue clients of this process. A process can end while handles are still alive (an
// actor's arguments, a handle in a static): its node's exit hook makes each of them leave,
// so that what the process took is acknowledged and what it prefetched goes back before the
// process is gone — otherwise the queue would deliver all of it again.
struct client_registry {
  struct entry {
    std::weak_ptr<queue_leaver> client;
    // Outlives the client while its agent waits for the queue's answer to a leave.
    std::weak_ptr<queue_channel> channel;
  };
  std::mutex m;
  std::vector<entry> entries;
  std::uint64_t hooked_node = 0;   // the node whose exit hook is installed
  std::uint64_t settled_node = 0;  // the node whose exit hook ran
};

client_registry& registry() {
  static auto* r = new client_registry;  // never destroyed: used until _exit
  return *r;
}

// Waits until the channel's leaves were answered and what was put went out, for as long as
// the queue keeps accepting; then ends the retired agents still there (a stalled queue's),
// saying what that loses.
void settle_at_exit(queue_channel& ch) {
  std::unique_lock lock{ch.m};
  auto settled = [&] {
    return ch.queue_gone || (ch.leaves_pending == 0 && (!ch.sending || ch.put_error));
  };
  auto seen = ch.accepted;
  while (!ch.cv.wait_for(lock, stalled_flush_limit, settled)) {
    if (ch.accepted != seen) {
      seen = ch.accepted;
      continue;
    }
    if (auto dropped = ch.outbox.size() + ch.in_flight; dropped > 0 && !ch.put_error)
      std::fprintf(stderr,
                   "mproc: a queue accepted nothing for 10 s while this process was leaving; "
                   "%zu item(s) it put were not delivered\n",
                   dropped);
    // The agents are ended below: the handle, if still used, must not wait for them.
    if (!ch.put_error)
      ch.put_error = make_error(errc::full, "the queue accepted nothing for 10 s");
    ch.outbox.clear();
    ch.sending = false;
    ch.in_flight = 0;
    ch.cv.notify_all();
    break;
  }
  auto stragglers = std::move(ch.retiring);
  ch.retiring.clear();
  lock.unlock();
  for (auto& agent : stragglers)  // done ones are ending anyway; stalled ones must
    caf::anon_send_exit(agent, caf::exit_reason::kill);
}

// Makes every client still here leave, then waits until the queues have answered every
// leave and taken every put, including those of clients destroyed meanwhile (a destroyed
// client has left or is leaving: its destructor leaves).
void leave_all() {
  std::vector<std::shared_ptr<queue_leaver>> clients;
  std::vector<std::shared_ptr<queue_channel>> channels;
  {
    auto& r = registry();
    std::lock_guard guard{r.m};
    r.settled_node = r.hooked_node;
    for (auto& e : r.entries) {
      if (auto c = e.client.lock())
        clients.push_back(std::move(c));
      if (auto ch = e.channel.lock())
        channels.push_back(std::move(ch));
    }
    r.entries.clear();
  }
  for (auto& c : clients)
    c->leave();
  clients.clear();
  for (auto& ch : channels)
    settle_at_exit(*ch);
}

} // namespace

bool exit_settled() {
  auto& r = registry();
  std::lock_guard guard{r.m};
  return r.settled_node != 0 && r.settled_node == r.hooked_node;
}

void track_for_exit(const std::shared_ptr<queue_leaver>& client) {
  auto& n = this_node();
  auto& r = registry();
  std::lock_guard guard{r.m};
  std::erase_if(r.entries, [](const auto& e) { return e.channel.expired(); });
  r.entries.push_back({client, client->channel()});
  if (r.hooked_node != n.id()) {
    r.hooked_node = n.id();
    n.at_exit(leave_all);
  }
}

} // namespace mproc::detail
