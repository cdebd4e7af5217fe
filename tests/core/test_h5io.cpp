// core/h5io: round trips are bit-exact, commits are atomic, and every kind of malformed or
// hostile file is refused with one line naming the file and the object, before any data is
// read and without HDF5 printing anything. Malformed files are built here with the raw HDF5
// API or by byte surgery on a valid file.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <hdf5.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/h5io.h"
#include "tests/support/temp_dir.h"
#include "core/rng.h"

using namespace crayon;
namespace fs = std::filesystem;

// Under the sanitizers, HDF5 1.10.8 leaks one object header each time it fails to load a
// corrupt one (the "flipped byte" tests below do that on purpose; HDFGroup/hdf5#4586).
// .ci/lsan.supp suppresses it for every test binary, this one included, so these tests also
// check that the suppression matches.

namespace {

// The names in a test's folder, sorted.
std::vector<std::string> files_in(const TempDir& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir.path())) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Redirects fd 2 into a temporary file for its lifetime; text() returns what was written.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    saved_ = ::dup(2);
    file_ = std::tmpfile();
    ::dup2(::fileno(file_), 2);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    std::rewind(file_);
    std::string out;
    for (int c; (c = std::fgetc(file_)) != EOF;) out += char(c);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  int saved_ = -1;
  std::FILE* file_ = nullptr;
};

// `fn` must throw one std::runtime_error whose single-line message names `file` and
// contains every string of `parts`, and nothing may appear on stderr meanwhile.
template <typename Fn>
std::string expect_error(Fn&& fn, const std::string& file,
                         std::initializer_list<std::string> parts) {
  StderrCapture capture;
  std::string msg;
  try {
    fn();
  } catch (const std::runtime_error& e) {
    msg = e.what();
  }
  const std::string err = capture.text();
  CHECK_MESSAGE(err.empty(), "stderr was: " << err);
  REQUIRE_MESSAGE(!msg.empty(), "expected a std::runtime_error mentioning " << *parts.begin());
  CHECK_MESSAGE(msg.find(file) != std::string::npos, msg);
  CHECK_MESSAGE(msg.find('\n') == std::string::npos, msg);
  for (const std::string& p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, msg);
  return msg;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const void* pa = a.dtype() == DType::f32  ? static_cast<const void*>(a.data_as<float>())
                   : a.dtype() == DType::i8 ? static_cast<const void*>(a.data_as<int8_t>())
                                            : static_cast<const void*>(a.data_as<int32_t>());
  const void* pb = b.dtype() == DType::f32  ? static_cast<const void*>(b.data_as<float>())
                   : b.dtype() == DType::i8 ? static_cast<const void*>(b.data_as<int8_t>())
                                            : static_cast<const void*>(b.data_as<int32_t>());
  return a.nbytes() == 0 || std::memcmp(pa, pb, a.nbytes()) == 0;
}

// Tensors whose bytes cover signs, zeros, subnormals and the extremes of each type.
Tensor f32_tensor(const Shape& shape, uint64_t seed) {
  Rng rng(seed);
  Tensor t = Tensor::randn(shape, rng);
  const float specials[] = {-0.f, 0.f, std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::max(), -std::numeric_limits<float>::min()};
  for (int64_t i = 0; i < std::min<int64_t>(t.numel(), 5); ++i) t.data()[i] = specials[i];
  return t;
}

Tensor i8_tensor(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::i8);
  for (int64_t i = 0; i < t.numel(); ++i) t.data_as<int8_t>()[i] = int8_t(i * 37 - 128);
  return t;
}

Tensor i32_tensor(const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::i32);
  int32_t* p = t.data_as<int32_t>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = int32_t(uint32_t(i) * 2654435761u);
  if (t.numel() > 1)
    p[0] = std::numeric_limits<int32_t>::min(), p[1] = std::numeric_limits<int32_t>::max();
  return t;
}

// A file written with the raw HDF5 API, for building what crayon would never write.
class RawFile {
 public:
  explicit RawFile(const std::string& path, bool new_format = false) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (new_format) H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    REQUIRE(id_ >= 0);
  }
  ~RawFile() { H5Fclose(id_); }
  hid_t id() const { return id_; }

  // Dataset `name` of file type `type`; `dims` empty means a scalar. Data (of memory type
  // `mtype`) is written only if given.
  void dataset(const char* name, hid_t type, const std::vector<hsize_t>& dims,
               hid_t dcpl = H5P_DEFAULT, const void* data = nullptr, hid_t mtype = -1) {
    hid_t space = dims.empty() ? H5Screate(H5S_SCALAR)
                               : H5Screate_simple(int(dims.size()), dims.data(), nullptr);
    REQUIRE(space >= 0);
    hid_t d = H5Dcreate2(id_, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    REQUIRE(d >= 0);
    if (data) REQUIRE(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(space);
  }

  // Attribute `key` on the root group of file type `type` and dataspace `space`.
  void attr(const char* key, hid_t type, hid_t space, const void* data, hid_t mtype) {
    hid_t a = H5Acreate2(id_, key, type, space, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(a >= 0);
    REQUIRE(H5Awrite(a, mtype, data) >= 0);
    H5Aclose(a);
  }

 private:
  hid_t id_ = -1;
};

hid_t chunked(std::vector<hsize_t> chunk) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, int(chunk.size()), chunk.data());
  return dcpl;
}

std::string write_one(const TempDir& tmp, const std::string& file, const std::string& name,
                      const Tensor& t) {
  const std::string path = tmp / file;
  H5Writer w(path);
  w.write_tensor(name, t);
  w.commit();
  return path;
}

}  // namespace

TEST_CASE("h5io: float32, int8 and int32 tensors of rank 0 to 4 round-trip bit-exactly") {
  TempDir tmp;
  const std::string path = tmp / "tensors.h5";
  // All but the last are stored compact, in the object header; the last in chunks.
  const std::vector<Shape> shapes = {{},           {1}, {7},       {3, 5},   {2, 3, 4},
                                     {2, 1, 3, 5}, {0}, {3, 0, 2}, {64, 300}};
  std::vector<std::pair<std::string, Tensor>> written;
  for (size_t i = 0; i < shapes.size(); ++i) {
    written.emplace_back(str("f32/t", i), f32_tensor(shapes[i], i));
    written.emplace_back(str("q/i8/t", i), i8_tensor(shapes[i]));
    written.emplace_back(str("q/i32/t", i), i32_tensor(shapes[i]));
  }
  written.emplace_back("big", f32_tensor({5, 1024, 1024}, 99));  // 20 MiB: several chunks
  // A view with an offset into shared storage writes only its own rows.
  written.emplace_back("view", f32_tensor({6, 4}, 7).slice(2, 5));
  {
    H5Writer w(path);
    for (const auto& [name, t] : written) w.write_tensor(name, t);
    w.commit();
  }
  H5Reader r(path, uint64_t(1) << 30);
  for (const auto& [name, t] : written) {
    CAPTURE(name);
    const Tensor any = r.read_tensor(name, t.dtype());
    const Tensor exact = r.read_tensor("/" + name, t.dtype(), t.shape());
    CHECK(same_bytes(any, t));
    CHECK(same_bytes(exact, t));
  }
  CHECK(r.read_tensor("f32/t0", DType::f32).ndim() == 0);
  CHECK(r.read_tensor("f32/t0", DType::f32).item() == doctest::Approx(written[0].second.item()));
}

TEST_CASE("h5io: attributes of every type round-trip exactly and can be replaced") {
  TempDir tmp;
  const std::string path = tmp / "attrs.h5";
  const std::string utf8 = "conv(6,5)-relu6-maxpool(2)-linear(10) \xce\xbb=1e-4 \xe2\x9c\x93";
  const double nan_payload = std::bit_cast<double>(uint64_t(0x7ff8000000000123));
  using dlim = std::numeric_limits<double>;
  const std::vector<double> doubles = {
      0.1, -0.0, dlim::denorm_min(), dlim::max(), -1e300, dlim::infinity(), nan_payload};
  const std::vector<int64_t> ints = {std::numeric_limits<int64_t>::min(), -1, 0,
                                     std::numeric_limits<int64_t>::max()};
  {
    H5Writer w(path);
    w.write_tensor("fc1/weight", f32_tensor({2, 3}, 1));
    w.set_attr("/", "spec", utf8);
    w.set_attr("/", "empty", "");
    w.set_attr("/", "long", std::string(100000, 'x'));
    w.set_attr("/", "epoch", 12);
    w.set_attr("/", "step", size_t(123456789012));
    w.set_attr("/", "min", std::numeric_limits<int64_t>::min());
    w.set_attr("/", "lr", 0.1);
    w.set_attr("/", "rng", ints);
    w.set_attr("/", "doubles", doubles);
    w.set_attr("/", "no_ints", std::vector<int64_t>{});
    w.set_attr("/", "no_doubles", std::vector<double>{});
    w.set_attr("optim/state", "beta", std::vector<double>{0.9, 0.999});  // creates the groups
    w.set_attr("fc1/weight", "op", "linear");                            // on a dataset
    w.set_attr("/", "epoch", 13);                                        // replaced
    w.set_attr("/", "lr", "now a string");                               // replaced by another type
    CHECK_THROWS_AS(w.set_attr("/", "too_big", uint64_t(1) << 63), std::invalid_argument);
    w.commit();
  }
  H5Reader r(path);
  CHECK(r.attr_string("/", "spec") == utf8);
  CHECK(r.attr_string("/", "empty").empty());
  CHECK(r.attr_string("/", "long") == std::string(100000, 'x'));
  CHECK(r.attr_int("/", "epoch") == 13);
  CHECK(r.attr_int("", "step") == 123456789012);
  CHECK(r.attr_int("/", "min") == std::numeric_limits<int64_t>::min());
  CHECK(r.attr_string("/", "lr") == "now a string");
  CHECK(r.attr_ints("/", "rng") == ints);
  const std::vector<double> got = r.attr_doubles("/", "doubles");
  REQUIRE(got.size() == doubles.size());
  CHECK(std::memcmp(got.data(), doubles.data(), 8 * got.size()) == 0);
  CHECK(r.attr_ints("/", "no_ints").empty());
  CHECK(r.attr_doubles("/", "no_doubles").empty());
  CHECK(r.attr_doubles("/optim/state", "beta") == std::vector<double>{0.9, 0.999});
  CHECK(r.attr_string("fc1/weight", "op") == "linear");
  CHECK(r.has_attr("/", "epoch"));
  CHECK_FALSE(r.has_attr("/", "nope"));
  CHECK_FALSE(r.has_attr("/missing", "epoch"));
  // A scalar reads as a one-element list.
  CHECK(r.attr_ints("/", "epoch") == std::vector<int64_t>{13});
}

TEST_CASE("h5io: has and children describe the tree in name order") {
  TempDir tmp;
  const std::string path = tmp / "tree.h5";
  {
    H5Writer w(path);
    w.write_tensor("model/fc2/weight", f32_tensor({2}, 0));
    w.write_tensor("model/fc1/weight", f32_tensor({2}, 0));
    w.write_tensor("model/fc1/bias", f32_tensor({2}, 0));
    w.set_attr("optim", "kind", "adam");
    w.commit();
  }
  H5Reader r(path);
  CHECK(r.children() == std::vector<std::string>{"model", "optim"});
  CHECK(r.children("model") == std::vector<std::string>{"fc1", "fc2"});
  CHECK(r.children("/model/fc1/") == std::vector<std::string>{"bias", "weight"});
  CHECK(r.children("optim").empty());
  CHECK(r.has("model/fc1/weight"));
  CHECK(r.has("/model"));
  CHECK_FALSE(r.has("model/fc3"));
  CHECK_FALSE(r.has("model/fc1/weight/x"));  // below a dataset
  expect_error([&] { r.children("model/fc1/weight"); }, path,
               {"/model/fc1/weight", "expected a group, found a dataset"});
  expect_error([&] { r.read_tensor("model/fc1", DType::f32); }, path,
               {"/model/fc1", "expected a dataset, found a group"});
}

TEST_CASE("h5io: the same content gives byte-identical files") {
  TempDir tmp;
  for (const char* name : {"a.h5", "b.h5"}) {
    H5Writer w(tmp / name);
    w.write_tensor("fc/weight", f32_tensor({40, 100}, 3));
    w.write_tensor("fc/bias", i32_tensor({40}));
    w.set_attr("/", "spec", "linear(40)");
    w.set_attr("fc", "scale", std::vector<double>{0.5, 0.25});
    w.commit();
  }
  CHECK(read_bytes(tmp / "a.h5") == read_bytes(tmp / "b.h5"));
}

TEST_CASE("h5io: an uncommitted writer leaves the old file untouched and writes nothing") {
  TempDir tmp;
  const std::string path = write_one(tmp, "ckpt.h5", "w", f32_tensor({4, 4}, 1));
  const std::string before = read_bytes(path);
  {
    H5Writer w(path);
    w.write_tensor("w", f32_tensor({4, 4}, 2));
    w.set_attr("/", "epoch", 2);
    CHECK(files_in(tmp).size() == 1);  // the new file is built in memory: nothing on disk yet
  }
  CHECK(files_in(tmp) == std::vector<std::string>{"ckpt.h5"});
  CHECK(read_bytes(path) == before);

  // An exception mid-way (here: a NaN) unwinds the same way.
  try {
    H5Writer w(path);
    w.write_tensor("w", f32_tensor({4, 4}, 2));
    Tensor bad = f32_tensor({3}, 3);
    bad.data()[1] = NAN;
    w.write_tensor("bad", bad);
    w.commit();
  } catch (const std::runtime_error&) {
  }
  CHECK(files_in(tmp) == std::vector<std::string>{"ckpt.h5"});
  CHECK(read_bytes(path) == before);
  CHECK(same_bytes(H5Reader(path).read_tensor("w", DType::f32), f32_tensor({4, 4}, 1)));
}

TEST_CASE("h5io: a writer removes temporary files of dead processes for its path, nothing else") {
  TempDir tmp;
  const pid_t dead = ::fork();  // a pid whose process has exited and been reaped
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  const std::string stale = str("ck.h5.tmp.", dead, ".0");
  const std::vector<std::string> kept = {
      str("ck.h5.tmp.", ::getppid(), ".3"),  // a live process may still commit it
      str("ck.h5.tmp.", dead, ".x1"),        // not a name H5Writer makes
      str("other.h5.tmp.", dead, ".0"),      // another checkpoint's
  };
  for (const std::string& f : kept) write_bytes(tmp / f, "x");
  write_bytes(tmp / stale, "x");
  fs::create_directory(tmp / str("ck.h5.tmp.", dead, ".1"));  // directories are never removed
  write_one(tmp, "ck.h5", "w", f32_tensor({2}, 0));
  std::vector<std::string> want = kept;
  want.push_back("ck.h5");
  want.push_back(str("ck.h5.tmp.", dead, ".1"));
  std::sort(want.begin(), want.end());
  CHECK(files_in(tmp) == want);
}

TEST_CASE("h5io: commit replaces the old file with the new one") {
  TempDir tmp;
  const std::string path = write_one(tmp, "ckpt.h5", "w", f32_tensor({4, 4}, 1));
  {
    H5Writer w(path);
    w.write_tensor("w", f32_tensor({4, 4}, 2));
    w.set_attr("/", "epoch", 2);
    w.commit();
    CHECK_THROWS_AS(w.write_tensor("late", f32_tensor({1}, 0)), std::logic_error);
  }
  CHECK(files_in(tmp) == std::vector<std::string>{"ckpt.h5"});
  H5Reader r(path);
  CHECK(same_bytes(r.read_tensor("w", DType::f32, {4, 4}), f32_tensor({4, 4}, 2)));
  CHECK(r.attr_int("/", "epoch") == 2);
  // A plain file name (no directory part) commits into the current directory.
  const fs::path cwd = fs::current_path();
  fs::current_path(tmp.path());
  write_one(tmp, "here.h5", "x", f32_tensor({1}, 0));
  fs::current_path(cwd);
  CHECK(fs::exists(tmp / "here.h5"));
}

TEST_CASE("h5io: a float tensor holding NaN or Inf is refused, naming the dataset") {
  TempDir tmp;
  const std::string path = tmp / "bad.h5";
  for (float v : {NAN, INFINITY, -INFINITY}) {
    H5Writer w(path);
    Tensor t = f32_tensor({2, 5}, 0);
    t.data()[7] = v;
    expect_error([&] { w.write_tensor("layer3/weight", t); }, path,
                 {"/layer3/weight", "finite", "flat index 7"});
  }
  CHECK(files_in(tmp).empty());
}

TEST_CASE("h5io: writer misuse gives an error naming the file and the object") {
  TempDir tmp;
  const std::string path = tmp / "w.h5";
  H5Writer w(path);
  w.write_tensor("a/w", f32_tensor({2}, 0));
  expect_error([&] { w.write_tensor("a/w", f32_tensor({2}, 0)); }, path, {"/a/w", "existing"});
  expect_error([&] { w.write_tensor("a/w/x", f32_tensor({2}, 0)); }, path,
               {"/a/w", "expected a group, found a dataset"});
  CHECK_THROWS_AS(w.write_tensor("/", f32_tensor({2}, 0)), std::invalid_argument);
  CHECK_THROWS_AS(w.write_tensor("x", Tensor()), std::invalid_argument);
  CHECK_THROWS_AS(w.write_tensor("r9", Tensor::zeros(Shape(9, 1))), std::invalid_argument);
  const std::string nowhere = tmp / "no/such/dir/x.h5";
  expect_error([&] { H5Writer bad(nowhere); }, nowhere, {"cannot create"});
}

TEST_CASE("h5io: a missing, non-HDF5, empty or truncated file gives one error naming the file") {
  TempDir tmp;
  const std::string missing = tmp / "missing.h5";
  expect_error([&] { H5Reader r(missing); }, missing,
               {"expected an HDF5 file, found no such file"});

  expect_error([&] { H5Reader r(tmp.path().string()); }, tmp.path().string(), {"found a directory"});

  const std::string garbage = tmp / "garbage.h5";
  std::string bytes(4096, '\0');
  Rng rng(5);
  for (char& c : bytes) c = char(rng.below(256));
  write_bytes(garbage, bytes);
  expect_error([&] { H5Reader r(garbage); }, garbage, {"without the HDF5 signature"});

  const std::string empty = tmp / "empty.h5";
  write_bytes(empty, "");
  expect_error([&] { H5Reader r(empty); }, empty, {"of 0 bytes without the HDF5 signature"});

  const std::string good = write_one(tmp, "good.h5", "w", f32_tensor({100, 30}, 1));
  const std::string whole = read_bytes(good);
  const std::string truncated = tmp / "truncated.h5";
  write_bytes(truncated, whole.substr(0, whole.size() / 2));
  expect_error([&] { H5Reader r(truncated); }, truncated, {"truncated or corrupt", "eof"});
}

TEST_CASE("h5io: a flipped byte in a tensor or in metadata is caught by a checksum") {
  TempDir tmp;
  // 30000 floats are stored in fletcher32-checked chunks; 4 floats in the checksummed
  // object header. Flip one byte inside each tensor's data, found by its bit pattern.
  for (const Shape& shape : {Shape{100, 300}, Shape{4}}) {
    CAPTURE(shape_str(shape));
    Tensor t = Tensor::full(shape, 1234.5f);
    const std::string path = write_one(tmp, "flip.h5", "layer/w", t);
    std::string bytes = read_bytes(path);
    float marker = 1234.5f;
    const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&marker), 4));
    REQUIRE(at != std::string::npos);
    bytes[at + 1] ^= 0x10;
    write_bytes(path, bytes);
    H5Reader r(path);
    expect_error([&] { r.read_tensor("layer/w", DType::f32, shape); }, path,
                 {"/layer/w", "HDF5 error", "checksum"});
  }
}

TEST_CASE("h5io: a flipped byte in the root group's object header is refused, naming the file") {
  TempDir tmp;
  const std::string path = tmp / "ckpt.h5";
  {
    H5Writer w(path);
    w.set_attr("/", "format", "crayon-checkpoint");
    w.set_attr("/", "epoch", 3);
    w.write_tensor("model/0/weight", f32_tensor({4, 3}, 1));
    w.commit();
  }
  // The root group's attributes are stored in its (checksummed) object header, which HDF5
  // loads on the first access to "/", not when opening the file.
  std::string bytes = read_bytes(path);
  const size_t at = bytes.find("format");
  REQUIRE(at != std::string::npos);
  bytes[at + 2] ^= 0x01;
  write_bytes(path, bytes);
  expect_error(
      [&] {
        H5Reader r(path);
        r.attr_string("/", "format");
      },
      path, {"/: expected an object", "HDF5 error", "checksum"});
}

TEST_CASE("h5io: a dataset of another element type is refused before reading") {
  TempDir tmp;
  const std::string path = tmp / "types.h5";
  {
    RawFile f(path);
    f.dataset("f64", H5T_IEEE_F64LE, {3});
    f.dataset("f32be", H5T_IEEE_F32BE, {3});
    f.dataset("i16", H5T_STD_I16LE, {3});
    f.dataset("u8", H5T_STD_U8LE, {3});
    f.dataset("i32", H5T_STD_I32LE, {3});
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, 8);
    f.dataset("text", str, {3});
    H5Tclose(str);
    hid_t odd = H5Tcopy(H5T_IEEE_F32LE);  // 4 bytes, but only 24 bits of them used
    H5Tset_fields(odd, 23, 16, 7, 0, 16);
    H5Tset_precision(odd, 24);
    f.dataset("odd", odd, {3});
    H5Tclose(odd);
  }
  H5Reader r(path);
  expect_error([&] { r.read_tensor("f64", DType::f32); }, path,
               {"/f64: expected float32, found float64"});
  expect_error([&] { r.read_tensor("f32be", DType::f32); }, path,
               {"/f32be: expected float32, found big-endian float32"});
  expect_error([&] { r.read_tensor("i16", DType::i8, {3}); }, path,
               {"/i16: expected int8, found int16"});
  expect_error([&] { r.read_tensor("u8", DType::i8); }, path, {"/u8: expected int8, found uint8"});
  expect_error([&] { r.read_tensor("i32", DType::f32); }, path,
               {"/i32: expected float32, found int32"});
  expect_error([&] { r.read_tensor("text", DType::i8); }, path,
               {"/text: expected int8, found a fixed-length string of 8 bytes"});
  expect_error([&] { r.read_tensor("odd", DType::f32); }, path,
               {"/odd: expected float32, found float32 holding 24 bits"});
  CHECK(r.bytes_read() == 0);
}

TEST_CASE("h5io: a dataset of another shape, rank above 8 or no dataspace is refused") {
  TempDir tmp;
  const std::string path = tmp / "shapes.h5";
  {
    RawFile f(path);
    f.dataset("w", H5T_IEEE_F32LE, {4, 3});
    f.dataset("scalar", H5T_IEEE_F32LE, {});
    f.dataset("rank9", H5T_IEEE_F32LE, std::vector<hsize_t>(9, 1));
    hid_t null_space = H5Screate(H5S_NULL);
    hid_t d = H5Dcreate2(f.id(), "null", H5T_IEEE_F32LE, null_space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(null_space);
  }
  H5Reader r(path);
  expect_error(
      [&] {
        r.read_tensor("w", DType::f32, {3, 4});
      },
      path, {"/w: expected shape (3, 4), found shape (4, 3)"});
  expect_error([&] { r.read_tensor("scalar", DType::f32, {1}); }, path,
               {"/scalar: expected shape (1,), found shape ()"});
  expect_error([&] { r.read_tensor("rank9", DType::f32); }, path,
               {"/rank9: expected rank <= 8, found rank 9"});
  expect_error([&] { r.read_tensor("null", DType::f32); }, path,
               {"/null", "found a null dataspace"});
  CHECK(r.bytes_read() == 0);
}

TEST_CASE("h5io: huge dimensions are refused before anything is allocated") {
  // Chunked datasets with no chunk written take no space on disk, whatever their extent.
  TempDir tmp;
  const std::string path = tmp / "huge.h5";
  {
    RawFile f(path);
    hid_t dcpl = chunked({1, 1});
    f.dataset("overflow", H5T_IEEE_F32LE, {hsize_t(1) << 40, hsize_t(1) << 40},
              dcpl);  // 2^80 elements
    f.dataset("terabytes", H5T_IEEE_F32LE, {hsize_t(1) << 20, hsize_t(1) << 20}, dcpl);  // 4 TiB
    H5Pclose(dcpl);
    dcpl = chunked({1 << 12, 1 << 12});  // one 64 MiB chunk for a dataset of 4 bytes
    f.dataset("big_chunk", H5T_IEEE_F32LE, {1 << 12, 1 << 12}, dcpl);
    H5Pclose(dcpl);
  }
  CHECK(fs::file_size(path) < 100000);
  H5Reader r(path);
  expect_error(
      [&] { r.read_tensor("overflow", DType::f32); }, path,
      {"/overflow: expected fewer than 2^63 elements, found shape (1099511627776, 1099511627776)"});
  expect_error([&] { r.read_tensor("terabytes", DType::f32); }, path,
               {"/terabytes: expected at most 2147483648 more bytes", "found 4398046511104 bytes"});
  H5Reader small(path, 1 << 20);
  expect_error(
      [&] { small.read_tensor("big_chunk", DType::f32); }, path,
      {"/big_chunk: expected chunks of at most 1048576 bytes", "found chunks of 67108864 bytes"});
  CHECK(r.bytes_read() == 0);
}

TEST_CASE("h5io: the byte cap counts every tensor and attribute a reader reads") {
  TempDir tmp;
  const std::string path = tmp / "cap.h5";
  {
    H5Writer w(path);
    w.write_tensor("a", f32_tensor({10}, 0));               // 40 bytes
    w.write_tensor("b", i8_tensor({30}));                   // 30 bytes
    w.set_attr("/", "many", std::vector<double>(10, 1.0));  // 80 bytes
    w.commit();
  }
  H5Reader r(path, 100);
  r.read_tensor("a", DType::f32);
  r.read_tensor("b", DType::i8);
  CHECK(r.bytes_read() == 70);
  expect_error([&] { r.read_tensor("a", DType::f32); }, path,
               {"/a: expected at most 30 more bytes (max_total_bytes 100), found 40 bytes"});
  expect_error([&] { r.attr_doubles("/", "many"); }, path,
               {"/ attribute 'many'", "found 80 bytes"});
  CHECK(r.bytes_read() == 70);
  CHECK(H5Reader(path, 100).attr_doubles("/", "many").size() == 10);
}

TEST_CASE("h5io: a missing dataset, group or attribute is named in the error") {
  TempDir tmp;
  const std::string path = write_one(tmp, "m.h5", "fc1/weight", f32_tensor({2}, 0));
  H5Reader r(path);
  expect_error([&] { r.read_tensor("fc1/bias", DType::f32); }, path,
               {"/fc1/bias: expected a dataset, found no such object"});
  expect_error([&] { r.read_tensor("fc2/weight", DType::f32, {2}); }, path,
               {"/fc2/weight", "no such object"});
  expect_error([&] { r.children("fc2"); }, path, {"/fc2: expected a group, found no such object"});
  expect_error([&] { r.attr_int("/", "epoch"); }, path,
               {"/ attribute 'epoch': expected an attribute, found none"});
  expect_error([&] { r.attr_int("fc9", "epoch"); }, path, {"/fc9", "no such object"});
}

TEST_CASE("h5io: soft and external links are refused, whatever they point at") {
  TempDir tmp;
  const std::string path = tmp / "links.h5";
  const std::string other = write_one(tmp, "other.h5", "w", f32_tensor({3}, 0));
  {
    RawFile f(path);
    const float v[3] = {1, 2, 3};
    H5Gclose(H5Gcreate2(f.id(), "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    f.dataset("g/real", H5T_IEEE_F32LE, {3}, H5P_DEFAULT, v, H5T_NATIVE_FLOAT);
    REQUIRE(H5Lcreate_soft("/g/real", f.id(), "alias", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    REQUIRE(H5Lcreate_soft("/g", f.id(), "galias", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    REQUIRE(H5Lcreate_soft("/nowhere", f.id(), "dangling", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    REQUIRE(H5Lcreate_external(other.c_str(), "/w", f.id(), "ext", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    REQUIRE(H5Lcreate_external("/etc/passwd", "/", f.id(), "g/passwd", H5P_DEFAULT, H5P_DEFAULT) >=
            0);
  }
  H5Reader r(path);
  CHECK(r.read_tensor("g/real", DType::f32).numel() == 3);
  expect_error([&] { r.read_tensor("alias", DType::f32); }, path,
               {"/alias: expected hard links only, found a soft link at /alias"});
  expect_error([&] { r.read_tensor("galias/real", DType::f32); }, path,
               {"/galias/real: expected hard links only, found a soft link at /galias"});
  expect_error([&] { r.read_tensor("dangling", DType::f32); }, path, {"/dangling", "soft link"});
  expect_error([&] { r.read_tensor("ext", DType::f32); }, path,
               {"/ext: expected hard links only, found an external link at /ext"});
  expect_error([&] { r.children("g/passwd"); }, path, {"/g/passwd", "external link"});
  expect_error([&] { r.has("galias/real"); }, path, {"/galias/real", "soft link"});
  expect_error([&] { r.attr_int("galias", "x"); }, path, {"/galias", "soft link"});
  CHECK(r.children("g") == std::vector<std::string>{"passwd", "real"});  // listing is harmless
}

TEST_CASE("h5io: datasets stored outside the file are refused") {
  TempDir tmp;
  const std::string path = tmp / "outside.h5";
  const std::string raw = tmp / "raw.bin";
  {
    RawFile f(path);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    REQUIRE(H5Pset_external(dcpl, raw.c_str(), 0, 12) >= 0);
    f.dataset("external", H5T_IEEE_F32LE, {3}, dcpl);
    H5Pclose(dcpl);

    const float v[3] = {1, 2, 3};
    f.dataset("source", H5T_IEEE_F32LE, {3}, H5P_DEFAULT, v, H5T_NATIVE_FLOAT);
    hsize_t dims[1] = {3};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    REQUIRE(H5Pset_virtual(dcpl, space, ".", "/source", space) >= 0);
    hid_t d = H5Dcreate2(f.id(), "virtual", H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    REQUIRE(d >= 0);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
  }
  H5Reader r(path);
  expect_error(
      [&] { r.read_tensor("external", DType::f32, {3}); }, path,
      {"/external: expected data stored in this file, found external storage in 1 raw file"});
  expect_error([&] { r.read_tensor("virtual", DType::f32, {3}); }, path,
               {"/virtual: expected data stored in this file, found a virtual dataset"});
  CHECK_FALSE(fs::exists(raw));
  CHECK(r.bytes_read() == 0);
}

TEST_CASE("h5io: filters other than deflate, shuffle and fletcher32 are refused") {
  TempDir tmp;
  const std::string path = tmp / "filters.h5";
  std::vector<int32_t> ints(64);
  for (size_t i = 0; i < ints.size(); ++i) ints[i] = int32_t(i);
  std::vector<float> floats(64, 0.5f);
  {
    RawFile f(path);
    hid_t dcpl = chunked({16});
    H5Pset_shuffle(dcpl);
    H5Pset_deflate(dcpl, 6);
    H5Pset_fletcher32(dcpl);
    f.dataset("deflated", H5T_IEEE_F32LE, {64}, dcpl, floats.data(), H5T_NATIVE_FLOAT);
    H5Pclose(dcpl);
    dcpl = chunked({16});
    H5Pset_scaleoffset(dcpl, H5Z_SO_INT, H5Z_SO_INT_MINBITS_DEFAULT);
    f.dataset("scaleoffset", H5T_STD_I32LE, {64}, dcpl, ints.data(), H5T_NATIVE_INT32);
    H5Pclose(dcpl);
    dcpl = chunked({16});
    H5Pset_nbit(dcpl);
    f.dataset("nbit", H5T_STD_I32LE, {64}, dcpl, ints.data(), H5T_NATIVE_INT32);
    H5Pclose(dcpl);
  }
  H5Reader r(path);
  const Tensor t = r.read_tensor("deflated", DType::f32, {64});
  CHECK(std::memcmp(t.data(), floats.data(), 256) == 0);
  expect_error([&] { r.read_tensor("scaleoffset", DType::i32); }, path,
               {"/scaleoffset: expected filters deflate, shuffle or fletcher32 only, found filter "
                "6 (scaleoffset)"});
  expect_error([&] { r.read_tensor("nbit", DType::i32); }, path,
               {"/nbit", "found filter 5 (nbit)"});
}

TEST_CASE("h5io: a NaN or Inf stored in a float dataset is refused on reading") {
  TempDir tmp;
  const std::string path = tmp / "nan.h5";
  const float v[4] = {1.f, 2.f, -INFINITY, NAN};
  {
    RawFile f(path);
    f.dataset("w", H5T_IEEE_F32LE, {2, 2}, H5P_DEFAULT, v, H5T_NATIVE_FLOAT);
  }
  H5Reader r(path);
  expect_error(
      [&] {
        r.read_tensor("w", DType::f32, {2, 2});
      },
      path, {"/w: expected finite float32 values, found -inf at flat index 2"});
}

TEST_CASE("h5io: attributes of another type, count or size are refused") {
  TempDir tmp;
  const std::string path = tmp / "attrs.h5";
  {
    RawFile f(path, /*new_format=*/true);  // dense attribute storage for the 2 MiB string
    hid_t scalar = H5Screate(H5S_SCALAR);
    hsize_t two[2] = {2, 2};
    hid_t matrix = H5Screate_simple(2, two, nullptr);
    hid_t pair = H5Screate_simple(1, two, nullptr);
    const uint64_t big = ~uint64_t(0);
    f.attr("u64", H5T_STD_U64LE, scalar, &big, H5T_NATIVE_UINT64);
    const int16_t i16 = -7;
    f.attr("i16be", H5T_STD_I16BE, scalar, &i16, H5T_NATIVE_INT16);
    const float f32 = 0.25f;
    f.attr("f32", H5T_IEEE_F32LE, scalar, &f32, H5T_NATIVE_FLOAT);
    const int64_t four[4] = {1, 2, 3, 4};
    f.attr("matrix", H5T_STD_I64LE, matrix, four, H5T_NATIVE_INT64);
    f.attr("pair", H5T_STD_I64LE, pair, four, H5T_NATIVE_INT64);
    hid_t fixed = H5Tcopy(H5T_C_S1);
    H5Tset_size(fixed, 12);
    H5Tset_strpad(fixed, H5T_STR_SPACEPAD);
    f.attr("spaced", fixed, scalar, "relu6       ", fixed);
    H5Tset_size(fixed, 10);
    H5Tset_strpad(fixed, H5T_STR_NULLPAD);
    f.attr("padded", fixed, scalar, "conv\0\0\0\0\0\0", fixed);
    const std::string huge((size_t(2) << 20) + 1, 'x');
    H5Tset_size(fixed, huge.size());
    f.attr("huge", fixed, scalar, huge.data(), fixed);
    H5Tclose(fixed);
    H5Sclose(scalar);
    H5Sclose(matrix);
    H5Sclose(pair);
  }
  H5Reader r(path);
  CHECK(r.attr_int("/", "i16be") == -7);     // any integer that fits int64 converts exactly
  CHECK(r.attr_double("/", "f32") == 0.25);  // and so does float32 to double
  CHECK(r.attr_string("/", "spaced") == "relu6");
  CHECK(r.attr_string("/", "padded") == "conv");
  CHECK(r.attr_ints("/", "pair") == std::vector<int64_t>{1, 2});
  expect_error([&] { r.attr_int("/", "u64"); }, path,
               {"/ attribute 'u64': expected an integer that fits int64, found uint64"});
  expect_error([&] { r.attr_double("/", "i16be"); }, path,
               {"/ attribute 'i16be': expected float64 or float32, found big-endian int16"});
  expect_error([&] { r.attr_string("/", "f32"); }, path,
               {"/ attribute 'f32': expected a string, found float32"});
  expect_error([&] { r.attr_int("/", "spaced"); }, path,
               {"'spaced'", "found a fixed-length string of 12 bytes"});
  expect_error([&] { r.attr_int("/", "pair"); }, path,
               {"'pair': expected a single value, found 2 values"});
  expect_error([&] { r.attr_ints("/", "matrix"); }, path,
               {"'matrix': expected a 1-d list, found a rank-2 dataspace"});
  expect_error([&] { r.attr_string("/", "huge"); }, path,
               {"'huge': expected a string of at most 1048576 bytes, found 2097153 bytes"});
}

TEST_CASE("h5io: a text attribute holding a control character is refused, naming it (found by fuzz_int8)") {
  // tests/fuzz/corpus/fuzz_int8/regression-control-char-in-op: an op name with a newline was
  // quoted raw in the loader's error, which then spanned two lines.
  TempDir tmp;
  const std::string path = tmp / "t.h5";
  {
    H5Writer w(path);
    w.set_attr("/", "fine", "conv(6,5)-relu ü");
    w.set_attr("/", "bad", "conv\n(6,5)");
    w.set_attr("/", "tab", "a\tb");
    w.commit();
  }
  H5Reader r(path);
  CHECK(r.attr_string("/", "fine") == "conv(6,5)-relu ü");
  expect_error([&] { r.attr_string("/", "bad"); }, path,
               {"attribute 'bad'", "expected text without control characters, found byte 4 = \\n"});
  expect_error([&] { r.attr_string("/", "tab"); }, path, {"byte 1 = \\t"});
}
