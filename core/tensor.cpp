#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <unordered_map>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::i8: return 1;
    case DType::i32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::i8: return "int8";
    case DType::i32: return "int32";
  }
  return "?";
}

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + (s.size() == 1 ? ",)" : ")");
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw std::invalid_argument(str("negative dimension in shape ", shape_str(s)));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw std::invalid_argument(str("shape ", shape_str(s), " has too many elements"));
    n *= d;
  }
  return n;
}

void check_same_shape(const char* what, const Shape& expected, const Shape& got) {
  if (expected != got)
    throw std::invalid_argument(
        str(what, ": expected shape ", shape_str(expected), ", got ", shape_str(got)));
}

namespace {
// A cache of freed blocks, keyed by their (64-rounded) size. A training step allocates
// the same activation and gradient shapes every time; without reuse, each large block
// comes fresh from mmap and the first touch of every page faults (that alone made an MLP
// step 90 % slower than its raw GEMMs). The cache holds at most kCacheCap bytes. Under
// AddressSanitizer it is off, so use-after-free is still caught.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kCacheCap = 0;
#else
constexpr size_t kCacheCap = size_t(512) << 20;
#endif

class BlockCache {
 public:
  void* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(bytes);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= bytes;
    return p;
  }
  void give(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= kCacheCap) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    std::free(p);
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [bytes, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    cached_ = 0;
  }
  ~BlockCache() { release(); }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;  // never destroyed: tensors may outlive main
  return *cache;
}

}  // namespace

void release_cached_blocks() { block_cache().release(); }

namespace {
size_t rounded_size(size_t nbytes) { return std::max<size_t>(64, (nbytes + 63) / 64 * 64); }
}  // namespace

Storage::Storage(size_t nbytes) : nbytes_(nbytes) {
  // 64-byte alignment serves AVX-512 loads; aligned_alloc needs a multiple of it.
  const size_t rounded = rounded_size(nbytes);
  data_ = block_cache().take(rounded);
  if (!data_) data_ = std::aligned_alloc(64, rounded);
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() { block_cache().give(data_, rounded_size(nbytes_)); }

Tensor::Tensor(std::shared_ptr<Storage> storage, size_t offset, Shape shape, DType dtype)
    : storage_(std::move(storage)), offset_(offset), shape_(std::move(shape)),
      numel_(shape_numel(shape_)), dtype_(dtype) {}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  if (uint64_t(n) > std::numeric_limits<size_t>::max() / 8)
    throw std::invalid_argument(str("shape ", shape_str(shape), " is too large"));
  return Tensor(std::make_shared<Storage>(size_t(n) * dtype_size(dtype)), 0, shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.storage_->data(), 0, t.nbytes());
  return t;
}

Tensor Tensor::ones(const Shape& shape) { return full(shape, 1.f); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape);
  t.fill(value);
  return t;
}

Tensor Tensor::arange(float start, float stop, float step) {
  if (step == 0.f || (stop - start) / step < 0.f)
    throw std::invalid_argument(str("arange: step ", step, " never reaches ", stop, " from ", start));
  const int64_t n = int64_t(std::ceil((stop - start) / step));
  Tensor t = empty({n});
  float* p = t.data();
  for (int64_t i = 0; i < n; ++i) p[i] = start + float(i) * step;
  return t;
}

Tensor Tensor::randn(const Shape& shape, Rng& rng, float mean, float stddev) {
  Tensor t = empty(shape);
  for (float& v : t.values()) v = mean + stddev * rng.normal();
  return t;
}

Tensor Tensor::uniform(const Shape& shape, Rng& rng, float lo, float hi) {
  Tensor t = empty(shape);
  for (float& v : t.values()) v = rng.uniform(lo, hi);
  return t;
}

Tensor Tensor::from(const Shape& shape, std::span<const float> values) {
  Tensor t = empty(shape);
  if (int64_t(values.size()) != t.numel())
    throw std::invalid_argument(str("Tensor::from: shape ", shape_str(shape), " holds ", t.numel(),
                                    " values, got ", values.size()));
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

Tensor Tensor::from_i32(const Shape& shape, std::span<const int32_t> values) {
  Tensor t = empty(shape, DType::i32);
  if (int64_t(values.size()) != t.numel())
    throw std::invalid_argument(str("Tensor::from_i32: shape ", shape_str(shape), " holds ",
                                    t.numel(), " values, got ", values.size()));
  std::copy(values.begin(), values.end(), t.data_as<int32_t>());
  return t;
}

int64_t Tensor::size(int dim) const {
  const int n = ndim();
  const int d = dim < 0 ? dim + n : dim;
  if (d < 0 || d >= n)
    throw std::invalid_argument(str("dimension ", dim, " out of range for shape ", shape_str(shape_)));
  return shape_[size_t(d)];
}

void Tensor::check_dtype(DType want) const {
  if (!storage_) throw std::logic_error("access to an undefined tensor");
  if (dtype_ != want)
    throw std::invalid_argument(
        str("tensor of shape ", shape_str(shape_), " is ", dtype_name(dtype_), ", expected ", dtype_name(want)));
}

float Tensor::item() const {
  if (numel_ != 1)
    throw std::invalid_argument(str("item(): expected one element, got shape ", shape_str(shape_)));
  return data()[0];
}

float Tensor::at(std::initializer_list<int64_t> index) const {
  if (int(index.size()) != ndim())
    throw std::invalid_argument(str("at(): ", index.size(), " indices for shape ", shape_str(shape_)));
  int64_t flat = 0;
  size_t d = 0;
  for (int64_t i : index) {
    if (i < 0 || i >= shape_[d])
      throw std::invalid_argument(str("at(): index ", i, " out of range in dim ", d, " of ", shape_str(shape_)));
    flat = flat * shape_[d] + i;
    ++d;
  }
  return data()[flat];
}

Tensor Tensor::reshape(const Shape& shape) const {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) throw std::invalid_argument(str("reshape: more than one -1 in ", shape_str(shape)));
      infer = int(i);
    } else {
      if (out[i] < 0) throw std::invalid_argument(str("reshape: negative dimension in ", shape_str(shape)));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel_ % known != 0)
      throw std::invalid_argument(str("reshape: cannot view ", shape_str(shape_), " as ", shape_str(shape)));
    out[size_t(infer)] = numel_ / known;
  }
  if (shape_numel(out) != numel_)
    throw std::invalid_argument(str("reshape: cannot view ", shape_str(shape_), " (", numel_,
                                    " elements) as ", shape_str(shape)));
  return Tensor(storage_, offset_, out, dtype_);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  if (ndim() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw std::invalid_argument(str("slice [", begin, ", ", end, ") out of range for shape ", shape_str(shape_)));
  Shape out = shape_;
  out[0] = end - begin;
  const int64_t row = shape_[0] ? numel_ / shape_[0] : 0;
  return Tensor(storage_, offset_ + size_t(begin * row) * dtype_size(dtype_), out, dtype_);
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t = empty(shape_, dtype_);
  std::memcpy(t.storage_->data(), static_cast<const std::byte*>(storage_->data()) + offset_, nbytes());
  return t;
}

void Tensor::fill(float value) { std::fill_n(data(), numel_, value); }

void Tensor::copy_from(const Tensor& other) {
  check_same_shape("copy_from", shape_, other.shape_);
  if (dtype_ != other.dtype_)
    throw std::invalid_argument(str("copy_from: expected ", dtype_name(dtype_), ", got ", dtype_name(other.dtype_)));
  std::memmove(static_cast<std::byte*>(storage_->data()) + offset_,
               static_cast<const std::byte*>(other.storage_->data()) + other.offset_, nbytes());
}

}  // namespace crayon
