#include "mproc/runtime/internal/child_ref.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/log.hpp"

namespace mproc::detail {

namespace {

struct child_ref_state {
  std::string id;
  caf::actor current;
  std::uint64_t dropped = 0;
  static inline const char* name = "mproc.child_ref";
};

caf::behavior child_ref(caf::stateful_actor<child_ref_state>* self, std::string id) {
  self->state.id = std::move(id);
  self->set_default_handler([=](caf::scheduled_actor*, caf::message_view& x)
                              -> caf::result<caf::message> {
    auto& st = self->state;
    auto* element = self->current_mailbox_element();
    if (st.current) {
      st.current->enqueue(caf::make_mailbox_element(element->sender, element->mid,
                                                    std::move(element->stages),
                                                    x.move_content_to_message()),
                          self->context());
      return caf::delegated<caf::message>{};  // the child answers the asker itself
    }
    if (element->mid.is_request())
      return make_error(errc::not_running, "child '" + st.id + "' is not running");
    if (++st.dropped == 1 || st.dropped % 1000 == 0)
      log::warn("child '", st.id, "' is not running: ", st.dropped, " message(s) dropped");
    return caf::message{};
  });
  // An exit sent to the reference (a linked actor's failure, an anon_send_exit to what the
  // user knows as the child) is meant for the child: CAF's default would end this forwarder
  // instead, and every later message through any copy of it would fail while the child ran
  // on. The child gets it (its supervisor then acts as for any end). A stray error has
  // nobody to go to: dropped, where the default would end the forwarder too.
  self->set_exit_handler([=](caf::exit_msg& m) {
    if (m.reason && self->state.current)
      self->send_exit(self->state.current, std::move(m.reason));
  });
  self->set_error_handler([=](caf::error& err) {
    log::debug("child '", self->state.id, "': an error sent to its reference is dropped: ",
               self->system().render(err));
  });
  return {
    [=](child_current& c) { self->state.current = std::move(c.actor); },
  };
}

} // namespace

caf::actor spawn_child_ref(caf::actor_system& sys, std::string id) {
  return sys.spawn(child_ref, std::move(id));
}

} // namespace mproc::detail
