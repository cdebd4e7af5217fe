#pragma once
// AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
// Quantization"): instead of rounding every weight to its nearest grid point, learn per
// weight whether it rounds down or up, so that the layer's output on calibration data
// stays closest to the float layer's.
//
// Per weight layer, in forward order, on the grid weight_qparams() gives the float weights
// (scale s and zero point z per output channel; quant/qat.h):
//
//     W~(V) = s * (clamp(floor(W / s) + z + h(V), qmin, qmax) - z)
//     h(V)  = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1),    zeta = 1.1, gamma = -0.1
//
// (the rectified sigmoid, which reaches 0 and 1 exactly), V initialized so that
// h(V) = W/s - floor(W/s) (W~ = W at the start), and V minimized by Adam over
//
//     sum over output channels of mean over batch and space of (f(x_q W~ + b) - f(x W + b))^2
//       + lambda * sum over weights of (1 - |2 h(V) - 1|^beta)
//
// where f is the activation after the layer (ReLU or ReLU6, if one follows), x_q the input
// the layer gets in the model whose earlier layers are already rounded, and x the float
// model's input to the same layer (the paper's asymmetric reconstruction). The
// regularizer is off for the first `warmup` fraction of the iterations, then beta anneals
// linearly from beta_start to beta_end, driving every h to 0 or 1 (the paper and AIMET use
// Adam; the caller passes the optimizer, see below). At the end a weight
// rounds up where V >= 0.
//
// What is written: the layer's float weights become the grid points chosen, except the
// per-channel minimum and maximum weights, which keep their values and nearest rounding
// (they set the grid: weight_qparams() of the new weights is exactly the old grid), and
// every grid value is clamped into [min, max] of its channel (it still rounds to the code
// chosen). So the result is a normal quantized model: its weight fake-quant reads back the
// chosen codes, and export writes them. If the chosen codes reconstruct the calibration
// outputs worse than nearest rounding does, the layer keeps nearest rounding, so AdaRound
// never does worse than nearest on the objective it optimizes.
//
// Activations are float while rounding (the FakeQuant modules pass values through, as for
// bias correction): calibrate the activation grids afterwards.
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.h"
#include "nn/sequential.h"

namespace crayon {

struct AdaRoundOptions {
  int64_t iterations = 1000;  // Adam steps per layer
  int64_t batch = 32;         // calibration images per step
  double lambda = 0.01;       // weight of the rounding regularizer
  double beta_start = 20, beta_end = 2;
  double warmup = 0.2;        // fraction of the iterations without the regularizer
  uint64_t seed = 0;          // order of the calibration chunks
};

struct AdaRoundLayer {
  size_t layer = 0;             // index in the model
  double nearest_loss = 0;      // reconstruction error (the first term above) with nearest rounding
  double adaround_loss = 0;     // ... with the codes AdaRound chose
  bool kept_nearest = false;    // AdaRound's codes were worse: nearest kept
  double changed = 0;           // fraction of the layer's codes that differ from nearest
};

// One optimizer step over the given Variables (their gradients filled): quant/ sees no
// optim/ (DESIGN.md, layout), so the caller brings the optimizer, e.g. from apps/
// [](const std::vector<Variable>& v) { auto a = std::make_shared<Adam>(v, AdamOptions{.lr = 1e-2f});
//                                       return [a] { a->step(); }; }
using StepperFactory = std::function<std::function<void()>(const std::vector<Variable>& params)>;

// Rounds every weight layer of a model prepared for quantization, in place, on `batches`
// (network inputs). Throws std::invalid_argument for an unprepared model, no batches or
// bad options.
std::vector<AdaRoundLayer> adaround(Sequential& model, const std::vector<Tensor>& batches,
                                    const StepperFactory& make_step, const AdaRoundOptions& options = {});

}  // namespace crayon
