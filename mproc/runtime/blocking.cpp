#include "mproc/runtime/blocking.hpp"

#include "mproc/runtime/internal/io_loop.hpp"

namespace mproc {

void will_block() noexcept {
  detail::io_loop::will_block();
}

} // namespace mproc
