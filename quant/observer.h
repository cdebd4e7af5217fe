#pragma once
// Observers (calibrators): watch the tensors that flow through a point of the network and
// choose the grid for it (DESIGN.md, idea 2). Each one accumulates statistics in observe()
// and exposes the scale and zero point it chooses in qparams().
//
//   minmax      the running min and max; per-tensor or per-channel (spec.axis), the usual
//               choice for weights (per-channel, symmetric)
//   ema         the same with an exponential moving average of each batch's min and max:
//               m <- m + c * (batch_m - m), c = 0.01 (PyTorch MovingAverageMinMaxObserver's
//               default averaging_constant); the first batch sets m
//   percentile  clips |x| at its p-th percentile (p = 99.99 by default)
//   mse         the clip threshold, among 100 candidates, with the least squared error
//   kl          TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT",
//               GTC 2017): the threshold whose quantized histogram is closest in KL divergence
//
// The last three are per-tensor only (spec.axis must be -1) and choose a threshold a on |x|;
// their range is then the observed [min, max] (extended to hold 0) cut to [-a, a],
// turned into a scale and zero point by choose_qparams (symmetric: scale = a / qmax when the
// larger side is clipped). threshold() reports a.
//
// state() / load_state() expose every statistic as named float32 tensors for checkpoints, so
// a restored observer chooses the same qparams and continues as an uninterrupted one would.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "quant/quant_spec.h"

namespace crayon {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Observer {
 public:
  explicit Observer(const QuantSpec& spec);  // validates spec
  virtual ~Observer() = default;
  // Accumulate statistics of x (any shape; per-channel observers need x.size(axis) channels,
  // the same number every call). Throws std::invalid_argument for a non-finite value.
  virtual void observe(const Tensor& x) = 0;
  // The chosen grid; throws std::logic_error before the first observe().
  virtual QParams qparams() const = 0;
  virtual std::string name() const = 0;  // the factory name
  virtual NamedTensors state() const = 0;
  // Throws std::invalid_argument naming a missing or malformed entry.
  virtual void load_state(const NamedTensors& state) = 0;

  const QuantSpec& spec() const { return spec_; }
  bool has_observed() const { return observed_; }

 protected:
  void require_observed() const;
  QuantSpec spec_;
  bool observed_ = false;
};

class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(const QuantSpec& spec) : Observer(spec) {}
  void observe(const Tensor& x) override;
  QParams qparams() const override;
  std::string name() const override { return "minmax"; }
  NamedTensors state() const override;  // "min", "max": (C,) ((0,) before any observe)
  void load_state(const NamedTensors& state) override;
  const std::vector<float>& min() const { return min_; }
  const std::vector<float>& max() const { return max_; }

 protected:
  // How a batch's range enters the running one (here: min of mins, max of maxes).
  virtual void combine(const Ranges& batch);
  std::vector<float> min_, max_;
};

class MovingAverageMinMaxObserver : public MinMaxObserver {
 public:
  explicit MovingAverageMinMaxObserver(const QuantSpec& spec, float averaging_constant = 0.01f);
  std::string name() const override { return "ema"; }

 protected:
  void combine(const Ranges& batch) override;
  float c_;
};

// Base of the per-tensor threshold observers: tracks the exact observed min and max.
class ThresholdObserver : public Observer {
 public:
  QParams qparams() const override;
  float threshold() const;  // a, in [0, max |x|]; throws before any observe()

 protected:
  ThresholdObserver(const QuantSpec& spec, const char* who);
  void update_range(const Tensor& x);  // also validates x (finite, non-empty)
  virtual float compute_threshold() const = 0;
  QParams qparams_for(float a) const;  // the range cut to [-a, a]
  float max_abs() const { return std::max(-min_, max_); }
  NamedTensors range_state() const;
  void load_range_state(const NamedTensors& state);
  float min_ = 0.f, max_ = 0.f;
};

// A uniform random sample of everything observed, at most `capacity` values (reservoir
// sampling, Vitter 1985, "Random sampling with a reservoir", Algorithm R): exact while fewer
// than capacity values have been seen. Its generator is seeded, so runs are reproducible.
class SampleReservoir {
 public:
  explicit SampleReservoir(size_t capacity = size_t(1) << 16, uint64_t seed = 0x5eed);
  void add(std::span<const float> values);
  const std::vector<float>& samples() const { return samples_; }
  uint64_t seen() const { return seen_; }
  NamedTensors state() const;  // "samples" (n,), "seen" and "rng" as int32 words
  void load_state(const NamedTensors& state, const char* who);

 private:
  size_t capacity_;
  std::vector<float> samples_;
  uint64_t seen_ = 0;
  Rng rng_;
};

// Percentile: a = the p-th percentile of |x| by the nearest-rank definition: with the n
// sampled magnitudes sorted ascending, a = m_(k), k = ceil(p / 100 * n) (1-based), i.e. the
// smallest sampled magnitude with at least p % of them <= a. Exact while at most 65536 values
// have been observed, else a percentile of the reservoir sample.
class PercentileObserver : public ThresholdObserver {
 public:
  explicit PercentileObserver(const QuantSpec& spec, double percentile = 99.99);
  void observe(const Tensor& x) override;
  std::string name() const override { return "percentile"; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  double percentile() const { return p_; }

 protected:
  float compute_threshold() const override;
  double p_;
  SampleReservoir reservoir_;
};

// MSE-optimal clipping: candidates a_k = (k / steps) * max|x|, k = 1..steps (steps = 100);
// a minimizes the sum of squared errors (x - x_hat)^2 over the sample (error.h), quantized
// with round-to-nearest-even (stochastic rounding is replaced by it for the search). Ties go
// to the larger a.
class MseObserver : public ThresholdObserver {
 public:
  explicit MseObserver(const QuantSpec& spec, int steps = 100);
  void observe(const Tensor& x) override;
  std::string name() const override { return "mse"; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  float ratio() const { return max_abs() > 0.f ? threshold() / max_abs() : 1.f; }

 protected:
  float compute_threshold() const override;
  int steps_;
  SampleReservoir reservoir_;
};

// KL / entropy calibration (TensorRT; Migacz, GTC 2017, slides 29-36):
//   histogram of |x|: B = 2048 bins of width w over [0, R]; when a later batch exceeds R, R
//   doubles and adjacent bin pairs merge (exact, no re-interpolation).
//   for i in [L, B], L = 2^(bits-1) levels (128 for int8):
//     P = hist[0 .. i), with the outliers sum(hist[i .. B)) added to P[i-1]
//     Q = hist[0 .. i) merged into L groups of i / L bins (the last group takes the
//         remainder), each group's count spread evenly over its bins where P is nonzero
//     divergence[i] = KL(P || Q) after normalizing both (infinite if Q = 0 where P > 0)
//   m = argmin divergence,  a = min((m + 0.5) * w, max|x|)
class KlObserver : public ThresholdObserver {
 public:
  static constexpr int kBins = 2048;
  explicit KlObserver(const QuantSpec& spec);
  void observe(const Tensor& x) override;
  std::string name() const override { return "kl"; }
  NamedTensors state() const override;  // + "histogram" (2048,), "range" (1,)
  void load_state(const NamedTensors& state) override;
  const std::vector<double>& histogram() const { return hist_; }
  float histogram_range() const { return range_; }

 protected:
  float compute_threshold() const override;
  std::vector<double> hist_;
  float range_ = 0.f;
};

// "minmax", "ema", "percentile" (or "percentile:P", e.g. "percentile:99.9"), "mse", "kl";
// anything else throws std::invalid_argument listing the choices.
std::unique_ptr<Observer> make_observer(const std::string& name, const QuantSpec& spec);

}  // namespace crayon
