#pragma once
// Tensor: a shape and a view into shared, contiguous, row-major storage.
//
// Copying a Tensor copies the handle, not the data (like torch.Tensor): reshape() and
// slice() return views of the same storage; clone() makes a deep copy. The element type
// is float32 for everything autograd touches; int8 and int32 exist for labels and for
// the integer inference engine, with the same shape/view machinery.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/rng.h"

namespace crayon {

using Shape = std::vector<int64_t>;

enum class DType : uint8_t { f32, i8, i32 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

std::string shape_str(const Shape& s);  // "(2, 3)"
int64_t shape_numel(const Shape& s);    // throws on negative dims or int64 overflow

// Raw, 64-byte aligned bytes. Owned by shared_ptr so views keep it alive. Freed blocks are
// kept in a cache by size for the next allocation of that size (a training step allocates the
// same shapes each time); release_cached_blocks() returns them to the system, for a caller
// about to switch to other shapes (evaluation after training: the peak memory is then the
// larger of the two working sets, not their sum).
void release_cached_blocks();

class Storage {
 public:
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() { return data_; }
  size_t nbytes() const { return nbytes_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
};

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<int8_t>() { return DType::i8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::i32; }

class Tensor {
 public:
  Tensor() = default;  // undefined: no storage, defined() == false
  // Uninitialized memory of the given shape; use zeros() when the contents matter.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor scalar(float value) { return full({}, value); }
  static Tensor arange(int64_t n) { return arange(0.f, float(n), 1.f); }
  static Tensor arange(float start, float stop, float step);
  static Tensor randn(const Shape& shape, Rng& rng, float mean = 0.f, float stddev = 1.f);
  static Tensor uniform(const Shape& shape, Rng& rng, float lo = 0.f, float hi = 1.f);
  static Tensor from(const Shape& shape, std::span<const float> values);
  static Tensor from(const Shape& shape, std::initializer_list<float> values) {
    return from(shape, std::span<const float>(values.begin(), values.size()));
  }
  static Tensor from_i32(const Shape& shape, std::span<const int32_t> values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t size(int dim) const;  // negative dim counts from the end
  int64_t numel() const { return numel_; }
  DType dtype() const { return dtype_; }
  size_t nbytes() const { return size_t(numel_) * dtype_size(dtype_); }

  float* data() { return data_as<float>(); }
  const float* data() const { return data_as<float>(); }
  template <typename T> T* data_as() {
    check_dtype(dtype_of<T>());
    return reinterpret_cast<T*>(static_cast<std::byte*>(storage_->data()) + offset_);
  }
  template <typename T> const T* data_as() const {
    return const_cast<Tensor*>(this)->data_as<T>();
  }
  std::span<float> values() { return {data(), size_t(numel_)}; }
  std::span<const float> values() const { return {data(), size_t(numel_)}; }

  float item() const;  // the one value of a 1-element float tensor
  // Element access for tests and small tools (bounds-checked, not for hot loops).
  float at(std::initializer_list<int64_t> index) const;

  // Views sharing storage.
  Tensor reshape(const Shape& shape) const;  // one dim may be -1
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dim 0

  Tensor clone() const;
  void fill(float value);
  void copy_from(const Tensor& other);  // same shape and dtype required
  bool same_storage(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  Tensor(std::shared_ptr<Storage> storage, size_t offset, Shape shape, DType dtype);
  void check_dtype(DType want) const;

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
};

// Throw std::invalid_argument "<what>: expected shape A, got B" unless shapes are equal.
void check_same_shape(const char* what, const Shape& expected, const Shape& got);

}  // namespace crayon
