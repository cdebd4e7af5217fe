#include "data/tar.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "core/check.h"
#include "data/byte_stream.h"

namespace crayon {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxExtensionBytes = 1 << 20;  // a GNU long name or a pax header

uint64_t padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// A NUL-terminated text field (it may fill the field with no NUL).
std::string text_field(const uint8_t* h, size_t offset, size_t len) {
  const auto* p = reinterpret_cast<const char*>(h + offset);
  return std::string(p, strnlen(p, len));
}

// Reads the members of one archive in order. Call next() for each header, then read()
// the member's data (next() skips whatever was not read).
class TarReader {
 public:
  TarReader(const std::string& path, const TarLimits& limits) : in_(path), limits_(limits) {}

  std::optional<TarMember> next();
  // Up to n bytes of the current member's data; 0 once it is all read.
  size_t read(void* dst, size_t n);
  // After next() returned nullopt: read what follows the end marker (record padding), so
  // that a gzip stream is inflated to its end and its CRC checked.
  void finish();

  // Names and fields come from the archive: control characters become '?', so that the
  // error stays one printable line.
  [[noreturn]] void fail(std::string what) const {
    for (char& ch : what)
      if ((unsigned char)ch < 0x20 || ch == 0x7f) ch = '?';
    throw std::runtime_error(str(in_.path(), ": ", what));
  }
  [[noreturn]] void fail_member(const std::string& what) const {
    fail(str("member '", member_.path, "' ", what));
  }

 private:
  // Read exactly n bytes of the archive, or throw naming what was being read.
  void read_exact(void* dst, size_t n, const char* what);
  void skip(uint64_t n, const char* what);
  std::string read_extension(uint64_t size, const char* what);
  uint64_t parse_number(const uint8_t* h, size_t offset, size_t len, const char* field) const;
  void parse_pax(const std::string& records);
  std::string safe_path(const std::string& raw, bool is_dir) const;

  ByteStream in_;
  TarLimits limits_;
  uint64_t offset_ = 0;     // archive bytes consumed (of the decompressed stream)
  uint64_t remaining_ = 0;  // data bytes of the current member not yet read
  uint64_t padding_ = 0;    // padding after them
  uint64_t total_ = 0, members_ = 0;
  TarMember member_;
  std::string long_name_, pax_path_;  // names set by a GNU 'L' or pax 'x' header
  std::optional<uint64_t> pax_size_;
};

void TarReader::read_exact(void* dst, size_t n, const char* what) {
  const size_t got = in_.read(dst, n);
  offset_ += got;
  if (got < n)
    fail(str("truncated: the archive ends at byte ", offset_, " inside ", what, " (", got, " of ", n,
             " bytes present)"));
}

void TarReader::skip(uint64_t n, const char* what) {
  std::array<uint8_t, 65536> scratch;
  while (n > 0) {
    const size_t step = size_t(std::min<uint64_t>(n, scratch.size()));
    read_exact(scratch.data(), step, what);
    n -= step;
  }
}

std::string TarReader::read_extension(uint64_t size, const char* what) {
  if (size > kMaxExtensionBytes)
    fail(str("a ", what, " header at byte ", offset_ - kBlock, " claims ", size, " bytes (at most ",
             kMaxExtensionBytes, " expected)"));
  std::string data(size_t(size), '\0');
  read_exact(data.data(), data.size(), what);
  skip(padded(size) - size, what);
  return data;
}

// Octal digits, optionally space-padded, ended by a space or NUL; or GNU base-256 (first
// byte 0x80) for sizes of 8 GiB and more.
uint64_t TarReader::parse_number(const uint8_t* h, size_t offset, size_t len, const char* field) const {
  const uint8_t* p = h + offset;
  const uint64_t header_at = offset_ - kBlock;
  if (p[0] == 0x80) {
    uint64_t v = 0;
    for (size_t i = 1; i < len; ++i) {
      if (v >> 56) fail(str("header at byte ", header_at, ": ", field, " field does not fit in 64 bits"));
      v = v << 8 | p[i];
    }
    return v;
  }
  size_t i = 0;
  while (i < len && p[i] == ' ') ++i;
  uint64_t v = 0;
  size_t digits = 0;
  for (; i < len && p[i] >= '0' && p[i] <= '7'; ++i, ++digits) {
    if (v >> 60) fail(str("header at byte ", header_at, ": ", field, " field does not fit in 64 bits"));
    v = v * 8 + uint64_t(p[i] - '0');
  }
  for (; i < len; ++i)
    if (p[i] != ' ' && p[i] != '\0') digits = 0;  // stray characters: not a number
  if (digits == 0)
    fail(str("header at byte ", header_at, ": expected an octal number in the ", field, " field, found '",
             text_field(h, offset, len), "' (not a tar archive, or a corrupt one)"));
  return v;
}

// pax records: "<len> <key>=<value>\n", len counting the whole record in bytes.
void TarReader::parse_pax(const std::string& records) {
  size_t pos = 0;
  while (pos < records.size()) {
    if (records[pos] == '\0') break;  // some writers pad with NULs
    size_t len = 0, i = pos;
    while (i < records.size() && records[i] >= '0' && records[i] <= '9' && len < records.size())
      len = len * 10 + size_t(records[i++] - '0');
    const size_t eq = records.find('=', i);
    if (i == pos || len <= i - pos || i >= records.size() || records[i] != ' ' || len > records.size() - pos ||
        records[pos + len - 1] != '\n' || eq == std::string::npos || eq >= pos + len)
      fail(str("malformed pax extended header before byte ", offset_));
    const std::string key = records.substr(i + 1, eq - i - 1);
    const std::string value = records.substr(eq + 1, pos + len - 1 - (eq + 1));
    if (key == "path") {
      pax_path_ = value;
    } else if (key == "size") {
      if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos)
        fail(str("pax extended header before byte ", offset_, ": size '", value, "' is not a number"));
      pax_size_ = std::stoull(value);
    }
    pos += len;
  }
}

// Relative, '/'-separated, without "." components; refuses what could escape the target.
std::string TarReader::safe_path(const std::string& raw, bool is_dir) const {
  const auto refuse = [&](const std::string& why) {
    fail(str("member '", raw, "' ", why, "; refusing to unpack anything outside the target directory"));
  };
  if (raw.empty()) fail(str("a member at byte ", offset_ - kBlock, " has an empty name"));
  if (raw[0] == '/') refuse("is an absolute path");
  std::string out;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t end = raw.find('/', start);
    if (end == std::string::npos) end = raw.size();
    const std::string part = raw.substr(start, end - start);
    if (part == "..") refuse("has a '..' component");
    if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
    start = end + 1;
  }
  if (out.empty() && !is_dir) fail(str("member '", raw, "' is a file without a name"));
  return out;
}

std::optional<TarMember> TarReader::next() {
  skip(remaining_ + padding_, "the data of a member");
  remaining_ = padding_ = 0;
  for (;;) {
    uint8_t h[kBlock];
    const size_t got = in_.read(h, kBlock);
    offset_ += got;
    if (got == 0)
      fail(str("truncated: the archive ends at byte ", offset_, " without the end-of-archive marker"));
    if (got < kBlock)
      fail(str("truncated: the archive ends at byte ", offset_, " inside a header (", got, " of 512 bytes)"));
    const uint64_t at = offset_ - kBlock;
    if (std::all_of(h, h + kBlock, [](uint8_t b) { return b == 0; })) return std::nullopt;

    // Checksum first: it tells a tar header from anything else. Historic writers summed
    // signed chars, so that sum is accepted too.
    const uint64_t stored = parse_number(h, 148, 8, "checksum");
    uint64_t sum_unsigned = 0;
    int64_t sum_signed = 0;
    for (size_t i = 0; i < kBlock; ++i) {
      const bool in_field = i >= 148 && i < 156;
      sum_unsigned += in_field ? uint8_t(' ') : h[i];
      sum_signed += in_field ? int8_t(' ') : int8_t(h[i]);
    }
    if (stored != sum_unsigned && int64_t(stored) != sum_signed)
      fail(str("header at byte ", at, ": checksum mismatch: stored ", stored, ", computed ", sum_unsigned,
               " (not a tar archive, or a corrupt one)"));
    if (std::memcmp(h + 257, "ustar", 5) != 0)
      fail(str("header at byte ", at, ": expected the 'ustar' magic, found '", text_field(h, 257, 6),
               "' (only ustar, GNU and pax archives are read)"));

    const char type = char(h[156]);
    uint64_t size = parse_number(h, 124, 12, "size");
    if (pax_size_ && type != 'x' && type != 'g' && type != 'L') size = *pax_size_;
    if (auto whole = in_.known_size(); whole && padded(size) > *whole - offset_)
      fail(str("header at byte ", at, " claims ", size, " bytes of data but only ", *whole - offset_,
               " remain (truncated?)"));

    if (type == 'L') {  // GNU long name for the next member
      const std::string name = read_extension(size, "GNU long-name");
      long_name_ = name.substr(0, strnlen(name.c_str(), name.size()));
      continue;
    }
    if (type == 'x') {  // pax attributes for the next member
      parse_pax(read_extension(size, "pax"));
      continue;
    }
    if (type == 'g' || type == 'K') {  // pax global attributes; GNU long link name (its link is refused next)
      read_extension(size, type == 'g' ? "pax global" : "GNU long-link");
      continue;
    }

    std::string raw = text_field(h, 0, 100);
    if (std::memcmp(h + 257, "ustar\0", 6) == 0 && h[345] != 0) raw = text_field(h, 345, 155) + "/" + raw;
    if (!long_name_.empty()) raw = long_name_;
    if (!pax_path_.empty()) raw = pax_path_;
    long_name_.clear(), pax_path_.clear(), pax_size_.reset();

    member_ = TarMember{raw, TarMember::Type::kFile, size};
    const char* refused = nullptr;
    switch (type) {
      case '0': case '\0': case '7': break;  // regular file ('7': contiguous file, the same to us)
      case '5': member_.type = TarMember::Type::kDirectory; break;
      case '1': refused = "is a hard link"; break;
      case '2': refused = "is a symbolic link"; break;
      case '3': refused = "is a character device"; break;
      case '4': refused = "is a block device"; break;
      case '6': refused = "is a FIFO"; break;
      default: fail_member(str("has the unsupported type '", type, "' (only files and directories are unpacked)"));
    }
    if (refused)
      fail_member(str(refused, " (to '", text_field(h, 157, 100),
                      "'); only regular files and directories are unpacked"));
    member_.path = safe_path(raw, member_.type == TarMember::Type::kDirectory);
    if (member_.path.empty()) {  // "./", the archive's root: nothing to create
      skip(padded(size), "the data of a member");
      continue;
    }

    if (++members_ > limits_.max_members) fail(str("more than ", limits_.max_members, " members"));
    total_ += size;
    if (total_ > limits_.max_total_bytes)
      fail_member(str("takes the archive's contents past the limit of ", limits_.max_total_bytes, " bytes"));
    remaining_ = size;
    padding_ = padded(size) - size;
    if (member_.type == TarMember::Type::kDirectory) member_.size = 0;  // any data is skipped
    return member_;
  }
}

size_t TarReader::read(void* dst, size_t n) {
  const size_t want = size_t(std::min<uint64_t>(n, remaining_));
  if (want == 0) return 0;
  const size_t got = in_.read(dst, want);
  offset_ += got;
  remaining_ -= got;
  if (got < want)
    fail_member(str("is truncated: expected ", member_.size, " bytes, the archive ends after ",
                    member_.size - remaining_));
  return got;
}

void TarReader::finish() {
  std::array<uint8_t, 65536> scratch;
  for (;;) {
    const size_t got = in_.read(scratch.data(), scratch.size());
    total_ += got;
    if (total_ > limits_.max_total_bytes)
      fail(str("more than ", limits_.max_total_bytes, " bytes after the end-of-archive marker"));
    if (got < scratch.size()) return;
  }
}

// Every component of rel below root must be a real directory (never a symlink, which we
// never create, so none can appear); missing ones are created.
void make_dirs(TarReader& r, const fs::path& root, const fs::path& rel, const std::string& member) {
  fs::path cur = root;
  for (const auto& part : rel) {
    cur /= part;
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(cur, ec);
    if (fs::is_directory(st)) continue;
    if (fs::exists(st))
      r.fail(str("member '", member, "' needs '", fs::relative(cur, root).string(),
                 "' to be a directory, but an earlier member made it a file"));
    if (!fs::create_directory(cur, ec) && ec) r.fail(str("cannot create ", cur.string(), ": ", ec.message()));
  }
}

}  // namespace

std::vector<TarMember> list_tar(const std::string& archive, const TarLimits& limits) {
  TarReader r(archive, limits);
  std::vector<TarMember> out;
  while (auto m = r.next()) out.push_back(*m);
  r.finish();
  return out;
}

std::vector<TarMember> extract_tar(const std::string& archive, const std::string& dest_dir,
                                   const TarLimits& limits) {
  const fs::path root = dest_dir;
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw std::runtime_error(str(dest_dir, ": cannot unpack ", archive, " here: not a directory"));
  TarReader r(archive, limits);
  std::vector<TarMember> out;
  std::vector<char> buf(1 << 20);
  while (auto m = r.next()) {
    const fs::path rel = m->path;
    if (m->type == TarMember::Type::kDirectory) {
      make_dirs(r, root, rel, m->path);
      out.push_back(*m);
      continue;
    }
    make_dirs(r, root, rel.parent_path(), m->path);
    const fs::path target = root / rel;
    // O_EXCL | O_NOFOLLOW: never overwrite, never write through a link.
    const int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      if (errno == EEXIST) r.fail_member("appears twice in the archive");
      r.fail(str("cannot create ", target.string(), ": ", std::strerror(errno)));
    }
    try {
      size_t n;
      while ((n = r.read(buf.data(), buf.size())) > 0)
        for (size_t done = 0; done < n;) {
          const ssize_t w = ::write(fd, buf.data() + done, n - done);
          if (w < 0 && errno == EINTR) continue;
          if (w <= 0) throw std::runtime_error(str(target.string(), ": write error: ", std::strerror(errno)));
          done += size_t(w);
        }
    } catch (...) {
      ::close(fd);
      throw;
    }
    if (::close(fd) != 0) throw std::runtime_error(str(target.string(), ": write error: ", std::strerror(errno)));
    out.push_back(*m);
  }
  r.finish();
  return out;
}

}  // namespace crayon
