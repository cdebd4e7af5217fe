#pragma once
// How far a quantized model's predictions move from a reference model's (DESIGN.md, idea 5).
//
// For logits z (reference) and z' = z + dz (quantized), p = softmax(z), q = softmax(z'):
//     D_KL(p || q) = sum_c p_c (log p_c - log q_c)
// exactly (log-softmax in float64), and for small dz its second-order approximation
//     D_KL(p || q) ~= 1/2 Var_p[dz] = 1/2 (E_p[dz^2] - E_p[dz]^2):
// a constant shift of all logits costs nothing; only dz's spread under p does.
#include <vector>

#include "core/tensor.h"

namespace crayon {

struct PredictionShift {
  std::vector<double> kl;         // (N,) exact D_KL(p || q) per row, nats
  std::vector<double> kl_approx;  // (N,) 1/2 Var_p[dz] per row
  double mean_kl = 0, mean_kl_approx = 0;
  double agreement = 0;           // fraction of rows with the same argmax (first on ties)
};

// reference, quantized: (N, C) float logits of the same examples. Throws
// std::invalid_argument if the shapes differ or are not (N, C) with N, C >= 1.
PredictionShift prediction_shift(const Tensor& reference, const Tensor& quantized);

}  // namespace crayon
