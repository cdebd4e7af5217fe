// The tar reader of `crayon fetch` (data/tar.h), .tar and .tar.gz: listing and unpacking agree,
// and nothing is written outside the target folder (every member path is relative and free of
// "..", and every file written is one the listing named).
#include <filesystem>
#include <set>

#include "data/tar.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;
namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input(data, size, "archive");
  const TarLimits limits{.max_total_bytes = uint64_t(64) << 20, .max_members = 10000};
  std::vector<TarMember> listed;
  fuzz::refused_or_ok([&] { listed = list_tar(path, limits); });
  const fs::path dest = fs::path(fuzz::scratch()) / "out";
  fs::remove_all(dest);
  fs::create_directories(dest);
  fuzz::refused_or_ok([&] {
    const std::vector<TarMember> got = extract_tar(path, dest.string(), limits);
    if (got.size() != listed.size()) fuzz::fail("tar: extract and list disagree");
    std::set<std::string> names;
    for (const TarMember& m : got) {
      if (m.path.empty() || m.path[0] == '/' || m.path.find("..") != std::string::npos)
        fuzz::fail("tar: a member path leaves the target folder");
      names.insert(m.path);
    }
    for (const auto& e : fs::recursive_directory_iterator(dest))
      if (!names.count(fs::relative(e.path(), dest).generic_string())) {
        // a parent folder created for a nested member is fine; a file nobody listed is not
        if (e.is_regular_file()) fuzz::fail("tar: a file was written that the archive did not list");
      }
  });
  fs::remove_all(dest);
  return 0;
}
