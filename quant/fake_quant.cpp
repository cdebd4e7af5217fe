#include "quant/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "core/check.h"
#include "core/parallel.h"

namespace crayon {

Ste parse_ste(const std::string& name) {
  if (name == "plain") return Ste::plain;
  if (name == "clipped") return Ste::clipped;
  throw std::invalid_argument(str("unknown straight-through estimator '", name, "' (expected plain or clipped)"));
}

void check_qparams_fit(const char* who, const Shape& x_shape, const QParams& qp, const QuantSpec& spec) {
  validate_qparams(qp, spec);
  if (qp.axis >= 0) {
    if (qp.axis >= int(x_shape.size()))
      throw std::invalid_argument(str(who, ": per-channel axis ", qp.axis, " out of range for shape ",
                                      shape_str(x_shape)));
    if (int64_t(qp.channels()) != x_shape[size_t(qp.axis)])
      throw std::invalid_argument(str(who, ": ", qp.channels(), " scales for axis ", qp.axis, " of shape ",
                                      shape_str(x_shape), " (need ", x_shape[size_t(qp.axis)], ")"));
  }
}

namespace {
// The nearest-rounding loops split over the threads above this many values per thread:
// below it, waking the pool costs more than the second core saves (an MLP's 784 x 256
// weight, 200k values, ran faster on one thread).
constexpr int64_t kNearestGrain = int64_t(1) << 17;

void require_rng(const char* who, const QuantSpec& spec, Rng* rng) {
  if (spec.rounding == Rounding::stochastic && rng == nullptr)
    throw std::invalid_argument(str(who, ": stochastic rounding needs a random generator (rng is null)"));
}

// Round half to even without a library call, for |v| < 2^22: adding 1.5 * 2^23 leaves no
// fraction bits, so the FPU's default rounding (to nearest, ties to even) does the work.
// Larger |v| are already integers or get clamped to [qmin, qmax] by every caller; NaN and
// infinities pass through. Equal to round_value(v, nearest_even) wherever it matters.
inline float round_half_even_fast(float v) {
  constexpr float kMagic = 0x1.8p23f;
  const float rounded = (v + kMagic) - kMagic;  // computed either way: a select, not a branch
  return std::fabs(v) < 0x1p22f ? rounded : v;
}

// fake_quant's hot loop (every QAT activation and weight under round half to even): one
// channel's run of n values, y[i] as for_each_quantized computes it and, when keep is not
// null, keep[i] = 1 where no clamping was needed. Built for AVX-512, AVX2 and the baseline
// (function multiversioning: the loader picks the CPU's best once), because at SSE2's four
// lanes this loop was most of QAT's cost over float training.
//
// The AVX2 and AVX-512 builds round with one instruction (nearbyint: vroundps/vrndscaleps
// in the default mode, to nearest, ties to even) where the baseline, which has none, uses
// round_half_even_fast's four operations; with the clamp as a min and a max, that made the
// AVX-512 loop 40 % faster. The two roundings differ only where nothing downstream can see
// it, so y and keep agree bit for bit with for_each_quantized's:
//   - |v| >= 2^22, which round_half_even_fast leaves as it is: a grid has at most 8 bits and
//     its zero point lies in [qmin, qmax] (quant_spec.h), so r = v + zp lies far outside
//     [qmin, qmax] either way and clamps to the same end, with keep 0;
//   - the sign of a zero (nearbyint(-0.3) = -0): r = round + zero_point, and -0 + zp equals
//     +0 + zp for every zp, +0 included.
// The clamp "qmax < r ? qmax : r", then "t < qmin ? qmin : t", equals for_each_quantized's
// nested select for every r, NaN included (it passes through both).
// Always inlined, so that each target's build of it (and of nearbyint) is its own.
template <class Round>
[[gnu::always_inline]] inline void even_run(const float* x, int64_t n, float scale, float zp, float qmin, float qmax, float* y,
                     uint8_t* keep) {
  const Round round;
  if (keep == nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      const float r = round(x[i] / scale) + zp;
      const float t = qmax < r ? qmax : r;
      y[i] = ((t < qmin ? qmin : t) - zp) * scale;
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const float r = round(x[i] / scale) + zp;
    const float t = qmax < r ? qmax : r;
    y[i] = ((t < qmin ? qmin : t) - zp) * scale;
    keep[i] = (r >= qmin && r <= qmax) ? 1 : 0;
  }
}

struct MagicRound {
  float operator()(float v) const { return round_half_even_fast(v); }
};

#if defined(__x86_64__)
struct InstructionRound {
  [[gnu::always_inline]] float operator()(float v) const { return __builtin_nearbyintf(v); }
};
// clang 14 calls these through the resolver, yet warns that they are unused.
#ifdef __clang__
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-function"
#endif
__attribute__((target("avx512f"))) void fake_quant_even_run(const float* x, int64_t n, float scale, float zp,
                                                            float qmin, float qmax, float* y, uint8_t* keep) {
  even_run<InstructionRound>(x, n, scale, zp, qmin, qmax, y, keep);
}
__attribute__((target("avx2"))) void fake_quant_even_run(const float* x, int64_t n, float scale, float zp,
                                                         float qmin, float qmax, float* y, uint8_t* keep) {
  even_run<InstructionRound>(x, n, scale, zp, qmin, qmax, y, keep);
}
#ifdef __clang__
#pragma clang diagnostic pop
#endif
__attribute__((target("default")))
#endif
void fake_quant_even_run(const float* x, int64_t n, float scale, float zp, float qmin, float qmax, float* y,
                         uint8_t* keep) {
  even_run<MagicRound>(x, n, scale, zp, qmin, qmax, y, keep);
}

// fake_quant's values (and keep flags) for round half to even, channel runs split over threads.
void fake_quant_even(const Tensor& x, const QParams& qp, const QuantSpec& spec, float* y, uint8_t* keep) {
  const float qmin = float(spec.qmin()), qmax = float(spec.qmax());
  const int64_t channels = int64_t(qp.channels());
  const int64_t inner = qp.axis < 0 ? x.numel() : inner_size(x.shape(), qp.axis);
  const float* px = x.data();
  parallel_for(x.numel(), [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end;) {
      const size_t c = size_t(channel_of(s, inner, channels));
      const int64_t stop = std::min(end, (s / inner + 1) * inner);
      const float scale = qp.scale[c], zp = float(qp.zero_point[c]);
      fake_quant_even_run(px + s, stop - s, scale, zp, qmin, qmax, y + s, keep ? keep + s : nullptr);
      s = stop;
    }
  }, kNearestGrain);
}

// The one kernel behind every entry point: f(i, c, r, q, y) for each flat index i, with c
// its channel, r = round(x_i / scale_c) + zero_point_c (the unclamped integer, as a
// float), q = clamp(r, qmin, qmax) and y = (q - zero_point_c) * scale_c, back on the line. Float sums of integers below 2^24 are exact, so q is an exact integer (a
// huge r may be inexact, but it is clamped anyway); NaN stays NaN. Stochastic rounding
// visits i in flat order on one thread (one draw per element, in order); the nearest modes
// run in parallel over contiguous ranges. Within a run all of a channel's constants are
// locals, so f's stores cannot alias them and the loop vectorizes (this is QAT's hot loop).
template <typename F>
void for_each_quantized(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng, F f) {
  const float qmin = float(spec.qmin()), qmax = float(spec.qmax());
  const int64_t channels = int64_t(qp.channels());
  const int64_t inner = qp.axis < 0 ? x.numel() : inner_size(x.shape(), qp.axis);
  const float* px = x.data();
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end;) {
      const size_t c = size_t(channel_of(s, inner, channels));
      const int64_t stop = std::min(end, (s / inner + 1) * inner);
      const float scale = qp.scale[c], zp = float(qp.zero_point[c]);
      auto body = [=, &f](auto round) {
        for (int64_t i = s; i < stop; ++i) {
          const float r = round(px[i] / scale) + zp;
          const float q = r < qmin ? qmin : (r > qmax ? qmax : r);
          f(i, c, r, q, (q - zp) * scale);
        }
      };
      switch (spec.rounding) {
        case Rounding::nearest_even: body(round_half_even_fast); break;
        case Rounding::nearest_away: body([](float v) { return std::round(v); }); break;
        case Rounding::stochastic: body([rng](float v) { return round_value(v, Rounding::stochastic, rng); }); break;
      }
      s = stop;
    }
  };
  if (spec.rounding == Rounding::stochastic) run(0, x.numel());
  else parallel_for(x.numel(), run, kNearestGrain);
}
}  // namespace

Tensor fake_quant_values(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng) {
  check_qparams_fit("fake_quant", x.shape(), qp, spec);
  require_rng("fake_quant", spec, rng);
  Tensor y = Tensor::empty(x.shape());
  float* py = y.data();
  for_each_quantized(x, qp, spec, rng, [py](int64_t i, size_t, float, float, float v) { py[i] = v; });
  return y;
}

Variable fake_quant(const Variable& x, const QParams& qp, const QuantSpec& spec, Ste ste, Rng* rng) {
  // x: any shape -> same shape
  check_qparams_fit("fake_quant", x.shape(), qp, spec);
  require_rng("fake_quant", spec, rng);
  Tensor y = Tensor::empty(x.shape());
  float* py = y.data();
  // Clipped STE: keep[i] = 1 where the rounded integer needed no clamping (boundary inside).
  auto keep = std::make_shared<std::vector<uint8_t>>(ste == Ste::clipped ? size_t(x.numel()) : 0);
  const float qmin = float(spec.qmin()), qmax = float(spec.qmax());
  if (spec.rounding == Rounding::nearest_even) {
    fake_quant_even(x.value(), qp, spec, py, ste == Ste::clipped ? keep->data() : nullptr);
  } else if (ste == Ste::clipped) {
    uint8_t* pk = keep->data();
    for_each_quantized(x.value(), qp, spec, rng, [=](int64_t i, size_t, float r, float, float v) {
      py[i] = v;
      pk[i] = (r >= qmin && r <= qmax) ? 1 : 0;
    });
  } else {
    for_each_quantized(x.value(), qp, spec, rng, [py](int64_t i, size_t, float, float, float v) { py[i] = v; });
  }
  return make_result(std::move(y), {x}, [ste, keep](const Tensor& dy, std::vector<Variable>& in) {
    if (ste == Ste::plain) {
      // STE: dx = dy. dy is this node's own gradient, dropped as soon as the backward returns
      // (Variable::backward), so the input adopts it instead of a copy.
      in[0].add_fresh_grad(dy);
      return;
    }
    // Clipped: dx = dy where the value was inside the grid. A fresh gradient buffer is left
    // uninitialized and overwritten (one pass, no memset).
    float beta;
    Tensor& dx = in[0].grad_for_gemm(&beta);
    const float* pd = dy.data();
    float* pg = dx.data();
    const int64_t n = dy.numel();
    const uint8_t* k = keep->data();
    if (beta == 0) {
      for (int64_t i = 0; i < n; ++i) pg[i] = k[i] ? pd[i] : 0.f;
    } else {
      for (int64_t i = 0; i < n; ++i) pg[i] += k[i] ? pd[i] : 0.f;
    }
  }, "fake_quant");
}

Tensor quantize(const Tensor& x, const QParams& qp, const QuantSpec& spec, Rng* rng) {
  check_qparams_fit("quantize", x.shape(), qp, spec);
  require_rng("quantize", spec, rng);
  Tensor q = Tensor::empty(x.shape(), DType::i32);
  int32_t* pq = q.data_as<int32_t>();
  const float* px = x.data();
  for (int64_t i = 0; i < x.numel(); ++i)
    if (!std::isfinite(px[i]))
      throw std::invalid_argument(str("quantize: non-finite value ", px[i], " at flat index ", i, " of ",
                                      shape_str(x.shape())));
  for_each_quantized(x, qp, spec, rng, [pq](int64_t i, size_t, float, float q, float) { pq[i] = int32_t(q); });
  return q;
}

Tensor dequantize(const Tensor& q, const QParams& qp) {
  if (qp.scale.empty() || qp.scale.size() != qp.zero_point.size())
    throw std::invalid_argument(str("dequantize: ", qp.scale.size(), " scales and ", qp.zero_point.size(),
                                    " zero points"));
  if (qp.axis >= q.ndim() || (qp.axis >= 0 && int64_t(qp.channels()) != q.size(qp.axis)) ||
      (qp.axis < 0 && qp.channels() != 1))
    throw std::invalid_argument(str("dequantize: ", qp.channels(), " scales on axis ", qp.axis,
                                    " do not fit shape ", shape_str(q.shape())));
  Tensor y = Tensor::empty(q.shape());
  const int32_t* pq = q.data_as<int32_t>();
  float* py = y.data();
  const int64_t channels = int64_t(qp.channels());
  const int64_t inner = qp.axis < 0 ? q.numel() : inner_size(q.shape(), qp.axis);
  for (int64_t i = 0; i < q.numel(); ++i) {
    const size_t c = size_t(channel_of(i, inner, channels));
    py[i] = float(pq[i] - qp.zero_point[c]) * qp.scale[c];
  }
  return y;
}


}  // namespace crayon
