// What the blob tests (test_blob, test_blob_segments) share: blobs of a known pattern,
// what a process maps in, the actors a child runs, a node with one child, and a blob
// decoded as a local link does.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/event_based_actor.hpp>

#include <catch2/catch.hpp>

#include "mproc/runtime/actor_registry.hpp"
#include "mproc/runtime/blob.hpp"
#include "mproc/runtime/node.hpp"
#include "support.hpp"

using namespace std::chrono_literals;

inline std::uint64_t digest(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325u;
  for (unsigned char c : data)
    h = (h ^ c) * 0x100000001b3u;
  return h;
}

inline mproc::blob pattern(std::size_t size) {
  mproc::blob_writer w{size};
  for (std::size_t i = 0; i < size; ++i)
    w.data()[i] = static_cast<char>(i * 7 + i / 4096);
  return std::move(w).finish();
}

// KiB of blob memory (memfd mappings) this process has mapped in (its page table entries),
// and how many such mappings it has.
inline std::pair<std::uint64_t, std::uint64_t> blob_mappings() {
  std::ifstream smaps{"/proc/self/smaps"};
  std::string line;
  bool in_blob = false;
  std::uint64_t kib = 0;
  std::uint64_t count = 0;
  while (std::getline(smaps, line)) {
    auto range = line.substr(0, line.find(' '));
    if (range.find_first_not_of("0123456789abcdef-") == std::string::npos) {
      in_blob = line.find("mproc-blob") != std::string::npos;  // a mapping's first line
      count += in_blob ? 1 : 0;
    } else if (in_blob && line.rfind("Rss:", 0) == 0) {
      kib += std::stoul(line.substr(4));
    }
  }
  return {kib, count};
}

// Holds the blobs it gets until told "drop", and answers each with [its digest, this
// process's blob mappings (KiB mapped in, count) before and after the digest is taken];
// "digest" answers the digest of the held blob.
inline caf::behavior blob_keeper(caf::event_based_actor*) {
  static std::vector<mproc::blob> kept;
  return {
    [](const mproc::blob& b) {
      auto before = blob_mappings();
      auto d = digest(b.view());
      auto after = blob_mappings();
      kept.push_back(b);
      return std::vector<std::uint64_t>{d, before.first, before.second, after.first,
                                        after.second};
    },
    [](const std::string& what) {
      std::uint64_t d = kept.empty() ? 0 : digest(kept.back().view());
      if (what == "drop")
        kept.clear();
      return d;
    },
  };
}

// Answers a blob with [its digest, whether it arrived in shared memory]; "echo" sends it back.
inline caf::behavior blob_reader(caf::event_based_actor*) {
  return {
    [](const mproc::blob& b) {
      return std::vector<std::uint64_t>{digest(b.view()), b.shared() ? 1u : 0u, b.size()};
    },
    [](const std::string&, const mproc::blob& b) { return b; },
  };
}

MPROC_ACTOR(blob_reader);
MPROC_ACTOR(blob_keeper);

// A node and one child running `actor`, which ends with the test.
struct node_and_child {
  test::scoped_node node;
  mproc::process child;
  explicit node_and_child(const char* actor) : child{node->spawn_process(actor, {})} {}
  ~node_and_child() {
    child.terminate();
    child.join(10s);
  }
};

// [0, size] or [0, size, true] decoded with `fd` as the frame's one descriptor.
struct decoded {
  bool ok = false;
  bool taken = false;  // the descriptor: kept by the blob, or closed
  mproc::blob out;
  std::string error;
  decoded(int fd, std::uint64_t size, bool segment) {
    std::vector<int> fds{fd};
    mproc::wire::codec_state st;
    st.descriptors = &fds;
    mproc::wire::buffer buf;
    mproc::wire::packer pk{buf};
    pk.pack_array(segment ? 3 : 2);
    pk.pack(0);
    pk.pack(size);
    if (segment)
      pk.pack(true);
    auto handle = msgpack::unpack(buf.data(), buf.size());
    ok = mproc::wire::codec<mproc::blob>::decode(handle.get(), out, st);
    taken = fds[0] == -1;
    error = st.error;
  }
};

std::string refusal_of(int fd, std::uint64_t size, bool segment) {
  decoded d{fd, size, segment};
  CHECK_FALSE(d.ok);
  CHECK(d.taken);  // and closed
  return d.error;
}
