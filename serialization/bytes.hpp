// Raw bytes as a message element: msgpack bin on the wire. std::vector<char> because CAF
// 0.17 knows it as a built-in type (no registration, no type_info lookup).
#pragma once

#include <vector>

namespace mproc {
using bytes = std::vector<char>;
}
