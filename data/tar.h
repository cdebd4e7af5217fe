#pragma once
// Reading .tar and .tar.gz archives, for unpacking downloaded datasets.
//
// The format (POSIX.1-1988 "ustar", with the two common extensions for long names): a
// sequence of 512-byte header blocks, each followed by the member's data padded to a
// multiple of 512, and two zero blocks at the end. A header holds, as NUL-terminated
// text and octal numbers: name[100] at 0, mode 100, uid 108, gid 116, size[12] 124,
// mtime 136, chksum[8] 148, typeflag 156, linkname[100] 157, magic "ustar" 257, and in
// POSIX ustar a prefix[155] at 345 (path = prefix + "/" + name). The checksum is the
// sum of the header's bytes with the chksum field counted as eight spaces.
// Extensions: GNU typeflag 'L' (the data is the next member's long name) and pax 'x'
// (the data is "LEN key=value\n" records; path and size are used, the rest ignored).
//
// Archives are untrusted. Every header checksum is verified; a size is checked against
// what remains of the archive before it is trusted; the archive must end with the
// end-of-archive marker (else it was truncated). Only regular files and directories are
// accepted: symbolic and hard links, devices and FIFOs are refused, as are absolute paths
// and ".." components, so nothing can be written outside the target directory. Every
// error throws std::runtime_error with one line naming the archive, and the member.
#include <cstdint>
#include <string>
#include <vector>

namespace crayon {

struct TarMember {
  enum class Type { kFile, kDirectory };
  std::string path;  // relative, '/'-separated, without "." or ".." components
  Type type = Type::kFile;
  uint64_t size = 0;  // bytes of a file's data; 0 for a directory
};

struct TarLimits {
  uint64_t max_total_bytes = uint64_t(16) << 30;  // all members' data together: stops a gzip bomb
  uint64_t max_members = 1000000;
};

// Every member in archive order, after reading and validating the whole archive.
std::vector<TarMember> list_tar(const std::string& archive, const TarLimits& limits = {});

// Unpack every member into dest_dir, which must exist; returns the members, in order.
// Meant for a fresh, empty temporary directory: a member whose file already exists is
// refused (a duplicate), and on error what was written so far stays there, for the
// caller to remove with the directory.
std::vector<TarMember> extract_tar(const std::string& archive, const std::string& dest_dir,
                                   const TarLimits& limits = {});

}  // namespace crayon
