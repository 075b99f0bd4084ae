// The node the Python client's tests talk to (clients/python/tests): started in node mode
// (--mproc-node), it offers these actors by name.
#include <cstdint>
#include <stdexcept>
#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/node.hpp"

namespace {

caf::behavior squarer(caf::event_based_actor*) {
  return {[](std::int32_t x) { return x * x; }};
}

// Adds what it is sent; a request "total" answers the sum so far.
struct sum_state {
  std::int64_t sum = 0;
};
caf::behavior accumulator(caf::stateful_actor<sum_state>* self) {
  return {
    [=](std::int64_t x) { self->state.sum += x; },
    [=](const std::string&) { return self->state.sum; },
  };
}

// Never answers.
caf::behavior silent(caf::event_based_actor* self) {
  return {[=](std::int32_t) { return self->make_response_promise<std::int32_t>(); }};
}

// Ends normally when told anything.
caf::behavior quitter(caf::event_based_actor* self) {
  return {[=](std::int32_t) { self->quit(); }};
}

// Throws when told anything.
caf::behavior failer(caf::event_based_actor*) {
  return {[](std::int32_t) -> std::int32_t { throw std::runtime_error("boom"); }};
}

// Registers itself under `name`, then echoes strings.
caf::behavior registrar(caf::event_based_actor* self, std::string name) {
  mproc::this_node().register_name(name, caf::actor_cast<caf::actor>(self));
  return {[](const std::string& s) { return s; }};
}

} // namespace

MPROC_ACTOR(squarer);
MPROC_ACTOR(accumulator);
MPROC_ACTOR(silent);
MPROC_ACTOR(quitter);
MPROC_ACTOR(failer);
MPROC_ACTOR(registrar);

int main(int argc, char** argv) {
  mproc::node node{argc, argv};  // with --mproc-node this serves until every root is gone
}
