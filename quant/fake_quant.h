#pragma once
// Fake quantization: round a float tensor onto the integer grid and back, in float, so a
// network trains (QAT) or is evaluated seeing exactly the values the integer engine will
// see (DESIGN.md, idea 6). Per element, with channel c = the element's index along qp.axis
// (or the one channel when qp.axis = -1):
//
//     q     = clamp(round(x / scale_c) + zero_point_c, qmin, qmax)      (spec.rounding)
//     x_hat = (q - zero_point_c) * scale_c
//
// round() has derivative 0 almost everywhere, so the backward pass uses the straight-through
// estimator (Bengio et al. 2013, "Estimating or propagating gradients through stochastic
// neurons"; Hinton's Coursera lecture 15b), DESIGN.md idea 6:
//   Ste::plain    dx = dy                                  (round and clamp treated as identity)
//   Ste::clipped  dx = dy where qmin <= round(x / scale) + zero_point <= qmax, else 0
//                 The boundary counts as INSIDE: a value that rounds onto qmin or qmax keeps
//                 its gradient; only values whose rounded integer had to be clamped lose it.
//                 This is PyTorch's fake_quantize_per_tensor_affine backward mask.
// With stochastic rounding the mask uses the very draw of the forward pass.
//
// qp decides per-tensor vs per-channel (qp.axis, qp.channels()); spec supplies qmin, qmax and
// the rounding mode. Stochastic rounding draws one uniform per element, in flat index order,
// from the caller's rng (required then, else std::invalid_argument).
#include <string>

#include "core/rng.h"
#include "core/variable.h"
#include "quant/quant_spec.h"

namespace crayon {

enum class Ste { plain, clipped };
Ste parse_ste(const std::string& name);  // "plain" or "clipped"

// x: any shape -> same shape.
Variable fake_quant(const Variable& x, const QParams& qp, const QuantSpec& spec, Ste ste = Ste::plain,
                    Rng* rng = nullptr);

// The same forward on plain tensors (no autograd), for observers, error analysis and export.
Tensor fake_quant_values(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng = nullptr);
// The integers q (int32 tensor, same shape). Throws for non-finite x (naming the index).
Tensor quantize(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng = nullptr);
// (q - zero_point) * scale for an int32 tensor q.
Tensor dequantize(const Tensor& q, const QParams& qp);

// Throws std::invalid_argument unless qp is valid for spec and fits x's shape (axis < ndim,
// channels == x.size(axis)).
void check_qparams_fit(const char* who, const Shape& x_shape, const QParams& qp, const QuantSpec& spec);


}  // namespace crayon
