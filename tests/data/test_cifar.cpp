#include <doctest/doctest.h>

#include "data/cifar.h"
#include "data/dataset.h"
#include "tests/data/files.h"

using namespace crayon;
using namespace crayon::test;

TEST_CASE("cifar: records round-trip exactly, raw and gzipped") {
  TempDir dir;
  const Bytes bytes = cifar_bytes(3);
  write_raw((dir / "b.bin"), bytes);
  write_gz((dir / "b.bin.gz"), bytes);
  for (const char* name : {"b.bin", "b.bin.gz"}) {
    const CifarRecords r = read_cifar10_bin((dir / name));
    REQUIRE(r.size() == 3);
    CHECK(r.labels == std::vector<int32_t>{0, 1, 2});
    REQUIRE(r.images.size() == 3 * 3072);
    for (size_t i = 0; i < 3; ++i)
      CHECK(std::equal(r.images.begin() + long(i * 3072), r.images.begin() + long((i + 1) * 3072),
                       bytes.begin() + long(i * 3073 + 1)));
  }
}

TEST_CASE("cifar: a size that is not a multiple of 3073 is rejected naming the size and remainder") {
  TempDir dir;
  Bytes bytes = cifar_bytes(2);
  bytes.push_back(7);
  write_raw((dir / "odd.bin"), bytes);
  CHECK(error_of([&] { read_cifar10_bin((dir / "odd.bin")); }) ==
        (dir / "odd.bin") + ": expected a whole number of 3073-byte CIFAR-10 records (1 label + 3072 "
                              "pixels), found 6147 bytes (2 records + 1 byte left over)");
  write_gz((dir / "odd.bin.gz"), Bytes(bytes.begin(), bytes.begin() + 3000));
  CHECK(contains(error_of([&] { read_cifar10_bin((dir / "odd.bin.gz")); }),
                 "found 3000 bytes after decompression (0 records + 3000 bytes left over)"));
}

TEST_CASE("cifar: an empty file is rejected") {
  TempDir dir;
  write_raw((dir / "empty.bin"), {});
  CHECK(error_of([&] { read_cifar10_bin((dir / "empty.bin")); }) ==
        (dir / "empty.bin") +
            ": expected at least one 3073-byte CIFAR-10 record (1 label + 3072 pixels), found an empty file");
}

TEST_CASE("cifar: a label above 9 is rejected naming the record") {
  TempDir dir;
  Bytes bytes = cifar_bytes(4);
  bytes[2 * 3073] = 10;
  write_raw((dir / "bad.bin"), bytes);
  CHECK(error_of([&] { read_cifar10_bin((dir / "bad.bin")); }) ==
        (dir / "bad.bin") + ": record 2 (byte offset 6146): expected a label 0..9, found 10");
}

TEST_CASE("cifar: load_cifar10 reads the batches in order, subsets included") {
  TempDir dir;
  const Bytes all = cifar_bytes(5);
  const auto part = [&](size_t a, size_t b) {
    return Bytes(all.begin() + long(a * 3073), all.begin() + long(b * 3073));
  };
  // data_batch_10 must come after data_batch_2: numeric, not lexicographic, order.
  write_raw((dir / "data_batch_10.bin"), part(3, 5));
  write_raw((dir / "data_batch_1.first2.bin"), part(0, 2));
  write_raw((dir / "data_batch_2.bin"), part(2, 3));
  write_raw((dir / "test_batch.first1.bin"), part(4, 5));
  write_raw((dir / "readme.txt"), {'h', 'i'});
  const Dataset train = load_cifar10(dir.path().string(), true);
  REQUIRE(train.size() == 5);
  CHECK(train.channels() == 3);
  CHECK(train.height() == 32);
  CHECK(train.width() == 32);
  CHECK(std::vector<int32_t>(train.labels().begin(), train.labels().end()) ==
        std::vector<int32_t>{0, 1, 2, 3, 4});
  CHECK(train.image(3)[0] == all[3 * 3073 + 1]);
  CHECK(train.class_names() == cifar10_class_names());
  const Dataset test = load_cifar10(dir.path().string(), false);
  REQUIRE(test.size() == 1);
  CHECK(test.label(0) == 4);
}

TEST_CASE("cifar: class names come from batches.meta.txt when present and must be ten") {
  TempDir dir;
  write_raw((dir / "test_batch.bin"), cifar_bytes(1));
  const std::string names = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
  write_raw((dir / "batches.meta.txt"), Bytes(names.begin(), names.end()));
  CHECK(load_cifar10(dir.path().string(), false).class_names()[9] == "j");
  const std::string few = "a\nb\n";
  write_raw((dir / "batches.meta.txt"), Bytes(few.begin(), few.end()));
  CHECK(error_of([&] { load_cifar10(dir.path().string(), false); }) ==
        (dir / "batches.meta.txt") + ": expected 10 class names (one per line), found 2");
}

TEST_CASE("cifar: a missing directory, no batches, or two files for one batch are errors") {
  TempDir dir;
  CHECK(contains(error_of([&] { load_cifar10((dir / "nope"), true); }),
                 (dir / "nope") + ": expected a directory holding CIFAR-10 binary batches"));
  CHECK(contains(error_of([&] { load_cifar10(dir.path().string(), true); }),
                 ": no CIFAR-10 training batches found: looked for data_batch_1.bin .. data_batch_5.bin"));
  write_raw((dir / "data_batch_1.bin"), cifar_bytes(1));
  write_raw((dir / "data_batch_1.first4000.bin"), cifar_bytes(1));
  CHECK(contains(error_of([&] { load_cifar10(dir.path().string(), true); }),
                 "found 2 for training batch 1 (data_batch_1.bin, data_batch_1.first4000.bin)"));
}
