#pragma once
// One finite-difference gradient check for every op and every layer (flashlight's
// AutogradTestUtils, tinygrad's helper_test_op): the FULL Jacobian of fn at the given
// inputs, computed two ways and compared element by element.
//
//   numeric  column k of input i:  J[:, k] = (f(x + h e_k) - f(x - h e_k)) / (2h)
//            (central differences; the difference of the two float outputs is taken in
//            double, and h is the step actually stored after rounding x +- eps to float)
//   analytic row j:                J[j, :] = grad of x after out.backward(one_hot(j)),
//            each row from a fresh forward pass on fresh leaf Variables, so nothing
//            accumulates between rows.
//
// Tolerances, for float32 forward passes. An element passes when
//     |analytic - numeric| <= atol + rtol * |numeric|,   eps = 1e-2, atol = 2e-3, rtol = 1e-2.
// Why these suit float32:
//   - rounding: each output carries a relative error of a few ulps (~1e-7 x |y|); divided
//     by the step 2*eps = 2e-2 that is ~1e-5 x |y| of noise in the numeric derivative, so
//     outputs up to |y| ~ 10 stay well inside atol. (eps = 1e-3 would make it ~1e-4 x |y|,
//     too close to atol for sums over many elements.)
//   - truncation: central differences err by eps^2/6 * f''' ~ 2e-5 * f''', below rtol as
//     long as the inputs keep f''' moderate (log/sqrt/pow away from 0, sigmoid/tanh/exp on
//     O(1) inputs) and stay at least 5*eps away from kinks (relu at 0, relu6 at 0 and 6,
//     clamp bounds, ties in max) so neither step crosses one.
//   - power: a gradient off by a factor 2, with the wrong sign, or missing a term whose size
//     is a few percent of the total fails by orders of magnitude; the self-tests in
//     test_gradients.cpp show the check failing on deliberately wrong backward functions.
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
  float eps = 1e-2f;
  double atol = 2e-3;
  double rtol = 1e-2;
  // Which inputs are differentiated (others are passed as constants, requires_grad false).
  // Empty: all of them.
  std::vector<bool> wrt = {};
  int max_reports = 4;  // mismatching elements reported per input
};

struct GradMismatch {
  int input;
  int64_t out_index, in_index;  // flat indices
  double analytic, numeric;
};

struct GradCheckResult {
  std::vector<int64_t> compared;    // Jacobian entries compared, per input
  std::vector<int64_t> mismatches;  // entries out of tolerance, per input
  std::vector<GradMismatch> first;  // the first max_reports mismatches of each input
  bool output_finite = true;
  bool output_requires_grad = true;
  double max_abs_err = 0;
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

  // Numeric Jacobians, J[i] is (M, numel_i), row-major in double.
  std::vector<std::vector<double>> numeric(n_in);
  for (size_t i = 0; i < n_in; ++i) {
    if (!wants(i)) continue;
    const int64_t N = x[i].numel();
    numeric[i].assign(size_t(M * N), 0.0);
    float* p = x[i].data();
    for (int64_t k = 0; k < N; ++k) {
      const float orig = p[k];
      const float hi = orig + opts.eps, lo = orig - opts.eps;
      Tensor y_hi, y_lo;
      {
        NoGradGuard no_grad;
        p[k] = hi;
        y_hi = forward(false).value().clone();
        p[k] = lo;
        y_lo = forward(false).value().clone();
      }
      p[k] = orig;
      const double step = double(hi) - double(lo);
      for (int64_t j = 0; j < M; ++j)
        numeric[i][size_t(j * N + k)] = (double(y_hi.data()[j]) - double(y_lo.data()[j])) / step;
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
        const double err = std::fabs(a - n);
        res.max_abs_err = std::max(res.max_abs_err, std::isnan(err) ? INFINITY : err);
        ++res.compared[i];
        if (!(err <= opts.atol + opts.rtol * std::fabs(n))) {  // NaN fails too
          ++res.mismatches[i];
          if (reported++ < opts.max_reports) res.first.push_back({int(i), j, k, a, n});
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
       << " > " << opts.atol << " + " << opts.rtol << " * |numeric|)";
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
