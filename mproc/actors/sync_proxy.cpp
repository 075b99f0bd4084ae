#include "mproc/actors/sync_proxy.hpp"

namespace mproc {

const bool event_proxy::registered_ = detail::register_message_type<event_proxy>();
const bool lock_proxy::registered_ = detail::register_message_type<lock_proxy>();

void event_proxy::set() const { ref_.call(caf::atom("set"), {}); }

void event_proxy::clear() const { ref_.call(caf::atom("clear"), {}); }

bool event_proxy::is_set() const {
  return detail::unpack_value<bool>(ref_.call_one(caf::atom("is_set"), {}));
}

bool event_proxy::wait(wait_timeout timeout) const {
  auto reply =
    ref_.call_waiting(caf::atom("wait"), {detail::pack_wait(timeout)}, timeout.get());
  return reply.size() == 1 && detail::unpack_value<bool>(reply[0]);
}

acquired lock_proxy::acquire(bool blocking, wait_timeout timeout) const {
  auto wait = blocking ? timeout.get() : std::optional<millis>{millis{0}};
  auto reply = ref_.call_waiting(caf::atom("acquire"),
                                 {detail::pack_value(blocking), detail::pack_wait(timeout)}, wait);
  if (reply.size() != 2)
    detail::throw_manager_codec("a lock's answer", "not [acquired, owner_died]");
  return {detail::unpack_value<bool>(reply[0]), detail::unpack_value<bool>(reply[1])};
}

void lock_proxy::release() const { ref_.call(caf::atom("release"), {}); }

bool lock_proxy::locked() const {
  return detail::unpack_value<bool>(ref_.call_one(caf::atom("locked"), {}));
}

} // namespace mproc
