#pragma once
// DataLoader: turns a Dataset into float32 batches, shuffled, normalized and optionally
// augmented, all of it a pure function of (seed, epoch):
//   order(e)       = Fisher-Yates shuffle drawn from Rng(mix(seed, e))
//   augment(e, i)  = crop offset and flip drawn from Rng(mix(seed, e, i)), i = position in epoch
// so a run resumed at epoch e sees exactly the batches an uninterrupted run saw, with no
// loader state in the checkpoint.
//
// Pixel v (0..255) of channel c becomes ((v / 255) - mean[c]) / std[c], the
// torchvision ToTensor + Normalize convention.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/normalize.h"
#include "data/dataset.h"

namespace crayon {

struct Batch {
  Tensor images;                 // float32 (B, C, H, W)
  Tensor labels;                 // int32 (B,)
  std::vector<int64_t> indices;  // the B dataset indices, in batch order
  int64_t global_size = 0;       // the whole batch's size: size(), unless the loader is sharded
  int64_t offset = 0;            // the position of this shard's first example in the whole batch
  int64_t size() const { return int64_t(indices.size()); }
};

ChannelStats mnist_stats();          // (0.1307,), (0.3081,)
ChannelStats fashion_mnist_stats();  // (0.2860,), (0.3530,)
ChannelStats cifar10_stats();        // (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
ChannelStats dataset_stats(const std::string& name);  // by name, as load_dataset()

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  uint64_t seed = 0;
  // Random crop from the image zero-padded by crop_padding pixels on each side, then a
  // horizontal flip with probability 1/2: the standard CIFAR-10 augmentation
  // (He et al. 2016, "Deep Residual Learning", sec. 4.2). Padding is black pixels (0),
  // as torchvision's RandomCrop(padding=4) before ToTensor/Normalize.
  bool augment = false;
  int64_t crop_padding = 4;
  ChannelStats norm{};  // empty mean/std: no normalization (mean 0, std 1)
  bool drop_last = false;
  // Data-parallel sharding: every batch is cut into `shards` near-equal parts, positions
  // [G * shard / shards, G * (shard + 1) / shards) of a batch of G, and this loader yields
  // part `shard` alone, with the order and augmentation the whole batch has, so the global
  // batch is the same for any number of shards.
  int shard = 0, shards = 1;
};


class DataLoader {
 public:
  // Keeps a reference: the dataset must outlive the loader.
  DataLoader(const Dataset& data, LoaderOptions options);
  DataLoader(Dataset&&, LoaderOptions) = delete;  // would dangle

  // Begin epoch `epoch` (the constructor begins epoch 0).
  void start_epoch(int64_t epoch);
  // The next batch of this epoch, or false when the epoch is done.
  bool next(Batch& batch);
  // The loader as the batch sources quant/ takes (calibrate, analyze): each call fills the
  // next batch's images (and labels); false at the end of the epoch. They refer to the
  // loader, which must outlive them.
  std::function<bool(Tensor& images)> images();
  std::function<bool(Tensor& images, Tensor& labels)> labelled();

  int64_t num_batches() const;  // per epoch; the last may be partial unless drop_last
  int64_t size() const { return data_->size(); }
  int64_t epoch() const { return epoch_; }
  const std::vector<int64_t>& order() const { return order_; }  // this epoch's permutation
  const LoaderOptions& options() const { return opt_; }

 private:
  void fill_example(int64_t index, int64_t position, float* out) const;

  const Dataset* data_;
  LoaderOptions opt_;
  std::vector<float> lut_;  // [c * 256 + v] = (v / 255 - mean[c]) / std[c]
  int64_t epoch_ = 0;
  int64_t cursor_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace crayon
