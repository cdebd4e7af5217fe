#pragma once
// Bias correction (Nagel et al. 2019, "Data-Free Quantization", sec. 4.2; the 2021 white
// paper, sec. 3.3). Quantizing a layer's weights, W~ = W + eps, shifts its output by eps x;
// over the data that is a biased error, E[eps x] = eps E[x] per output channel, which the
// layers after it see as a moved mean. It is removed by
//
//     b_o  <-  b_o - E[(W~ - W) x]_o         (o: output channel; mean over batch and space)
//
// Empirical: E[...] is measured on calibration batches, layer by layer in forward order,
// each layer seeing the input the model with its *corrected* earlier layers gives it, so
// a later correction accounts for the earlier ones. Activations stay float (the FakeQuant
// modules pass values through), as calibration sees them: run it before calibrate().
//
// Data-free: where a layer's input is a batch norm's output through at most ReLU / ReLU6,
// flatten and dropout, that input per channel is modelled as BN's own output distribution
// z ~ N(beta, gamma^2) pushed through the activation, whose mean has a closed form
// (E[relu(z)] = mu Phi(mu/sigma) + sigma phi(mu/sigma); relu6(z) = relu(z) - relu(z - 6)).
// Then E[(W~ - W) x]_o = sum over inputs of eps times that mean (border padding ignored,
// as in the paper). Layers whose input is anything else (the image, a pooling) keep their
// bias. The means are read from the float model *before* its batch norms are folded.
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "nn/sequential.h"

namespace crayon {

// Per-layer result, one per weight layer (conv / linear) in forward order.
struct LayerBiasShift {
  size_t layer = 0;           // index in the model
  bool corrected = false;     // false: no bias to correct, or (data-free) no BN before it
  double mean_abs_shift = 0;  // mean over output channels of |E[(W~ - W) x]_o|
};

// The mean output shift of every weight layer of a model prepared for quantization
// (quant/qat.h) against the same layer of `reference`, a float model with the same weight
// layers in the same order (float_copy() of the model taken before any correction): on
// `batches` (network inputs), with activations in float and each layer's input given by
// the model as it is, E[layer(x)]_o - E[reference layer(x)]_o. Before correction that is
// E[(W~ - W) x]_o; after it, 0 for every corrected layer. Throws std::invalid_argument for
// an unprepared model, a reference that does not match, or no batches.
std::vector<LayerBiasShift> measure_bias_shift(Sequential& model, Sequential& reference,
                                               const std::vector<Tensor>& batches);

// Empirical bias correction, in place; returns the shifts removed (measured before each
// layer's correction). A layer without a bias is left alone (corrected = false).
std::vector<LayerBiasShift> correct_bias(Sequential& model, const std::vector<Tensor>& batches);

// E[input] per input element of every weight layer of a float model *with* its batch
// norms, in forward order: the closed forms above where the input comes from a BN, an
// empty vector elsewhere. For a conv the vector has C_in entries; for a linear,
// in_features.
std::vector<std::vector<double>> bn_input_means(const Sequential& float_model);

// Data-free bias correction of a prepared model with the means from bn_input_means() of
// the float model it came from (the k-th vector for the k-th weight layer). Throws
// std::invalid_argument when the counts or sizes do not match.
std::vector<LayerBiasShift> correct_bias_data_free(Sequential& model,
                                                   const std::vector<std::vector<double>>& input_means);

}  // namespace crayon
