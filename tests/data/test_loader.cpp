#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "data/loader.h"
#include "tests/data/files.h"

using namespace crayon;
using namespace crayon::test;

namespace {

// n examples of C x H x W, example i's bytes (i * 13 + k) % 256 and label i % 10.
Dataset make_dataset(int64_t n, int64_t C = 1, int64_t H = 5, int64_t W = 4) {
  std::vector<uint8_t> px(size_t(n * C * H * W));
  for (size_t k = 0; k < px.size(); ++k) px[k] = uint8_t((k / size_t(C * H * W) * 13 + k) % 256);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[size_t(i)] = int32_t(i % 10);
  return Dataset(px, C, H, W, y, std::vector<std::string>(10, "c"));
}

std::vector<int64_t> epoch_indices(DataLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<int64_t> all;
  for (Batch b; loader.next(b);) all.insert(all.end(), b.indices.begin(), b.indices.end());
  return all;
}

// Reference for one augmented image: zero-pad by p, crop at (dy, dx) in [-p, p], then flip.
std::vector<float> reference_augment(const Dataset& d, int64_t i, int64_t dy, int64_t dx, bool flip) {
  const int64_t C = d.channels(), H = d.height(), W = d.width();
  std::vector<float> out(size_t(C * H * W));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
        const bool in = sy >= 0 && sy < H && sx >= 0 && sx < W;
        out[size_t((c * H + y) * W + x)] = in ? float(d.image(i)[(c * H + sy) * W + sx]) / 255.f : 0.f;
      }
  return out;
}

}  // namespace

TEST_CASE("loader: every example appears exactly once per epoch, with a partial last batch") {
  const Dataset d = make_dataset(103);
  DataLoader loader(d, {.batch_size = 10, .shuffle = true, .seed = 7});
  CHECK(loader.size() == 103);
  CHECK(loader.num_batches() == 11);
  std::vector<int64_t> sizes;
  std::vector<int64_t> seen;
  for (Batch b; loader.next(b);) {
    sizes.push_back(b.size());
    CHECK(b.images.shape() == Shape{b.size(), 1, 5, 4});
    CHECK(b.labels.shape() == Shape{b.size()});
    CHECK(b.labels.dtype() == DType::i32);
    for (int64_t k = 0; k < b.size(); ++k)
      CHECK(b.labels.data_as<int32_t>()[k] == d.label(b.indices[size_t(k)]));
    seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  }
  CHECK(sizes.size() == 11);
  CHECK(sizes.back() == 3);
  std::sort(seen.begin(), seen.end());
  std::vector<int64_t> all(103);
  for (int64_t i = 0; i < 103; ++i) all[size_t(i)] = i;
  CHECK(seen == all);
  Batch extra;
  CHECK_FALSE(loader.next(extra));  // the epoch is over until start_epoch
}

TEST_CASE("loader: drop_last drops the partial batch") {
  const Dataset d = make_dataset(103);
  DataLoader loader(d, {.batch_size = 10, .drop_last = true});
  CHECK(loader.num_batches() == 10);
  int64_t batches = 0;
  for (Batch b; loader.next(b);) {
    CHECK(b.size() == 10);
    ++batches;
  }
  CHECK(batches == 10);
}

TEST_CASE("loader: the order is a pure function of (seed, epoch)") {
  const Dataset d = make_dataset(50);
  DataLoader a(d, {.batch_size = 8, .seed = 42});
  DataLoader b(d, {.batch_size = 8, .seed = 42});
  DataLoader other_seed(d, {.batch_size = 8, .seed = 43});
  std::vector<int64_t> a0 = epoch_indices(a, 0), a1 = epoch_indices(a, 1), a3 = epoch_indices(a, 3);
  CHECK(epoch_indices(b, 3) == a3);  // a resumed run jumps straight to epoch 3
  CHECK(epoch_indices(b, 0) == a0);
  CHECK(a0 != a1);
  CHECK(a1 != a3);
  CHECK(epoch_indices(other_seed, 0) != a0);
  std::vector<int64_t> identity(50);
  for (int64_t i = 0; i < 50; ++i) identity[size_t(i)] = i;
  CHECK(a0 != identity);
  DataLoader plain(d, {.batch_size = 8, .shuffle = false});
  CHECK(epoch_indices(plain, 5) == identity);
}

TEST_CASE("loader: pixels are scaled to [0, 1] and normalized per channel") {
  const Dataset d = make_dataset(3, 3, 2, 2);
  const ChannelStats stats = cifar10_stats();
  DataLoader loader(d, {.batch_size = 3, .shuffle = false, .norm = stats});
  Batch b;
  REQUIRE(loader.next(b));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t k = 0; k < 4; ++k) {
        const float v = float(d.image(i)[c * 4 + k]);
        const float want = (v / 255.f - stats.mean[size_t(c)]) / stats.std[size_t(c)];
        CHECK(b.images.at({i, c, k / 2, k % 2}) == doctest::Approx(want).epsilon(1e-6));
      }
  DataLoader raw(d, {.batch_size = 3, .shuffle = false});
  REQUIRE(raw.next(b));
  CHECK(b.images.at({1, 0, 0, 0}) == doctest::Approx(float(d.image(1)[0]) / 255.f));
  CHECK(mnist_stats().mean == std::vector<float>{0.1307f});
  CHECK(mnist_stats().std == std::vector<float>{0.3081f});
}

TEST_CASE("loader: augmentation crops and flips, keeps the shape, and is reproducible") {
  const Dataset d = make_dataset(200, 3, 8, 8);
  const LoaderOptions opt{.batch_size = 64, .seed = 9, .augment = true};
  DataLoader a(d, opt), b(d, opt), plain(d, {.batch_size = 64, .seed = 9});
  int flipped = 0, shifted = 0, changed = 0;
  for (int64_t epoch : {0, 1}) {
    a.start_epoch(epoch);
    b.start_epoch(epoch);
    plain.start_epoch(epoch);
    for (Batch x, y, p; a.next(x);) {
      REQUIRE(b.next(y));
      REQUIRE(plain.next(p));
      CHECK(x.images.shape() == p.images.shape());
      CHECK(x.indices == p.indices);  // augmentation never changes the order
      CHECK(std::equal(x.images.values().begin(), x.images.values().end(), y.images.values().begin()));
      const int64_t n = 3 * 8 * 8;
      for (int64_t k = 0; k < x.size(); ++k) {
        const std::vector<float> got(x.images.data() + k * n, x.images.data() + (k + 1) * n);
        if (!std::equal(got.begin(), got.end(), p.images.data() + k * n)) ++changed;
        // It must be exactly one of the (2p+1)^2 * 2 crops/flips of the original.
        bool found = false;
        for (int64_t dy = -4; dy <= 4 && !found; ++dy)
          for (int64_t dx = -4; dx <= 4 && !found; ++dx)
            for (bool flip : {false, true})
              if (!found && reference_augment(d, x.indices[size_t(k)], dy, dx, flip) == got) {
                found = true;
                flipped += flip;
                shifted += dy != 0 || dx != 0;
              }
        CHECK(found);
      }
    }
  }
  // 400 draws: about half flipped, 80/81 shifted.
  CHECK(flipped > 120);
  CHECK(flipped < 280);
  CHECK(shifted > 350);
  CHECK(changed > 350);
}

TEST_CASE("loader: bad options are rejected naming the option") {
  const Dataset d = make_dataset(4, 3, 2, 2);
  CHECK(error_of([&] { DataLoader(d, {.batch_size = 0}); }) == "DataLoader: expected batch_size >= 1, got 0");
  CHECK(error_of([&] { DataLoader(d, {.norm = mnist_stats()}); }) ==
        "DataLoader: normalization: expected 3 per-channel mean and std values, got 1 and 1");
  CHECK(error_of([&] { DataLoader(d, {.norm = {{0.f, 0.f, 0.f}, {1.f, 0.f, 1.f}}}); }) ==
        "DataLoader: normalization: expected std > 0, got 0 for channel 1");
}

TEST_CASE("loader: an empty dataset yields no batches") {
  const Dataset d(std::vector<uint8_t>{}, 1, 2, 2, std::vector<int32_t>{}, {"a"});
  DataLoader loader(d, {});
  Batch b;
  CHECK(loader.num_batches() == 0);
  CHECK_FALSE(loader.next(b));
}

TEST_CASE("loader: 3 shards of every batch put together are the whole batch, augmentation included") {
  const Dataset d = make_dataset(25, 1, 6, 6);
  const LoaderOptions whole_opt{.batch_size = 10, .shuffle = true, .seed = 3, .augment = true, .crop_padding = 2};
  DataLoader whole(d, whole_opt);
  std::vector<DataLoader> shards;
  for (int s = 0; s < 3; ++s) {
    LoaderOptions o = whole_opt;
    o.shard = s, o.shards = 3;
    shards.emplace_back(d, o);
  }
  for (int64_t epoch : {0, 1}) {
    whole.start_epoch(epoch);
    for (DataLoader& s : shards) s.start_epoch(epoch);
    int64_t batches = 0;
    for (Batch b; whole.next(b); ++batches) {
      std::vector<int64_t> indices;
      std::vector<float> pixels;
      for (DataLoader& s : shards) {
        Batch p;
        REQUIRE(s.next(p));
        CHECK(p.global_size == b.size());
        CHECK(p.size() >= b.size() / 3);
        indices.insert(indices.end(), p.indices.begin(), p.indices.end());
        pixels.insert(pixels.end(), p.images.values().begin(), p.images.values().end());
      }
      CHECK(indices == b.indices);
      CHECK(pixels == std::vector<float>(b.images.values().begin(), b.images.values().end()));
    }
    CHECK(batches == 3);  // 10 + 10 + 5: the last shards hold 1, 2 and 2
    Batch none;
    for (DataLoader& s : shards) CHECK_FALSE(s.next(none));
  }
  CHECK_THROWS_WITH_AS(DataLoader(d, LoaderOptions{.shard = 3, .shards = 3}),
                       "DataLoader: expected shard in [0, shards), got shard 3 of 3", std::invalid_argument);
}
