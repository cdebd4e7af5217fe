#pragma once
// ByteStream: read a dataset file front to back, gunzipping it on the fly when it starts
// with the gzip magic bytes 1f 8b. Every error (cannot open, I/O, corrupt gzip) throws
// std::runtime_error with one line that starts with the file's path.
//
// Readers of untrusted files use it so that they never trust a size they have not seen:
// for a raw file the true size is known before reading (known_size()); for a gzip file
// it is not, so callers read incrementally and fail when the stream ends early.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace crayon {

class ByteStream {
 public:
  explicit ByteStream(std::string path);
  ~ByteStream();
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  const std::string& path() const { return path_; }
  bool gzipped() const { return gzipped_; }
  // The content size in bytes without reading it: raw files only (a gzip file's
  // decompressed size is unknown until it has been inflated).
  std::optional<uint64_t> known_size() const;
  // An upper bound on the content size that no file can exceed: the size of a raw file;
  // for gzip, deflate's best ratio (1032:1: a 258-byte match coded in 2 bits) times the
  // compressed size. Lets a reader allocate once without trusting a header.
  uint64_t max_size() const;
  uint64_t bytes_read() const { return bytes_read_; }

  // Read up to n bytes into dst; returns fewer only at the end of the data.
  size_t read(void* dst, size_t n);
  // Read to the end without keeping anything; returns how many bytes were left.
  uint64_t skip_to_end();

 private:
  std::string path_;
  bool gzipped_ = false;
  uint64_t file_size_ = 0;
  uint64_t bytes_read_ = 0;
  void* gz_ = nullptr;  // gzFile (zlib reads raw files transparently, so it serves both)
};

}  // namespace crayon
