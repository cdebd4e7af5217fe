#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "data/md5.h"
#include "tests/data/files.h"

using namespace crayon;
using namespace crayon::test;

TEST_CASE("md5: the RFC 1321 test suite (appendix A.5)") {
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5_hex("a") == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(md5_hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(md5_hex("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(md5_hex("abcdefghijklmnopqrstuvwxyz") == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(md5_hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
        "d174ab98d277d9f5a5611c2c9f419d9f");
  CHECK(md5_hex("12345678901234567890123456789012345678901234567890123456789012345678901234567890") ==
        "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("md5: lengths around the 56-byte padding boundary (values from Python's hashlib)") {
  const std::pair<size_t, const char*> cases[] = {
      {55, "ef1772b6dff9a122358552954ad0df65"},  {56, "3b0c8ac703f828b04c6c197006d17218"},
      {63, "b06521f39153d618550606be297466d5"},  {64, "014842d480b571495a4a0363793f7367"},
      {65, "c743a45e0d2e6a95cb859adae0248435"},  {119, "8a7bd0732ed6a28ce75f6dabc90e1613"},
      {120, "5f61c0ccad4cac44c75ff505e1f1e537"}, {1000000, "7707d6ae4e027c70eea2a935c2296f21"},
  };
  for (const auto& [n, want] : cases) {
    CAPTURE(n);
    CHECK(md5_hex(std::string(n, 'a')) == want);
  }
}

TEST_CASE("md5: feeding the message in pieces of any size gives the same digest") {
  std::string msg;
  for (int i = 0; i < 1000; ++i) msg += char(i * 37 % 251);
  const std::string whole = md5_hex(msg);
  for (size_t piece : {1, 3, 55, 63, 64, 65, 200}) {
    CAPTURE(piece);
    Md5 h;
    for (size_t at = 0; at < msg.size(); at += piece) h.update(msg.data() + at, std::min(piece, msg.size() - at));
    CHECK(to_hex(h.finish()) == whole);
  }
}

TEST_CASE("md5: md5_file matches the published MD5 of the MNIST test labels") {
  const std::string path = std::string(CRAYON_SOURCE_DIR) + "/data/mnist/t10k-labels-idx1-ubyte.gz";
  CHECK(md5_file(path) == "ec29112dd5afa0611ce80d1b7f02629c");
}

TEST_CASE("md5: md5_file on a missing file names it") {
  TempDir dir;
  const std::string err = error_of([&] { md5_file((dir / "nope.gz")); });
  CHECK(contains(err, "nope.gz"));
  CHECK(contains(err, "cannot open"));
}
