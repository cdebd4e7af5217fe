#pragma once
// A certified bound on how far quantization moves every activation and logit, per sample
// (DESIGN.md, idea 4). For z = Wx + b computed on the quantized path as ẑ = Ŵx̂ + b,
//     z − ẑ = W(x − x̂) + (W − Ŵ)x̂,   so   |z − ẑ|ᵢ ≤ Σⱼ |Wᵢⱼ| δⱼ + Σⱼ |Wᵢⱼ − Ŵᵢⱼ| |x̂ⱼ|
// with δ ≥ |x − x̂| elementwise. δ is carried from the input to the logits:
//   activation grid (FakeQuant)   δ + that sample's own error |x̂ − FQ(x̂)| there
//   ReLU, ReLU6                   the reference's input lies in [ẑ − δ, ẑ + δ]: the largest
//                                 distance from clamp(ẑ) to the clamp of that interval (≤ δ,
//                                 and 0 where the whole interval is clamped)
//   max pool                      the reference's maximum lies between the window maxima of
//                                 ẑ − δ and ẑ + δ (at most the max of δ over the window)
//   average pool                  mean of δ over the window (padding counted, as the op)
//   flatten, dropout (eval)       δ
// Both paths run in float32, so each step also adds the round-off of that arithmetic: a sum
// of n products is within γₙ·Σ|terms| of exact (γₙ = nu / (1 − nu), u = 2⁻²⁴, Higham 2002,
// sec. 3.1); for a conv / linear output, with D = Σ|W||x̂|, Σ|W||x| ≤ D + Σ|W|δ and
// Σ|Ŵ||x̂| ≤ D + Σ|W − Ŵ||x̂|, so the round-off of both paths is covered by
// γₙ(2D + 2|b|) plus (1 + γₙ) on the two terms above; every bound term, itself computed in
// float32, is inflated by (1 + 4γₙ) and rounded up. So the bound holds for the numbers the
// two models actually compute, not only for exact arithmetic; the tests check it is never
// exceeded on any sample.
//
// Certified: the reference model's top-1 class t cannot change when, for every k ≠ t,
//     z_t − z_k > δ_t + δ_k     (ẑ_t ≥ z_t − δ_t and ẑ_k ≤ z_k + δ_k).
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/sequential.h"
#include "quant/fake_quant_module.h"

namespace crayon {

// At one point of the network (each activation grid, and the logits): per sample, the
// largest measured |x − x̂| and the largest bound δ over its elements.
struct BoundPoint {
  std::string name;  // "input", "layer 3 (conv(6,5,pad=2))", ..., "logits"
  std::vector<double> measured, bound;  // (N,)
};

struct BoundResult {
  Tensor reference_logits, quantized_logits;  // (N, C)
  Tensor logit_bound;                         // (N, C) δ of every logit (an upper bound)
  std::vector<BoundPoint> points;             // in forward order, the logits last
  std::vector<bool> certified;                // (N,) the top-1 provably cannot change
  std::vector<bool> kept;                     // (N,) the top-1 did not change
};

// quantized: a model prepared by prepare_qat and observed (every FakeQuant has a grid);
// reference: the same model without its grids (float_copy), so its layers line up with the
// quantized model's once the FakeQuant modules are skipped. x: (B, C, H, W) network input.
// Both run in eval mode. Throws std::invalid_argument for a layer it has no rule for.
// on_grid, if given, sees what each activation grid receives on the quantized path (the k-th
// grid, its module, its input), so a caller measuring the grids needs no second pass.
using GridInput = std::function<void(size_t k, const FakeQuant& grid, const Tensor& input)>;
BoundResult propagate_bound(Sequential& quantized, Sequential& reference, const Tensor& x,
                            const GridInput& on_grid = {});

// Appends b's samples to a (same points, same classes); a empty takes b.
void append(BoundResult& a, const BoundResult& b);

}  // namespace crayon
