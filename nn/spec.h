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

// Build from a preset name or a spec. input: (C, H, W) of one example.
std::shared_ptr<Sequential> build_model(const std::string& spec_or_preset, const Shape& input, Rng& rng,
                                        Init init = Init::pytorch);

}  // namespace crayon
