#include <doctest/doctest.h>

#include <cstdlib>

#include "data/data_dir.h"
#include "data/dataset.h"
#include "tests/data/files.h"

using namespace crayon;
using namespace crayon::test;

namespace {
// An MNIST-style folder with n train and m test examples of h x w.
void write_mnist_like(const TempDir& dir, size_t n, size_t m, bool gz, size_t h = 4, size_t w = 3) {
  const auto write = gz ? write_gz : write_raw;
  const std::string ext = gz ? ".gz" : "";
  write((dir / "train-images-idx3-ubyte" + ext), idx_bytes({uint32_t(n), uint32_t(h), uint32_t(w)},
                                                              pattern_pixels(n, h, w)));
  write((dir / "train-labels-idx1-ubyte" + ext), idx_bytes({uint32_t(n)}, pattern_labels(n)));
  write((dir / "t10k-images-idx3-ubyte" + ext), idx_bytes({uint32_t(m), uint32_t(h), uint32_t(w)},
                                                             pattern_pixels(m, h, w)));
  write((dir / "t10k-labels-idx1-ubyte" + ext), idx_bytes({uint32_t(m)}, pattern_labels(m)));
}
}  // namespace

TEST_CASE("dataset: load_mnist_like reads raw and gzipped folders into (N, 1, H, W) bytes") {
  for (bool gz : {false, true}) {
    CAPTURE(gz);
    TempDir dir;
    write_mnist_like(dir, 12, 5, gz);
    const Dataset train = load_mnist_like(dir.path().string(), true);
    const Dataset test = load_mnist_like(dir.path().string(), false);
    CHECK(train.size() == 12);
    CHECK(test.size() == 5);
    CHECK(train.channels() == 1);
    CHECK(train.height() == 4);
    CHECK(train.width() == 3);
    CHECK(train.num_classes() == 10);
    const Bytes px = pattern_pixels(12, 4, 3);
    CHECK(std::equal(train.images().begin(), train.images().end(), px.begin(), px.end()));
    for (int64_t i = 0; i < 12; ++i) CHECK(train.label(i) == int32_t(i % 10));
  }
}

TEST_CASE("dataset: load_mnist_like names every file it looked for when one is missing") {
  TempDir dir;
  write_mnist_like(dir, 3, 3, true);
  std::filesystem::remove((dir / "t10k-labels-idx1-ubyte.gz"));
  CHECK(error_of([&] { load_mnist_like(dir.path().string(), false); }) ==
        dir.path().string() + ": no MNIST-style t10k labels file found: looked for t10k-labels-idx1-ubyte, "
                              "t10k-labels-idx1-ubyte.gz, t10k-labels.idx1-ubyte, t10k-labels.idx1-ubyte.gz");
  CHECK(contains(error_of([&] { load_mnist_like((dir / "missing"), true); }),
                 (dir / "missing") + ": expected a directory holding MNIST-style IDX files"));
}

TEST_CASE("dataset: an image/label count mismatch names both files and both counts") {
  TempDir dir;
  write_raw((dir / "img"), idx_bytes({6, 2, 2}, pattern_pixels(6, 2, 2)));
  write_raw((dir / "lbl"), idx_bytes({5}, pattern_labels(5)));
  CHECK(error_of([&] { load_idx_pair((dir / "img"), (dir / "lbl")); }) ==
        (dir / "img") + " holds 6 images but " + (dir / "lbl") +
            " holds 5 labels: expected one label per image");
}

TEST_CASE("dataset: a label outside the classes names the labels file and the index") {
  TempDir dir;
  Bytes y = pattern_labels(4);
  y[3] = 10;
  write_raw((dir / "img"), idx_bytes({4, 2, 2}, pattern_pixels(4, 2, 2)));
  write_raw((dir / "lbl"), idx_bytes({4}, y));
  CHECK(error_of([&] { load_idx_pair((dir / "img"), (dir / "lbl")); }) ==
        (dir / "lbl") + ": label 10 at index 3, expected 0..9 (10 classes)");
  // With more classes (an EMNIST-style set) the same file is fine.
  std::vector<std::string> names(11, "c");
  CHECK(load_idx_pair((dir / "img"), (dir / "lbl"), names).label(3) == 10);
}

TEST_CASE("dataset: split holds out the last n_val examples") {
  std::vector<uint8_t> px(10 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i);
  std::vector<int32_t> y{0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
  const Dataset all(px, 1, 2, 2, y, {"a", "b", "c"});
  const auto [train, val] = all.split(3);
  CHECK(train.size() == 7);
  CHECK(val.size() == 3);
  CHECK(val.label(0) == 1);  // example 7
  CHECK(val.image(0)[0] == 28);
  CHECK(train.image(6)[3] == 27);
  CHECK(val.class_names() == all.class_names());
  CHECK(all.split(0).second.empty());
  CHECK(contains(error_of([&] { all.split(11); }), "expected 0 <= n_val <= 10, got 11"));
}

TEST_CASE("dataset: constructing from bytes checks the image size") {
  CHECK(contains(error_of([] { Dataset(std::vector<uint8_t>(7), 1, 2, 2, {0, 1}, {"a", "b"}, "src"); }),
                 "src: expected 8 image bytes (2 images of 1x2x2), got 7"));
}

TEST_CASE("dataset: default_data_dir points into the repository and honours CRAYON_DATA_DIR") {
  const char* old = std::getenv("CRAYON_DATA_DIR");
  const std::string saved = old ? old : "";
  ::unsetenv("CRAYON_DATA_DIR");
  CHECK(std::filesystem::equivalent(default_data_dir("mnist"), std::string(CRAYON_SOURCE_DIR) + "/data/mnist"));
  CHECK(default_data_dir("cifar10") == std::string(CRAYON_SOURCE_DIR) + "/data/cifar10");
  ::setenv("CRAYON_DATA_DIR", "/elsewhere", 1);
  CHECK(default_data_dir("mnist") == "/elsewhere/mnist");
  CHECK(default_data_dir("fashion-mnist") == "/usr/share/datasets/fashion-mnist");
  if (old) ::setenv("CRAYON_DATA_DIR", saved.c_str(), 1); else ::unsetenv("CRAYON_DATA_DIR");
  CHECK(error_of([] { default_data_dir("imagenet"); }) ==
        "unknown dataset 'imagenet': expected one of mnist, fashion-mnist, cifar10");
}
