// Manager: shared dict, list, Namespace and registered classes, used from the root, from
// children, and from another node; what a killed, stopped or shut-down manager does to calls.
#include <catch2/catch.hpp>

#include <signal.h>

#include <optional>
#include <sstream>
#include <thread>

#include <caf/all.hpp>

#include "mproc/actors/manager.hpp"
#include "mproc/runtime/actor_registry.hpp"
#include "support.hpp"

using namespace std::chrono_literals;
using mproc::errc;
using mproc::value;
using test::code_of;

namespace {
// How a call to a manager whose process died fails: its exit seen, or its link found broken
// by a write before that.
bool gone(errc code) {
  return code == errc::process_exited || code == errc::link_lost;
}
} // namespace

namespace {

// Python's tutorial: a child fills the dict and reverses the list.
void fill(caf::blocking_actor*, mproc::dict_proxy<value, value> d, mproc::list_proxy<int> l) {
  d.set(1, "1");
  d.set("2", 2);
  d.set(0.25, nullptr);
  l.reverse();
}

// Sends `target` one message from another process: the root's loop thread reads it and runs
// the target there.
void poke(caf::blocking_actor* self, caf::actor target) {
  self->send(target, std::int32_t{1});
}

struct counter {
  std::int64_t n = 0;
  std::int64_t add(std::int64_t k) { return n += k; }
  std::int64_t get() const { return n; }
  void fail(std::string why) { throw std::runtime_error(why); }
  void odd() { throw 42; }
  // Fails as a call of its own fails (a process it used has ended): not the manager's end.
  void lose() {
    throw mproc::error{mproc::make_error(errc::process_exited, "its helper died"), "its helper died"};
  }
  std::int64_t twice(std::int64_t k) const noexcept { return 2 * k; }
};

// Adds 1 to the counter `times` times.
void count_up(caf::blocking_actor*, mproc::object_proxy<counter> c, std::int32_t times) {
  for (std::int32_t i = 0; i < times; ++i)
    c.call<&counter::add>(1);
}

// Finds the manager by its name, and the dict by its own, from a child.
void use_by_name(caf::blocking_actor*, std::string manager_name) {
  auto m = mproc::manager::lookup(manager_name);
  m.dict<std::string, std::int32_t>("scores").set("child", 7);
}

// Calls the dict until a call fails; answers that call's error code.
caf::behavior call_until_gone(caf::event_based_actor*, mproc::dict_proxy<std::string, int> d) {
  return {[d](caf::get_atom) -> std::int32_t {
    return static_cast<std::int32_t>(code_of([&] {
      for (;;)
        d.set("k", 1);
    }));
  }};
}

// A node standing in for another machine: listens with `key`, serves a manager named
// `name` from its own process, answers its port.
caf::behavior manager_machine(caf::event_based_actor* self, std::string key, std::string name) {
  auto m = std::make_shared<mproc::manager>(mproc::this_node(),
                                            mproc::manager_options{.name = name, .in_process = true});
  return {[self, m, key](caf::get_atom) -> std::int32_t {
    try {
      return mproc::this_node().listen(mproc::authkey::from_string(key));
    } catch (const mproc::error&) {
      self->quit();
      return -1;
    }
  }};
}

} // namespace

MPROC_ACTOR(fill);
MPROC_ACTOR(poke);
MPROC_ACTOR(count_up);
MPROC_ACTOR(use_by_name);
MPROC_ACTOR(call_until_gone);
MPROC_ACTOR(manager_machine);
MPROC_MANAGED(counter, add);
MPROC_MANAGED(counter, get);
MPROC_MANAGED(counter, fail);
MPROC_MANAGED(counter, odd);
MPROC_MANAGED(counter, lose);
MPROC_MANAGED(counter, twice);

TEST_CASE("a child fills a manager's dict and reverses its list; the parent prints both") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto d = m.dict<value, value>();
  auto l = m.list<int>();
  l.extend(std::vector{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto p = node->spawn_process("fill", {}, d, l);
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  std::ostringstream out;
  out << d << "\n" << l;
  CHECK(out.str() == "{1: '1', '2': 2, 0.25: None}\n[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]");
  CHECK(m.server_process()->pid() != ::getpid());
}

TEST_CASE("a manager's dict does what Python's dict does") {
  test::scoped_node node;
  mproc::manager m{*node, {.in_process = true}};
  auto d = m.dict<std::string, std::int64_t>();
  d.set("b", 2);
  d.set("a", 1);
  d.set("b", 20);  // keeps its place, as in Python
  CHECK(d.keys() == std::vector<std::string>{"b", "a"});
  CHECK(d.values() == std::vector<std::int64_t>{20, 1});
  CHECK(d.at("a") == 1);
  CHECK(code_of([&] { d.at("zz"); }) == errc::no_such_key);
  CHECK(d.get("zz") == std::nullopt);
  CHECK(d.get("zz", 5) == 5);
  CHECK(d.contains("a"));
  CHECK(d.size() == 2);
  d.update(std::map<std::string, std::int64_t>{{"c", 3}, {"a", 10}});
  CHECK(d.items() == std::vector<std::pair<std::string, std::int64_t>>{{"b", 20}, {"a", 10}, {"c", 3}});
  CHECK(d.pop("c") == 3);
  CHECK(code_of([&] { d.pop("c"); }) == errc::no_such_key);
  CHECK(d.pop("c", -1) == -1);
  CHECK(d.setdefault("a", 99) == 10);
  CHECK(d.setdefault("n", 99) == 99);
  CHECK(d.popitem() == std::pair<std::string, std::int64_t>{"n", 99});
  CHECK(d.erase("b"));
  CHECK_FALSE(d.erase("b"));
  CHECK(d.repr() == "{'a': 10}");
  d.clear();
  CHECK(d.size() == 0);
  CHECK(code_of([&] { d.popitem(); }) == errc::no_such_key);
}

TEST_CASE("a manager's list does what Python's list does") {
  test::scoped_node node;
  mproc::manager m{*node, {.in_process = true}};
  auto l = m.list<int>();
  l.extend(std::vector{3, 1, 2});
  l.append(5);
  l.insert(0, 9);     // [9, 3, 1, 2, 5]
  l.insert(-1, 4);    // [9, 3, 1, 2, 4, 5]
  l.insert(100, 7);   // clamped to the end, as Python's
  CHECK(l.copy() == std::vector{9, 3, 1, 2, 4, 5, 7});
  CHECK(l.at(0) == 9);
  CHECK(l.at(-1) == 7);
  CHECK(code_of([&] { l.at(7); }) == errc::out_of_range);
  CHECK(code_of([&] { l.at(-8); }) == errc::out_of_range);
  CHECK(l.slice(1, 3) == std::vector{3, 1});
  CHECK(l.slice(-2) == std::vector{5, 7});
  CHECK(l.slice({}, -5) == std::vector{9, 3});
  CHECK(l.slice(5, 2).empty());
  l.set(-1, 8);
  CHECK(l.pop() == 8);
  CHECK(l.pop(0) == 9);
  l.remove(2);
  CHECK(code_of([&] { l.remove(42); }) == errc::not_found);
  CHECK(l.index(4) == 2);
  CHECK(code_of([&] { l.index(42); }) == errc::not_found);
  CHECK(code_of([&] { l.index(9, 1); }) == errc::not_found);
  CHECK(l.index(4, -3, {}) == 2);
  l.append(3);
  CHECK(l.count(3) == 2);
  CHECK(l.contains(5));
  l.sort();
  CHECK(l.copy() == std::vector{1, 3, 3, 4, 5});
  l.sort(true);
  CHECK(l.repr() == "[5, 4, 3, 3, 1]");
  l.reverse();
  l.erase(0);
  CHECK(l.size() == 4);
  l.clear();
  CHECK(code_of([&] { l.pop(); }) == errc::out_of_range);
}

TEST_CASE("sorting values that Python cannot order fails and leaves the list as it was") {
  test::scoped_node node;
  mproc::manager m{*node, {.in_process = true}};
  auto l = m.list<value>();
  l.extend(std::vector<value>{3, "a", 1.5});
  CHECK(code_of([&] { l.sort(); }) == errc::bad_arguments);
  CHECK(l.repr() == "[3, 'a', 1.5]");
  l.remove("a");
  l.sort();
  CHECK(l.repr() == "[1.5, 3]");
  auto records = m.list<value>();
  records.extend(std::vector<value>{value::array_t{nullptr, 3}, value::array_t{nullptr, 1}});
  records.sort();  // equal Nones are skipped, as Python's list comparison does
  CHECK(records.repr() == "[[None, 1], [None, 3]]");
}

TEST_CASE("a manager's Namespace holds attributes and prints as Python's") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto ns = m.namespace_();
  ns.set("y", std::string{"hello"});
  ns.set("x", 10);
  CHECK(ns.get<int>("x") == 10);
  CHECK(ns.get<std::string>("y") == "hello");
  CHECK(code_of([&] { ns.get<int>("z"); }) == errc::no_such_key);
  CHECK(ns.get_optional<int>("z") == std::nullopt);
  CHECK(ns.has("x"));
  CHECK(ns.names() == std::vector<std::string>{"y", "x"});
  CHECK(ns.repr() == "Namespace(x=10, y='hello')");
  ns.set("a1", 2);
  ns.set("a", 1);
  ns.set("_hidden", 0);
  CHECK(ns.repr() == "Namespace(a1=2, a=1, x=10, y='hello')");  // Python sorts "name=value"
  CHECK((ns.erase("a1") && ns.erase("a") && ns.erase("_hidden")));
  CHECK(ns.erase("x"));
  CHECK_FALSE(ns.has("x"));
  // Another type read from the same attribute is refused, not reinterpreted.
  CHECK(code_of([&] { ns.get<int>("y"); }) == errc::bad_message);
}

TEST_CASE("named objects are found again by name, from a child too; kinds must match") {
  test::scoped_node node;
  mproc::manager m{*node, {.name = "test-manager"}};
  auto scores = m.dict<std::string, std::int32_t>("scores");
  scores.set("root", 1);
  auto p = node->spawn_process("use_by_name", {}, std::string{"test-manager"});
  REQUIRE(p.join(10s));
  CHECK(p.exitcode() == 0);
  CHECK(scores.items() == std::vector<std::pair<std::string, std::int32_t>>{{"root", 1}, {"child", 7}});
  CHECK(m.dict<std::string, std::int32_t>("scores").size() == 2);
  CHECK(code_of([&] { m.list<int>("scores"); }) == errc::bad_arguments);
  CHECK(m.names() == std::vector<std::pair<std::string, std::string>>{{"scores", "dict"}});
  CHECK(m.release(scores));
  CHECK(code_of([&] { scores.size(); }) == errc::no_such_actor);
  CHECK(code_of([&] { mproc::manager{*node, {.name = "test-manager"}}; }) == errc::bad_arguments);
}

TEST_CASE("a registered class runs its methods in the manager, one call at a time") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto c = m.object<counter>("hits");
  CHECK(c.call<&counter::add>(5) == 5);
  CHECK(c.call<std::int64_t>("get") == 5);
  std::vector<mproc::process> ps;
  for (int i = 0; i < 4; ++i)
    ps.push_back(node->spawn_process("count_up", {}, c, std::int32_t{50}));
  for (auto& p : ps) {
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == 0);
  }
  CHECK(c.call<&counter::get>() == 205);
  CHECK(c.methods() == std::vector<std::string>{"add", "fail", "get", "lose", "odd", "twice"});
  auto untyped = m.object("counter", "hits");
  CHECK(untyped.call<std::int64_t>("get") == 205);
  CHECK(code_of([&] { c.call<&counter::fail>("no"); }) == errc::task_failed);
  CHECK(code_of([&] { c.call<&counter::odd>(); }) == errc::task_failed);
  auto lost = test::error_of([&] { c.call<&counter::lose>(); });  // was: "the manager is gone"
  CHECK(lost.code() == errc::task_failed);
  CHECK_THAT(lost.what(), Catch::Contains("counter.lose raised") && Catch::Contains("its helper died"));
  CHECK(c.call<&counter::twice>(21) == 42);
  CHECK(code_of([&] { untyped.call<std::int64_t>("nope"); }) == errc::bad_arguments);
  CHECK(code_of([&] { untyped.call<std::int64_t>("add", "x"); }) == errc::bad_message);
  CHECK(code_of([&] { untyped.call<std::int64_t>("add"); }) == errc::bad_arguments);
  CHECK(code_of([&] { m.object("no_such_class", ""); }) == errc::unknown_actor_name);
  CHECK(c.call<&counter::get>() == 205);  // the manager survived every bad call
}

TEST_CASE("a manager killed from outside fails every call at once, not at the timeout") {
  test::scoped_node node;
  mproc::manager m{*node, {.timeout = 60s}};
  auto d = m.dict<std::string, int>();
  d.set("k", 1);
  auto user = node->spawn_process("call_until_gone", {}, d);
  REQUIRE(::kill(m.server_process()->pid(), SIGKILL) == 0);
  CHECK(gone(code_of([&] { d.get("k"); })));
  CHECK(gone(code_of([&] { d.set("k", 2); })));
  auto asked = std::chrono::steady_clock::now();
  auto child_saw = node->request<std::int32_t>(user.actor(), 50s, caf::get_atom::value);
  CHECK(gone(static_cast<errc>(child_saw)));
  CHECK(std::chrono::steady_clock::now() - asked < 30s);  // not the proxy's 60 s timeout
  m.shutdown();  // nothing left to stop: returns
  user.terminate();
  user.join(10s);
  CHECK(test::zombie_children() == 0);
}

TEST_CASE("a stopped manager makes calls time out; shut down, it fails them") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto d = m.dict<std::string, int>();
  auto pid = m.server_process()->pid();
  REQUIRE(::kill(pid, SIGSTOP) == 0);
  REQUIRE(test::eventually(10s, [&] { return test::all_threads_stopped(pid); }));
  d.set_timeout(300ms);
  CHECK(code_of([&] { d.size(); }) == errc::timeout);
  REQUIRE(::kill(pid, SIGCONT) == 0);
  d.set_timeout(10s);
  CHECK(d.size() == 0);
  m.shutdown();
  CHECK(m.server_process()->exitcode() == 0);
  CHECK(gone(code_of([&] { d.size(); })));
}

TEST_CASE("an in-process manager serves children and fails calls once shut down") {
  test::scoped_node node;
  mproc::manager m{*node, {.in_process = true}};
  auto d = m.dict<value, value>();
  auto l = m.list<int>();
  l.extend(std::vector{1, 2, 3});
  auto p = node->spawn_process("fill", {}, d, l);
  REQUIRE(p.join(10s));
  CHECK(d.size() == 3);
  CHECK(l.copy() == std::vector{3, 2, 1});
  caf::scoped_actor w{node->system()};
  w->monitor(m.actor());
  m.shutdown();
  bool down = false;
  w->receive([&](caf::down_msg&) { down = true; }, caf::after(std::chrono::seconds{5}) >> [] {});
  CHECK(down);
  CHECK(code_of([&] { d.size(); }) == errc::no_such_actor);
}

TEST_CASE("proxies keep their manager running after the handle is gone; the last one stops it") {
  for (bool in_process : {false, true}) {
    test::scoped_node node;
    caf::actor server;
    // As Python's `d = Manager().dict()`: the handle is a temporary.
    auto make = [&] {
      mproc::manager m{*node, {.in_process = in_process}};
      server = m.actor();
      return m.dict<std::string, int>();
    };
    std::optional<mproc::dict_proxy<std::string, int>> d = make();
    d->set("a", 1);
    auto copy = *d;  // copies share the manager too
    d.reset();
    CHECK(copy.at("a") == 1);
    caf::scoped_actor w{node->system()};
    w->monitor(server);
    copy = mproc::dict_proxy<std::string, int>{};  // the last one: the manager stops
    bool down = false;
    w->receive([&](caf::down_msg&) { down = true; }, caf::after(std::chrono::seconds{10}) >> [] {});
    CHECK(down);
  }
}

TEST_CASE("the last proxy to go stops its manager, also on the node's loop thread") {
  test::scoped_node node;
  std::optional<mproc::process> server;
  caf::actor holder;
  {
    mproc::manager m{*node};
    server = *m.server_process();
    auto d = m.dict<value, value>();
    // An actor holds the last proxy and ends on a message from another process: the loop
    // thread runs it and drops the proxy there, which asks the manager to stop without
    // waiting for it; the manager ends by itself (exit code 0, not killed).
    holder = node->system().spawn([d](caf::event_based_actor* self) -> caf::behavior {
      return {[self, d](std::int32_t) { self->quit(); }};
    });
  }
  auto p = node->spawn_process("poke", {}, holder);
  REQUIRE(server->join(20s));
  CHECK(server->exitcode() == 0);
  CHECK(p.join(10s));
}

TEST_CASE("floats a manager holds come back at the size they went in, so an answer fits its link") {
  // The root takes frames of 1 MiB; 200,000 floats go as 1,000,003 bytes. Kept as float64
  // they came back as 1.8 MB: the get's answer was refused and the item, already taken, lost.
  test::scoped_node node{{.max_frame = 1u << 20}};
  mproc::manager m{*node};
  auto q = m.queue<std::vector<float>>();
  std::vector<float> floats(200'000);
  for (std::size_t i = 0; i < floats.size(); ++i)
    floats[i] = static_cast<float>(i) / 7.0f;  // not whole numbers: floats, not ints, on the wire
  q.put(floats);
  CHECK(q.get() == floats);
  auto d = m.dict<std::string, std::vector<float>>();
  d.set("xs", floats);
  CHECK(d.pop("xs") == floats);
  CHECK(d.size() == 0);
}

TEST_CASE("a manager on another node is found by name and shared over TCP") {
  test::scoped_node node;
  auto key = mproc::authkey::generate();
  auto machine = node->spawn_process("manager_machine", {}, std::string{key.secret()},
                                     std::string{"shared"});
  auto port = node->request<std::int32_t>(machine.actor(), 5s, caf::get_atom::value);
  REQUIRE(port > 0);
  auto remote = node->connect("127.0.0.1:" + std::to_string(port), key);
  auto m = mproc::manager::connect(remote, "shared");
  auto d = m.dict<std::string, value>("config");
  d.set("workers", 4);
  CHECK(mproc::manager::connect(remote, "shared").dict<std::string, value>("config").repr()
        == "{'workers': 4}");
  CHECK(code_of([&] { mproc::manager::connect(remote, "unknown", 2s); }) == errc::no_such_actor);
  remote.disconnect();  // asynchronous: the link closes on the node's loop
  REQUIRE(test::eventually(10s, [&] { return !remote.connected(); }));
  auto gone = code_of([&] { d.size(); });
  INFO("the call failed with " << mproc::to_string(gone));
  CHECK((gone == errc::link_lost || gone == errc::no_such_actor));
  machine.terminate();
  machine.join(10s);
}

TEST_CASE("malformed calls to a manager fail alone; the manager and its objects go on") {
  test::scoped_node node;
  mproc::manager m{*node};
  auto d = m.dict<std::string, int>();
  d.set("kept", 1);
  auto call = [&](std::uint64_t object, const char* op, mproc::detail::manager_args args) {
    return code_of([&] {
      node->request<mproc::detail::manager_reply>(m.actor(), 10s, mproc::detail::m_call_atom::value,
                                                  object, caf::atom_from_string(op), std::move(args));
    });
  };
  auto id = d.ref().id();
  CHECK(call(id, "set", {}) == errc::bad_arguments);
  CHECK(call(id, "set", {{'\xc1'}, {'\x01'}}) == errc::bad_message);  // 0xc1: never msgpack
  CHECK(call(id, "get", {{}}) == errc::bad_message);
  CHECK(call(id, "nope", {}) == errc::bad_arguments);
  CHECK(call(999, "len", {}) == errc::no_such_actor);
  CHECK(call(0, "create", {mproc::detail::pack_value(std::string{"dict"})}) == errc::bad_arguments);
  // A Namespace's attribute names are strings: a client in another language cannot break
  // names() and repr() for every C++ process by setting attribute 1.
  auto ns = m.namespace_();
  ns.set("x", 1);
  auto one = mproc::detail::pack_value(std::int64_t{1});
  auto ns_id = ns.ref().id();
  CHECK(call(ns_id, "set", {one, one}) == errc::bad_arguments);
  CHECK(call(ns_id, "setdefault", {one, one}) == errc::bad_arguments);
  CHECK(call(ns_id, "update", {mproc::detail::pack_value(std::string{"y"}), one, one, one})
        == errc::bad_arguments);
  CHECK(ns.names() == std::vector<std::string>{"x"});
  auto l = m.list<int>();
  l.extend(std::vector{1, 2});
  auto min = std::numeric_limits<std::int64_t>::min();
  CHECK(code_of([&] { l.at(min); }) == errc::out_of_range);
  CHECK(code_of([&] { l.pop(min); }) == errc::out_of_range);
  l.insert(min, 0);
  CHECK(l.copy() == std::vector{0, 1, 2});
  CHECK(d.at("kept") == 1);
}

TEST_CASE("a proxy's timeout may be as long as it likes; release refuses another's proxy") {
  test::scoped_node node;
  mproc::manager m{*node};
  mproc::manager other{*node, {.in_process = true}};
  auto d = m.dict<std::string, int>();
  d.set_timeout(std::chrono::milliseconds::max());
  d.set("a", 1);
  CHECK(d.at("a") == 1);
  auto o = other.dict<std::string, int>();
  CHECK(code_of([&] { m.release(o); }) == errc::bad_arguments);
  CHECK(d.at("a") == 1);
}
