#pragma once
// Edits an existing HDF5 file in place with the raw HDF5 API, for tests that craft hostile
// files from good ones: an attribute replaced (any type crayon writes), an object removed.
// A suite using it links HDF5 itself (tests/CMakeLists.txt).
#include <doctest/doctest.h>
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace crayon::h5edit {

namespace detail {
// Opens `object` of `path` read-write, deletes attribute `key` if present, creates it with
// `type` and shape (n,) (n = 0: scalar) and writes `data` in memory type `mtype`.
inline void put(const std::string& path, const std::string& object, const std::string& key, hid_t type, hid_t mtype,
                size_t n, const void* data) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  const hid_t obj = H5Oopen(file, object.c_str(), H5P_DEFAULT);
  REQUIRE(obj >= 0);
  if (H5Aexists(obj, key.c_str()) > 0) REQUIRE(H5Adelete(obj, key.c_str()) >= 0);
  const hsize_t dims[1] = {hsize_t(n)};
  const hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr);
  const hid_t a = H5Acreate2(obj, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(a >= 0);
  REQUIRE(H5Awrite(a, mtype, data) >= 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Oclose(obj);
  H5Fclose(file);
}
}  // namespace detail

inline void set(const std::string& path, const std::string& object, const std::string& key, int64_t v) {
  detail::put(path, object, key, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &v);
}
inline void set(const std::string& path, const std::string& object, const std::string& key, double v) {
  detail::put(path, object, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}
inline void set(const std::string& path, const std::string& object, const std::string& key,
                const std::vector<int64_t>& v) {
  detail::put(path, object, key, H5T_STD_I64LE, H5T_NATIVE_INT64, v.size(), v.data());
}
inline void set(const std::string& path, const std::string& object, const std::string& key,
                const std::vector<double>& v) {
  detail::put(path, object, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, v.size(), v.data());
}
inline void set(const std::string& path, const std::string& object, const std::string& key, const std::string& v) {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, v.size() + 1);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  detail::put(path, object, key, t, t, 0, v.c_str());
  H5Tclose(t);
}
inline void set(const std::string& path, const std::string& object, const std::string& key, const char* v) {
  set(path, object, key, std::string(v));
}

// Removes the link `name` (a dataset or group).
inline void remove(const std::string& path, const std::string& name) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(file >= 0);
  REQUIRE(H5Ldelete(file, name.c_str(), H5P_DEFAULT) >= 0);
  H5Fclose(file);
}

}  // namespace crayon::h5edit
