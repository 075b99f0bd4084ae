// The registered inspect_sources (runtime/inspect.hpp), as the node's snapshot reads them.
#pragma once

#include "mproc/serialization/value.hpp"

namespace mproc::detail {

// Calls every source registered now; one map per report, with "kind" first. A report that
// throws is shown as {"kind": ..., "error": what()}.
value::array_t inspect_reports();

} // namespace mproc::detail
