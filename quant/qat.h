#pragma once
// Quantization-aware training (QAT) and post-training quantization (PTQ) by configuration
// (DESIGN.md, idea 6): prepare_qat() changes a float Sequential so that its forward pass
// computes exactly what the integer engine will, and no layer's own code mentions it.
//
// Weights: every Linear and Conv2d gets a parametrization on "weight" (nn/module.h) that
//   fake-quantizes it at every read with weight_qparams() of the current values: per
//   output channel, symmetric, narrow range, scale_c = max|w_c| / 127 (Krishnamoorthi 2018,
//   sec. 3.1; Jacob et al. 2018, sec. 3). The gradient passes by the straight-through
//   estimator to the float "shadow" weights, which the optimizer updates; the scale is not
//   differentiated (it follows the weights). Biases stay float here; export quantizes them
//   to int32 with scale s_in * s_w, finer than any activation grid.
//
// Activations: a FakeQuant module (quant/fake_quant_module.h) is inserted
//   - at position 0, on the network input (the integer engine needs the input scale);
//   - after every ReLU / ReLU6;
//   - after every Linear, Conv2d, BatchNorm or AvgPool2d not immediately followed by
//     BatchNorm, ReLU or ReLU6 (conv-bn-relu is quantized once, after the ReLU), except
//     after the last such layer: the logits stay float. The integer engine computes them
//     as int32 accumulators times s_in * s_w plus the bias, exactly, and argmax needs no
//     output grid (TFLite would add one; it changes no prediction worth the rounding).
//   MaxPool, Flatten and Dropout (identity in eval) keep values on their input's grid and
//   get none. So TFLite's "every tensor between ops" holds for every tensor the integer
//   engine stores, and every quantized layer has an input scale and an output scale.
//   lenet5:  fq conv relu6 fq maxpool conv relu6 fq maxpool flatten linear relu6 fq linear relu6 fq linear
//   mlp:     fq flatten linear relu fq linear relu fq linear
//
// Batch norm (config.fold_bn, the default): prepare_qat first folds every BN into the
//   conv/linear before it with the running statistics (quant/bn_fold.h), then trains the
//   folded model without BN. What is trained is then exactly what is exported: the folded
//   weights are the weights, and they are what gets fake-quantized. The intended use, as
//   in Krishnamoorthi 2018 sec. 3.2 (which also freezes BN statistics for the last part of
//   QAT): train in float with BN until its statistics settle, then prepare_qat and
//   fine-tune. Preparing a fresh model folds the initial statistics (mean 0, var 1), i.e.
//   QAT from scratch trains a model without BN. (Jacob et al.'s scheme, folding batch
//   statistics during training with a correction, is not implemented.)
//   fold_bn = false keeps BN as a float layer (for experiments; not exactly exportable).
//   With fold_bn = true, a BN that follows no conv/linear cannot be folded: prepare_qat
//   throws std::invalid_argument.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/sequential.h"
#include "quant/fake_quant_module.h"
#include "quant/qat_config.h"

namespace crayon {

// The grid of a weight from its current values: min and max per index along spec.axis
// (per tensor when -1), then choose_qparams. Throws for non-finite weights.
QParams weight_qparams(const Tensor& weight, const QuantSpec& spec);

// A Linear or Conv2d: the layers whose weights are quantized.
bool is_weight_layer(const Module& m);

// The parametrization prepare_qat() puts on layer's weight: w -> fake_quant(w,
// weight_qparams(w)). Rounds with spec.rounding while layer is training and to nearest-even
// in eval. Stochastic rounding draws from a generator seeded by (seed, the weight's bytes):
// the draws are a function of the weights alone, so a run resumed from a checkpoint draws
// exactly what the uninterrupted run drew, with no generator state to save. `owner` must
// outlive it (it is stored in the layer itself). A named type, so that export can read the
// grid a weight was trained on: layer.parametrization("weight")->target<WeightFakeQuant>().
struct WeightFakeQuant {
  const Module* owner;
  QuantSpec spec;
  Ste ste;
  uint64_t seed;
  Variable operator()(const Variable& w) const;
};
Module::Parametrization weight_fake_quant(const Module& layer, const QuantSpec& spec, Ste ste, uint64_t seed);

// The weight fake-quant of a conv / linear layer prepared by prepare_qat(), or nullptr.
const WeightFakeQuant* weight_fake_quant_of(const Module& layer);

// See the top of this file. Validates config; throws std::invalid_argument if the model is
// already prepared (holds a FakeQuant or a parametrized weight) or has an unfoldable BN.
// New FakeQuant modules take the model's training mode.
void prepare_qat(Sequential& model, const QatConfig& config);

// Post-training quantization: calibrates every FakeQuant of the model on up to `batches`
// batches from next_batch (which fills its argument and returns true, or returns false
// when there are no more), then freezes them. The model runs in eval mode without
// gradients, each observer seeing the float activations (fake-quant of activations off,
// weights fake-quantized); its training mode is restored afterwards. Observers are reset
// first, so calibrating a QAT model starts afresh. A model without FakeQuant modules is
// prepared with prepare_qat(model, config) first; otherwise config is not used (the
// observers are those chosen when the model was prepared). Throws std::invalid_argument
// for batches < 1 or a source that yields no batch.
void calibrate(Sequential& model, const std::function<bool(Tensor& batch)>& next_batch, int64_t batches,
               const QatConfig& config);

// Every FakeQuant in the model (recursively), with its hierarchical name ("0", "4", ...).
std::vector<std::pair<std::string, FakeQuant*>> fake_quant_modules(const Module& model);

// The qparams of every FakeQuant that has them, by name, in forward order: the input
// scale first, then each layer's output scale (for export and inspection).
std::vector<std::pair<std::string, QParams>> activation_qparams(const Module& model);

// True when prepare_qat() has run on the model (it holds a FakeQuant or a fake-quantized weight).
bool is_quantized(const Module& model);

// A float copy of a prepared model: float_spec(model) built for `input` (C, H, W), with
// the values of every parameter and buffer of the non-FakeQuant layers copied (the float
// "shadow" weights the fake-quant reads). Evaluating it beside the model measures what
// the grid costs with the same weights.
std::shared_ptr<Sequential> float_copy(const Sequential& model, const Shape& input);

// The model's spec without its FakeQuant modules: after prepare_qat, a float model spec
// that nn/spec.h builds (with BN already folded); see fake_quant_module.h on checkpoints.
std::string float_spec(const Sequential& model);

}  // namespace crayon
