#pragma once
// What quantization does to one model, layer by layer and at its predictions: the
// instruments behind `crayon analyze` and `crayon sweep` (DESIGN.md ideas 1, 2, 4, 5).
//
//   grid errors     per weight tensor and per activation grid: saturation and rounding
//                   error (quant/error.h), the fraction saturated, SQNR = 10 log10(Σx² / Σ(x − x̂)²)
//   bound           the certified error-propagation bound per sample (quant/bound.h): its
//                   tightness measured / bound at every grid and at the logits, and the
//                   fraction of certified vs actually kept predictions
//   KL              exact D_KL(p‖q) beside ½ Var_p[Δz] (quant/prediction_kl.h): means, their
//                   correlation, and the approximation's relative error binned by KL size
//   weight bits     the empirical entropy of each layer's integer weights: the bits an
//                   entropy coder needs for them (the "model bits" of a quantized model)
//   sensitivity     "which layer breaks first": accuracy and mean KL with one unit quantized
//                   and the rest float, and with all but one quantized
//
// The reference is always the quantized model's own float copy (float_copy: the same
// weights, batch norm folded as in the quantized model), so the two line up layer by layer.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/sequential.h"
#include "quant/bound.h"
#include "quant/error.h"

namespace crayon {

struct GridError {
  std::string name;
  QuantError error;
  double signal = 0;  // Σ x² of what was quantized
  double saturated_fraction() const { return error.count ? double(error.saturated) / double(error.count) : 0; }
  double sqnr_db() const;  // +inf when the grid is exact
};

struct Tightness {
  std::string name;
  double median = 0, p90 = 0, max = 0;  // of measured / bound per sample (samples with bound 0 left out)
  double mean_bound = 0, mean_measured = 0;
};

struct KlBin {
  double lo = 0, hi = 0;  // exact KL in [lo, hi)
  int64_t count = 0;
  double median_relative_error = 0;  // |½Var − KL| / KL
};

struct KlSummary {
  double mean_kl = 0, mean_approx = 0, correlation = 0;  // Pearson over samples
  std::vector<KlBin> bins;                               // decades of KL
};

struct WeightBits {
  std::string name;
  int64_t count = 0;
  int distinct = 0;       // integer values used
  double bits = 0;        // count x empirical entropy of the integer weights
};

struct Sensitivity {
  std::string name;            // the unit: "input" or a conv / linear layer (weights + its output grid)
  double only_accuracy = 0, only_kl = 0;        // this unit quantized, the rest float
  double all_but_accuracy = 0, all_but_kl = 0;  // every unit quantized but this one
};

struct Analysis {
  int64_t samples = 0;
  double reference_accuracy = 0, quantized_accuracy = 0;
  std::vector<GridError> weights, activations;
  std::vector<Tightness> tightness;  // each grid, then the logits
  double certified = 0, kept = 0;    // fractions of samples
  KlSummary kl;
  std::vector<WeightBits> weight_bits;
  std::vector<Sensitivity> sensitivity;  // empty unless asked for
  BoundResult bound;                     // every sample's numbers
};

// A source of labelled batches: fills images (B, C, H, W) and labels (B,) int32; false at the end.
using LabelledBatches = std::function<bool(Tensor& images, Tensor& labels)>;

// quantized: prepared by prepare_qat and observed. next_batch is called until it returns
// false (a fresh pass each time it is started: `restart` rewinds it, for sensitivity's
// extra passes). With sensitivity, every unit is evaluated twice more over the batches.
Analysis analyze(Sequential& quantized, const Shape& input_shape, const LabelledBatches& next_batch,
                 const std::function<void()>& restart, bool sensitivity);

// "Which layer breaks first": each unit quantized alone (the rest float) and each left float
// (the rest quantized), two passes over the batches per unit; accuracy and mean KL against
// reference_logits, the float copy's logits on the same batches in the same order.
std::vector<Sensitivity> layer_sensitivity(Sequential& quantized, const Shape& input_shape,
                                           const LabelledBatches& next_batch, const std::function<void()>& restart,
                                           const Tensor& reference_logits);

// The entropy code length of integer values: count x H(empirical distribution), in bits.
double entropy_bits(const std::vector<int32_t>& values);

}  // namespace crayon
