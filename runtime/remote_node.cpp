#include "runtime/remote_node.hpp"

#include <future>

#include "runtime/errors.hpp"
#include "runtime/internal/node_impl.hpp"
#include "runtime/internal/peer.hpp"

namespace mproc {

namespace {

using answer = std::promise<caf::expected<caf::actor>>;

caf::actor wait_for(std::future<caf::expected<caf::actor>> f, std::chrono::milliseconds timeout,
                    const std::string& what) {
  if (f.wait_for(timeout) != std::future_status::ready) {
    auto why = what + ": no answer within the timeout";
    throw error(make_error(errc::timeout, why), why);
  }
  auto r = f.get();
  if (!r)
    throw error(r.error(), this_node().system().render(r.error()));
  return std::move(*r);
}

} // namespace

remote_node::remote_node(std::shared_ptr<detail::peer> peer, std::string address)
  : peer_(std::move(peer)), address_(std::move(address)), name_(peer_->who().name) {}

std::uint64_t remote_node::id() const {
  return peer_->who().node;
}

std::int64_t remote_node::pid() const {
  return peer_->who().pid;
}

bool remote_node::connected() const {
  return !peer_->link().closed();
}

caf::actor remote_node::spawn_message(std::string_view actor, const caf::message& args,
                                      std::chrono::milliseconds timeout) {
  auto result = std::make_shared<answer>();
  auto name = std::string{actor};
  auto p = peer_;
  auto& loop = p->link().loop();
  loop.post([p, name, args, result] {
    p->spawn(name, args, false, [result](caf::expected<caf::actor> r) {
      result->set_value(std::move(r));
    });
  });
  return wait_for(result->get_future(), timeout, "spawn '" + name + "' on " + address_);
}

caf::actor remote_node::lookup(const std::string& name, std::chrono::milliseconds timeout) {
  auto result = std::make_shared<answer>();
  auto p = peer_;
  p->link().loop().post([p, name, result] {
    p->lookup(name, [result](caf::expected<caf::actor> r) { result->set_value(std::move(r)); });
  });
  return wait_for(result->get_future(), timeout, "lookup of '" + name + "' on " + address_);
}

void remote_node::on_down(std::function<void(const std::string&)> fn) {
  peer_->on_failed([fn = std::move(fn)](const caf::error& e) {
    fn(this_node().system().render(e));
  });
}

void remote_node::disconnect() {
  auto p = peer_;
  p->link().loop().post([p] { p->close("disconnected"); });
}

} // namespace mproc
