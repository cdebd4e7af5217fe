#pragma once
// Dataset: a labelled set of images kept compactly as bytes, exactly as the files store
// them (N, C, H, W) uint8, with int32 labels in 0..num_classes-1. Conversion to float,
// normalization and augmentation happen per batch in DataLoader, so the 60000 MNIST
// training images take 47 MB, not 188.
//
// Loaders for the datasets crayon knows are at the bottom; every one validates its files
// (see idx.h, cifar.h) and the agreement between them.
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace crayon {

class Dataset {
 public:
  Dataset() = default;
  // images: N*C*H*W bytes; labels: N values in [0, class_names.size()). `source` names
  // where the labels came from (a file path) and appears in the errors this throws.
  Dataset(std::vector<uint8_t> images, int64_t channels, int64_t height, int64_t width,
          std::vector<int32_t> labels, std::vector<std::string> class_names,
          const std::string& source = "dataset");

  int64_t size() const { return int64_t(labels_.size()); }
  bool empty() const { return labels_.empty(); }
  int64_t channels() const { return channels_; }
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }
  int64_t image_numel() const { return channels_ * height_ * width_; }  // C*H*W
  int num_classes() const { return int(class_names_.size()); }
  const std::vector<std::string>& class_names() const { return class_names_; }

  std::span<const uint8_t> images() const { return images_; }
  std::span<const int32_t> labels() const { return labels_; }
  const uint8_t* image(int64_t i) const;  // C*H*W bytes of example i
  int32_t label(int64_t i) const;

  // Examples [begin, end), copied.
  Dataset slice(int64_t begin, int64_t end) const;
  // Held-out validation split, deterministic: {the first size()-n_val examples, the LAST
  // n_val}. Unshuffled on purpose, so a run and its resumption agree without a seed
  // (MNIST's training file has no ordering by class, so its tail is a fair sample).
  std::pair<Dataset, Dataset> split(int64_t n_val) const;

 private:
  std::vector<uint8_t> images_;
  std::vector<int32_t> labels_;
  int64_t channels_ = 0, height_ = 0, width_ = 0;
  std::vector<std::string> class_names_;
};

std::vector<std::string> digit_class_names();          // "0" .. "9"
std::vector<std::string> fashion_mnist_class_names();  // "T-shirt/top" .. "Ankle boot"
std::vector<std::string> cifar10_class_names();        // "airplane" .. "truck"

// An IDX images file (N, H, W) and an IDX labels file (N,) as one Dataset (N, 1, H, W).
// Errors name both files when their counts differ, the labels file and the index when a
// label is >= class_names.size().
Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      std::vector<std::string> class_names = digit_class_names());

// MNIST and datasets that copy its layout (Fashion-MNIST, KMNIST): in dir,
// {train,t10k}-images-idx3-ubyte and {train,t10k}-labels-idx1-ubyte, each raw or with
// .gz (the mirror spelling train-images.idx3-ubyte is accepted too).
Dataset load_mnist_like(const std::string& dir, bool train,
                        std::vector<std::string> class_names = digit_class_names());

// CIFAR-10 binary batches in dir: train = every data_batch_<k>*.bin in order of k
// (data_batch_1.bin .. data_batch_5.bin, or subsets like data_batch_1.first4000.bin),
// test = test_batch*.bin. Class names come from batches.meta.txt when it is present.
Dataset load_cifar10(const std::string& dir, bool train);

// By name: "mnist", "fashion-mnist", "cifar10". An empty dir means
// default_data_dir(name) (see data_dir.h).
Dataset load_dataset(const std::string& name, bool train, const std::string& dir = "");

}  // namespace crayon
