// libFuzzer harness for the frame decoder (serialization/frame.hpp).
//
// Input: [max_payload selector][split step][stream bytes...]. The stream is decoded once in
// one piece and once cut every `step` bytes; both must deliver the same frames, succeed or
// fail alike with the same error, and never deliver a payload above the limit.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "mproc/serialization/frame.hpp"

namespace {

struct outcome {
  std::vector<std::string> frames;
  bool ok = true;
  std::string error;
  bool operator==(const outcome&) const = default;
};

outcome decode(const char* data, std::size_t size, std::uint32_t max, std::size_t step) {
  mproc::wire::frame_decoder d{max};
  outcome out;
  auto on_frame = [&](std::string_view payload) {
    if (payload.size() > max)
      std::abort();
    out.frames.emplace_back(payload);
  };
  for (std::size_t i = 0; i < size; i += step)
    out.ok = d.feed(data + i, std::min(step, size - i), on_frame);
  out.error = d.error();
  if (out.ok == d.failed())
    std::abort();
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2)
    return 0;
  const std::uint32_t max = 1u << (data[0] % 21);  // 1 byte ... 1 MiB
  const std::size_t step = 1 + data[1] % 16;
  const auto* stream = reinterpret_cast<const char*>(data + 2);
  size -= 2;
  auto whole = decode(stream, size, max, size == 0 ? 1 : size);
  auto split = decode(stream, size, max, step);
  if (!(whole == split))
    std::abort();
  // What was delivered is a prefix of the stream, header by header.
  std::string again;
  for (const auto& f : whole.frames) {
    char header[mproc::wire::frame_header_size];
    mproc::wire::put_frame_length(header, static_cast<std::uint32_t>(f.size()));
    again.append(header, sizeof header).append(f);
  }
  if (std::string_view{stream, size}.substr(0, again.size()) != again)
    std::abort();
  return 0;
}
