// The IDX reader (data/idx.h), raw and gzipped: whatever the header claims, the reader either
// refuses the file or returns exactly prod(dims) bytes.
#include "data/idx.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input(data, size);
  fuzz::refused_or_ok([&] {
    const IdxArray a = read_idx(path);
    uint64_t n = 1;
    for (int64_t d : a.dims) n *= uint64_t(d);
    if (a.dims.empty() || n != a.data.size()) fuzz::fail("read_idx: dims do not match the data");
  });
  return 0;
}
