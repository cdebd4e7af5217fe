#include "data/loader.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "core/check.h"
#include "core/rng.h"

namespace crayon {

namespace {

// splitmix64's finalizer: one 64-bit seed per (seed, epoch[, position]) with no two
// nearby tuples sharing a stream.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
uint64_t stream_seed(uint64_t seed, uint64_t epoch, uint64_t stream, uint64_t position = 0) {
  uint64_t h = mix(seed + 0x9e3779b97f4a7c15ULL);
  h = mix(h ^ (epoch + 0x632be59bd9b4e019ULL));
  h = mix(h ^ (stream + 0x8cb92ba72f3d8dd7ULL));
  return mix(h ^ position);
}
constexpr uint64_t kShuffleStream = 1, kAugmentStream = 2;

}  // namespace

ChannelStats mnist_stats() { return {{0.1307f}, {0.3081f}}; }
ChannelStats fashion_mnist_stats() { return {{0.2860f}, {0.3530f}}; }
ChannelStats cifar10_stats() {
  return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
}
ChannelStats dataset_stats(const std::string& name) {
  if (name == "mnist") return mnist_stats();
  if (name == "fashion-mnist") return fashion_mnist_stats();
  if (name == "cifar10") return cifar10_stats();
  throw std::invalid_argument(
      str("unknown dataset '", name, "': expected one of mnist, fashion-mnist, cifar10"));
}

DataLoader::DataLoader(const Dataset& data, LoaderOptions options)
    : data_(&data), opt_(std::move(options)) {
  const int64_t C = data.channels();
  if (opt_.batch_size < 1)
    throw std::invalid_argument(str("DataLoader: expected batch_size >= 1, got ", opt_.batch_size));
  if (opt_.crop_padding < 0)
    throw std::invalid_argument(str("DataLoader: expected crop_padding >= 0, got ", opt_.crop_padding));
  if (opt_.shards < 1 || opt_.shard < 0 || opt_.shard >= opt_.shards)
    throw std::invalid_argument(str("DataLoader: expected shard in [0, shards), got shard ", opt_.shard, " of ",
                                    opt_.shards));
  try {
    lut_ = pixel_table(opt_.norm, C);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(str("DataLoader: ", e.what()));
  }
  start_epoch(0);
}

void DataLoader::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  cursor_ = 0;
  order_.resize(size_t(size()));
  std::iota(order_.begin(), order_.end(), int64_t(0));
  if (opt_.shuffle) {
    Rng rng(stream_seed(opt_.seed, uint64_t(epoch), kShuffleStream));
    for (int64_t i = size() - 1; i > 0; --i)  // Fisher-Yates
      std::swap(order_[size_t(i)], order_[size_t(rng.below(uint64_t(i) + 1))]);
  }
}

int64_t DataLoader::num_batches() const {
  const int64_t B = opt_.batch_size;
  return opt_.drop_last ? size() / B : (size() + B - 1) / B;
}

// out: (C, H, W) floats of dataset example `index`, at `position` in this epoch's order.
void DataLoader::fill_example(int64_t index, int64_t position, float* out) const {
  const int64_t C = data_->channels(), H = data_->height(), W = data_->width();
  const uint8_t* img = data_->image(index);
  if (!opt_.augment) {
    for (int64_t c = 0; c < C; ++c) {
      const float* lut = &lut_[size_t(c * 256)];
      for (int64_t i = 0; i < H * W; ++i) out[c * H * W + i] = lut[img[c * H * W + i]];
    }
    return;
  }
  // Crop window top-left (dy, dx) in the padded image, uniform in [0, 2p]; pixel (y, x)
  // of the output is input (y + dy - p, x' + dx - p) with x' = W-1-x when flipped.
  const int64_t p = opt_.crop_padding;
  Rng rng(stream_seed(opt_.seed, uint64_t(epoch_), kAugmentStream, uint64_t(position)));
  const int64_t dy = int64_t(rng.below(uint64_t(2 * p + 1))) - p;
  const int64_t dx = int64_t(rng.below(uint64_t(2 * p + 1))) - p;
  const bool flip = rng.below(2) == 1;
  for (int64_t c = 0; c < C; ++c) {
    const float* lut = &lut_[size_t(c * 256)];
    for (int64_t y = 0; y < H; ++y) {
      const int64_t sy = y + dy;
      for (int64_t x = 0; x < W; ++x) {
        const int64_t sx = (flip ? W - 1 - x : x) + dx;
        const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        out[(c * H + y) * W + x] = lut[inside ? img[(c * H + sy) * W + sx] : 0];
      }
    }
  }
}

bool DataLoader::next(Batch& batch) {
  const int64_t remaining = size() - cursor_;
  const int64_t G = std::min(opt_.batch_size, remaining);
  if (G <= 0 || (opt_.drop_last && G < opt_.batch_size)) return false;
  const int64_t lo = G * opt_.shard / opt_.shards, hi = G * (opt_.shard + 1) / opt_.shards, B = hi - lo;
  const int64_t C = data_->channels(), H = data_->height(), W = data_->width();
  batch.images = Tensor::empty({B, C, H, W});
  batch.labels = Tensor::empty({B}, DType::i32);
  batch.indices.assign(order_.begin() + cursor_ + lo, order_.begin() + cursor_ + hi);
  batch.global_size = G;
  batch.offset = lo;
  float* x = batch.images.data();
  int32_t* y = batch.labels.data_as<int32_t>();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t index = batch.indices[size_t(b)];
    fill_example(index, cursor_ + lo + b, x + b * C * H * W);
    y[b] = data_->label(index);
  }
  cursor_ += G;
  return true;
}

std::function<bool(Tensor&)> DataLoader::images() {
  return [this](Tensor& x) {
    Batch b;
    if (!next(b)) return false;
    x = b.images;
    return true;
  };
}

std::function<bool(Tensor&, Tensor&)> DataLoader::labelled() {
  return [this](Tensor& x, Tensor& y) {
    Batch b;
    if (!next(b)) return false;
    x = b.images;
    y = b.labels;
    return true;
  };
}

}  // namespace crayon
