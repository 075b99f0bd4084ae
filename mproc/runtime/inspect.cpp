// The registry of inspect_sources, and where introspection sockets live.
#include "mproc/runtime/inspect.hpp"

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include <unistd.h>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>

#include "mproc/runtime/errors.hpp"
#include "mproc/runtime/internal/inspect_sources.hpp"
#include "mproc/runtime/message_types.hpp"
#include "mproc/runtime/node.hpp"

namespace mproc {

namespace {

struct registry {
  struct entry {
    std::string kind;
    std::shared_ptr<const inspect_source::report_fn> report;
  };
  std::mutex mtx;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, entry> entries;  // by id: reports in the order of registration
};

registry& sources() {
  static auto* r = new registry;  // never destroyed: sources may end after static destructors
  return *r;
}

} // namespace

inspect_source::inspect_source(std::string kind, report_fn report) {
  auto& r = sources();
  std::lock_guard guard{r.mtx};
  id_ = r.next_id++;
  r.entries.emplace(id_, registry::entry{std::move(kind),
                                         std::make_shared<const report_fn>(std::move(report))});
}

inspect_source::~inspect_source() {
  if (id_ == 0)
    return;
  auto& r = sources();
  std::lock_guard guard{r.mtx};
  r.entries.erase(id_);
}

inspect_source::inspect_source(inspect_source&& other) noexcept
  : id_{std::exchange(other.id_, 0)} {}

inspect_source& inspect_source::operator=(inspect_source&& other) noexcept {
  if (this != &other) {
    inspect_source gone{std::move(*this)};
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

inspect_source inspect_source::of_actor(std::string kind, const caf::actor_addr& who,
                                        caf::message question) {
  return {std::move(kind), [who, question](std::chrono::milliseconds timeout) -> value {
            auto actor = caf::actor_cast<caf::actor>(who);
            if (!actor)
              return nullptr;
            auto reply = this_node().request_message(actor, question, timeout);
            if (reply.size() != 1 || !reply.match_element<value>(0))
              return value::map_t{{"error", "answered with something else"}};
            auto fields = reply.get_as<value>(0).as<value::map_t>();
            fields.insert(fields.begin(), {"id", actor.id()});
            return fields;
          }};
}

std::string inspect_directory() {
  if (const char* run = std::getenv("XDG_RUNTIME_DIR"); run && *run == '/')
    return std::string{run} + "/mproc";
  return "/tmp/mproc-" + std::to_string(::getuid());
}

namespace detail {

value::array_t inspect_reports(std::chrono::steady_clock::time_point deadline) {
  std::vector<registry::entry> now;
  {
    auto& r = sources();
    std::lock_guard guard{r.mtx};
    for (const auto& [id, e] : r.entries)
      now.push_back(e);
  }
  // Outside the lock: a report may wait for its actor, which may be ending and unregistering.
  value::array_t out;
  for (const auto& e : now) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    value report;
    if (left.count() <= 0) {
      report = value::map_t{{"error", "not asked: no time left"}};
    } else {
      try {
        report = (*e.report)(std::min(left, report_time));
      } catch (...) {  // a user's report: whatever it throws, the node lives on
        report = value::map_t{{"error", describe_current_exception()}};
      }
    }
    if (report.is_nil())
      continue;
    auto fields = report.type() == value::kind::map ? report.as<value::map_t>()
                                                    : value::map_t{{"report", report}};
    fields.insert(fields.begin(), {"kind", e.kind});
    out.emplace_back(std::move(fields));
  }
  return out;
}

} // namespace detail

} // namespace mproc
