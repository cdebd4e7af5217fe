#pragma once
// Text model specs: layers joined by '-', each a name with optional arguments, e.g.
//   conv(6,5,pad=2)-relu6-maxpool(2)-conv(16,5)-relu6-maxpool(2)-flatten-linear(120)-relu6-linear(84)-relu6-linear(10)
//
//   conv(OUT,K[,stride=S][,pad=P][,bias=0|1])   K, S, P may be "AxB" for height x width
//   linear(OUT[,bias=0|1])
//   maxpool(K[,stride=S][,pad=P])  avgpool(K[,stride=S][,pad=P])   (stride defaults to K)
//   bn   relu   relu6   flatten   dropout(P)
//
// The input shape (C, H, W) comes from the dataset; each layer's input size is inferred by
// running shapes through the net, so linear(120) needs no in_features. Errors name the
// character position and what was expected.
#include <memory>
#include <string>

#include "core/rng.h"
#include "nn/init.h"
#include "nn/sequential.h"

namespace crayon {

// Presets: "mlp", "lenet5", "cifar-cnn"; returns the spec text, or "" if not a preset.
std::string preset_spec(const std::string& name);

// What a spec builds, found by running shapes through it without allocating anything.
struct ModelSize {
  int64_t layers = 0;
  int64_t parameters = 0;
  int64_t largest_activation = 0;  // elements of the largest tensor (input or a layer's output) per example
};

// Checks the spec against the input shape and against limits() (core/limits.h: layers,
// parameters, one example's activations); throws std::invalid_argument naming the position.
ModelSize model_size(const std::string& spec_or_preset, const Shape& input);

// The largest batch whose largest activation stays within limits().activation_bytes (>= 1).
int64_t largest_batch(const ModelSize& size);
// Throws std::invalid_argument, starting with `who` (a flag), if batch > largest_batch(size).
void check_batch(const ModelSize& size, int64_t batch, const std::string& who);

// Build from a preset name or a spec. input: (C, H, W) of one example. The same checks as
// model_size() run before anything is allocated; `size`, if given, receives its result.
std::shared_ptr<Sequential> build_model(const std::string& spec_or_preset, const Shape& input, Rng& rng,
                                        Init init = Init::pytorch, ModelSize* size = nullptr);

}  // namespace crayon
