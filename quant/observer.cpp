#include "quant/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/check.h"
#include "core/parse.h"
#include "core/replicas.h"
#include "quant/error.h"

namespace crayon {

namespace {

const Tensor& find_entry(const NamedTensors& state, const std::string& key, const std::string& who) {
  for (const auto& [name, t] : state)
    if (name == key) return t;
  throw std::invalid_argument(str(who, ": state has no entry '", key, "'"));
}

// A float32 entry of the given numel (or any, if numel < 0), as a vector.
std::vector<float> float_entry(const NamedTensors& state, const std::string& key, const std::string& who,
                               int64_t numel = -1) {
  const Tensor& t = find_entry(state, key, who);
  if (t.dtype() != DType::f32 || t.ndim() != 1 || (numel >= 0 && t.numel() != numel))
    throw std::invalid_argument(str(who, ": state entry '", key, "' is ", dtype_name(t.dtype()), " of shape ",
                                    shape_str(t.shape()), ", expected float32 of shape (",
                                    numel >= 0 ? std::to_string(numel) : std::string("n"), ",)"));
  std::vector<float> v(t.values().begin(), t.values().end());
  for (float f : v)
    if (!std::isfinite(f)) throw std::invalid_argument(str(who, ": state entry '", key, "' holds ", f));
  return v;
}

Tensor vector_tensor(const std::vector<float>& v) { return Tensor::from({int64_t(v.size())}, v); }

// uint64 words stored as pairs of int32 (low, high), since tensors hold no 64-bit integers.
Tensor words_tensor(const std::vector<uint64_t>& words) {
  std::vector<int32_t> w;
  for (uint64_t u : words) {
    w.push_back(int32_t(uint32_t(u)));
    w.push_back(int32_t(uint32_t(u >> 32)));
  }
  return Tensor::from_i32({int64_t(w.size())}, w);
}

std::vector<uint64_t> words_entry(const NamedTensors& state, const std::string& key, const std::string& who,
                                  size_t count) {
  const Tensor& t = find_entry(state, key, who);
  if (t.dtype() != DType::i32 || t.numel() != int64_t(2 * count))
    throw std::invalid_argument(str(who, ": state entry '", key, "' is ", dtype_name(t.dtype()), " of shape ",
                                    shape_str(t.shape()), ", expected int32 of shape (", 2 * count, ",)"));
  const int32_t* p = t.data_as<int32_t>();
  std::vector<uint64_t> out(count);
  for (size_t i = 0; i < count; ++i)
    out[i] = uint64_t(uint32_t(p[2 * i])) | (uint64_t(uint32_t(p[2 * i + 1])) << 32);
  return out;
}

}  // namespace

// ---------------------------------------------------------------- Observer

Observer::Observer(const QuantSpec& spec) : spec_(spec) { spec_.validate(); }

void Observer::require_observed() const {
  if (!observed_) throw std::logic_error(str(name(), " observer: qparams() asked before any observe()"));
}

// ---------------------------------------------------------------- min-max

void MinMaxObserver::observe(const Tensor& x) {
  Ranges batch = tensor_ranges(x, spec_.axis);  // validates axis and finiteness
  // Data-parallel replicas observe the global batch's range (core/replicas.h).
  if (Replicas* r = active_replicas()) {
    r->min(batch.min);
    r->max(batch.max);
  }
  if (observed_ && batch.min.size() != min_.size())
    throw std::invalid_argument(str(name(), " observer: ", batch.min.size(), " channels along axis ", spec_.axis,
                                    " of ", shape_str(x.shape()), ", but earlier batches had ", min_.size()));
  if (!observed_) {
    min_ = batch.min;
    max_ = batch.max;
  } else {
    combine(batch);
  }
  observed_ = true;
}

void MinMaxObserver::combine(const Ranges& batch) {
  for (size_t c = 0; c < min_.size(); ++c) {
    min_[c] = std::min(min_[c], batch.min[c]);
    max_[c] = std::max(max_[c], batch.max[c]);
  }
}

QParams MinMaxObserver::qparams() const {
  require_observed();
  if (spec_.axis < 0) return choose_qparams(min_[0], max_[0], spec_);
  return choose_qparams(min_, max_, spec_);
}

NamedTensors MinMaxObserver::state() const { return {{"min", vector_tensor(min_)}, {"max", vector_tensor(max_)}}; }

void MinMaxObserver::load_state(const NamedTensors& state) {
  const std::string who = name() + " observer";
  std::vector<float> mn = float_entry(state, "min", who), mx = float_entry(state, "max", who);
  if (mn.size() != mx.size() || (spec_.axis < 0 && mn.size() > 1))
    throw std::invalid_argument(str(who, ": state has ", mn.size(), " mins and ", mx.size(), " maxs"));
  for (size_t c = 0; c < mn.size(); ++c)
    if (mn[c] > mx[c]) throw std::invalid_argument(str(who, ": state min ", mn[c], " > max ", mx[c]));
  min_ = std::move(mn);
  max_ = std::move(mx);
  observed_ = !min_.empty();
}

MovingAverageMinMaxObserver::MovingAverageMinMaxObserver(const QuantSpec& spec, float averaging_constant)
    : MinMaxObserver(spec), c_(averaging_constant) {
  if (!(c_ > 0.f && c_ <= 1.f))
    throw std::invalid_argument(str("ema observer: averaging constant must be in (0, 1], got ", c_));
}

void MovingAverageMinMaxObserver::combine(const Ranges& batch) {
  for (size_t c = 0; c < min_.size(); ++c) {
    min_[c] += c_ * (batch.min[c] - min_[c]);
    max_[c] += c_ * (batch.max[c] - max_[c]);
  }
}

// ---------------------------------------------------------------- threshold observers

ThresholdObserver::ThresholdObserver(const QuantSpec& spec, const char* who) : Observer(spec) {
  if (spec.axis >= 0)
    throw std::invalid_argument(str(who, " observer is per-tensor only, spec has axis ", spec.axis,
                                    " (use minmax for per-channel weights)"));
}

void ThresholdObserver::update_range(const Tensor& x) {
  // A sample or histogram per replica would choose a different grid on each one.
  if (Replicas* rep = active_replicas(); rep && rep->size() > 1)
    throw std::invalid_argument(str(name(), " observer: its statistics are not combined across the ", rep->size(),
                                    " data-parallel ranks; use the minmax or ema observer there"));
  const Ranges r = tensor_ranges(x, -1);
  min_ = observed_ ? std::min(min_, r.min[0]) : r.min[0];
  max_ = observed_ ? std::max(max_, r.max[0]) : r.max[0];
}

float ThresholdObserver::threshold() const {
  require_observed();
  return std::clamp(compute_threshold(), 0.f, max_abs());
}

QParams ThresholdObserver::qparams_for(float a) const {
  // The range always holds 0 (choose_qparams would extend it anyway); cut it to [-a, a].
  return choose_qparams(std::max(std::min(min_, 0.f), -a), std::min(std::max(max_, 0.f), a), spec_);
}

QParams ThresholdObserver::qparams() const { return qparams_for(threshold()); }

NamedTensors ThresholdObserver::range_state() const {
  if (!observed_) return {{"min", Tensor::zeros({0})}, {"max", Tensor::zeros({0})}};
  return {{"min", Tensor::from({1}, {min_})}, {"max", Tensor::from({1}, {max_})}};
}

void ThresholdObserver::load_range_state(const NamedTensors& state) {
  const std::string who = name() + " observer";
  const std::vector<float> mn = float_entry(state, "min", who), mx = float_entry(state, "max", who);
  if (mn.size() != mx.size() || mn.size() > 1 || (!mn.empty() && mn[0] > mx[0]))
    throw std::invalid_argument(str(who, ": malformed min/max in state"));
  observed_ = !mn.empty();
  min_ = observed_ ? mn[0] : 0.f;
  max_ = observed_ ? mx[0] : 0.f;
}

// ---------------------------------------------------------------- reservoir

SampleReservoir::SampleReservoir(size_t capacity, uint64_t seed) : capacity_(capacity), rng_(seed) {}

void SampleReservoir::add(std::span<const float> values) {
  for (float v : values) {
    if (samples_.size() < capacity_) {
      samples_.push_back(v);
    } else {
      // Algorithm R: the (seen+1)-th value replaces a random slot with probability capacity/(seen+1).
      const uint64_t j = rng_.below(seen_ + 1);
      if (j < capacity_) samples_[size_t(j)] = v;
    }
    ++seen_;
  }
}

NamedTensors SampleReservoir::state() const {
  const auto s = rng_.state();
  return {{"samples", vector_tensor(samples_)},
          {"seen", words_tensor({seen_})},
          {"rng", words_tensor({s[0], s[1], s[2], s[3]})}};
}

void SampleReservoir::load_state(const NamedTensors& state, const char* who) {
  std::vector<float> samples = float_entry(state, "samples", who);
  const uint64_t seen = words_entry(state, "seen", who, 1)[0];
  const std::vector<uint64_t> s = words_entry(state, "rng", who, 4);
  if (samples.size() > capacity_ || samples.size() != std::min<uint64_t>(seen, capacity_))
    throw std::invalid_argument(str(who, ": state has ", samples.size(), " samples of ", seen,
                                    " seen values (capacity ", capacity_, ")"));
  samples_ = std::move(samples);
  seen_ = seen;
  rng_.set_state({s[0], s[1], s[2], s[3]});
}

// ---------------------------------------------------------------- percentile

PercentileObserver::PercentileObserver(const QuantSpec& spec, double percentile)
    : ThresholdObserver(spec, "percentile"), p_(percentile) {
  if (!(p_ > 0.0 && p_ <= 100.0))
    throw std::invalid_argument(str("percentile observer: percentile must be in (0, 100], got ", p_));
}

void PercentileObserver::observe(const Tensor& x) {
  update_range(x);
  reservoir_.add(x.values());
  observed_ = true;
}

float PercentileObserver::compute_threshold() const {
  std::vector<float> m(reservoir_.samples());
  for (float& v : m) v = std::fabs(v);
  const size_t n = m.size();
  const size_t k = std::clamp<size_t>(size_t(std::ceil(p_ / 100.0 * double(n))), 1, n);  // nearest rank
  std::nth_element(m.begin(), m.begin() + ptrdiff_t(k - 1), m.end());
  return m[k - 1];
}

NamedTensors PercentileObserver::state() const {
  NamedTensors s = range_state();
  for (auto& e : reservoir_.state()) s.push_back(std::move(e));
  return s;
}

void PercentileObserver::load_state(const NamedTensors& state) {
  load_range_state(state);
  reservoir_.load_state(state, "percentile observer");
}

// ---------------------------------------------------------------- MSE

MseObserver::MseObserver(const QuantSpec& spec, int steps) : ThresholdObserver(spec, "mse"), steps_(steps) {
  if (steps_ < 1) throw std::invalid_argument(str("mse observer: steps must be >= 1, got ", steps_));
}

void MseObserver::observe(const Tensor& x) {
  update_range(x);
  reservoir_.add(x.values());
  observed_ = true;
}

float MseObserver::compute_threshold() const {
  const float top = max_abs();
  if (top == 0.f) return 0.f;
  const std::vector<float>& s = reservoir_.samples();
  const Tensor sample = Tensor::from({int64_t(s.size())}, s);
  QuantSpec det = spec_;
  if (det.rounding == Rounding::stochastic) det.rounding = Rounding::nearest_even;
  float best_a = top;
  double best = std::numeric_limits<double>::infinity();
  for (int k = steps_; k >= 1; --k) {  // from the top, so ties keep the larger threshold
    const float a = top * float(k) / float(steps_);
    const double sse = decompose_error(sample, qparams_for(a), det).total_sse();
    if (sse < best) {
      best = sse;
      best_a = a;
    }
  }
  return best_a;
}

NamedTensors MseObserver::state() const {
  NamedTensors s = range_state();
  for (auto& e : reservoir_.state()) s.push_back(std::move(e));
  return s;
}

void MseObserver::load_state(const NamedTensors& state) {
  load_range_state(state);
  reservoir_.load_state(state, "mse observer");
}

// ---------------------------------------------------------------- KL

KlObserver::KlObserver(const QuantSpec& spec) : ThresholdObserver(spec, "kl"), hist_(kBins, 0.0) {}

void KlObserver::observe(const Tensor& x) {
  update_range(x);
  const float top = max_abs();
  if (range_ == 0.f) {
    range_ = top;  // the first nonzero range (earlier all-zero values sit in bin 0 either way)
  } else {
    while (range_ < top) {  // double the range: bin pairs merge exactly
      for (int j = 0; j < kBins / 2; ++j) hist_[size_t(j)] = hist_[size_t(2 * j)] + hist_[size_t(2 * j + 1)];
      std::fill(hist_.begin() + kBins / 2, hist_.end(), 0.0);
      range_ *= 2.f;
    }
  }
  for (float v : x.values()) {
    const float m = std::fabs(v);
    const int b = range_ > 0.f ? int(double(m) / double(range_) * kBins) : 0;
    hist_[size_t(std::min(b, kBins - 1))] += 1.0;
  }
  observed_ = true;
}

float KlObserver::compute_threshold() const {
  if (range_ == 0.f) return 0.f;
  const int levels = 1 << (spec_.bits - 1);
  const double width = double(range_) / kBins;
  std::vector<double> p, q;
  double best = std::numeric_limits<double>::infinity();
  int best_i = kBins;
  double outliers = 0;
  for (int i = kBins; i > levels; --i) outliers += hist_[size_t(i - 1)];  // sum(hist[levels .. B))
  for (int i = levels; i <= kBins; ++i) {
    if (i > levels) outliers -= hist_[size_t(i - 1)];  // now sum(hist[i .. B))
    p.assign(hist_.begin(), hist_.begin() + i);
    p[size_t(i - 1)] += outliers;
    // Q: hist[0 .. i) merged into `levels` groups, then expanded over the nonzero bins of P.
    q.assign(size_t(i), 0.0);
    const int per = i / levels;
    for (int g = 0; g < levels; ++g) {
      const int lo = g * per, hi = g == levels - 1 ? i : lo + per;
      double total = 0;
      int nonzero = 0;
      for (int k = lo; k < hi; ++k) {
        total += hist_[size_t(k)];
        nonzero += p[size_t(k)] > 0 ? 1 : 0;
      }
      for (int k = lo; k < hi; ++k)
        if (p[size_t(k)] > 0) q[size_t(k)] = total / nonzero;
    }
    double sp = 0, sq = 0;
    for (int k = 0; k < i; ++k) {
      sp += p[size_t(k)];
      sq += q[size_t(k)];
    }
    if (sp == 0 || sq == 0) continue;
    double kl = 0;
    for (int k = 0; k < i && std::isfinite(kl); ++k) {
      const double pk = p[size_t(k)] / sp, qk = q[size_t(k)] / sq;
      if (pk > 0) kl = qk > 0 ? kl + pk * std::log(pk / qk) : std::numeric_limits<double>::infinity();
    }
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return float(std::min((best_i + 0.5) * width, double(max_abs())));
}

NamedTensors KlObserver::state() const {
  NamedTensors s = range_state();
  s.emplace_back("histogram", vector_tensor(std::vector<float>(hist_.begin(), hist_.end())));
  s.emplace_back("range", Tensor::from({1}, {range_}));
  return s;
}

void KlObserver::load_state(const NamedTensors& state) {
  const std::vector<float> h = float_entry(state, "histogram", "kl observer", kBins);
  const float r = float_entry(state, "range", "kl observer", 1)[0];
  for (float c : h)
    if (c < 0) throw std::invalid_argument(str("kl observer: negative histogram count ", c, " in state"));
  if (r < 0) throw std::invalid_argument(str("kl observer: negative histogram range ", r, " in state"));
  load_range_state(state);
  hist_.assign(h.begin(), h.end());
  range_ = r;
}

// ---------------------------------------------------------------- factory

std::unique_ptr<Observer> make_observer(const std::string& name, const QuantSpec& spec) {
  if (name == "minmax") return std::make_unique<MinMaxObserver>(spec);
  if (name == "ema") return std::make_unique<MovingAverageMinMaxObserver>(spec);
  if (name == "percentile") return std::make_unique<PercentileObserver>(spec);
  if (name.rfind("percentile:", 0) == 0) {
    const std::string v = name.substr(11);
    double p = 0;
    if (!parse_number(v, p))
      throw std::invalid_argument(one_line(str("observer '", name, "': '", v, "' is not a number")));
    return std::make_unique<PercentileObserver>(spec, p);
  }
  if (name == "mse") return std::make_unique<MseObserver>(spec);
  if (name == "kl") return std::make_unique<KlObserver>(spec);
  throw std::invalid_argument(
      one_line(str("unknown observer '", name, "' (expected minmax, ema, percentile, percentile:P, mse or kl)")));
}

}  // namespace crayon
