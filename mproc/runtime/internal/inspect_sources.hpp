// The registered inspect_sources (runtime/inspect.hpp), as the node's snapshot reads them.
#pragma once

#include <chrono>

#include "mproc/serialization/value.hpp"

namespace mproc::detail {

// Calls every source registered now, each with at most report_time of what is left until
// `deadline`; one map per report, with "kind" first. A report that throws is shown as
// {"kind": ..., "error": what()}; those not called in time as {"kind": ..., "error": ...}.
inline constexpr std::chrono::milliseconds report_time{500};
value::array_t inspect_reports(std::chrono::steady_clock::time_point deadline);

} // namespace mproc::detail
