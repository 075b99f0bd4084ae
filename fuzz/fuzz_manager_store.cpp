// libFuzzer harness for the manager's stores (actors/manager_store.hpp): the operations a
// stranger holding a proxy can send, with any arguments.
//
// Input: msgpack values back to back. The first picks the store (0 dict, 1 list, 2
// namespace); each next one is [op: str, args...], where a bin argument is passed as raw
// bytes (often not msgpack at all) and anything else as its msgpack encoding. Every
// operation must answer or fail with an mproc error, never crash; and the store must stay
// consistent: its len equals what its listing holds.
#include <cstdint>
#include <cstdlib>

#include <caf/string_view.hpp>

#include "mproc/actors/manager_store.hpp"
#include "mproc/serialization/unpack.hpp"

namespace {

using namespace mproc::detail;

mproc::bytes repacked(const msgpack::object& o) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, o);
  return mproc::bytes(buf.data(), buf.data() + buf.size());
}

std::uint64_t length_of(manager_store& store) {
  manager_args none;
  auto reply = store.call(caf::atom("len"), none);
  if (reply.size() != 1)
    std::abort();
  auto h = mproc::wire::unpack_bounded(reply[0].data(), reply[0].size());
  return h.get().as<std::uint64_t>();
}

std::size_t listed(manager_store& store, bool list) {
  manager_args none;
  return store.call(list ? caf::atom("all") : caf::atom("keys"), none).size();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto text = reinterpret_cast<const char*>(data);
  std::size_t offset = 0;
  std::unique_ptr<manager_store> store;
  bool list = false;
  try {
    auto first = mproc::wire::unpack_bounded(text, size, offset);
    auto kind = first.get().type == msgpack::type::POSITIVE_INTEGER ? first.get().via.u64 % 3 : 0;
    list = kind == 1;
    store = list ? make_list_store() : make_dict_store(kind == 0 ? "dict" : "namespace");
  } catch (const mproc::wire::unpack_error&) {
    return 0;
  }
  for (int steps = 0; offset < size && steps < 64; ++steps) {
    msgpack::object_handle h;
    try {
      h = mproc::wire::unpack_bounded(text, size, offset);
    } catch (const mproc::wire::unpack_error&) {
      return 0;
    }
    const auto& o = h.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size == 0
        || o.via.array.ptr[0].type != msgpack::type::STR || o.via.array.ptr[0].via.str.size > 10)
      continue;
    std::string op{o.via.array.ptr[0].via.str.ptr, o.via.array.ptr[0].via.str.size};
    manager_args args;
    for (std::uint32_t i = 1; i < o.via.array.size; ++i) {
      auto& a = o.via.array.ptr[i];
      if (a.type == msgpack::type::BIN)
        args.emplace_back(a.via.bin.ptr, a.via.bin.ptr + a.via.bin.size);
      else
        args.push_back(repacked(a));
    }
    try {
      (void)store->call(caf::atom_from_string(op), args);
    } catch (const op_error&) {
    } catch (const mproc::error&) {
    }
    if (length_of(*store) != listed(*store, list))
      std::abort();
  }
  return 0;
}
