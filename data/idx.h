#pragma once
// IDX reader: the file format of MNIST, Fashion-MNIST, KMNIST and EMNIST
// (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS FOR THE MNIST DATABASE").
//
//   bytes 0-1  zero
//   byte  2    element type: 0x08 unsigned byte (the only one datasets use; 0x09 int8,
//              0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64 are rejected)
//   byte  3    rank r
//   then r big-endian uint32 dimensions, then the elements, row-major.
//
// So images are magic 0x00000803 (N, H, W) and labels 0x00000801 (N,). Files may be raw
// or gzipped (detected by the gzip magic, not the name). Everything in the header is
// checked against the data actually present before it is trusted: the (decompressed)
// size must equal header + product of the dims exactly, else a one-line
// std::runtime_error names the file, the expected size and the size found.
#include <cstdint>
#include <string>
#include <vector>

namespace crayon {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // prod(dims) bytes, row-major
};

// Largest payload a header may claim (2 GiB, 2.7x EMNIST-byclass): a gzip file's real
// size is unknown until inflated, so this bounds what a lying header can make us expect.
inline constexpr uint64_t kIdxMaxBytes = uint64_t(1) << 31;

// Any unsigned-byte IDX file; expected_rank = 0 accepts any rank >= 1.
IdxArray read_idx(const std::string& path, int expected_rank = 0);
// (N, H, W) images, magic 0x00000803.
IdxArray read_idx_images(const std::string& path);
// (N,) labels, magic 0x00000801.
IdxArray read_idx_labels(const std::string& path);

}  // namespace crayon
