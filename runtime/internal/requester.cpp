#include "runtime/internal/requester.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/error.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/message_id.hpp>

#include "runtime/errors.hpp"
#include "runtime/internal/link.hpp"

namespace mproc::detail {

namespace {

// now + timeout, saturated: "forever" may be written as a very long timeout.
std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
  auto now = std::chrono::steady_clock::now();
  auto room = std::chrono::steady_clock::time_point::max() - now;
  return timeout >= room ? std::chrono::steady_clock::time_point::max() : now + timeout;
}

} // namespace

requester::requester(caf::actor_config& cfg) : caf::monitorable_actor(cfg) {}

void requester::enqueue(caf::mailbox_element_ptr what, caf::execution_unit*) {
  if (!what || !what->mid.is_response())
    return;  // nothing but replies is meant for it
  std::lock_guard guard{mtx_};
  auto i = calls_.find(what->mid.request_id().integer_value());
  if (i == calls_.end())
    return;  // the caller gave up waiting
  i->second->reply = what->move_content_to_message();
  i->second->cv.notify_one();
  calls_.erase(i);
}

caf::expected<caf::message> requester::request(const caf::actor& dest, caf::message msg,
                                               std::chrono::nanoseconds timeout) {
  call c;
  std::uint64_t id;
  {
    std::lock_guard guard{mtx_};
    if (stopped_)
      return *stopped_;
    id = ++last_id_;
    calls_.emplace(id, &c);
  }
  auto mid = caf::make_message_id(id);
  auto deadline = deadline_after(timeout);
  try {
    link::write_deadline bounded{deadline};  // a link to a process that stopped reading
    dest->enqueue(caf::make_mailbox_element(ctrl(), mid, {}, std::move(msg)), nullptr);
  } catch (...) {
    std::lock_guard guard{mtx_};
    calls_.erase(id);  // `c` is about to go: no reply may reach it
    throw;
  }
  std::unique_lock lock{mtx_};
  if (!c.cv.wait_until(lock, deadline, [&] { return c.reply.has_value(); })) {
    calls_.erase(id);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    return make_error(errc::timeout, "no reply within " + std::to_string(ms) + " ms");
  }
  auto& reply = *c.reply;
  if (reply.match_elements<caf::error>())
    return reply.get_as<caf::error>(0);
  return std::move(reply);
}

bool requester::waiting(std::uint64_t request_id) {
  std::lock_guard guard{mtx_};
  return calls_.count(request_id) != 0;
}

void requester::stop(caf::error why) {
  {
    std::lock_guard guard{mtx_};
    stopped_ = why;
    for (auto& [id, c] : calls_) {
      c->reply = caf::make_message(why);
      c->cv.notify_one();
    }
    calls_.clear();
  }
  cleanup(std::move(why), nullptr);
}

} // namespace mproc::detail
