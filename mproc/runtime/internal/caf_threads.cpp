#include "mproc/runtime/internal/caf_threads.hpp"

#include <pthread.h>

#include <cstring>

#include <caf/actor_system_config.hpp>
#include <caf/thread_hook.hpp>

namespace mproc::detail {

namespace {

thread_local bool caf_scheduler_thread = false;

class caf_thread_hook final : public caf::thread_hook {
public:
  void init(caf::actor_system&) override {}
  void thread_started() override {
    char name[16] = {};
    ::pthread_getname_np(::pthread_self(), name, sizeof name);
    // CAF 0.17's names: scheduler/worker.hpp and scheduler/coordinator.hpp.
    caf_scheduler_thread =
      std::strcmp(name, "caf.multiplexer") == 0 || std::strcmp(name, "caf.clock") == 0;
  }
  void thread_terminates() override {}
};

} // namespace

void watch_caf_threads(caf::actor_system_config& config) {
  config.add_thread_hook<caf_thread_hook>();
}

bool on_caf_scheduler_thread() { return caf_scheduler_thread; }

} // namespace mproc::detail
