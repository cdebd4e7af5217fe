#include "data/cifar.h"

#include <stdexcept>

#include "core/check.h"
#include "data/byte_stream.h"

namespace crayon {

namespace {

// Largest file accepted (2 GiB = 70 official batches): bounds a gzip file whose size
// is unknown until inflated.
constexpr uint64_t kCifarMaxBytes = uint64_t(1) << 31;

std::string size_error(const std::string& path, uint64_t size, const char* unit) {
  if (size == 0)
    return str(path, ": expected at least one ", kCifarRecordBytes,
               "-byte CIFAR-10 record (1 label + 3072 pixels), found an empty file");
  return str(path, ": expected a whole number of ", kCifarRecordBytes,
             "-byte CIFAR-10 records (1 label + 3072 pixels), found ", size, unit, " (",
             size / kCifarRecordBytes, " records + ", size % kCifarRecordBytes,
             size % kCifarRecordBytes == 1 ? " byte" : " bytes", " left over)");
}

}  // namespace

CifarRecords read_cifar10_bin(const std::string& path) {
  ByteStream in(path);
  const char* unit = in.gzipped() ? " bytes after decompression" : " bytes";
  const auto known = in.known_size();
  if (known && (*known == 0 || *known % kCifarRecordBytes != 0))
    throw std::runtime_error(size_error(path, *known, unit));
  if (known && *known > kCifarMaxBytes)
    throw std::runtime_error(str(path, ": expected at most ", kCifarMaxBytes, " bytes, found ", *known));

  CifarRecords out;
  if (known) {
    const size_t n = size_t(*known / kCifarRecordBytes);
    out.images.reserve(n * kCifarImageBytes);
    out.labels.reserve(n);
  }
  uint8_t record[kCifarRecordBytes];
  uint64_t total = 0;
  for (;;) {
    const size_t r = in.read(record, sizeof record);
    total += r;
    if (r < sizeof record) {
      if (r != 0 || total == 0) throw std::runtime_error(size_error(path, total, unit));
      break;
    }
    if (total > kCifarMaxBytes)
      throw std::runtime_error(str(path, ": expected at most ", kCifarMaxBytes, " bytes", unit,
                                   ", found more"));
    if (record[0] >= kCifarClasses)
      throw std::runtime_error(str(path, ": record ", out.labels.size(), " (byte offset ",
                                   total - kCifarRecordBytes, "): expected a label 0..9, found ",
                                   int(record[0])));
    out.labels.push_back(record[0]);
    out.images.insert(out.images.end(), record + 1, record + kCifarRecordBytes);
  }
  return out;
}

}  // namespace crayon
