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
  return {
    [=](child_current& c) { self->state.current = std::move(c.actor); },
  };
}

} // namespace

caf::actor spawn_child_ref(caf::actor_system& sys, std::string id) {
  return sys.spawn(child_ref, std::move(id));
}

} // namespace mproc::detail
