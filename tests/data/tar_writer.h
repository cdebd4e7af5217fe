#pragma once
// Test helper: write ustar archives byte by byte (so the tests control every header field,
// bad ones included) and gzip them in memory with zlib.
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/data/files.h"

namespace crayon::test {

struct TarEntry {
  TarEntry(std::string name_, Bytes data_ = {}, char type_ = '0', std::string link_ = "", std::string prefix_ = "")
      : name(std::move(name_)), data(std::move(data_)), type(type_), link(std::move(link_)), prefix(std::move(prefix_)) {}
  std::string name;
  Bytes data;
  char type;           // '0' file, '5' directory, '2' symlink, '1' hard link, ...
  std::string link;    // linkname, for links
  std::string prefix;  // ustar prefix field
};

inline void put_octal(uint8_t* field, size_t len, uint64_t v) {  // len-1 digits and a NUL
  std::snprintf(reinterpret_cast<char*>(field), len, "%0*llo", int(len - 1), (unsigned long long)v);
}

inline void set_tar_checksum(uint8_t* h) {
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; ++i) sum += h[i];
  std::snprintf(reinterpret_cast<char*>(h + 148), 8, "%06o", sum);  // 6 digits, NUL, then the space stays
  h[155] = ' ';
}

inline Bytes tar_header(const TarEntry& e, uint64_t size) {
  Bytes h(512, 0);
  std::memcpy(h.data(), e.name.data(), std::min<size_t>(e.name.size(), 100));
  put_octal(&h[100], 8, e.type == '5' ? 0755 : 0644);
  put_octal(&h[108], 8, 0);
  put_octal(&h[116], 8, 0);
  put_octal(&h[124], 12, size);
  put_octal(&h[136], 12, 1700000000);
  h[156] = uint8_t(e.type);
  std::memcpy(&h[157], e.link.data(), std::min<size_t>(e.link.size(), 100));
  std::memcpy(&h[257], "ustar\0" "00", 8);
  std::memcpy(&h[265], "root", 4);
  std::memcpy(&h[297], "root", 4);
  std::memcpy(&h[345], e.prefix.data(), std::min<size_t>(e.prefix.size(), 155));
  set_tar_checksum(h.data());
  return h;
}

// The archive: each header, its data padded to 512, then two zero blocks (unless not).
inline Bytes tar_bytes(const std::vector<TarEntry>& entries, bool end_marker = true) {
  Bytes out;
  for (const auto& e : entries) {
    const Bytes h = tar_header(e, e.data.size());
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), e.data.begin(), e.data.end());
    out.resize((out.size() + 511) / 512 * 512, 0);
  }
  if (end_marker) out.resize(out.size() + 1024, 0);
  return out;
}

inline Bytes gzip_bytes(const Bytes& in) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)  // +16: gzip wrapper
    throw std::runtime_error("test: deflateInit2 failed");
  Bytes out(deflateBound(&z, uLong(in.size())) + 64);
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = uInt(in.size());
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  const int rc = deflate(&z, Z_FINISH);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("test: deflate failed");
  out.resize(z.total_out);
  return out;
}

inline Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

}  // namespace crayon::test
