#include "data/md5.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/check.h"

namespace crayon {

namespace {

// RFC 1321 section 3.4: K[i] = floor(2^32 * |sin(i + 1)|), and the per-step rotations.
constexpr uint32_t kK[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
constexpr int kShift[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

uint32_t rotl(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

}  // namespace

Md5::Md5() : a_(0x67452301), b_(0xefcdab89), c_(0x98badcfe), d_(0x10325476) {}  // RFC 1321 3.3

// RFC 1321 3.4: four rounds of 16 steps; round r uses its auxiliary function F, G, H or I
// and visits the 16 message words in the order given by g.
void Md5::block(const uint8_t* p) {
  uint32_t m[16];
  for (int j = 0; j < 16; ++j)  // words are little-endian
    m[j] = uint32_t(p[4 * j]) | uint32_t(p[4 * j + 1]) << 8 | uint32_t(p[4 * j + 2]) << 16 |
           uint32_t(p[4 * j + 3]) << 24;
  uint32_t a = a_, b = b_, c = c_, d = d_;
  for (int i = 0; i < 64; ++i) {
    uint32_t f;
    int g;
    if (i < 16) f = (b & c) | (~b & d), g = i;                   // F
    else if (i < 32) f = (b & d) | (c & ~d), g = (5 * i + 1) % 16;  // G
    else if (i < 48) f = b ^ c ^ d, g = (3 * i + 5) % 16;            // H
    else f = c ^ (b | ~d), g = (7 * i) % 16;                         // I
    const uint32_t t = d;
    d = c;
    c = b;
    b = b + rotl(a + f + kK[i] + m[g], kShift[i / 16][i % 4]);
    a = t;
  }
  a_ += a, b_ += b, c_ += c, d_ += d;
}

void Md5::update(const void* data, size_t n) {
  CRAYON_CHECK(!finished_, "Md5::update after finish");
  const auto* p = static_cast<const uint8_t*>(data);
  size_t used = size_t(length_ % 64);
  length_ += n;
  if (used) {  // top up the partial block first
    const size_t take = std::min(n, 64 - used);
    std::memcpy(buffer_ + used, p, take);
    p += take, n -= take, used += take;
    if (used < 64) return;
    block(buffer_);
  }
  for (; n >= 64; p += 64, n -= 64) block(p);
  std::memcpy(buffer_, p, n);
}

std::array<uint8_t, 16> Md5::finish() {
  CRAYON_CHECK(!finished_, "Md5::finish called twice");
  // RFC 1321 3.1-3.2: a 1 bit, zeros up to 56 mod 64 bytes, then the bit length (LE64).
  const uint64_t bits = length_ * 8;
  uint8_t pad[72] = {0x80};
  const size_t used = size_t(length_ % 64);
  const size_t pad_len = used < 56 ? 56 - used : 120 - used;
  for (int j = 0; j < 8; ++j) pad[pad_len + j] = uint8_t(bits >> (8 * j));
  update(pad, pad_len + 8);
  finished_ = true;
  std::array<uint8_t, 16> out;
  const uint32_t words[4] = {a_, b_, c_, d_};
  for (int j = 0; j < 16; ++j) out[j] = uint8_t(words[j / 4] >> (8 * (j % 4)));
  return out;
}

std::string to_hex(const std::array<uint8_t, 16>& digest) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (uint8_t v : digest) s += kDigits[v >> 4], s += kDigits[v & 15];
  return s;
}

std::string md5_hex(std::string_view bytes) {
  Md5 h;
  h.update(bytes.data(), bytes.size());
  return to_hex(h.finish());
}

std::string md5_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(str(path, ": cannot open: ", std::strerror(errno)));
  Md5 h;
  std::vector<uint8_t> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) h.update(buf.data(), n);
  const bool failed = std::ferror(f);
  const int err = errno;
  std::fclose(f);
  if (failed) throw std::runtime_error(str(path, ": read error: ", std::strerror(err)));
  return to_hex(h.finish());
}

}  // namespace crayon
