// The model-spec parser (nn/spec.h): for any text and input shape, model_size() either refuses
// (one line naming the position) or describes a model that build_model() then builds with
// exactly that many layers and parameters, within limits() (core/limits.h). Models too large
// to build quickly here are sized only.
#include <algorithm>

#include "core/limits.h"
#include "core/rng.h"
#include "nn/spec.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  // The first three bytes choose the input (C, H, W); the rest is the spec.
  const Shape input{1 + data[0] % 4, 1 + data[1] % 40, 1 + data[2] % 40};
  const std::string spec(reinterpret_cast<const char*>(data + 3), size - 3);
  fuzz::refused_or_ok([&] {
    const ModelSize s = model_size(spec, input);
    if (s.layers < 1 || s.parameters < 0 || s.largest_activation < 1) fuzz::fail("spec: a size below its minimum");
    if (s.layers > limits().layers || s.parameters > limits().parameters)
      fuzz::fail("spec: a size past limits() was accepted");
    if (s.parameters > 200000 || s.layers > 200) return;
    Rng rng(1);
    ModelSize built;
    const auto model = build_model(spec, input, rng, Init::pytorch, &built);
    if (int64_t(model->size()) != built.layers || built.layers != s.layers || built.parameters != s.parameters)
      fuzz::fail("spec: build_model and model_size disagree");
    int64_t count = 0;
    for (const auto& [name, p] : model->named_parameters()) count += p.value().numel();
    if (count != s.parameters) fuzz::fail("spec: the parameter count is not the model's");
  });
  return 0;
}
