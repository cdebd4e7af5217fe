#pragma once
// Structure-aware HDF5 inputs for the fuzz targets of crayon's file loaders: a valid file made
// once at start-up, and edits to it driven by the fuzzer's bytes (attributes replaced with
// values of any type crayon writes, or deleted; datasets replaced with any small shape of
// float32 or int32, NaN and Inf included, or deleted). The loaders' checks of what HDF5 hands
// them get the fuzzing time, not HDF5's own parser.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

namespace crayon::fuzz {

struct Target {
  std::string object, name;  // an attribute `name` of `object`, or (name empty) the dataset `object`
};

inline std::vector<Target>& targets() {
  static std::vector<Target> t;
  return t;
}

inline herr_t add_attribute(hid_t, const char* name, const H5A_info_t*, void* object) {
  targets().push_back({*static_cast<std::string*>(object), name});
  return 0;
}

inline herr_t add_object(hid_t root, const char* name, const H5O_info_t* info, void*) {
  std::string object = name;
  if (info->type == H5O_TYPE_DATASET) targets().push_back({object, ""});
  const hid_t o = H5Oopen(root, name, H5P_DEFAULT);
  hsize_t at = 0;
  H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, &at, add_attribute, &object);
  H5Oclose(o);
  return 0;
}

inline void put_attribute(hid_t obj, const std::string& key, hid_t type, hid_t mtype, size_t n, const void* data) {
  if (H5Aexists(obj, key.c_str()) > 0) H5Adelete(obj, key.c_str());
  const hsize_t dims[1] = {hsize_t(n)};
  const hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr);
  const hid_t a = H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, mtype, data);
    H5Aclose(a);
  }
  H5Sclose(space);
}

inline float fuzzed_float(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 5)) {
    case 0: return std::numeric_limits<float>::quiet_NaN();
    case 1: return std::numeric_limits<float>::infinity();
    case 2: return 0.f;
    default: return in.ConsumeFloatingPoint<float>();
  }
}

inline void edit(hid_t file, FuzzedDataProvider& in) {
  const Target& t = targets()[in.ConsumeIntegralInRange<size_t>(0, targets().size() - 1)];
  const int op = in.ConsumeIntegralInRange(0, 5);
  if (t.name.empty()) {  // a dataset: deleted, or replaced by one of a fuzzed shape and type
    H5Ldelete(file, t.object.c_str(), H5P_DEFAULT);
    if (op == 0) return;
    const int rank = in.ConsumeIntegralInRange(0, 4);
    hsize_t dims[4];
    size_t n = 1;
    for (int i = 0; i < rank; ++i) n *= (dims[i] = in.ConsumeIntegralInRange<hsize_t>(0, 40));
    std::vector<float> values(n);
    for (float& v : values) v = fuzzed_float(in);
    const hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, nullptr);
    const hid_t type = op == 1 ? H5T_STD_I32LE : H5T_IEEE_F32LE;
    std::vector<int32_t> ints(n);
    for (size_t i = 0; i < n; ++i) ints[i] = std::isfinite(values[i]) ? int32_t(std::fmod(values[i], 1e9f)) : -1;
    const hid_t d = H5Dcreate2(file, t.object.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
      if (n > 0) H5Dwrite(d, op == 1 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                          op == 1 ? static_cast<const void*>(ints.data()) : values.data());
      H5Dclose(d);
    }
    H5Sclose(space);
    return;
  }
  const hid_t obj = H5Oopen(file, t.object.c_str(), H5P_DEFAULT);
  if (obj < 0) return;
  switch (op) {
    case 0: H5Adelete(obj, t.name.c_str()); break;
    case 1: {
      const int64_t v = in.ConsumeIntegral<int64_t>();
      put_attribute(obj, t.name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &v);
      break;
    }
    case 2: {
      const double v = in.ConsumeFloatingPoint<double>();
      put_attribute(obj, t.name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
      break;
    }
    case 3: {
      std::vector<int64_t> v(in.ConsumeIntegralInRange<size_t>(0, 6));
      for (int64_t& x : v) x = in.ConsumeIntegralInRange<int64_t>(-2, 1 << 20);
      put_attribute(obj, t.name, H5T_STD_I64LE, H5T_NATIVE_INT64, v.size(), v.data());
      break;
    }
    default: {
      const std::string s = in.ConsumeRandomLengthString(200);
      const hid_t type = H5Tcopy(H5T_C_S1);
      H5Tset_size(type, s.size() + 1);
      put_attribute(obj, t.name, type, type, 0, s.c_str());
      H5Tclose(type);
    }
  }
  H5Oclose(obj);
}


// The bytes of the file `path` (written by the caller's seed maker), its editable objects
// recorded in targets().
inline std::string seed_from(const std::string& path) {
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, add_object, nullptr);
  H5Fclose(f);
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes `seed` to `path` and applies one to four edits from `in`.
inline void edited_copy(const std::string& seed, const std::string& path, FuzzedDataProvider& in) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << seed;
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  const int edits = in.ConsumeIntegralInRange(1, 4);
  for (int i = 0; i < edits && in.remaining_bytes() > 0; ++i) edit(file, in);
  H5Fclose(file);
}

}  // namespace crayon::fuzz
