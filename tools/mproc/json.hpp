// A snapshot as JSON (`mproc ps --json`): msgpack's value model maps onto JSON's, except
// that bytes become a hex string and non-string map keys their Python repr.
#pragma once

#include <iosfwd>

#include <mproc/serialization/value.hpp>

namespace mproc::cli {

void write_json(std::ostream& out, const value& v, int indent = 0);

} // namespace mproc::cli
