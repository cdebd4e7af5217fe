// The checkpoint loader (apps/train_checkpoint.h), structure-aware (h5_edits.h): edits to a
// valid checkpoint of a small float model as `crayon train` saves it. A checkpoint that loads
// must run: one forward pass of its input shape.
#include "apps/train_checkpoint.h"
#include "core/rng.h"
#include "nn/spec.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/h5_edits.h"

using namespace crayon;

namespace {

const std::string& seed() {
  static const std::string bytes = [] {
    const std::string path = fuzz::scratch() + "/seed.h5";
    Rng rng(3);
    const std::string spec = "conv(2,3)-relu6-maxpool(2)-flatten-linear(4)";
    auto model = build_model(spec, {1, 8, 8}, rng);
    TrainConfig cfg;
    cfg.model = spec;
    TrainState state;
    state.rng_state = Rng(1).state();
    save_checkpoint(path, cfg, {1, 8, 8}, *model, nullptr, state);
    return fuzz::seed_from(path);
  }();
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // HDF5's error stack printing off: crayon reports
  seed();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::scratch() + "/edited.h5";
  FuzzedDataProvider in(data, size);
  fuzz::edited_copy(seed(), path, in);
  fuzz::refused_or_ok([&] {
    const TrainCheckpoint ck = load_train_checkpoint(path);
    int64_t pixels = 1;
    for (int64_t d : ck.input_shape) pixels *= d;
    if (pixels > (int64_t(1) << 20)) return;
    Shape batch{1};
    batch.insert(batch.end(), ck.input_shape.begin(), ck.input_shape.end());
    ck.model->forward(Variable(Tensor::zeros(batch)));
  });
  return 0;
}
