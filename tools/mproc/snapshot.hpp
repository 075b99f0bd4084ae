// Reading a node's snapshot (docs/introspection.md) as the renderers need it: fields by
// name with a default when absent, and numbers for people.
#pragma once

#include <cstdint>
#include <string>

#include <mproc/serialization/value.hpp>

namespace mproc::cli {

const value& field(const value& map, const char* key);  // nil when absent
// "" when absent or not a string; control characters become '?'.
std::string text(const value& map, const char* key);
std::int64_t integer(const value& map, const char* key);  // 0 when absent or not a number
double real(const value& map, const char* key);         // 0 when absent or not a number
const value::array_t& list(const value& map, const char* key);  // empty when absent

// "512 B", "14.2 KiB", "3.0 MiB"
std::string human_bytes(double n);
// "0.4 s", "12 s", "3 min 5 s", "2 h 1 min"
std::string human_seconds(double s);
// The exit code as Python prints it, or the signal's name: "0", "1", "SIGKILL"
std::string exit_text(std::int64_t code);

} // namespace mproc::cli
