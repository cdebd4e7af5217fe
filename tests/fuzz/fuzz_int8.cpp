// The int8 model loader (quant/int8/file.h), structure-aware (h5_edits.h): edits to a valid
// int8 file of a small calibrated model as `crayon export` writes it. A file that loads must
// run: one image through the integer engine, fast and reference kernels agreeing.
#include <cstring>

#include "core/rng.h"
#include "nn/spec.h"
#include "quant/int8/file.h"
#include "quant/int8_export.h"
#include "quant/qat.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/h5_edits.h"

using namespace crayon;

namespace {

const std::string& seed() {
  static const std::string bytes = [] {
    const std::string path = fuzz::scratch() + "/seed.int8.h5";
    Rng rng(3);
    auto model = build_model("conv(3,3,pad=1)-relu-maxpool(2)-conv(4,3)-relu6-avgpool(2)-flatten-linear(5)",
                             {1, 12, 12}, rng);
    int calls = 0;
    calibrate(*model, [&](Tensor& batch) {
      batch = Tensor::empty({8, 1, 12, 12});
      for (float& v : batch.values()) v = rng.normal();
      return calls++ < 4;
    }, 4, QatConfig{});
    save_int8(export_int8(*model, {1, 12, 12}, {{0.5f}, {0.25f}}), path);
    return fuzz::seed_from(path);
  }();
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  seed();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch() + "/edited.int8.h5";
  FuzzedDataProvider in(data, size);
  fuzz::edited_copy(seed(), path, in);
  fuzz::refused_or_ok([&] {
    const Int8Model m = load_int8(path);
    int64_t pixels = 1;
    for (int64_t d : m.input_shape) pixels *= d;
    if (pixels > (int64_t(1) << 18)) return;
    std::vector<uint8_t> image(size_t(pixels), 128);
    const Tensor q = m.quantize_images(image.data(), 1);
    const Tensor fast = m.forward(q), slow = m.forward(q, true);
    if (fast.shape() != slow.shape() || std::memcmp(fast.data(), slow.data(), fast.nbytes()) != 0)
      fuzz::fail("int8: the fast and reference kernels disagree on a model the loader accepted");
  });
  return 0;
}
