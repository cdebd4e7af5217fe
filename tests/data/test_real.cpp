// End-to-end on the real MNIST shipped in the repository's data/mnist (never ../shared),
// and on Fashion-MNIST when it is installed (the Debian package dataset-fashion-mnist, or a
// copy in <data root>/fashion-mnist); otherwise that test warns that it was skipped.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "data/data_dir.h"
#include "data/dataset.h"
#include "data/loader.h"

using namespace crayon;

namespace {

const std::string kMnistDir = std::string(CRAYON_SOURCE_DIR) + "/data/mnist";

const Dataset& mnist(bool train) {
  static const Dataset tr = load_mnist_like(kMnistDir, true);
  static const Dataset te = load_mnist_like(kMnistDir, false);
  return train ? tr : te;
}

std::vector<int32_t> first_labels(const Dataset& d, size_t n) {
  return std::vector<int32_t>(d.labels().begin(), d.labels().begin() + long(n));
}

// Mean and standard deviation of all pixels in [0, 1] units.
std::pair<double, double> pixel_stats(const Dataset& d) {
  double sum = 0, sum2 = 0;
  for (uint8_t v : d.images()) {
    const double x = v / 255.0;
    sum += x;
    sum2 += x * x;
  }
  const double n = double(d.images().size()), mean = sum / n;
  return {mean, std::sqrt(sum2 / n - mean * mean)};
}

}  // namespace

TEST_CASE("mnist: the real training and test sets load with the published counts and labels") {
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset& train = mnist(true);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("loading the 60000 MNIST training examples (gz) took " << ms << " ms");
  const Dataset& test = mnist(false);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.channels() == 1);
  CHECK(train.height() == 28);
  CHECK(train.width() == 28);
  CHECK(first_labels(train, 5) == std::vector<int32_t>{5, 0, 4, 1, 9});
  CHECK(first_labels(test, 5) == std::vector<int32_t>{7, 2, 1, 0, 4});
  for (const Dataset* d : {&train, &test}) {
    const auto [lo, hi] = std::minmax_element(d->images().begin(), d->images().end());
    CHECK(*lo == 0);
    CHECK(*hi == 255);
    std::vector<int64_t> count(10, 0);
    for (int32_t y : d->labels()) ++count[size_t(y)];
    for (int64_t c : count) CHECK(c > d->size() / 20);  // every digit present in bulk
  }
}

TEST_CASE("mnist: the normalization preset matches the training set's statistics") {
  const auto [mean, stdev] = pixel_stats(mnist(true));
  CHECK(mean == doctest::Approx(mnist_stats().mean[0]).epsilon(1e-3));
  CHECK(stdev == doctest::Approx(mnist_stats().std[0]).epsilon(1e-3));
}

TEST_CASE("mnist: a loader over the real training set yields normalized batches") {
  const Dataset& train = mnist(true);
  DataLoader loader(train, {.batch_size = 128, .seed = 1, .norm = mnist_stats()});
  CHECK(loader.num_batches() == 469);  // 468 full + 1 of 96
  Batch b;
  REQUIRE(loader.next(b));
  CHECK(b.images.shape() == Shape{128, 1, 28, 28});
  const auto [lo, hi] = std::minmax_element(b.images.values().begin(), b.images.values().end());
  CHECK(*lo == doctest::Approx(-0.1307f / 0.3081f));
  CHECK(*hi == doctest::Approx((1.f - 0.1307f) / 0.3081f));
}

// Fashion-MNIST is not shipped: when it is absent the test passes, so it says so loudly, as a
// doctest warning (WARNING ... SKIPPED in the log) naming where it looked and how to install.
TEST_CASE(
    "fashion-mnist: the installed data set has the published counts, labels and statistics, or the skip is visible") {
  // Where `crayon --dataset fashion-mnist` looks: <data root>/fashion-mnist (e.g. a local
  // copy under $CRAYON_DATA_DIR), else the package's /usr/share/datasets/fashion-mnist.
  const std::string dir = default_data_dir("fashion-mnist");
  const bool installed = std::filesystem::is_directory(dir);
  WARN_MESSAGE(installed, "SKIPPED: Fashion-MNIST not found in "
                              << dir
                              << "; nothing was tested. Install it with `scripts/install-deps.sh --fashion` "
                                 "(Debian package dataset-fashion-mnist).");
  if (!installed) return;
  const Dataset train = load_dataset("fashion-mnist", true, dir);
  const Dataset test = load_dataset("fashion-mnist", false, dir);
  CHECK(train.size() == 60000);
  CHECK(test.size() == 10000);
  CHECK(train.class_names()[9] == "Ankle boot");
  CHECK(first_labels(train, 5) == std::vector<int32_t>{9, 0, 0, 3, 0});
  CHECK(first_labels(test, 5) == std::vector<int32_t>{9, 2, 1, 1, 6});
  const auto [mean, stdev] = pixel_stats(train);
  CHECK(mean == doctest::Approx(fashion_mnist_stats().mean[0]).epsilon(1e-3));
  CHECK(stdev == doctest::Approx(fashion_mnist_stats().std[0]).epsilon(1e-3));
}
