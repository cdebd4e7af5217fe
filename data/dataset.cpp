#include "data/dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <stdexcept>

#include "core/check.h"
#include "data/cifar.h"
#include "data/data_dir.h"
#include "data/idx.h"

namespace crayon {

namespace fs = std::filesystem;

Dataset::Dataset(std::vector<uint8_t> images, int64_t channels, int64_t height, int64_t width,
                 std::vector<int32_t> labels, std::vector<std::string> class_names,
                 const std::string& source)
    : images_(std::move(images)), labels_(std::move(labels)), channels_(channels),
      height_(height), width_(width), class_names_(std::move(class_names)) {
  if (channels <= 0 || height <= 0 || width <= 0)
    throw std::invalid_argument(str(source, ": expected positive image dimensions (C, H, W), got (",
                                    channels, ", ", height, ", ", width, ")"));
  if (class_names_.empty())
    throw std::invalid_argument(str(source, ": expected at least one class name"));
  const uint64_t want = uint64_t(labels_.size()) * uint64_t(image_numel());
  if (images_.size() != want)
    throw std::invalid_argument(str(source, ": expected ", want, " image bytes (", labels_.size(),
                                    " images of ", channels, "x", height, "x", width, "), got ",
                                    images_.size()));
  const int32_t k = num_classes();
  for (size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0 || labels_[i] >= k)
      throw std::runtime_error(str(source, ": label ", labels_[i], " at index ", i, ", expected 0..",
                                   k - 1, " (", k, " classes)"));
}

const uint8_t* Dataset::image(int64_t i) const {
  if (i < 0 || i >= size())
    throw std::out_of_range(str("Dataset::image: index ", i, " out of range for ", size(), " examples"));
  return images_.data() + size_t(i * image_numel());
}

int32_t Dataset::label(int64_t i) const {
  if (i < 0 || i >= size())
    throw std::out_of_range(str("Dataset::label: index ", i, " out of range for ", size(), " examples"));
  return labels_[size_t(i)];
}

Dataset Dataset::slice(int64_t begin, int64_t end) const {
  if (begin < 0 || end < begin || end > size())
    throw std::out_of_range(str("Dataset::slice: [", begin, ", ", end, ") out of range for ", size(),
                                " examples"));
  const auto px = images_.begin() + begin * image_numel();
  return Dataset(std::vector<uint8_t>(px, px + (end - begin) * image_numel()), channels_, height_,
                 width_, std::vector<int32_t>(labels_.begin() + begin, labels_.begin() + end),
                 class_names_);
}

std::pair<Dataset, Dataset> Dataset::split(int64_t n_val) const {
  if (n_val < 0 || n_val > size())
    throw std::invalid_argument(str("Dataset::split: expected 0 <= n_val <= ", size(), ", got ", n_val));
  return {slice(0, size() - n_val), slice(size() - n_val, size())};
}

std::vector<std::string> digit_class_names() {
  return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}

std::vector<std::string> fashion_mnist_class_names() {
  // github.com/zalandoresearch/fashion-mnist, README "Labels".
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

std::vector<std::string> cifar10_class_names() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

Dataset load_idx_pair(const std::string& images_path, const std::string& labels_path,
                      std::vector<std::string> class_names) {
  // Labels first: they are small, and a wrong labels file is found before 47 MB is read.
  IdxArray labels = read_idx_labels(labels_path);
  IdxArray images = read_idx_images(images_path);
  if (images.dims[0] != labels.dims[0])
    throw std::runtime_error(str(images_path, " holds ", images.dims[0], " images but ", labels_path,
                                 " holds ", labels.dims[0], " labels: expected one label per image"));
  std::vector<int32_t> y(labels.data.begin(), labels.data.end());
  return Dataset(std::move(images.data), 1, images.dims[1], images.dims[2], std::move(y),
                 std::move(class_names), labels_path);
}

namespace {

std::string find_idx_file(const fs::path& dir, const std::string& split, const std::string& kind,
                          int rank) {
  // The canonical names, then the spelling some mirrors use (train-images.idx3-ubyte).
  const std::string dash = str(split, "-", kind, "-idx", rank, "-ubyte");
  const std::string dot = str(split, "-", kind, ".idx", rank, "-ubyte");
  const std::vector<std::string> names = {dash, dash + ".gz", dot, dot + ".gz"};
  std::error_code ec;
  for (const auto& n : names)
    if (fs::is_regular_file(dir / n, ec)) return (dir / n).string();
  std::string tried;
  for (const auto& n : names) tried += (tried.empty() ? "" : ", ") + n;
  throw std::runtime_error(str(dir.string(), ": no MNIST-style ", split, " ", kind,
                               " file found: looked for ", tried));
}

void require_dir(const fs::path& dir, const char* what) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error(str(dir.string(), ": expected a directory holding ", what,
                                 ", found no such directory"));
}

std::vector<std::string> read_class_names(const fs::path& path, size_t expected) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(str(path.string(), ": cannot open"));
  std::vector<std::string> names;
  for (std::string line; std::getline(f, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  if (names.size() != expected)
    throw std::runtime_error(str(path.string(), ": expected ", expected,
                                 " class names (one per line), found ", names.size()));
  return names;
}

}  // namespace

Dataset load_mnist_like(const std::string& dir, bool train, std::vector<std::string> class_names) {
  require_dir(dir, "MNIST-style IDX files");
  const std::string split = train ? "train" : "t10k";
  return load_idx_pair(find_idx_file(dir, split, "images", 3), find_idx_file(dir, split, "labels", 1),
                       std::move(class_names));
}

Dataset load_cifar10(const std::string& dir, bool train) {
  require_dir(dir, "CIFAR-10 binary batches");
  // data_batch_<k>.bin or a subset data_batch_<k>.<anything>.bin; test_batch[.<anything>].bin
  static const std::regex train_re(R"(data_batch_(\d+)(\..+)?\.bin)");
  static const std::regex test_re(R"(test_batch(\..+)?\.bin)");
  std::map<int, std::vector<std::string>> by_batch;  // batch number -> files
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (train && std::regex_match(name, m, train_re))
      by_batch[std::stoi(m[1].str().substr(0, 9))].push_back(name);
    else if (!train && std::regex_match(name, test_re))
      by_batch[0].push_back(name);
  }
  const char* want = train ? "data_batch_1.bin .. data_batch_5.bin (or data_batch_<k>.<subset>.bin)"
                           : "test_batch.bin (or test_batch.<subset>.bin)";
  if (by_batch.empty())
    throw std::runtime_error(str(dir, ": no CIFAR-10 ", train ? "training" : "test",
                                 " batches found: looked for ", want));

  std::vector<uint8_t> images;
  std::vector<int32_t> labels;
  for (auto& [k, files] : by_batch) {
    if (files.size() > 1) {
      std::sort(files.begin(), files.end());
      std::string list;
      for (const auto& f : files) list += (list.empty() ? "" : ", ") + f;
      throw std::runtime_error(str(dir, ": expected one file per CIFAR-10 batch, found ", files.size(),
                                   " for ", train ? str("training batch ", k) : "the test batch",
                                   " (", list, "); keep one"));
    }
    CifarRecords r = read_cifar10_bin((fs::path(dir) / files[0]).string());
    if (labels.empty()) {
      images = std::move(r.images);
      labels = std::move(r.labels);
    } else {
      images.insert(images.end(), r.images.begin(), r.images.end());
      labels.insert(labels.end(), r.labels.begin(), r.labels.end());
    }
  }
  const fs::path meta = fs::path(dir) / "batches.meta.txt";
  std::error_code ec;
  std::vector<std::string> names = fs::is_regular_file(meta, ec)
                                       ? read_class_names(meta, kCifarClasses)
                                       : cifar10_class_names();
  return Dataset(std::move(images), kCifarChannels, kCifarSide, kCifarSide, std::move(labels),
                 std::move(names), dir);
}

Dataset load_dataset(const std::string& name, bool train, const std::string& dir) {
  const std::string d = dir.empty() ? default_data_dir(name) : dir;
  if (name == "mnist") return load_mnist_like(d, train, digit_class_names());
  if (name == "fashion-mnist") return load_mnist_like(d, train, fashion_mnist_class_names());
  if (name == "cifar10") return load_cifar10(d, train);
  std::string names;
  for (const auto& n : known_datasets()) names += (names.empty() ? "" : ", ") + n;
  throw std::invalid_argument(str("unknown dataset '", name, "': expected one of ", names));
}

}  // namespace crayon
