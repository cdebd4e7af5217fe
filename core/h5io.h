#pragma once
// HDF5 files on disk: the one place that writes tensors and attributes, and the one place
// that validates a file before trusting it (checkpoints and int8 exports may come from
// anywhere). Users never see an HDF5 header or handle.
//
// Names are paths from the root group: "fc1/weight" and "/fc1/weight" are the same
// dataset; "/" is the root group itself (for attributes).
//
//   H5Writer w("run/ckpt.h5");            // builds the file in memory
//   w.write_tensor("fc1/weight", weight);  // creates the group fc1
//   w.set_attr("/", "epoch", 3);
//   w.commit();                            // writes run/ckpt.h5.tmp.<pid>.<n>, fsync, rename onto
//                                          // run/ckpt.h5, fsync the dir
//
//   H5Reader r("run/ckpt.h5");
//   Tensor w1 = r.read_tensor("fc1/weight", DType::f32, {128, 784});
//   int64_t epoch = r.attr_int("/", "epoch");
//
// Every failure is one std::runtime_error line "<file>: <object>: expected X, found Y".
#include <concepts>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace crayon {

// Writes a new file atomically: HDF5 builds it in memory, and only commit() writes it to a
// temporary file in the same directory and renames that onto `path` (core/atomic_file.h). A
// writer destroyed without commit() (an exception mid-way, a NaN in the weights) has written
// nothing and leaves whatever was at `path` untouched, so the last good checkpoint survives;
// so does a commit() that fails (a full disk, a file-size limit): one error naming `path`, no
// temporary left. A writer killed outright during commit() (SIGKILL) leaves its
// `path`.tmp.<pid>.<n> behind; the next writer of the same `path` removes every such file whose
// process no longer exists (best effort, never throws), and nothing else: not a live
// process's, not another name's, not a directory. A folder that does not exist is refused
// when the writer is made.
class H5Writer {
 public:
  explicit H5Writer(std::string path);
  ~H5Writer();
  H5Writer(H5Writer&&) noexcept;
  H5Writer& operator=(H5Writer&&) noexcept;

  // f32, i8 or i32, any rank (rank 0 is an HDF5 scalar). Intermediate groups are created.
  // Throws, naming the dataset, if a float tensor holds NaN or Inf, or if `name` exists.
  void write_tensor(const std::string& name, const Tensor& t);

  // Attributes on a group or dataset ("/" = root); a missing group is created, an existing
  // attribute of the same key is replaced.
  void set_attr(const std::string& object, const std::string& key, const std::string& value);
  void set_attr(const std::string& object, const std::string& key, const char* value) {
    set_attr(object, key, std::string(value));
  }
  template <std::integral T>
  void set_attr(const std::string& object, const std::string& key, T value) {
    set_attr_int(object, key, int64_t(value), !std::in_range<int64_t>(value));
  }
  void set_attr(const std::string& object, const std::string& key, bool) = delete;
  void set_attr(const std::string& object, const std::string& key, double value);
  void set_attr(const std::string& object, const std::string& key,
                const std::vector<int64_t>& values);
  void set_attr(const std::string& object, const std::string& key,
                const std::vector<double>& values);

  // Close the file in memory, write it to a temporary beside `path`, fsync, rename() it onto
  // `path`, fsync the directory.
  void commit();

  const std::string& path() const;

 private:
  void set_attr_int(const std::string& object, const std::string& key, int64_t value,
                    bool out_of_range);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads a file that may be hostile. Before any data is read, a dataset must be reached
// through hard links only, have exactly the expected element type (size, sign, byte order),
// a rank <= 8 and, when given, the expected shape, be stored inside this file (no virtual
// or external storage), use no filter but deflate/shuffle/fletcher32, and fit in what is
// left of max_total_bytes (the running total of bytes this reader may read).
class H5Reader {
 public:
  explicit H5Reader(std::string path, uint64_t max_total_bytes = uint64_t(1) << 31);
  ~H5Reader();
  H5Reader(H5Reader&&) noexcept;
  H5Reader& operator=(H5Reader&&) noexcept;

  // True if the object exists; throws if the path goes through a soft or external link.
  bool has(const std::string& name) const;
  // Link names in a group, in name order.
  std::vector<std::string> children(const std::string& group = "/") const;

  static constexpr int kMaxRank = 8;
  Tensor read_tensor(const std::string& name, DType expected, const Shape& expected_shape);
  Tensor read_tensor(const std::string& name, DType expected);  // any shape, rank <= 8

  bool has_attr(const std::string& object, const std::string& key) const;
  std::string attr_string(const std::string& object, const std::string& key);
  int64_t attr_int(const std::string& object, const std::string& key);
  double attr_double(const std::string& object, const std::string& key);
  std::vector<int64_t> attr_ints(const std::string& object, const std::string& key);
  std::vector<double> attr_doubles(const std::string& object, const std::string& key);

  const std::string& path() const;
  uint64_t bytes_read() const;  // running total, counted against max_total_bytes

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace crayon
