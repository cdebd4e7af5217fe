#pragma once
// MD5 (RFC 1321), for checking downloads against the checksums datasets publish. Not for
// security: MD5 has known collisions; it only catches corrupt or truncated transfers, and
// the checksums are fixed in crayon's source, so a mirror cannot supply its own.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace crayon {

class Md5 {
 public:
  Md5();
  void update(const void* data, size_t n);
  // The 16-byte digest. Ends the computation: update() after it is an error.
  std::array<uint8_t, 16> finish();

 private:
  void block(const uint8_t* p);  // one 64-byte block of the message
  uint32_t a_, b_, c_, d_;
  uint64_t length_ = 0;  // message bytes so far
  uint8_t buffer_[64];
  bool finished_ = false;
};

std::string to_hex(const std::array<uint8_t, 16>& digest);  // 32 lowercase hex digits
std::string md5_hex(std::string_view bytes);
// The MD5 of a whole file; throws std::runtime_error naming the file when it cannot be read.
std::string md5_file(const std::string& path);

}  // namespace crayon
