// Writes the seed corpora in fuzz/corpus/<harness>/: a few valid inputs per decoder and the
// edge cases next to them. Run from the repository root after changing a wire format:
//   ninja -C build-fuzz fuzz/make_seeds && build-fuzz/fuzz/make_seeds fuzz/corpus
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>

#include "mproc/serialization/codec.hpp"
#include "mproc/serialization/envelope.hpp"
#include "mproc/serialization/frame.hpp"
#include "mproc/serialization/protocol.hpp"

using namespace mproc::wire;
namespace fs = std::filesystem;

namespace {

fs::path root;

void write(const std::string& harness, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / harness);
  std::ofstream{root / harness / name, std::ios::binary} << bytes;
}

std::string packed(const std::function<void(packer&)>& pack) {
  buffer buf;
  packer pk{buf};
  pack(pk);
  return {buf.data(), buf.size()};
}

std::string frame(const std::string& payload) {
  char header[frame_header_size];
  put_frame_length(header, static_cast<std::uint32_t>(payload.size()));
  return std::string{header, sizeof header} + payload;
}

std::string nested(std::size_t depth) {
  return std::string(depth, '\x91') + '\xc0';
}

// A frame payload: the envelope packers write whole frames.
std::string envelope(const std::function<void(buffer&)>& pack) {
  buffer buf;
  auto start = begin_frame(buf);
  pack(buf);
  end_frame(buf, start);
  return {buf.data() + frame_header_size, buf.size() - frame_header_size};
}

void pack_message(buffer& buf) {
  packer pk{buf};
  pk.pack_array(4);
  pk.pack("i32");
  pk.pack(7);
  pk.pack("str");
  pk.pack("seven");
}

void pack_error(buffer& buf) {
  pack_error_head(buf, "mproc", 5, "bad message");
  packer pk{buf};
  pk.pack_array(2);
  pk.pack("str");
  pk.pack("why");
}

template <class T>
std::string value(const T& x) {
  return packed([&](packer& pk) {
    codec_state st;
    encode_value(pk, x, st);
  });
}

void frames() {
  // [max_payload selector][split step][stream]: 2^16 limit, cut every 3 bytes
  auto head = std::string{"\x10\x02"};
  write("frame", "empty_frame", head + frame(""));
  write("frame", "one_frame", head + frame("hello"));
  write("frame", "two_frames", head + frame("a") + frame(envelope(pack_heartbeat)));
  write("frame", "partial_second", head + frame("abc") + frame("defgh").substr(0, 6));
  write("frame", "over_limit", std::string{"\x04\x00"} + frame(std::string(17, 'x')));
  write("frame", "truncated_header", head + std::string{"\x00\x00", 2});
}

void envelopes() {
  write("envelope", "hello", envelope([](buffer& b) { pack_hello(b, 42, 4242, "MainProcess", 1u << 20); }));
  write("envelope", "spawn", envelope([](buffer& b) { pack_spawn_head(b, 1, "worker", true); pack_message(b); }));
  write("envelope", "spawned", envelope([](buffer& b) { pack_spawned(b, 1, {42, 7}); }));
  write("envelope", "spawn_failed", envelope([](buffer& b) { pack_spawn_failed_head(b, 1); pack_error(b); }));
  write("envelope", "send", envelope([](buffer& b) { pack_send_head(b, {1, 2}, {3, 4}); pack_message(b); }));
  write("envelope", "request", envelope([](buffer& b) { pack_request_head(b, {1, 2}, {3, 4}, 9); pack_message(b); }));
  write("envelope", "response_ok", envelope([](buffer& b) { pack_response_head(b, {1, 2}, {3, 4}, 9, true); pack_message(b); }));
  write("envelope", "response_error", envelope([](buffer& b) { pack_response_head(b, {1, 2}, {3, 4}, 9, false); pack_error(b); }));
  write("envelope", "monitor", envelope([](buffer& b) { pack_monitor(b, {1, 2}); }));
  write("envelope", "down_normal", envelope([](buffer& b) { pack_down_head(b, {1, 2}); packer{b}.pack_nil(); }));
  write("envelope", "down_error", envelope([](buffer& b) { pack_down_head(b, {1, 2}); pack_error(b); }));
  write("envelope", "heartbeat", envelope(pack_heartbeat));
  write("envelope", "shutdown", envelope([](buffer& b) { pack_shutdown(b, "bye"); }));
  write("envelope", "lookup", envelope([](buffer& b) { pack_lookup(b, 3, "queue"); }));
  write("envelope", "found", envelope([](buffer& b) { pack_found(b, 3, {1, 5}); }));
  write("envelope", "not_found", envelope([](buffer& b) { pack_not_found_head(b, 3); pack_error(b); }));
  write("envelope", "unknown_kind", value(std::vector<std::int32_t>{99}));
  write("envelope", "deep", "\x93\x03" + nested(max_nesting));
  write("envelope", "count_bomb", std::string{"\xdd\xff\xff\xff\xff", 5});
}

void values() {
  const double two64 = 18446744073709551616.0;
  write("codec", "int_max", value(std::numeric_limits<std::uint64_t>::max()));
  write("codec", "int_min", value(std::numeric_limits<std::int64_t>::min()));
  write("codec", "minus_zero", value(-0.0));
  write("codec", "two64_f32", value(static_cast<float>(two64)));
  write("codec", "two64_f64", value(two64));
  write("codec", "nan", value(std::numeric_limits<double>::quiet_NaN()));
  write("codec", "inf", value(-std::numeric_limits<float>::infinity()));
  write("codec", "string", value(std::string{"h\xc3\xa9llo\0x", 8}));
  write("codec", "bytes", value(mproc::bytes{'\0', '\xff'}));
  write("codec", "vector", value(std::vector<std::int32_t>{1, -2, 3}));
  write("codec", "map", value(std::map<std::string, std::vector<double>>{{"a", {1.5, -0.0}}}));
  write("codec", "optional", value(std::optional<std::string>{}));
  write("codec", "tuple", value(std::make_tuple(std::int32_t{1}, std::string{"two"}, 3.0)));
  // reading: [sensor, values, id, tags]; batch: [seq, [reading...], weight]
  write("codec", "reading", packed([](packer& pk) {
          pk.pack(std::make_tuple("t1", std::vector<double>{1.5}, 7, std::map<std::string, std::string>{{"k", "v"}}));
        }));
  write("codec", "batch", packed([](packer& pk) {
          pk.pack_array(3);
          pk.pack(1);
          pk.pack_array(1);
          pk.pack(std::make_tuple("t1", std::vector<double>{}, msgpack::type::nil_t{}, std::map<std::string, std::string>{}));
          pk.pack_float(0.5f);
        }));
  write("codec", "deep_ok", nested(max_nesting));
  write("codec", "too_deep", nested(max_nesting + 1));
}

std::string message(const std::function<void(packer&)>& elements, std::uint32_t n) {
  return packed([&](packer& pk) {
    pk.pack_array(2 * n);
    elements(pk);
  });
}

void messages() {
  auto error_ctx = [](packer& pk, std::size_t depth) {
    for (std::size_t i = 0; i < depth; ++i) {
      pk.pack_array(2);
      pk.pack("error");
      pk.pack_array(4);
      pk.pack("mproc");
      pk.pack(5);
      pk.pack("");
    }
    pk.pack_nil();
  };
  write("message_bytes", "scalars", message([](packer& pk) {
          pk.pack("i32"); pk.pack(7); pk.pack("str"); pk.pack("x");
          codec_state st;
          pk.pack("f64"); codec<double>::encode(pk, -0.0, st);
        }, 3));
  write("message_bytes", "empty", message([](packer&) {}, 0));
  write("message_bytes", "containers", message([](packer& pk) {
          pk.pack("vec<i32>"); pk.pack(std::vector<int>{1, 2});
          pk.pack("map<str,f64>"); pk.pack(std::map<std::string, double>{{"a", 1.5}});
          pk.pack("set<str>"); pk.pack(std::vector<std::string>{"a", "b"});
        }, 3));
  write("message_bytes", "atom_exit_actor", message([](packer& pk) {
          pk.pack("atom"); pk.pack("ping");
          pk.pack("exit"); pk.pack_array(2); pk.pack_nil(); pk.pack_nil();
          pk.pack("actor"); pk.pack_nil();
        }, 3));
  write("message_bytes", "job", message([](packer& pk) {
          pk.pack("job"); pk.pack(std::make_tuple(1, "t", std::vector<double>{1.5}));
        }, 1));
  write("message_bytes", "error", message([](packer& pk) {
          pk.pack("error"); pk.pack_array(4); pk.pack("mproc"); pk.pack(5); pk.pack("t");
          pk.pack_array(2); pk.pack("str"); pk.pack("why");
        }, 1));
  write("message_bytes", "nested_errors", packed([&](packer& pk) { error_ctx(pk, 20); }));
  write("message_bytes", "blob_items", message([](packer& pk) {
          pk.pack("blob"); pk.pack_bin(3); pk.pack_bin_body("abc", 3);
          pk.pack("items"); pk.pack_array(2);
          pk.pack_bin(3); pk.pack_bin_body("\x01\x02\x03", 3);
          pk.pack_bin(8); pk.pack_bin_body("\x01\x00\x00\x00\x03\x00\x00\x00", 8);
        }, 2));
  write("message_bytes", "unknown_tag", message([](packer& pk) { pk.pack("no_such"); pk.pack(1); }, 1));
}

// A store kind, then operations [op, args...], back to back (fuzz_manager_store).
void manager_stores() {
  write("manager_store", "dict_ops", packed([](packer& pk) {
    pk.pack(0);
    pk.pack(std::make_tuple(std::string{"set"}, std::string{"a"}, 1));
    pk.pack(std::make_tuple(std::string{"set"}, 0.25, msgpack::type::nil_t{}));
    pk.pack(std::make_tuple(std::string{"update"}, 1, std::string{"1"}, std::string{"2"}, 2));
    pk.pack(std::make_tuple(std::string{"pop"}, std::string{"a"}));
    pk.pack(std::make_tuple(std::string{"setdefault"}, 7, 8));
    pk.pack(std::make_tuple(std::string{"popitem"}));
    pk.pack(std::make_tuple(std::string{"items"}));
  }));
  write("manager_store", "list_ops", packed([](packer& pk) {
    pk.pack(1);
    pk.pack(std::make_tuple(std::string{"extend"}, 3, 1, std::string{"x"}, 2.5));
    pk.pack(std::make_tuple(std::string{"insert"}, -2, 9));
    pk.pack(std::make_tuple(std::string{"slice"}, msgpack::type::nil_t{}, -1));
    pk.pack(std::make_tuple(std::string{"sort"}, true));
    pk.pack(std::make_tuple(std::string{"remove"}, std::string{"x"}));
    pk.pack(std::make_tuple(std::string{"sort"}));
    pk.pack(std::make_tuple(std::string{"index"}, 9, 0, msgpack::type::nil_t{}));
    pk.pack(std::make_tuple(std::string{"pop"}, -1));
    pk.pack(std::make_tuple(std::string{"del"}, 0));
  }));
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR   (fuzz/corpus)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  frames();
  envelopes();
  values();
  messages();
  manager_stores();
  return 0;
}
