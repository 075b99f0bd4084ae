// The shared secret that lets nodes on different machines trust each other (docs/distributed.md).
//
//   auto key = mproc::authkey::from_file("/etc/mproc/authkey");   // mode 0600, >= 16 bytes
//   auto key = mproc::authkey::from_env();                        // $MPROC_AUTHKEY
//
// Never from the command line: other users can read a process's arguments in /proc.
#pragma once

#include <string>
#include <string_view>

namespace mproc {

class authkey {
public:
  // Every source refuses a key shorter than min_size bytes or with fewer than min_variety
  // different bytes ("aaaaaaaaaaaaaaaaaaaa", "abcabcabcabcabcabc": guessed first).
  // Throws mproc::error bad_arguments: unreadable file, readable by group or others, too
  // short or too uniform. A trailing newline is not part of the key.
  static authkey from_file(const std::string& path);
  // Throws mproc::error bad_arguments when unset, too short or too uniform.
  static authkey from_env(const char* variable = "MPROC_AUTHKEY");
  // From the program's own hands (e.g. a key it generated, passed to a child actor).
  // Throws mproc::error bad_arguments when too short or too uniform.
  static authkey from_string(std::string secret);
  // Random printable key of 32 bytes, e.g. to write into a file for other nodes.
  static authkey generate();

  static constexpr std::size_t min_size = 16;
  static constexpr std::size_t min_variety = 8;

  std::string_view secret() const { return secret_; }

private:
  explicit authkey(std::string secret) : secret_(std::move(secret)) {}
  std::string secret_;
};

} // namespace mproc
