#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/tar.h"
#include "tests/data/files.h"
#include "tests/data/tar_writer.h"

using namespace crayon;
using namespace crayon::test;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Every path below root, relative, sorted: what an extraction left behind.
std::vector<std::string> tree(const fs::path& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) out.push_back(fs::relative(e.path(), root).string());
  std::sort(out.begin(), out.end());
  return out;
}

// A work dir holding the archive and an empty "out" to extract into; nothing may ever
// appear next to them.
struct Setup {
  TempDir dir;
  fs::path out = dir.path() / "out";
  std::string archive = (dir / "a.tar");
  Setup() { fs::create_directories(out); }
  std::string extract_error(const Bytes& tar) {
    write_raw(archive, tar);
    return error_of([&] { extract_tar(archive, out.string()); });
  }
  void check_nothing_outside() {
    std::vector<std::string> top;
    for (const auto& e : fs::directory_iterator(dir.path())) top.push_back(e.path().filename().string());
    std::sort(top.begin(), top.end());
    CHECK(top == std::vector<std::string>{"a.tar", "out"});
  }
};

std::string pax_record(const std::string& key, const std::string& value) {
  const std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

}  // namespace

TEST_CASE("tar: files and directories unpack with their contents, raw and gzipped") {
  const Bytes tar = tar_bytes({{"./", {}, '5'},  // the archive's root, as `tar -C dir .` writes it: skipped
                               {"top/", {}, '5'},
                               {"top/a.txt", text_bytes("hello")},
                               {"top/sub/b.bin", Bytes(1000, 7)},
                               {"./top/empty.txt", {}},
                               {"c.txt", text_bytes("from the prefix field"), '0', "", "pre/fix"}});
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    Setup s;
    write_raw(s.archive, gz ? gzip_bytes(tar) : tar);
    const auto listed = list_tar(s.archive);
    REQUIRE(listed.size() == 5);
    CHECK(listed[0].path == "top");
    CHECK(listed[0].type == TarMember::Type::kDirectory);
    CHECK(listed[2].path == "top/sub/b.bin");
    CHECK(listed[2].size == 1000);
    CHECK(listed[3].path == "top/empty.txt");
    CHECK(listed[4].path == "pre/fix/c.txt");

    const auto members = extract_tar(s.archive, s.out.string());
    CHECK(members.size() == 5);
    CHECK(read_text(s.out / "top/a.txt") == "hello");
    CHECK(read_text(s.out / "top/sub/b.bin") == std::string(1000, '\7'));
    CHECK(fs::file_size(s.out / "top/empty.txt") == 0);
    CHECK(read_text(s.out / "pre/fix/c.txt") == "from the prefix field");
    CHECK(tree(s.out) == std::vector<std::string>{"pre", "pre/fix", "pre/fix/c.txt", "top", "top/a.txt",
                                                  "top/empty.txt", "top/sub", "top/sub/b.bin"});
    s.check_nothing_outside();
  }
}

TEST_CASE("tar: GNU long names and pax paths are followed") {
  const std::string long_name = "deep/" + std::string(150, 'x') + ".txt";
  Setup s;
  write_raw(s.archive, tar_bytes({{"././@LongLink", text_bytes(long_name + std::string(1, '\0')), 'L'},
                                  {long_name.substr(0, 99), text_bytes("gnu")},
                                  {"PaxHeader/p", text_bytes(pax_record("mtime", "1.5") + pax_record("path", "pax/name.txt")), 'x'},
                                  {"ignored-name", text_bytes("pax")}}));
  const auto members = extract_tar(s.archive, s.out.string());
  REQUIRE(members.size() == 2);
  CHECK(members[0].path == long_name);
  CHECK(members[1].path == "pax/name.txt");
  CHECK(read_text(s.out / long_name) == "gnu");
  CHECK(read_text(s.out / "pax/name.txt") == "pax");
}

TEST_CASE("tar: '..' components and absolute paths are refused and nothing is written outside") {
  for (const char* bad : {"../evil", "ok/../../evil", "/tmp/evil-crayon-test", "a/./../../evil"}) {
    CAPTURE(bad);
    Setup s;
    const std::string err = s.extract_error(tar_bytes({{"fine.txt", text_bytes("ok")}, {bad, text_bytes("pwned")}}));
    CHECK(contains(err, "a.tar"));
    CHECK(contains(err, bad));
    CHECK(contains(err, "refusing"));
    CHECK(!fs::exists(s.dir.path() / "evil"));
    CHECK(!fs::exists("/tmp/evil-crayon-test"));
    s.check_nothing_outside();
  }
}

TEST_CASE("tar: symbolic links, hard links, devices and FIFOs are refused") {
  const std::pair<char, const char*> cases[] = {
      {'2', "symbolic link"}, {'1', "hard link"}, {'3', "character device"}, {'4', "block device"}, {'6', "FIFO"}};
  for (const auto& [type, what] : cases) {
    CAPTURE(what);
    Setup s;
    // The classic escape: a link to the outside, then a file written through it.
    const std::string err =
        s.extract_error(tar_bytes({{"link", {}, type, ".."}, {"link/evil", text_bytes("pwned")}}));
    CHECK(contains(err, "member 'link'"));
    CHECK(contains(err, what));
    CHECK(tree(s.out).empty());
    s.check_nothing_outside();
  }
}

TEST_CASE("tar: a corrupt header checksum is refused naming its offset") {
  Bytes tar = tar_bytes({{"a.txt", text_bytes("data")}, {"b.txt", text_bytes("more")}});
  tar[512 + 512 + 10] ^= 1;  // a name byte of the second header
  Setup s;
  const std::string err = s.extract_error(tar);
  CHECK(contains(err, "header at byte 1024"));
  CHECK(contains(err, "checksum mismatch"));
}

TEST_CASE("tar: something that is not a tar archive is refused") {
  Setup s;
  Bytes html = text_bytes("<html><body>404 Not Found</body></html>");
  html.resize(1024, ' ');
  const std::string err = s.extract_error(html);
  CHECK(contains(err, "a.tar"));
  CHECK(contains(err, "not a tar archive"));
}

TEST_CASE("tar: truncated archives are refused, raw and gzipped") {
  const Bytes tar = tar_bytes({{"a.bin", Bytes(5000, 1)}, {"b.bin", Bytes(3000, 2)}});
  SUBCASE("raw, cut inside a member's data: its size is checked against what remains") {
    Setup s;
    const std::string err = s.extract_error(Bytes(tar.begin(), tar.begin() + 512 + 5120 + 512 + 100));
    CHECK(contains(err, "claims 3000 bytes of data but only 100 remain"));
  }
  SUBCASE("raw, without the end-of-archive marker") {
    Setup s;
    const std::string err = s.extract_error(tar_bytes({{"a.bin", Bytes(5000, 1)}}, false));
    CHECK(contains(err, "without the end-of-archive marker"));
  }
  SUBCASE("raw, cut inside a header") {
    Setup s;
    const std::string err = s.extract_error(Bytes(tar.begin(), tar.begin() + 512 + 5120 + 200));
    CHECK(contains(err, "inside a header"));
  }
  SUBCASE("gzipped, cut in the middle") {
    const Bytes gz = gzip_bytes(tar);
    Setup s;
    const std::string err = s.extract_error(Bytes(gz.begin(), gz.begin() + gz.size() / 2));
    CHECK(contains(err, "a.tar"));
    CHECK(!err.empty());
  }
  SUBCASE("gzipped, cut just before its CRC trailer") {
    const Bytes gz = gzip_bytes(tar);
    Setup s;
    write_raw(s.archive, Bytes(gz.begin(), gz.end() - 6));
    CHECK(contains(error_of([&] { list_tar(s.archive); }), "a.tar"));
  }
}

TEST_CASE("tar: a member that appears twice, or a file where a directory must be, is refused") {
  {
    Setup s;
    const std::string err = s.extract_error(tar_bytes({{"x.txt", text_bytes("1")}, {"x.txt", text_bytes("2")}}));
    CHECK(contains(err, "member 'x.txt' appears twice"));
  }
  {
    Setup s;
    const std::string err = s.extract_error(tar_bytes({{"x", text_bytes("file")}, {"x/y.txt", text_bytes("2")}}));
    CHECK(contains(err, "needs 'x' to be a directory"));
  }
}

TEST_CASE("tar: the total size limit stops an archive that inflates too far") {
  Setup s;
  write_raw(s.archive, gzip_bytes(tar_bytes({{"big.bin", Bytes(100000, 0)}})));
  TarLimits limits;
  limits.max_total_bytes = 50000;
  const std::string err = error_of([&] { extract_tar(s.archive, s.out.string(), limits); });
  CHECK(contains(err, "member 'big.bin'"));
  CHECK(contains(err, "limit of 50000 bytes"));
}
