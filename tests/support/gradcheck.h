#pragma once
// One finite-difference gradient check for every op and every layer (flashlight's
// AutogradTestUtils, tinygrad's helper_test_op): the FULL Jacobian of fn at the given
// inputs, computed two ways and compared element by element.
//
//   numeric  column k of input i: central differences at the half-steps h and h/2,
//              D(s) = (f(x + s e_k) - f(x - s e_k)) / (2s),          h = eps = 0.05,
//            extrapolated to s = 0 (Richardson, in s^2):  J[:, k] = (4 D(h/2) - D(h)) / 3.
//            The forward passes are float32 (there is no double path); the difference of
//            two float outputs is taken in double, s is the half-step actually stored after
//            rounding x +- s to float, and the extrapolation uses those stored steps
//            (Neville's formula), so rounding x +- s adds no error of its own. levels = 3
//            adds h/4 and cancels the s^4 term too; levels = 1 is plain central differences.
//   analytic row j:                J[j, :] = grad of x after out.backward(one_hot(j)),
//            each row from a fresh forward pass on fresh leaf Variables, so nothing
//            accumulates between rows.
//
// An element passes when
//     |analytic - numeric| <= atol * max(1, max_j |y_j|) + rtol * |numeric|,
//     eps = 5e-2, levels = 2, atol = 1e-5, rtol = 2e-4,
// so a backward off by 0.1 % fails on every entry with |J| above ~0.013 x max(1, max|y|);
// the self-tests in test_gradients.cpp show 1 % and 0.1 % errors caught in matmul, tanh,
// exp, softmax, log_softmax, a sum of squares, cross_entropy, conv2d and batch_norm.
// The error budget of the numeric side, for float32 forward passes:
//   - truncation: D(s) = f' + s^2 f'''/6 + s^4 f^(5)/120 + ..., so the extrapolation errs
//     by h^4 f^(5)/480 ~ 1.3e-8 f^(5), ~1e-6 relative where f^(5)/f' = 100. The worst case
//     in the suite is pow(x, -2.5) on [0.5, 2] (f^(5)/f' = 9e3 at 0.5, 1.2e-4 there),
//     measured 4e-5 relative. Plain central differences err by h^2 f'''/6 instead: 2.6 %
//     on that case at h = 0.05, 0.1 % at h = 0.01 (the old scheme), and smaller steps
//     multiply the rounding noise below.
//   - rounding: each output carries an error of a few ulps of the magnitudes it is
//     computed from (~1e-7 x |y|, more for long sums); divided by the steps and weighted
//     by 4/3 and 1/3 it becomes ~40 x as much noise in J, ~4e-6 x |y|. Hence atol scales
//     with the largest output (an entry of 0 has no magnitude of its own to scale by), and
//     the steps are this large: halving them doubles the noise.
//   - measured on every check in test_gradients.cpp and test_layers.cpp: the worst
//     |diff| / tolerance of any entry is 0.33 (conv2d; batch_norm in training 0.28), a
//     margin of 3 on correct ops. The largest relative error on entries with |J| >= 0.1
//     is 1.4e-4 (batch_norm in training; rounding: its numeric estimates at other steps
//     scatter by as much on both sides of the analytic value), 9e-5 in conv2d (all of it
//     rounding: conv is bilinear, so it has no truncation error), and the largest
//     absolute error on entries below 0.01 is 1e-5 (conv2d, outputs up to 4.5). A 0.1 %
//     error stands 5 x above rtol. The analytic side's own float32 rounding (~1e-6
//     relative) is far below all of these.
//   - kinks: inputs must stay more than eps away from kinks (relu at 0, relu6 at 0 and 6,
//     clamp bounds, ties in max) so that no step crosses one; the suite keeps them 0.1
//     away. Piecewise-linear ops then have no truncation error at all.
//   - cost: 2 * levels forward passes per input element, plus one forward and one
//     backward pass per output element.
// Loosen an option for one check only for a reason on the numeric side (measured noise or
// curvature), never to make a mismatch go away.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "core/variable.h"

namespace crayon::testing {

using GradFn = std::function<Variable(const std::vector<Variable>&)>;

struct GradCheckOptions {
  std::string name = "op";  // shown in failure messages
  float eps = 5e-2f;   // the larger half-step h; the others are h/2, h/4, ...
  int levels = 2;      // central differences at h, h/2, ... extrapolated to a step of 0
  double atol = 1e-5;  // per unit of max(1, max_j |y_j|), the largest output's magnitude
  double rtol = 2e-4;
  // Which inputs are differentiated (others are passed as constants, requires_grad false).
  // Empty: all of them.
  std::vector<bool> wrt = {};
  int max_reports = 4;  // mismatching elements reported per input
};

struct GradMismatch {
  int input;
  int64_t out_index, in_index;  // flat indices
  double analytic, numeric;
  double central;  // the plain central difference at the finest step, for diagnosis
};

struct GradCheckResult {
  std::vector<int64_t> compared;    // Jacobian entries compared, per input
  std::vector<int64_t> mismatches;  // entries out of tolerance, per input
  std::vector<GradMismatch> first;  // the first max_reports mismatches of each input
  bool output_finite = true;
  bool output_requires_grad = true;
  double max_abs_err = 0;
  double max_ratio = 0;  // the largest |analytic - numeric| / tolerance (> 1: a mismatch)
  double atol = 0;       // the absolute tolerance used: opts.atol * max(1, max_j |y_j|)
  bool ok() const {
    if (!output_finite || !output_requires_grad) return false;
    for (int64_t m : mismatches)
      if (m) return false;
    return true;
  }
};

// "[1, 0, 2]": a flat index as a multi-index of shape s.
inline std::string index_str(const Shape& s, int64_t flat) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = s[d] ? flat % s[d] : 0;
    flat = s[d] ? flat / s[d] : 0;
  }
  std::string out = "[";
  for (size_t d = 0; d < idx.size(); ++d) out += (d ? ", " : "") + std::to_string(idx[d]);
  return out + "]";
}

// Computes and compares both Jacobians without reporting; check_gradients() below reports.
inline GradCheckResult compare_gradients(const GradFn& fn, const std::vector<Tensor>& inputs,
                                         const GradCheckOptions& opts = {}) {
  const size_t n_in = inputs.size();
  auto wants = [&](size_t i) { return opts.wrt.empty() || (i < opts.wrt.size() && opts.wrt[i]); };
  GradCheckResult res;
  res.compared.assign(n_in, 0);
  res.mismatches.assign(n_in, 0);

  // Working copies: the numeric pass perturbs them in place, one element at a time.
  std::vector<Tensor> x;
  for (const Tensor& t : inputs) x.push_back(t.clone());
  auto forward = [&](bool requires_grad) {
    std::vector<Variable> vars;
    for (size_t i = 0; i < n_in; ++i) vars.emplace_back(x[i].clone(), requires_grad && wants(i));
    return fn(vars);
  };

  Tensor y0;
  {
    NoGradGuard no_grad;
    y0 = forward(false).value().clone();
  }
  for (float v : y0.values())
    if (!std::isfinite(v)) res.output_finite = false;
  const int64_t M = y0.numel();

  double y_scale = 1;
  for (float v : y0.values()) y_scale = std::max(y_scale, double(std::fabs(v)));
  res.atol = opts.atol * y_scale;

  // Numeric Jacobians, J[i] is (M, numel_i), row-major in double, and the plain central
  // differences at the finest step (for the failure messages).
  const int L = std::max(1, opts.levels);
  std::vector<std::vector<double>> numeric(n_in), central(n_in);
  std::vector<double> t(static_cast<size_t>(L));  // squared half-steps, as stored
  // T[l][j]: column m of the tableau, row l (Neville's scheme in t = s^2).
  std::vector<std::vector<double>> T(static_cast<size_t>(L), std::vector<double>(static_cast<size_t>(M)));
  for (size_t i = 0; i < n_in; ++i) {
    if (!wants(i)) continue;
    const int64_t N = x[i].numel();
    numeric[i].assign(size_t(M * N), 0.0);
    central[i].assign(size_t(M * N), 0.0);
    float* p = x[i].data();
    for (int64_t k = 0; k < N; ++k) {
      const float orig = p[k];
      for (int l = 0; l < L; ++l) {
        const float h = opts.eps / float(1 << l);
        const float hi = orig + h, lo = orig - h;
        Tensor y_hi, y_lo;
        {
          NoGradGuard no_grad;
          p[k] = hi;
          y_hi = forward(false).value().clone();
          p[k] = lo;
          y_lo = forward(false).value().clone();
        }
        p[k] = orig;
        const double half = 0.5 * (double(hi) - double(lo));
        t[size_t(l)] = half * half;
        for (int64_t j = 0; j < M; ++j)
          T[size_t(l)][size_t(j)] = (double(y_hi.data()[j]) - double(y_lo.data()[j])) / (2 * half);
      }
      for (int64_t j = 0; j < M; ++j) central[i][size_t(j * N + k)] = T[size_t(L - 1)][size_t(j)];
      // Column m: T[l] becomes the value at t = 0 of the polynomial in t through levels
      // l-m .. l, from T[l] (through l-m+1 .. l) and T[l-1] (through l-m .. l-1).
      for (int m = 1; m < L; ++m)
        for (int l = L - 1; l >= m; --l) {
          const double ta = t[size_t(l - m)], tb = t[size_t(l)];
          std::vector<double>& lower = T[size_t(l)];
          const std::vector<double>& upper = T[size_t(l - 1)];
          for (int64_t j = 0; j < M; ++j)
            lower[size_t(j)] = (ta * lower[size_t(j)] - tb * upper[size_t(j)]) / (ta - tb);
        }
      for (int64_t j = 0; j < M; ++j) numeric[i][size_t(j * N + k)] = T[size_t(L - 1)][size_t(j)];
    }
  }

  // Analytic Jacobians, one backward pass per output element.
  std::vector<std::vector<double>> analytic(n_in);
  for (size_t i = 0; i < n_in; ++i)
    if (wants(i)) analytic[i].assign(size_t(M * x[i].numel()), 0.0);
  for (int64_t j = 0; j < M; ++j) {
    std::vector<Variable> vars;
    for (size_t i = 0; i < n_in; ++i) vars.emplace_back(x[i].clone(), wants(i));
    Variable out = fn(vars);
    if (!out.requires_grad()) {
      res.output_requires_grad = false;
      break;
    }
    Tensor seed = Tensor::zeros(out.shape());
    seed.data()[j] = 1.f;
    out.backward(seed);
    for (size_t i = 0; i < n_in; ++i) {
      if (!wants(i) || !vars[i].has_grad()) continue;  // no grad reached it: the row is zero
      const int64_t N = x[i].numel();
      const float* g = vars[i].grad().data();
      for (int64_t k = 0; k < N; ++k) analytic[i][size_t(j * N + k)] = g[k];
    }
  }

  for (size_t i = 0; i < n_in; ++i) {
    if (!wants(i)) continue;
    const int64_t N = x[i].numel();
    int reported = 0;
    for (int64_t j = 0; j < M; ++j)
      for (int64_t k = 0; k < N; ++k) {
        const double a = analytic[i][size_t(j * N + k)], n = numeric[i][size_t(j * N + k)];
        const double err = std::fabs(a - n), tol = res.atol + opts.rtol * std::fabs(n);
        res.max_abs_err = std::max(res.max_abs_err, std::isnan(err) ? INFINITY : err);
        res.max_ratio = std::max(res.max_ratio, std::isnan(err) ? INFINITY : err / tol);
        ++res.compared[i];
        if (!(err <= tol)) {  // NaN fails too
          ++res.mismatches[i];
          if (reported++ < opts.max_reports)
            res.first.push_back({int(i), j, k, a, n, central[i][size_t(j * N + k)]});
        }
      }
  }
  return res;
}

// The check the op tests call: every mismatch (up to max_reports per input) becomes a
// doctest failure naming the op, the input, the output and input elements, and both values.
inline GradCheckResult check_gradients(const GradFn& fn, const std::vector<Tensor>& inputs,
                                       const GradCheckOptions& opts = {}) {
  const GradCheckResult res = compare_gradients(fn, inputs, opts);
  INFO("gradient check of ", opts.name);
  CHECK_MESSAGE(res.output_finite, "the output of ", opts.name, " is not finite");
  CHECK_MESSAGE(res.output_requires_grad, "the output of ", opts.name, " does not require grad");
  Shape out_shape;
  {
    NoGradGuard no_grad;
    std::vector<Variable> vars;
    for (const Tensor& t : inputs) vars.emplace_back(t.clone(), false);
    out_shape = fn(vars).shape();
  }
  for (const GradMismatch& m : res.first) {
    std::ostringstream os;
    os << opts.name << ": d out" << index_str(out_shape, m.out_index) << " / d input " << m.input
       << index_str(inputs[size_t(m.input)].shape(), m.in_index) << ": analytic " << m.analytic
       << ", numeric " << m.numeric << " (|diff| " << std::fabs(m.analytic - m.numeric)
       << " > " << res.atol << " + " << opts.rtol << " * |numeric|; plain central difference "
       << m.central << ")";
    FAIL_CHECK(os.str());
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO(opts.name, ": input ", i, " of shape ", shape_str(inputs[i].shape()), ", ", res.compared[i],
         " Jacobian entries compared");
    CHECK(res.mismatches[i] == 0);
  }
  return res;
}

}  // namespace crayon::testing
