#pragma once
// CIFAR-10 binary reader (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version").
//
// A file is a sequence of 3073-byte records: 1 label byte (0..9), then 3072 pixel bytes,
// the 1024 red, then 1024 green, then 1024 blue values of a row-major 32x32 image. That
// is already (C, H, W) order, so records are copied as they are. Any whole number of
// records is accepted (the official batches hold 10000; subsets such as
// data_batch_1.first4000.bin hold fewer). Raw or gzipped.
#include <cstdint>
#include <string>
#include <vector>

namespace crayon {

inline constexpr int64_t kCifarChannels = 3, kCifarSide = 32;
inline constexpr int64_t kCifarImageBytes = kCifarChannels * kCifarSide * kCifarSide;  // 3072
inline constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;                      // 3073
inline constexpr int kCifarClasses = 10;

struct CifarRecords {
  std::vector<uint8_t> images;  // (N, 3, 32, 32)
  std::vector<int32_t> labels;  // (N,), each 0..9
  int64_t size() const { return int64_t(labels.size()); }
};

// Throws std::runtime_error naming the file for an empty file, a size that is not a
// multiple of 3073 (with the remainder), or a label above 9 (with the record index).
CifarRecords read_cifar10_bin(const std::string& path);

}  // namespace crayon
