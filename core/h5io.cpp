#include "core/h5io.h"

#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/parse.h"

namespace crayon {
namespace {

// Limits for what a file may ask us to allocate besides tensors (which max_total_bytes caps).
constexpr size_t kMaxStringBytes = size_t(1) << 20;
constexpr uint64_t kMaxAttrElements = uint64_t(1) << 24;
// Tensors up to this size are stored in the object header (compact layout), which the
// v2 header format checksums; larger ones in chunks of at most kChunkBytes with a fletcher32
// checksum each, so a flipped bit in any tensor or object header is caught on reading.
constexpr uint64_t kCompactBytes = 8 << 10;
constexpr uint64_t kChunkBytes = 16 << 20;

// One owned HDF5 id, closed by the H5*close that matches its kind.
class Handle {
 public:
  using Close = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Close close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      close_ = o.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  herr_t reset() {
    const herr_t r = id_ >= 0 ? close_(id_) : 0;
    id_ = H5I_INVALID_HID;
    return r;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Close close_ = nullptr;
};

// HDF5 prints its error stack to stderr by default; we turn every failure into one
// exception instead, quoting the innermost (most specific) message of the stack.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

std::string printable(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &reason);
  return reason.empty() ? "unknown HDF5 error" : printable(reason);
}

// "fc1//weight/" -> {"fc1", "weight"}; "/" -> {}.
std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : name) {
    if (c != '/') {
      cur += c;
    } else if (!cur.empty()) {
      parts.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) parts.push_back(std::move(cur));
  for (const std::string& p : parts)
    if (p == ".") throw std::invalid_argument(str("HDF5 name '", name, "': '.' is not allowed"));
  return parts;
}

std::string join_name(const std::vector<std::string>& parts, size_t n) {
  if (n == 0) return "/";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += "/" + parts[i];
  return out;
}

hid_t file_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_IEEE_F32LE;
    case DType::i8: return H5T_STD_I8LE;
    case DType::i32: return H5T_STD_I32LE;
  }
  return H5I_INVALID_HID;
}

hid_t mem_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::i8: return H5T_NATIVE_INT8;
    case DType::i32: return H5T_NATIVE_INT32;
  }
  return H5I_INVALID_HID;
}

void* raw_data(Tensor& t) {
  switch (t.dtype()) {
    case DType::f32: return t.data_as<float>();
    case DType::i8: return t.data_as<int8_t>();
    case DType::i32: return t.data_as<int32_t>();
  }
  return nullptr;
}

// Index of the first NaN/Inf, or -1.
int64_t first_non_finite(const Tensor& t) {
  if (t.dtype() != DType::f32) return -1;
  const float* p = t.data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}

// "float32", "big-endian int16", "uint64", "a variable-length string", ...
std::string describe_type(hid_t t) {
  const H5T_class_t cls = H5Tget_class(t);
  const size_t size = H5Tget_size(t);
  if (cls == H5T_INTEGER || cls == H5T_FLOAT) {
    std::string name = cls == H5T_FLOAT ? "float" : H5Tget_sign(t) == H5T_SGN_NONE ? "uint" : "int";
    name += std::to_string(size * 8);
    const H5T_order_t order = H5Tget_order(t);
    if (order == H5T_ORDER_BE) name = "big-endian " + name;
    if (order != H5T_ORDER_BE && order != H5T_ORDER_LE) name = "mixed-endian " + name;
    const size_t precision = H5Tget_precision(t);
    const int offset = H5Tget_offset(t);
    if (precision != size * 8 || offset != 0)
      name += str(" holding ", precision, " bits at bit ", offset);
    return name;
  }
  switch (cls) {
    case H5T_STRING:
      return H5Tis_variable_str(t) > 0 ? "a variable-length string"
                                       : str("a fixed-length string of ", size, " bytes");
    case H5T_COMPOUND: return "a compound type";
    case H5T_ARRAY: return "an array type";
    case H5T_ENUM: return "an enum type";
    case H5T_VLEN: return "a variable-length sequence type";
    case H5T_REFERENCE: return "a reference type";
    case H5T_OPAQUE: return "an opaque type";
    case H5T_BITFIELD: return "a bitfield type";
    case H5T_TIME: return "a time type";
    default: return "an unknown type";
  }
}

const char* link_kind(H5L_type_t t) {
  switch (t) {
    case H5L_TYPE_HARD: return "a hard link";
    case H5L_TYPE_SOFT: return "a soft link";
    case H5L_TYPE_EXTERNAL: return "an external link";
    default: return "a user-defined link";
  }
}

const char* object_kind(H5I_type_t t) {
  switch (t) {
    case H5I_GROUP: return "a group";
    case H5I_DATASET: return "a dataset";
    case H5I_DATATYPE: return "a named datatype";
    default: return "an unknown object";
  }
}

std::string dims_str(const std::vector<hsize_t>& dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

const char* filter_name(H5Z_filter_t id) {
  switch (id) {
    case H5Z_FILTER_DEFLATE: return "deflate";
    case H5Z_FILTER_SHUFFLE: return "shuffle";
    case H5Z_FILTER_FLETCHER32: return "fletcher32";
    case H5Z_FILTER_SZIP: return "szip";
    case H5Z_FILTER_NBIT: return "nbit";
    case H5Z_FILTER_SCALEOFFSET: return "scaleoffset";
    default: return nullptr;
  }
}

Handle make_plist(hid_t cls) {
  Handle p(H5Pcreate(cls), H5Pclose);
  if (!p.valid())
    throw std::runtime_error(str("HDF5: cannot create a property list: ", hdf5_reason()));
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Writer

// The memory of an H5Writer's in-memory file, handed to HDF5's core driver through its file
// image callbacks, so the bytes are still ours when HDF5 closes the file: a closed file is
// complete (superblock flags cleared, checksums final), unlike H5Fget_file_image's copy of an
// open one (in HDF5 1.10.8 that copy clears the superblock's status flags without updating
// its checksum, so the file it gives is unreadable).
struct FileImage {
  void* mem = nullptr;
  size_t size = 0;     // bytes allocated (zero-filled past what HDF5 wrote)
  std::string closed;  // the whole file once HDF5 has closed it

  static void* grow(void* ptr, size_t size, H5FD_file_image_op_t, void* udata) {
    FileImage& f = *static_cast<FileImage*>(udata);
    if (ptr != f.mem) return nullptr;
    void* p = std::realloc(f.mem, size == 0 ? 1 : size);
    if (!p) return nullptr;
    if (size > f.size) std::memset(static_cast<char*>(p) + f.size, 0, size - f.size);
    f.mem = p;
    f.size = size;
    return p;
  }
  static void* allocate(size_t size, H5FD_file_image_op_t op, void* udata) { return grow(nullptr, size, op, udata); }
  static void* copy(void* dest, const void* src, size_t size, H5FD_file_image_op_t, void*) {
    return std::memcpy(dest, src, size);
  }
  static herr_t release(void* ptr, H5FD_file_image_op_t op, void* udata) {
    FileImage& f = *static_cast<FileImage*>(udata);
    if (ptr != f.mem) return -1;
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE) f.closed.assign(static_cast<const char*>(f.mem), f.size);
    std::free(f.mem);
    f.mem = nullptr;
    f.size = 0;
    return 0;
  }
  static void* share(void* udata) { return udata; }  // property list copies point at the same image
  static herr_t keep(void*) { return 0; }
  ~FileImage() { std::free(mem); }

  // The file's length: the end-of-file address in the superblock (version 2 or 3, 8-byte
  // addresses: signature 8, versions and flags 4, base 8, extension 8, then EOF 8).
  uint64_t end_of_file() const {
    if (closed.size() < 36 || closed.compare(0, 8, "\x89HDF\r\n\x1a\n") != 0) return 0;
    uint64_t eof = 0;
    for (int i = 7; i >= 0; --i) eof = eof << 8 | uint8_t(closed[size_t(28 + i)]);
    return eof;
  }
};

struct H5Writer::Impl {
  std::string path, tmp;
  FileImage image;  // before `file`: HDF5 releases its memory when `file` closes
  Handle file;
  bool committed = false;

  [[noreturn]] void fail(const std::string& object, const std::string& what) const {
    throw std::runtime_error(str(path, ": ", object, ": ", what));
  }
  [[noreturn]] void fail_hdf5(const std::string& object, const std::string& what) const {
    fail(object, str(what, " (HDF5: ", hdf5_reason(), ")"));
  }
  void check_open() const {
    if (committed || !file.valid())
      throw std::logic_error(str(path, ": H5Writer used after commit()"));
  }

  // The group holding parts[0, n), created (with any missing parents) if needed.
  Handle group(const std::vector<std::string>& parts, size_t n) {
    Handle loc(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
    if (!loc.valid()) fail_hdf5("/", "cannot open the root group");
    Handle gcpl = make_plist(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl.get(), false);  // no timestamps: same content, same bytes
    // Attributes stay in the object header up to 64 of them (HDF5 moves more than 8 to a
    // fractal heap and B-tree by default: kilobytes per group, for a dozen small values).
    H5Pset_attr_phase_change(gcpl.get(), 64, 48);
    for (size_t i = 0; i < n; ++i) {
      const std::string at = join_name(parts, i + 1);
      const htri_t exists = H5Lexists(loc.get(), parts[i].c_str(), H5P_DEFAULT);
      if (exists < 0) fail_hdf5(at, "cannot look up");
      Handle next;
      if (exists) {
        next = Handle(H5Oopen(loc.get(), parts[i].c_str(), H5P_DEFAULT), H5Oclose);
        if (!next.valid()) fail_hdf5(at, "cannot open");
        if (H5Iget_type(next.get()) != H5I_GROUP)
          fail(at, str("expected a group, found ", object_kind(H5Iget_type(next.get()))));
      } else {
        next = Handle(H5Gcreate2(loc.get(), parts[i].c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT),
                      H5Gclose);
        if (!next.valid()) fail_hdf5(at, "cannot create group");
      }
      loc = std::move(next);
    }
    return loc;
  }

  // The group or dataset `object`; a missing one is created as a group.
  Handle object(const std::string& object, std::string& abs) {
    const std::vector<std::string> parts = split_name(object);
    abs = join_name(parts, parts.size());
    if (parts.empty()) return group(parts, 0);
    Handle parent = group(parts, parts.size() - 1);
    const htri_t exists = H5Lexists(parent.get(), parts.back().c_str(), H5P_DEFAULT);
    if (exists < 0) fail_hdf5(abs, "cannot look up");
    if (!exists) return group(parts, parts.size());
    Handle o(H5Oopen(parent.get(), parts.back().c_str(), H5P_DEFAULT), H5Oclose);
    if (!o.valid()) fail_hdf5(abs, "cannot open");
    return o;
  }

  // Creates attribute `key` on `object` (replacing one of the same key) and writes `data`.
  void write_attr(const std::string& object, const std::string& key, hid_t ftype, hid_t mtype,
                  const Handle& space, const void* data) {
    check_open();
    if (key.empty()) throw std::invalid_argument(str(path, ": ", object, ": empty attribute key"));
    std::string abs;
    Handle o = this->object(object, abs);
    const std::string where = str(abs, " attribute '", key, "'");
    const htri_t exists = H5Aexists(o.get(), key.c_str());
    if (exists < 0) fail_hdf5(where, "cannot look up");
    if (exists && H5Adelete(o.get(), key.c_str()) < 0) fail_hdf5(where, "cannot replace");
    Handle a(H5Acreate2(o.get(), key.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT),
             H5Aclose);
    if (!a.valid()) fail_hdf5(where, "cannot create");
    const bool empty = H5Sget_simple_extent_type(space.get()) == H5S_NULL;
    if (!empty && H5Awrite(a.get(), mtype, data) < 0) fail_hdf5(where, "cannot write");
  }

  Handle vector_space(size_t n) {
    // An empty vector is a null dataspace: HDF5 allows no zero-size attribute extent.
    const hsize_t dims[1] = {n};
    Handle s(n == 0 ? H5Screate(H5S_NULL) : H5Screate_simple(1, dims, nullptr), H5Sclose);
    if (!s.valid()) fail_hdf5("/", "cannot create a dataspace");
    return s;
  }

  Handle scalar_space() {
    Handle s(H5Screate(H5S_SCALAR), H5Sclose);
    if (!s.valid()) fail_hdf5("/", "cannot create a dataspace");
    return s;
  }
};

H5Writer::H5Writer(std::string path) : impl_(std::make_unique<Impl>()) {
  silence_hdf5();
  impl_->path = std::move(path);
  // The file is built in memory (HDF5's core driver, no backing store) and written out whole
  // by commit(): HDF5 itself never writes to disk, so a full disk or a file-size limit is a
  // failed write of ours (reported, nothing left behind), not a failed flush inside HDF5,
  // whose library clean-up at exit then crashes on the file it could not close (HDF5 1.10.8).
  static std::atomic<uint64_t> counter{0};
  impl_->tmp = str(impl_->path, ".in-memory.", ::getpid(), ".", counter++);
  // A folder that is not there fails now, not after the whole file has been built.
  const std::filesystem::path target(impl_->path);
  const std::filesystem::path folder = target.has_parent_path() ? target.parent_path() : ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec))
    throw std::runtime_error(str(impl_->path, ": cannot create it: '", folder.string(), "' is not a folder"));
  Handle fcpl = make_plist(H5P_FILE_CREATE);
  H5Pset_obj_track_times(fcpl.get(), false);
  H5Pset_attr_phase_change(fcpl.get(), 64, 48);  // the root group's attributes, as for groups below
  Handle fapl = make_plist(H5P_FILE_ACCESS);
  // The 1.8 format at least: superblock v2 and object headers v2 carry checksums, so
  // corrupt metadata is detected rather than parsed. h5py and any HDF5 >= 1.8 read it.
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  H5Pset_fapl_core(fapl.get(), size_t(1) << 20, false);
  H5FD_file_image_callbacks_t callbacks{FileImage::allocate, FileImage::copy, FileImage::grow, FileImage::release,
                                        FileImage::share, FileImage::keep, &impl_->image};
  if (H5Pset_file_image_callbacks(fapl.get(), &callbacks) < 0)
    throw std::runtime_error(str(impl_->path, ": cannot set up the file in memory (HDF5: ", hdf5_reason(), ")"));
  impl_->file =
      Handle(H5Fcreate(impl_->tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
  if (!impl_->file.valid())
    throw std::runtime_error(str(impl_->path, ": cannot create the file in memory (HDF5: ", hdf5_reason(), ")"));
}

H5Writer::~H5Writer() = default;  // an uncommitted file only ever lived in memory

H5Writer::H5Writer(H5Writer&&) noexcept = default;
H5Writer& H5Writer::operator=(H5Writer&& o) noexcept {
  if (this != &o) {
    H5Writer dropped(std::move(*this));  // an uncommitted file being replaced is discarded
    impl_ = std::move(o.impl_);
  }
  return *this;
}

const std::string& H5Writer::path() const { return impl_->path; }

void H5Writer::write_tensor(const std::string& name, const Tensor& t) {
  Impl& m = *impl_;
  m.check_open();
  const std::vector<std::string> parts = split_name(name);
  const std::string abs = join_name(parts, parts.size());
  if (parts.empty())
    throw std::invalid_argument(str(m.path, ": '", name, "' is not a dataset name"));
  if (!t.defined()) throw std::invalid_argument(str(m.path, ": ", abs, ": undefined tensor"));
  if (t.ndim() > H5Reader::kMaxRank)
    throw std::invalid_argument(str(m.path, ": ", abs, ": rank ", t.ndim(), " is above the ",
                                    H5Reader::kMaxRank, " a reader accepts"));
  if (const int64_t i = first_non_finite(t); i >= 0)
    m.fail(abs, str("expected finite float32 values, found ", t.data_as<float>()[i],
                    " at flat index ", i, "; refusing to write it"));

  Handle parent = m.group(parts, parts.size() - 1);
  const htri_t exists = H5Lexists(parent.get(), parts.back().c_str(), H5P_DEFAULT);
  if (exists < 0) m.fail_hdf5(abs, "cannot look up");
  if (exists) m.fail(abs, "expected a new name, found an existing object");

  const int rank = t.ndim();
  std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
  Handle space(rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr),
               H5Sclose);
  if (!space.valid()) m.fail_hdf5(abs, "cannot create a dataspace");

  Handle dcpl = make_plist(H5P_DATASET_CREATE);
  H5Pset_obj_track_times(dcpl.get(), false);
  H5Pset_dset_no_attrs_hint(dcpl.get(), true);  // a minimal object header: crayon puts attributes on groups
  if (t.nbytes() <= kCompactBytes) {
    H5Pset_layout(dcpl.get(), H5D_COMPACT);
  } else {
    // Halve the leading dims until a chunk fits kChunkBytes.
    std::vector<hsize_t> chunk = dims;
    auto chunk_bytes = [&] {
      uint64_t b = dtype_size(t.dtype());
      for (hsize_t c : chunk) b *= c;
      return b;
    };
    for (int d = 0; d < rank && chunk_bytes() > kChunkBytes; ++d)
      while (chunk[d] > 1 && chunk_bytes() > kChunkBytes) chunk[d] = (chunk[d] + 1) / 2;
    if (H5Pset_chunk(dcpl.get(), rank, chunk.data()) < 0 || H5Pset_fletcher32(dcpl.get()) < 0)
      m.fail_hdf5(abs, "cannot set up chunked storage");
  }
  Handle d(H5Dcreate2(parent.get(), parts.back().c_str(), file_type(t.dtype()), space.get(),
                      H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
           H5Dclose);
  if (!d.valid()) m.fail_hdf5(abs, "cannot create dataset");
  Tensor src = t;  // a handle, not a copy: data_as<T>() is non-const on a non-const Tensor
  if (t.numel() > 0 &&
      H5Dwrite(d.get(), mem_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw_data(src)) < 0)
    m.fail_hdf5(abs, "cannot write dataset");
}

void H5Writer::set_attr(const std::string& object, const std::string& key,
                        const std::string& value) {
  if (value.find('\0') != std::string::npos)
    throw std::invalid_argument(
        str(impl_->path, ": attribute '", key, "': string holds a NUL byte"));
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  // Fixed-length, null-terminated UTF-8 (h5py reads it as bytes). Not variable-length:
  // those live in a global heap whose first collection alone costs 4 KiB of file.
  if (!type.valid() || H5Tset_size(type.get(), value.size() + 1) < 0 ||
      H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0 || H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    impl_->fail_hdf5(object, "cannot create a string type");
  impl_->write_attr(object, key, type.get(), type.get(), impl_->scalar_space(), value.c_str());
}

void H5Writer::set_attr_int(const std::string& object, const std::string& key, int64_t value,
                            bool out_of_range) {
  if (out_of_range)
    throw std::invalid_argument(
        str(impl_->path, ": attribute '", key, "': value does not fit int64"));
  impl_->write_attr(object, key, H5T_STD_I64LE, H5T_NATIVE_INT64, impl_->scalar_space(), &value);
}

void H5Writer::set_attr(const std::string& object, const std::string& key, double value) {
  impl_->write_attr(object, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, impl_->scalar_space(), &value);
}

void H5Writer::set_attr(const std::string& object, const std::string& key,
                        const std::vector<int64_t>& values) {
  impl_->write_attr(object, key, H5T_STD_I64LE, H5T_NATIVE_INT64,
                    impl_->vector_space(values.size()), values.data());
}

void H5Writer::set_attr(const std::string& object, const std::string& key,
                        const std::vector<double>& values) {
  impl_->write_attr(object, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                    impl_->vector_space(values.size()), values.data());
}

void H5Writer::commit() {
  Impl& m = *impl_;
  m.check_open();
  if (m.file.reset() < 0)
    throw std::runtime_error(str(m.path, ": cannot finish the file in memory (HDF5: ", hdf5_reason(), ")"));
  m.committed = true;
  const uint64_t eof = m.image.end_of_file();
  if (eof == 0 || eof > m.image.closed.size())
    throw std::runtime_error(str(m.path, ": the file HDF5 built in memory has no valid superblock"));
  m.image.closed.resize(size_t(eof));
  write_file_atomic(m.path, m.image.closed);  // after a crash, `path` holds the old file or the whole new one
  m.image.closed = std::string();
}

// ---------------------------------------------------------------------------------------
// Reader

struct H5Reader::Impl {
  std::string path;
  uint64_t max_total = 0, total = 0;
  Handle file;

  [[noreturn]] void fail(const std::string& object, const std::string& expected,
                         const std::string& found) const {
    throw std::runtime_error(str(path, ": ", object, ": expected ", expected, ", found ", found));
  }
  [[noreturn]] void fail_hdf5(const std::string& object, const std::string& expected) const {
    fail(object, expected, str("an HDF5 error: ", hdf5_reason()));
  }
  // crayon writes text attributes (specs, settings, names) without control characters; a
  // file that has one is refused here, so no error quoting such text downstream can break
  // across lines or carry terminal escapes.
  std::string text(const std::string& where, std::string s) const {
    for (size_t i = 0; i < s.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c < 0x20 || c == 0x7f)
        fail(where, "text without control characters", str("byte ", i, " = ", one_line(std::string(1, s[i]))));
    }
    return s;
  }

  // Reserve `bytes` of the reader's budget before allocating them.
  void charge(const std::string& object, uint64_t bytes) {
    if (bytes > max_total - total)
      fail(object,
           str("at most ", max_total - total, " more bytes (max_total_bytes ", max_total, ")"),
           str(bytes, " bytes"));
    total += bytes;
  }

  // Follows `parts` from the root one link at a time, accepting hard links only: a soft
  // link may point anywhere in the file and an external link at any file on disk, so a
  // file cannot make us read something other than the object it names. False if missing.
  bool walk(const std::vector<std::string>& parts, const std::string& object) const {
    for (size_t i = 0; i < parts.size(); ++i) {
      const std::string at = join_name(parts, i + 1);
      if (i > 0) {  // only a group holds links
        Handle up(H5Oopen(file.get(), join_name(parts, i).c_str(), H5P_DEFAULT), H5Oclose);
        if (!up.valid()) fail_hdf5(object, "a readable object");
        if (H5Iget_type(up.get()) != H5I_GROUP) return false;
      }
      const htri_t exists = H5Lexists(file.get(), at.c_str(), H5P_DEFAULT);
      if (exists < 0) fail_hdf5(object, "a readable link");
      if (!exists) return false;
      H5L_info_t info;
      if (H5Lget_info(file.get(), at.c_str(), &info, H5P_DEFAULT) < 0)
        fail_hdf5(object, "a readable link");
      if (info.type != H5L_TYPE_HARD)
        fail(object, "hard links only", str(link_kind(info.type), " at ", at));
    }
    return true;
  }

  // Opens `name` and checks it is of kind `want` (H5I_BADID: any object).
  Handle open(const std::string& name, H5I_type_t want, std::string& abs) const {
    const std::vector<std::string> parts = split_name(name);
    abs = join_name(parts, parts.size());
    const char* kind = want == H5I_BADID ? "an object" : object_kind(want);
    if (!walk(parts, abs)) fail(abs, kind, "no such object");
    Handle o(H5Oopen(file.get(), abs.c_str(), H5P_DEFAULT), H5Oclose);
    if (!o.valid()) fail_hdf5(abs, kind);
    const H5I_type_t got = H5Iget_type(o.get());
    if (want != H5I_BADID && got != want) fail(abs, kind, object_kind(got));
    return o;
  }

  // Shape of a dataspace: scalar -> (), simple -> its dims, after checking the rank and
  // that the element count fits int64.
  Shape extent(hid_t space, const std::string& object) const {
    const H5S_class_t cls = H5Sget_simple_extent_type(space);
    if (cls == H5S_SCALAR) return {};
    if (cls != H5S_SIMPLE) fail(object, "a scalar or simple dataspace", "a null dataspace");
    const int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0) fail_hdf5(object, "a readable dataspace");
    if (rank > H5Reader::kMaxRank)
      fail(object, str("rank <= ", H5Reader::kMaxRank), str("rank ", rank));
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    if (H5Sget_simple_extent_dims(space, dims.data(), nullptr) < 0)
      fail_hdf5(object, "a readable dataspace");
    Shape shape;
    int64_t n = 1;
    for (hsize_t d : dims) {
      constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
      if (d > uint64_t(kMax) || (d != 0 && n > kMax / int64_t(d)))
        fail(object, "fewer than 2^63 elements", str("shape ", dims_str(dims)));
      n *= int64_t(d);
      shape.push_back(int64_t(d));
    }
    return shape;
  }

  // Storage must live in this file, decoded by built-in, harmless filters only.
  void check_storage(hid_t dset, const std::string& object, DType dtype) const {
    Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
    if (!dcpl.valid()) fail_hdf5(object, "a readable dataset");
    const H5D_layout_t layout = H5Pget_layout(dcpl.get());
    if (layout < 0) fail_hdf5(object, "a readable layout");
    if (layout == H5D_VIRTUAL)
      fail(object, "data stored in this file", "a virtual dataset (mapped from other datasets)");
    const int external = H5Pget_external_count(dcpl.get());
    if (external != 0)
      fail(object, "data stored in this file",
           str("external storage in ", external, " raw file(s)"));
    const int nfilters = H5Pget_nfilters(dcpl.get());
    if (nfilters < 0) fail_hdf5(object, "a readable filter pipeline");
    for (int i = 0; i < nfilters; ++i) {
      unsigned flags = 0, config = 0;
      size_t ncd = 0;
      char name[64] = {};
      const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), unsigned(i), &flags, &ncd, nullptr,
                                             sizeof name, name, &config);
      if (id == H5Z_FILTER_DEFLATE || id == H5Z_FILTER_SHUFFLE || id == H5Z_FILTER_FLETCHER32)
        continue;
      name[sizeof name - 1] = '\0';
      const char* known = filter_name(id);
      fail(object, "filters deflate, shuffle or fletcher32 only",
           str("filter ", id, " (", known ? known : printable(name), ")"));
    }
    if (layout == H5D_CHUNKED) {
      // HDF5 decodes a whole chunk at a time: its size is memory we allocate too.
      hsize_t chunk[H5S_MAX_RANK];
      const int rank = H5Pget_chunk(dcpl.get(), H5S_MAX_RANK, chunk);
      if (rank < 0) fail_hdf5(object, "a readable chunk size");
      uint64_t bytes = dtype_size(dtype);
      for (int i = 0; i < rank; ++i)
        bytes = chunk[i] != 0 && bytes > std::numeric_limits<uint64_t>::max() / chunk[i]
                    ? std::numeric_limits<uint64_t>::max()
                    : bytes * chunk[i];
      if (bytes > max_total - total)
        fail(object,
             str("chunks of at most ", max_total - total, " bytes (max_total_bytes ", max_total,
                 ")"),
             str("chunks of ", bytes, " bytes"));
    }
  }

  Tensor read(const std::string& name, DType dtype, const Shape* expected_shape) {
    std::string abs;
    Handle d = open(name, H5I_DATASET, abs);
    Handle type(H5Dget_type(d.get()), H5Tclose);
    if (!type.valid()) fail_hdf5(abs, "a readable datatype");
    // Exactly the type crayon writes: class, size, sign, byte order and bit layout.
    if (H5Tequal(type.get(), file_type(dtype)) <= 0)
      fail(abs, dtype_name(dtype), describe_type(type.get()));
    Handle space(H5Dget_space(d.get()), H5Sclose);
    if (!space.valid()) fail_hdf5(abs, "a readable dataspace");
    const Shape shape = extent(space.get(), abs);
    if (expected_shape && shape != *expected_shape)
      fail(abs, str("shape ", shape_str(*expected_shape)), str("shape ", shape_str(shape)));
    check_storage(d.get(), abs, dtype);
    const int64_t numel = shape_numel(shape);
    if (uint64_t(numel) > std::numeric_limits<uint64_t>::max() / dtype_size(dtype))
      fail(abs, "fewer than 2^64 bytes", str("shape ", shape_str(shape)));
    charge(abs, uint64_t(numel) * dtype_size(dtype));

    Tensor t = Tensor::empty(shape, dtype);
    if (numel > 0 &&
        H5Dread(d.get(), mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw_data(t)) < 0)
      fail_hdf5(abs, "readable data");
    // crayon never writes NaN/Inf, so one in a file is corruption or tampering.
    if (const int64_t i = first_non_finite(t); i >= 0)
      fail(abs, "finite float32 values", str(t.data_as<float>()[i], " at flat index ", i));
    return t;
  }

  struct Attr {
    Handle object, attr, type, space;
    std::string where;
  };

  Attr open_attr(const std::string& object, const std::string& key) const {
    Attr a;
    std::string abs;
    a.object = open(object, H5I_BADID, abs);
    a.where = str(abs, " attribute '", key, "'");
    const htri_t exists = H5Aexists(a.object.get(), key.c_str());
    if (exists < 0) fail_hdf5(a.where, "a readable attribute");
    if (!exists) fail(a.where, "an attribute", "none");
    a.attr = Handle(H5Aopen(a.object.get(), key.c_str(), H5P_DEFAULT), H5Aclose);
    if (!a.attr.valid()) fail_hdf5(a.where, "a readable attribute");
    a.type = Handle(H5Aget_type(a.attr.get()), H5Tclose);
    a.space = Handle(H5Aget_space(a.attr.get()), H5Sclose);
    if (!a.type.valid() || !a.space.valid()) fail_hdf5(a.where, "a readable attribute");
    return a;
  }

  // Element count of an attribute: a scalar holds 1, a null dataspace 0, a 1-d one its
  // length; `one` demands exactly one element.
  uint64_t count(const Attr& a, bool one) const {
    const H5S_class_t cls = H5Sget_simple_extent_type(a.space.get());
    uint64_t n = 0;
    if (cls == H5S_SCALAR) {
      n = 1;
    } else if (cls == H5S_SIMPLE) {
      hsize_t dims[H5S_MAX_RANK];
      const int rank = H5Sget_simple_extent_dims(a.space.get(), dims, nullptr);
      if (rank != 1)
        fail(a.where, one ? "a single value" : "a 1-d list", str("a rank-", rank, " dataspace"));
      n = dims[0];
    } else if (cls != H5S_NULL) {
      fail_hdf5(a.where, "a readable dataspace");
    }
    if (one && n != 1) fail(a.where, "a single value", str(n, " values"));
    if (n > kMaxAttrElements) fail(a.where, str("at most ", kMaxAttrElements, " values"), str(n));
    return n;
  }

  // Any integer type whose values all fit int64; any IEEE float32/float64.
  void check_int_type(const Attr& a) const {
    const size_t size = H5Tget_size(a.type.get());
    const bool is_int = H5Tget_class(a.type.get()) == H5T_INTEGER;
    const bool fits = H5Tget_sign(a.type.get()) == H5T_SGN_NONE ? size < 8 : size <= 8;
    if (!is_int || !fits) fail(a.where, "an integer that fits int64", describe_type(a.type.get()));
  }
  void check_float_type(const Attr& a) const {
    if (H5Tequal(a.type.get(), H5T_IEEE_F64LE) <= 0 &&
        H5Tequal(a.type.get(), H5T_IEEE_F32LE) <= 0 &&
        H5Tequal(a.type.get(), H5T_IEEE_F64BE) <= 0 && H5Tequal(a.type.get(), H5T_IEEE_F32BE) <= 0)
      fail(a.where, "float64 or float32", describe_type(a.type.get()));
  }

  template <typename T>
  std::vector<T> read_values(const Attr& a, bool one, hid_t mtype) {
    const uint64_t n = count(a, one);
    charge(a.where, n * sizeof(T));
    std::vector<T> out(n);
    if (n > 0 && H5Aread(a.attr.get(), mtype, out.data()) < 0)
      fail_hdf5(a.where, "readable values");
    return out;
  }
};

H5Reader::H5Reader(std::string path, uint64_t max_total_bytes) : impl_(std::make_unique<Impl>()) {
  silence_hdf5();
  Impl& m = *impl_;
  m.path = std::move(path);
  m.max_total = max_total_bytes;
  auto fail_file = [&](const std::string& found) -> void {
    throw std::runtime_error(str(m.path, ": expected an HDF5 file, found ", found));
  };
  struct stat st {};
  if (::stat(m.path.c_str(), &st) != 0)
    fail_file(errno == ENOENT ? std::string("no such file")
                              : str("a path it cannot stat (", std::strerror(errno), ")"));
  if (!S_ISREG(st.st_mode)) fail_file(S_ISDIR(st.st_mode) ? "a directory" : "a special file");
  const htri_t is_hdf5 = H5Fis_hdf5(m.path.c_str());
  if (is_hdf5 == 0) fail_file(str("a file of ", st.st_size, " bytes without the HDF5 signature"));
  if (is_hdf5 < 0) fail_file(str("an unreadable file (HDF5: ", hdf5_reason(), ")"));
  Handle fapl = make_plist(H5P_FILE_ACCESS);
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  m.file = Handle(H5Fopen(m.path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!m.file.valid())
    fail_file(str("a truncated or corrupt HDF5 file (HDF5: ", hdf5_reason(), ")"));
}

H5Reader::~H5Reader() = default;
H5Reader::H5Reader(H5Reader&&) noexcept = default;
H5Reader& H5Reader::operator=(H5Reader&&) noexcept = default;

const std::string& H5Reader::path() const { return impl_->path; }
uint64_t H5Reader::bytes_read() const { return impl_->total; }

bool H5Reader::has(const std::string& name) const {
  const std::vector<std::string> parts = split_name(name);
  return impl_->walk(parts, join_name(parts, parts.size()));
}

std::vector<std::string> H5Reader::children(const std::string& group) const {
  std::string abs;
  Handle g = impl_->open(group, H5I_GROUP, abs);
  std::vector<std::string> names;
  hsize_t idx = 0;
  const herr_t r = H5Literate(
      g.get(), H5_INDEX_NAME, H5_ITER_INC, &idx,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
      },
      &names);
  if (r < 0) impl_->fail_hdf5(abs, "a readable group");
  return names;
}

Tensor H5Reader::read_tensor(const std::string& name, DType expected, const Shape& expected_shape) {
  return impl_->read(name, expected, &expected_shape);
}

Tensor H5Reader::read_tensor(const std::string& name, DType expected) {
  return impl_->read(name, expected, nullptr);
}

bool H5Reader::has_attr(const std::string& object, const std::string& key) const {
  const std::vector<std::string> parts = split_name(object);
  const std::string abs = join_name(parts, parts.size());
  if (!impl_->walk(parts, abs)) return false;
  Handle o(H5Oopen(impl_->file.get(), abs.c_str(), H5P_DEFAULT), H5Oclose);
  if (!o.valid()) impl_->fail_hdf5(abs, "a readable object");
  const htri_t exists = H5Aexists(o.get(), key.c_str());
  if (exists < 0) impl_->fail_hdf5(str(abs, " attribute '", key, "'"), "a readable attribute");
  return exists > 0;
}

std::string H5Reader::attr_string(const std::string& object, const std::string& key) {
  Impl& m = *impl_;
  const Impl::Attr a = m.open_attr(object, key);
  if (H5Tget_class(a.type.get()) != H5T_STRING)
    m.fail(a.where, "a string", describe_type(a.type.get()));
  m.count(a, true);
  if (H5Tis_variable_str(a.type.get()) > 0) {
    // Read in the file's character set (HDF5 converts none between ASCII and UTF-8).
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose);
    if (!mtype.valid() || H5Tset_size(mtype.get(), H5T_VARIABLE) < 0 ||
        H5Tset_cset(mtype.get(), H5Tget_cset(a.type.get())) < 0)
      m.fail_hdf5(a.where, "a readable string type");
    char* p = nullptr;
    if (H5Aread(a.attr.get(), mtype.get(), &p) < 0) m.fail_hdf5(a.where, "a readable string");
    const std::unique_ptr<char, herr_t (*)(void*)> owned(p, H5free_memory);
    const size_t len = p ? std::strlen(p) : 0;
    if (len > kMaxStringBytes)
      m.fail(a.where, str("a string of at most ", kMaxStringBytes, " bytes"), str(len, " bytes"));
    m.charge(a.where, len);
    return m.text(a.where, std::string(p ? p : "", len));
  }
  const size_t size = H5Tget_size(a.type.get());
  if (size > kMaxStringBytes)
    m.fail(a.where, str("a string of at most ", kMaxStringBytes, " bytes"), str(size, " bytes"));
  m.charge(a.where, size);
  std::string s(size, '\0');
  if (size > 0 && H5Aread(a.attr.get(), a.type.get(), s.data()) < 0)
    m.fail_hdf5(a.where, "a readable string");
  s.resize(std::strlen(s.c_str()));  // null-terminated or null-padded
  if (H5Tget_strpad(a.type.get()) == H5T_STR_SPACEPAD) s.erase(s.find_last_not_of(' ') + 1);
  return m.text(a.where, std::move(s));
}

int64_t H5Reader::attr_int(const std::string& object, const std::string& key) {
  const Impl::Attr a = impl_->open_attr(object, key);
  impl_->check_int_type(a);
  return impl_->read_values<int64_t>(a, true, H5T_NATIVE_INT64)[0];
}

double H5Reader::attr_double(const std::string& object, const std::string& key) {
  const Impl::Attr a = impl_->open_attr(object, key);
  impl_->check_float_type(a);
  return impl_->read_values<double>(a, true, H5T_NATIVE_DOUBLE)[0];
}

std::vector<int64_t> H5Reader::attr_ints(const std::string& object, const std::string& key) {
  const Impl::Attr a = impl_->open_attr(object, key);
  impl_->check_int_type(a);
  return impl_->read_values<int64_t>(a, false, H5T_NATIVE_INT64);
}

std::vector<double> H5Reader::attr_doubles(const std::string& object, const std::string& key) {
  const Impl::Attr a = impl_->open_attr(object, key);
  impl_->check_float_type(a);
  return impl_->read_values<double>(a, false, H5T_NATIVE_DOUBLE);
}

}  // namespace crayon
