#include "data/byte_stream.h"

#include <zlib.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "core/check.h"

namespace crayon {

namespace fs = std::filesystem;

ByteStream::ByteStream(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  const fs::file_status st = fs::status(path_, ec);
  if (!fs::exists(st)) throw std::runtime_error(str(path_, ": cannot open: no such file"));
  if (!fs::is_regular_file(st))
    throw std::runtime_error(str(path_, ": cannot open: expected a regular file"));
  file_size_ = fs::file_size(path_, ec);
  if (ec) throw std::runtime_error(str(path_, ": cannot read its size: ", ec.message()));

  unsigned char magic[2] = {0, 0};
  {
    std::ifstream f(path_, std::ios::binary);
    if (!f) throw std::runtime_error(str(path_, ": cannot open: ", std::strerror(errno)));
    f.read(reinterpret_cast<char*>(magic), 2);
  }
  gzipped_ = file_size_ >= 2 && magic[0] == 0x1f && magic[1] == 0x8b;

  gzFile gz = gzopen(path_.c_str(), "rb");
  if (!gz) throw std::runtime_error(str(path_, ": cannot open: ", std::strerror(errno)));
  gzbuffer(gz, 1 << 20);  // fewer syscalls and inflate calls than the default 8 KiB
  gz_ = gz;
}

ByteStream::~ByteStream() {
  if (gz_) gzclose_r(static_cast<gzFile>(gz_));
}

std::optional<uint64_t> ByteStream::known_size() const {
  if (gzipped_) return std::nullopt;
  return file_size_;
}

namespace {
[[noreturn]] void throw_gz_error(const std::string& path, gzFile gz) {
  int errnum = Z_OK;
  const char* msg = gzerror(gz, &errnum);
  if (errnum == Z_ERRNO) throw std::runtime_error(str(path, ": read error: ", std::strerror(errno)));
  throw std::runtime_error(str(path, ": expected valid gzip data, found a corrupt stream (zlib: ",
                               msg && *msg ? msg : "unknown error", ")"));
}
}  // namespace

uint64_t ByteStream::max_size() const {
  return gzipped_ ? 1032 * file_size_ + 4096 : file_size_;
}

size_t ByteStream::read(void* dst, size_t n) {
  gzFile gz = static_cast<gzFile>(gz_);
  auto* out = static_cast<unsigned char*>(dst);
  size_t got = 0;
  while (got < n) {
    // gzread takes an unsigned count and returns an int, so read at most 1 GiB at a time.
    const unsigned want = unsigned(std::min<size_t>(n - got, size_t(1) << 30));
    const int r = gzread(gz, out + got, want);
    if (r < 0) throw_gz_error(path_, gz);
    got += size_t(r);
    if (unsigned(r) < want) break;  // end of data
  }
  // A stream cut short inside the compressed data reads what it can, then reports
  // Z_BUF_ERROR ("unexpected end of file"); a bad CRC reports Z_DATA_ERROR.
  int errnum = Z_OK;
  gzerror(gz, &errnum);
  if (errnum != Z_OK) throw_gz_error(path_, gz);
  bytes_read_ += got;
  return got;
}

uint64_t ByteStream::skip_to_end() {
  std::vector<unsigned char> scratch(1 << 16);
  uint64_t total = 0;
  for (;;) {
    const size_t r = read(scratch.data(), scratch.size());
    total += r;
    if (r < scratch.size()) return total;
  }
}

}  // namespace crayon
