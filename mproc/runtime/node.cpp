#include "mproc/runtime/node.hpp"

#include <sys/prctl.h>

#include <atomic>
#include <cstdio>
#include <future>
#include <stdexcept>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blocking.hpp"
#include "mproc/runtime/internal/commands.hpp"
#include "mproc/runtime/internal/fork_server.hpp"
#include "mproc/runtime/internal/message_codec.hpp"
#include "mproc/runtime/internal/node_impl.hpp"
#include "mproc/runtime/internal/node_mode.hpp"
#include "mproc/runtime/internal/spawner.hpp"
#include "mproc/runtime/internal/tcp.hpp"
#include "mproc/runtime/internal/tls.hpp"
#include "mproc/serialization/type_registry.hpp"

namespace mproc {

namespace {
std::atomic<node*> current_node{nullptr};
} // namespace

void init(int argc, char** argv, node_options options) {
  // Descriptors are how local processes share things here (pipe ends, locks, blobs, links),
  // and 1024, the usual soft limit, runs out long before memory does: it goes up to the hard
  // limit, as Go's runtime does. A command (runtime/command.hpp) gets it back as it was.
  detail::raise_descriptor_limit();
  if (auto mode = detail::parse_node_mode(argc, argv))
    detail::run_node_mode(*mode, std::move(options));
  if (auto child = detail::parse_child_args(argc, argv))
    detail::run_child_node(*child, std::move(options));
  if (auto node = detail::fork_server::parse_args(argc, argv)) {
    detail::register_builtin_types();  // once here rather than in every child
    wire::types().freeze();
    detail::fork_server::serve(*node, [options = std::move(options)](const detail::child_args& c) {
      detail::run_child_node(c, options);
    });
  }
}

namespace detail {

// Forked or exec'd, a child whose node cannot be built (no thread to be had, say) says so and
// ends with 1: the program's main() must not go on as if it were the root.
void run_child_node(const child_args& child, node_options options) {
  die_with_parent(child.parent);
  // What ps and top show for a forked child, which shares the program's command line: the
  // last part of the name ("consumer-2" of "consumers/consumer-2"; the kernel keeps 15 bytes).
  auto slash = child.name.rfind('/');
  ::prctl(PR_SET_NAME, child.name.c_str() + (slash == std::string::npos ? 0 : slash + 1));
  try {
    auto impl = std::make_unique<node_impl>(std::move(options), child);
    auto* self = new node{node::child_tag{}, {}, std::move(impl)};  // lives until _exit
    self->impl_->run_child();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mproc: child %s failed to start: %s\n", child.name.c_str(), e.what());
    ::_exit(1);
  } catch (...) {
    std::fprintf(stderr, "mproc: child %s failed to start\n", child.name.c_str());
    ::_exit(1);
  }
}

} // namespace detail

node::node(int argc, char** argv, node_options options) {
  init(argc, argv, options);
  node* expected = nullptr;
  if (!current_node.compare_exchange_strong(expected, this))
    throw std::logic_error("a process hosts one mproc::node; this one already has one");
  try {
    impl_ = std::make_unique<detail::node_impl>(std::move(options), std::nullopt);
  } catch (...) {
    current_node = nullptr;
    throw;
  }
}

node::node(child_tag, node_options, std::unique_ptr<detail::node_impl> impl)
  : impl_(std::move(impl)) {
  current_node = this;
}

node::~node() {
  impl_->shutdown();  // actors still running may call this_node() until it returns
  current_node = nullptr;
  impl_.reset();
}

node& this_node() {
  auto* n = current_node.load();
  if (n == nullptr)
    throw std::logic_error("no mproc::node exists in this process");
  return *n;
}

caf::actor_system& node::system() {
  return impl_->system();
}

std::uint64_t node::id() const {
  return impl_->id();
}

const std::string& node::name() const {
  return impl_->name();
}

std::uint32_t node::max_frame() const {
  return impl_->options().max_frame;
}

caf::actor node::spawn_message(std::string_view actor, const caf::message& args) {
  auto result = detail::spawn_registered(impl_->system(), actor, args);
  if (!result)
    throw error(result.error(), impl_->system().render(result.error()));
  return std::move(*result);
}

caf::message node::request_message(const caf::actor& dest, caf::message msg,
                                   std::chrono::nanoseconds timeout) {
  auto result = impl_->request(dest, std::move(msg), timeout);
  if (!result)
    throw error(result.error(), impl_->system().render(result.error()));
  return std::move(*result);
}

void node::throw_unexpected_reply(const caf::message& reply) {
  std::string types;
  for (std::size_t i = 0; i < reply.size(); ++i)
    types += (i ? ", " : "") + detail::tag_of(reply, i);
  auto err = make_error(errc::bad_message, "the reply (" + types + ") has another type than asked for");
  throw error(err, impl_->system().render(err));
}

bool node::unregister_name(const std::string& name, const caf::actor_addr& actor) {
  return impl_->unregister_name(name, actor);
}

void node::register_name(const std::string& name, const caf::actor& actor) {
  if (auto err = impl_->register_name(name, actor))
    throw error(err, impl_->system().render(err));
}

caf::actor node::lookup(const std::string& name, std::chrono::milliseconds timeout) {
  auto result = std::make_shared<std::promise<caf::expected<caf::actor>>>();
  impl_->lookup(name, [result](caf::expected<caf::actor> r) { result->set_value(std::move(r)); });
  auto answer = result->get_future();
  if (answer.wait_for(std::chrono::seconds{0}) != std::future_status::ready)
    will_block();  // a child's answer comes through its loop
  if (answer.wait_for(capped(timeout)) != std::future_status::ready) {
    auto err = make_error(errc::timeout, "no answer to the lookup of '" + name + "'");
    throw error(err, impl_->system().render(err));
  }
  auto found = answer.get();
  if (!found)
    throw error(found.error(), impl_->system().render(found.error()));
  return std::move(*found);
}

std::uint16_t node::listen(const authkey& key, std::string_view address, link_security accept) {
  return impl_->listen(detail::parse_endpoint(address),
                       {std::string{key.secret()}, accept == link_security::plaintext, nullptr});
}

remote_node node::connect(std::string_view address, const authkey& key,
                          std::chrono::milliseconds timeout, link_security security) {
  auto to = detail::parse_endpoint(address);
  detail::link_credentials as{std::string{key.secret()}, security == link_security::plaintext,
                              nullptr};
  return remote_node{impl_->connect(to, as, timeout), to.text()};
}

namespace {

std::shared_ptr<const detail::tls::certificates> load(detail::tls::role r,
                                                       const node::certificates& files) {
  return std::make_shared<const detail::tls::certificates>(r, files.ca_file, files.cert_file,
                                                           files.key_file);
}

} // namespace

std::uint16_t node::listen(const certificates& files, std::string_view address) {
  auto at = detail::parse_endpoint(address);
  return impl_->listen(at, {{}, false, load(detail::tls::role::server, files)});
}

remote_node node::connect(std::string_view address, const certificates& files,
                          std::chrono::milliseconds timeout) {
  auto to = detail::parse_endpoint(address);
  detail::link_credentials as{{}, false, load(detail::tls::role::client, files)};
  return remote_node{impl_->connect(to, as, timeout), to.text()};
}

void node::keep_alive(const caf::actor& actor) {
  impl_->keep_alive(actor);
}

void node::at_exit(std::function<void()> fn) {
  impl_->at_exit(std::move(fn));
}

command node::start_command(const command_spec& spec) {
  return command{impl_->commands().start(spec)};
}

std::vector<process> node::active_children() {
  std::vector<process> out;
  for (auto& state : impl_->live_children())
    out.push_back(process{state});
  return out;
}

} // namespace mproc
