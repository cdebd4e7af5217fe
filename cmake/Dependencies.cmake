# Every dependency comes from a Debian 12 package; a missing one stops configuration
# with the name of the package that provides it.

function(crayon_require found what package)
  if(NOT ${found})
    message(FATAL_ERROR "crayon: ${what} not found. Install it with: apt-get install ${package}"
                        "  (or run scripts/install-deps.sh)")
  endif()
endfunction()

# OpenBLAS, linked directly (not through the libblas.so alternative, which may be the
# slow reference BLAS). Debian puts the pthread build under openblas-pthread/.
find_path(OPENBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/aarch64-linux-gnu/openblas-pthread
        /usr/include/openblas
  NO_DEFAULT_PATH)
find_library(OPENBLAS_LIBRARY NAMES openblas
  PATHS /usr/lib/x86_64-linux-gnu/openblas-pthread /usr/lib/aarch64-linux-gnu/openblas-pthread
  NO_DEFAULT_PATH)
if(NOT OPENBLAS_LIBRARY)
  find_library(OPENBLAS_LIBRARY NAMES openblas)
endif()
crayon_require(OPENBLAS_INCLUDE_DIR "OpenBLAS headers (cblas.h)" libopenblas-dev)
crayon_require(OPENBLAS_LIBRARY "OpenBLAS library" libopenblas-dev)
add_library(crayon_openblas INTERFACE)
target_include_directories(crayon_openblas SYSTEM INTERFACE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(crayon_openblas INTERFACE ${OPENBLAS_LIBRARY})

find_package(HDF5 COMPONENTS C QUIET)
crayon_require(HDF5_FOUND "HDF5 (C library)" libhdf5-dev)

find_package(Boost 1.74 QUIET COMPONENTS program_options)
crayon_require(Boost_PROGRAM_OPTIONS_FOUND "Boost.Program_options" libboost-program-options-dev)

find_package(ZLIB QUIET)
crayon_require(ZLIB_FOUND "zlib" zlib1g-dev)

find_package(CURL QUIET)
crayon_require(CURL_FOUND "libcurl (for crayon fetch)" libcurl4-openssl-dev)

find_package(Threads REQUIRED)

if(CRAYON_BUILD_TESTS)
  find_package(doctest QUIET)
  crayon_require(doctest_FOUND "doctest" doctest-dev)
endif()

# ONNX export (crayon export --format onnx, crayon summary of .onnx files): optional. The
# ONNX project's C++ library from Debian (libonnx-dev, with libprotobuf-dev); without it
# everything else builds and crayon says ONNX is off.
option(CRAYON_ONNX "Build ONNX export when libonnx-dev is installed" ON)
set(CRAYON_HAVE_ONNX OFF)
if(CRAYON_ONNX)
  find_package(Protobuf QUIET)
  if(Protobuf_FOUND)
    find_package(ONNX CONFIG QUIET)
  endif()
  if(Protobuf_FOUND AND ONNX_FOUND)
    set(CRAYON_HAVE_ONNX ON)
    message(STATUS "crayon: ONNX export on (ONNX ${ONNX_VERSION}, protobuf ${Protobuf_VERSION})")
  else()
    message(STATUS "crayon: ONNX export off (install libonnx-dev and libprotobuf-dev, or run scripts/install-deps.sh)")
  endif()
else()
  message(STATUS "crayon: ONNX export off (CRAYON_ONNX=OFF)")
endif()
