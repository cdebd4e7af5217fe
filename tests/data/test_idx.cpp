#include <doctest/doctest.h>
#include <sys/resource.h>

#include "core/rng.h"
#include "data/idx.h"
#include "tests/data/files.h"

using namespace crayon;
using namespace crayon::test;

namespace {
long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}
}  // namespace

TEST_CASE("idx: raw images and labels round-trip exactly") {
  TempDir dir;
  const Bytes px = pattern_pixels(5, 3, 4), y = pattern_labels(5);
  write_raw((dir / "img"), idx_bytes({5, 3, 4}, px));
  write_raw((dir / "lbl"), idx_bytes({5}, y));
  const IdxArray images = read_idx_images((dir / "img"));
  const IdxArray labels = read_idx_labels((dir / "lbl"));
  CHECK(images.dims == std::vector<int64_t>{5, 3, 4});
  CHECK(images.data == px);
  CHECK(labels.dims == std::vector<int64_t>{5});
  CHECK(labels.data == y);
}

TEST_CASE("idx: gzipped files round-trip exactly, whatever their name") {
  TempDir dir;
  const Bytes px = pattern_pixels(70, 28, 28), y = pattern_labels(70);
  write_gz((dir / "img.gz"), idx_bytes({70, 28, 28}, px));
  write_gz((dir / "lbl-no-extension"), idx_bytes({70}, y));
  CHECK(read_idx_images((dir / "img.gz")).data == px);
  CHECK(read_idx_labels((dir / "lbl-no-extension")).data == y);
}

TEST_CASE("idx: read_idx accepts any rank of unsigned bytes") {
  TempDir dir;
  const Bytes px = pattern_pixels(2, 3, 20);
  write_raw((dir / "r4"), idx_bytes({2, 3, 4, 5}, px));
  const IdxArray a = read_idx((dir / "r4"));
  CHECK(a.dims == std::vector<int64_t>{2, 3, 4, 5});
  CHECK(a.data == px);
}

TEST_CASE("idx: a bad magic is rejected naming the file and the expected magic") {
  TempDir dir;
  Bytes bytes = idx_bytes({2, 2, 2}, Bytes(8, 0), 0x12340803);
  write_raw((dir / "bad-magic"), bytes);
  const std::string msg = error_of([&] { read_idx_images((dir / "bad-magic")); });
  CHECK(contains(msg, (dir / "bad-magic") + ": expected an IDX file"));
  CHECK(contains(msg, "0x00000803"));
  CHECK(contains(msg, "found magic 0x12340803"));
}

TEST_CASE("idx: an element type other than unsigned byte is rejected naming the type") {
  TempDir dir;
  write_raw((dir / "floats"), idx_bytes({1, 1, 1}, Bytes(4, 0), 0x00000D03));
  const std::string msg = error_of([&] { read_idx_images((dir / "floats")); });
  CHECK(contains(msg, (dir / "floats") + ": expected unsigned-byte IDX data (type 0x08)"));
  CHECK(contains(msg, "found type 0x0d (float32)"));
}

TEST_CASE("idx: a labels file read as images is rejected naming both ranks") {
  TempDir dir;
  write_raw((dir / "labels"), idx_bytes({3}, pattern_labels(3)));
  const std::string msg = error_of([&] { read_idx_images((dir / "labels")); });
  CHECK(contains(msg, (dir / "labels") + ": expected magic 0x00000803 (unsigned-byte images, rank 3)"));
  CHECK(contains(msg, "found magic 0x00000801 (rank 1)"));
}

TEST_CASE("idx: a file shorter than its header is rejected") {
  TempDir dir;
  write_raw((dir / "tiny"), {0, 0});
  CHECK(contains(error_of([&] { read_idx_labels((dir / "tiny")); }),
                 (dir / "tiny") + ": expected an IDX header"));
  write_raw((dir / "half-header"), {0, 0, 8, 3, 0, 0, 0, 1});
  CHECK(contains(error_of([&] { read_idx_images((dir / "half-header")); }),
                 (dir / "half-header") + ": expected 16 header bytes (magic + 3 dimensions), found 8"));
  write_raw((dir / "empty"), {});
  CHECK(contains(error_of([&] { read_idx_labels((dir / "empty")); }), (dir / "empty") + ": expected"));
}

TEST_CASE("idx: a truncated labels file is rejected with the expected and found sizes") {
  TempDir dir;
  const Bytes full = idx_bytes({60000}, pattern_labels(60000));
  const Bytes cut(full.begin(), full.begin() + 4000);
  write_raw((dir / "train-labels-idx1-ubyte"), cut);
  write_gz((dir / "train-labels-idx1-ubyte.gz"), cut);
  const std::string raw = error_of([&] { read_idx_labels((dir / "train-labels-idx1-ubyte")); });
  CHECK(raw == (dir / "train-labels-idx1-ubyte") +
                   ": expected 60008 bytes (header 8 + 60000 labels), found 4000 bytes (truncated)");
  const std::string gz = error_of([&] { read_idx_labels((dir / "train-labels-idx1-ubyte.gz")); });
  CHECK(gz == (dir / "train-labels-idx1-ubyte.gz") +
                  ": expected 60008 bytes (header 8 + 60000 labels), found 4000 bytes after "
                  "decompression (truncated)");
}

TEST_CASE("idx: trailing bytes after the data are rejected") {
  TempDir dir;
  Bytes bytes = idx_bytes({4, 2, 2}, pattern_pixels(4, 2, 2));
  bytes.push_back(1);
  bytes.push_back(2);
  write_raw((dir / "img"), bytes);
  write_gz((dir / "img.gz"), bytes);
  CHECK(error_of([&] { read_idx_images((dir / "img")); }) ==
        (dir / "img") + ": expected 32 bytes (header 16 + 4 images of 2x2), found 34 bytes (2 trailing bytes)");
  CHECK(error_of([&] { read_idx_images((dir / "img.gz")); }) ==
        (dir / "img.gz") +
            ": expected 32 bytes (header 16 + 4 images of 2x2), found 34 bytes after decompression "
            "(2 trailing bytes)");
}

TEST_CASE("idx: huge dimensions in a header fail fast without allocating them") {
  TempDir dir;
  const long before = peak_rss_kb();
  // Raw: 6e14 claimed bytes against a 16-byte file.
  write_raw((dir / "huge"), idx_bytes({60000, 100000, 100000}, {}));
  CHECK(contains(error_of([&] { read_idx_images((dir / "huge")); }),
                 (dir / "huge") + ": expected 600000000000016 bytes (header 16 + 60000 images of "
                                    "100000x100000), found 16 bytes (truncated)"));
  // Gzip: the size is unknown until inflated, so a claim over the limit is refused...
  write_gz((dir / "huge.gz"), idx_bytes({60000, 100000, 100000}, {}));
  CHECK(contains(error_of([&] { read_idx_images((dir / "huge.gz")); }), "-byte limit"));
  // ...and a claim under it (1 GiB) costs only what arrives before the stream ends.
  write_gz((dir / "gib.gz"), idx_bytes({1024, 1024, 1024}, pattern_pixels(3, 28, 28)));
  CHECK(contains(error_of([&] { read_idx_images((dir / "gib.gz")); }),
                 "expected 1073741840 bytes (header 16 + 1024 images of 1024x1024), found 2368 bytes "
                 "after decompression (truncated)"));
  // Dimensions whose product overflows 64 bits.
  write_raw((dir / "overflow"), idx_bytes({0xffffffffu, 0xffffffffu, 0xffffffffu}, {}));
  CHECK(contains(error_of([&] { read_idx_images((dir / "overflow")); }),
                 (dir / "overflow") + ": header claims dimensions 4294967295x4294967295x4294967295"));
  CHECK(peak_rss_kb() - before < 256 * 1024);  // KiB: far below the gigabytes claimed
}

TEST_CASE("idx: a zero dimension is rejected") {
  TempDir dir;
  write_raw((dir / "zero"), idx_bytes({0, 28, 28}, {}));
  CHECK(error_of([&] { read_idx_images((dir / "zero")); }) ==
        (dir / "zero") + ": expected non-zero dimensions, found 0x28x28");
}

TEST_CASE("idx: garbage after a gzip magic is rejected with zlib's reason") {
  TempDir dir;
  write_raw((dir / "garbage.gz"), {0x1f, 0x8b, 0x42, 0x13, 0x37, 0x00, 0xff, 0xee, 0x01, 0x02, 0x03});
  const std::string msg = error_of([&] { read_idx_labels((dir / "garbage.gz")); });
  CHECK(contains(msg, (dir / "garbage.gz") + ": expected valid gzip data, found a corrupt stream (zlib: "));
}

TEST_CASE("idx: a gzip stream cut short or with a bad checksum is rejected") {
  TempDir dir;
  write_gz((dir / "ok.gz"), idx_bytes({500}, pattern_labels(500)));
  std::ifstream f((dir / "ok.gz"), std::ios::binary);
  Bytes gz((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  write_raw((dir / "cut.gz"), Bytes(gz.begin(), gz.end() - 12));
  CHECK(contains(error_of([&] { read_idx_labels((dir / "cut.gz")); }),
                 (dir / "cut.gz") + ": expected valid gzip data, found a corrupt stream"));
  Bytes bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0xff;  // inside the CRC-32 of the trailer
  write_raw((dir / "crc.gz"), bad_crc);
  CHECK(contains(error_of([&] { read_idx_labels((dir / "crc.gz")); }),
                 (dir / "crc.gz") + ": expected valid gzip data, found a corrupt stream"));
}

TEST_CASE("idx: a missing file or a directory is rejected naming it") {
  TempDir dir;
  CHECK(error_of([&] { read_idx_labels((dir / "nope")); }) == (dir / "nope") + ": cannot open: no such file");
  CHECK(contains(error_of([&] { read_idx_labels(dir.path().string()); }), "expected a regular file"));
}

TEST_CASE("idx: random corruptions either load or throw a runtime_error, never crash") {
  TempDir dir;
  const Bytes good = idx_bytes({6, 5, 4}, pattern_pixels(6, 5, 4));
  write_gz((dir / "good.gz"), good);
  std::ifstream f((dir / "good.gz"), std::ios::binary);
  const Bytes good_gz((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Rng rng(2024);
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 400; ++trial) {
    Bytes b = trial % 2 ? good : good_gz;
    if (rng.below(4) == 0) {
      b.resize(size_t(rng.below(b.size())));  // cut anywhere, header included
    } else {
      for (uint64_t k = 0, n = 1 + rng.below(3); k < n; ++k) b[size_t(rng.below(b.size()))] ^= uint8_t(1 + rng.below(255));
    }
    write_raw((dir / "mutant"), b);
    try {
      const IdxArray a = read_idx((dir / "mutant"));
      int64_t n = 1;
      for (int64_t d : a.dims) n *= d;
      CHECK(a.data.size() == size_t(n));
      ++loaded;
    } catch (const std::runtime_error& e) {
      CHECK(contains(e.what(), (dir / "mutant") + ": "));
      ++rejected;
    }
  }
  CHECK(loaded > 0);      // flipped pixel bytes in a raw file are still a valid file
  CHECK(rejected > 100);  // most mutants are caught, and none crashed
}
