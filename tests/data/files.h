#pragma once
// Test helpers: writers for the good and broken files the data tests feed to the readers
// (and the shared TempDir).
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "tests/support/temp_dir.h"

namespace crayon::test {

using Bytes = std::vector<uint8_t>;

inline void write_raw(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!f) throw std::runtime_error("test: cannot write " + path);
}

inline void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  if (!gz) throw std::runtime_error("test: cannot open " + path);
  if (!bytes.empty() && gzwrite(gz, bytes.data(), unsigned(bytes.size())) != int(bytes.size()))
    throw std::runtime_error("test: gzwrite failed on " + path);
  gzclose(gz);
}

inline void put_u32(Bytes& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

// An IDX file: magic 0x000008<rank> (or an explicit magic word), dims, payload.
inline Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& payload, uint32_t magic = 0) {
  Bytes out;
  put_u32(out, magic ? magic : 0x00000800u | uint32_t(dims.size()));
  for (uint32_t d : dims) put_u32(out, d);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// n images of h x w with pixel (i, k) = (i * 7 + k) % 256, and labels i % classes.
inline Bytes pattern_pixels(size_t n, size_t h, size_t w) {
  Bytes p(n * h * w);
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < h * w; ++k) p[i * h * w + k] = uint8_t((i * 7 + k) % 256);
  return p;
}
inline Bytes pattern_labels(size_t n, int classes = 10) {
  Bytes p(n);
  for (size_t i = 0; i < n; ++i) p[i] = uint8_t(i % size_t(classes));
  return p;
}

// n CIFAR-10 records: label i % 10, pixel bytes (i * 3 + k) % 256.
inline Bytes cifar_bytes(size_t n) {
  Bytes out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(uint8_t(i % 10));
    for (size_t k = 0; k < 3072; ++k) out.push_back(uint8_t((i * 3 + k) % 256));
  }
  return out;
}

}  // namespace crayon::test

namespace crayon::test {

// The message of the std::exception fn throws, or "" when it does not throw.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace crayon::test
