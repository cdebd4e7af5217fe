#pragma once
// Mixed precision: bits per layer under a size budget, from each layer's sensitivity
// (the 2021 white paper, sec. 5; HAWQ and AIMET's AMP choose the same way in spirit).
//
// Sensitivity of layer l at b bits: the mean KL(p_float || p) over calibration batches,
// p the predictions of the float model with only layer l's weights fake-quantized at b
// bits (the grid of quant/qat.h: per channel, symmetric, narrow, from the weights).
// Measured once per layer and width: layers x widths forward passes over the batches.
//
// Choice (greedy, by marginal cost): every layer starts at the widest width; while the
// total weight bits sum_l n_l b_l exceed the budget, the layer whose next narrower width
// adds the least sensitivity per bit saved, (S_l(b') - S_l(b)) / (n_l (b - b')), steps down
// to it; then, since a big layer's step may overshoot, what is left of the budget goes to
// the steps up that remove the most sensitivity per bit spent. The path it takes, one point
// per step, is the size-vs-sensitivity curve; the budget is met exactly (total <= budget)
// or the call throws.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/sequential.h"
#include "quant/quant_spec.h"

namespace crayon {

struct LayerSensitivity {
  size_t layer = 0;             // index in the float model
  int64_t weights = 0;          // n_l
  std::vector<int> widths;      // ascending
  std::vector<double> kl;       // mean KL at each width
};

// Every conv / linear of a float model (unprepared, batch norm folded or absent), at each
// width; `spec` gives the grid's other settings (its bits are replaced). Throws
// std::invalid_argument for a prepared model, no batches or a width outside 2..8.
std::vector<LayerSensitivity> weight_sensitivity(Sequential& float_model, const std::vector<Tensor>& batches,
                                                 const std::vector<int>& widths, const QuantSpec& spec);

struct BitsChoice {
  std::vector<int> bits;        // per layer, in the order of the sensitivities
  int64_t total_bits = 0;       // sum n_l b_l
  double predicted_kl = 0;      // sum of the chosen widths' sensitivities
  struct Step {
    int64_t total_bits;
    double predicted_kl;
  };
  std::vector<Step> path;       // from all-widest down, then back up, to the choice
};

// The greedy choice above for a budget of `budget_bits` weight bits in all. Throws
// std::invalid_argument when even the narrowest widths exceed the budget.
BitsChoice choose_bits(const std::vector<LayerSensitivity>& layers, int64_t budget_bits);

}  // namespace crayon
