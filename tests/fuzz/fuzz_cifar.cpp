// The CIFAR-10 binary reader (data/cifar.h), raw and gzipped: accepted files give whole
// records with labels 0..9.
#include "data/cifar.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input(data, size);
  fuzz::refused_or_ok([&] {
    const CifarRecords r = read_cifar10_bin(path);
    if (r.images.size() != size_t(r.size()) * kCifarImageBytes) fuzz::fail("cifar: images do not match the labels");
    for (int32_t l : r.labels)
      if (l < 0 || l >= kCifarClasses) fuzz::fail("cifar: a label outside 0..9 was accepted");
  });
  return 0;
}
