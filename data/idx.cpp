#include "data/idx.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "core/check.h"
#include "data/byte_stream.h"

namespace crayon {

namespace {

const char* idx_type_name(uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
  }
  return "unknown type";
}

std::string hex(uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, v);
  return buf;
}
std::string hex32(uint32_t v) { return hex(v, 8); }

std::string plural(uint64_t n, const char* what) { return str(n, " ", what, n == 1 ? "" : "s"); }

std::string dims_str(const std::vector<int64_t>& dims, size_t from = 0) {
  std::string s;
  for (size_t i = from; i < dims.size(); ++i) {
    if (i > from) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

// "header 16 + 60000 images of 28x28" / "header 8 + 60000 labels" / "header 12 + 3x4 bytes"
std::string layout_str(uint64_t header, const std::vector<int64_t>& dims, int expected_rank) {
  std::string what = str("header ", header, " + ");
  if (expected_rank == 3 && dims.size() == 3)
    return what + str(dims[0], " images of ", dims_str(dims, 1));
  if (expected_rank == 1 && dims.size() == 1) return what + str(dims[0], " labels");
  return what + dims_str(dims) + " bytes";
}

// Read exactly `want` bytes (or fewer if the stream ends). The first allocation is
// bounded by what the file can hold (ByteStream::max_size), so a header that lies about
// a huge size costs no huge allocation; the loop grows the buffer should data keep coming.
std::vector<uint8_t> read_up_to(ByteStream& in, uint64_t want) {
  std::vector<uint8_t> out;
  size_t have = 0;
  size_t cap = size_t(std::min(want, std::max<uint64_t>(in.max_size(), 1 << 16)));
  while (have < want) {
    if (have == out.size()) {
      out.resize(cap);
      cap = size_t(std::min<uint64_t>(want, uint64_t(cap) * 2));
    }
    const size_t r = in.read(out.data() + have, out.size() - have);
    have += r;
    if (r == 0 || have < out.size()) break;  // end of data
  }
  out.resize(have);
  return out;
}

}  // namespace

IdxArray read_idx(const std::string& path, int expected_rank) {
  ByteStream in(path);
  const std::string want_magic =
      expected_rank == 3 ? "magic 0x00000803 (unsigned-byte images, rank 3)"
      : expected_rank == 1 ? "magic 0x00000801 (unsigned-byte labels, rank 1)"
      : expected_rank > 0 ? str("magic ", hex32(0x800u | uint32_t(expected_rank)))
                          : "an IDX magic 0x000008XX";

  uint8_t magic[4];
  const size_t got_magic = in.read(magic, 4);
  if (got_magic < 4)
    throw std::runtime_error(str(path, ": expected an IDX header (", want_magic, "), found only ",
                                 got_magic, " bytes"));
  const uint32_t magic_word =
      uint32_t(magic[0]) << 24 | uint32_t(magic[1]) << 16 | uint32_t(magic[2]) << 8 | magic[3];
  if (magic[0] != 0 || magic[1] != 0)
    throw std::runtime_error(str(path, ": expected an IDX file (", want_magic, "), found magic ",
                                 hex32(magic_word)));
  if (magic[2] != 0x08)
    throw std::runtime_error(str(path, ": expected unsigned-byte IDX data (type 0x08), found type ",
                                 hex(magic[2], 2), " (", idx_type_name(magic[2]),
                                 ") in magic ", hex32(magic_word)));
  const int rank = magic[3];
  if (rank == 0 || (expected_rank > 0 && rank != expected_rank))
    throw std::runtime_error(str(path, ": expected ", want_magic, ", found magic ", hex32(magic_word),
                                 " (rank ", rank, ")"));

  const uint64_t header = 4 + 4 * uint64_t(rank);
  std::vector<uint8_t> raw_dims(size_t(4 * rank));
  const size_t got_dims = in.read(raw_dims.data(), raw_dims.size());
  if (got_dims < raw_dims.size())
    throw std::runtime_error(str(path, ": expected ", header, " header bytes (magic + ", rank,
                                 " dimensions), found ", 4 + got_dims));
  IdxArray out;
  uint64_t payload = 1;
  bool overflow = false;
  for (int i = 0; i < rank; ++i) {
    const uint8_t* b = &raw_dims[size_t(4 * i)];
    const uint32_t d = uint32_t(b[0]) << 24 | uint32_t(b[1]) << 16 | uint32_t(b[2]) << 8 | b[3];
    out.dims.push_back(int64_t(d));
    overflow = overflow || __builtin_mul_overflow(payload, uint64_t(d), &payload);
  }
  uint64_t total = 0;
  overflow = overflow || __builtin_add_overflow(header, payload, &total);
  if (std::find(out.dims.begin(), out.dims.end(), 0) != out.dims.end())
    throw std::runtime_error(str(path, ": expected non-zero dimensions, found ", dims_str(out.dims)));
  if (overflow)
    throw std::runtime_error(str(path, ": header claims dimensions ", dims_str(out.dims),
                                 ", whose size overflows 64 bits"));
  const std::string expected = str("expected ", total, " bytes (",
                                   layout_str(header, out.dims, expected_rank), ")");
  const char* unit = in.gzipped() ? " bytes after decompression" : " bytes";

  // A raw file's size is known: check it before allocating anything.
  if (auto size = in.known_size(); size && *size != total) {
    const std::string why = *size < total ? "truncated" : plural(*size - total, "trailing byte");
    throw std::runtime_error(str(path, ": ", expected, ", found ", *size, unit, " (", why, ")"));
  }
  if (payload > kIdxMaxBytes)
    throw std::runtime_error(str(path, ": ", expected, ", more than the ", kIdxMaxBytes,
                                 "-byte limit for one IDX file"));

  out.data = read_up_to(in, payload);
  if (out.data.size() < payload)
    throw std::runtime_error(str(path, ": ", expected, ", found ", header + out.data.size(), unit,
                                 " (truncated)"));
  if (const uint64_t extra = in.skip_to_end(); extra > 0)
    throw std::runtime_error(str(path, ": ", expected, ", found ", total + extra, unit, " (",
                                 plural(extra, "trailing byte"), ")"));
  return out;
}

IdxArray read_idx_images(const std::string& path) { return read_idx(path, 3); }

IdxArray read_idx_labels(const std::string& path) { return read_idx(path, 1); }

}  // namespace crayon
