// Observers choose the documented scale on hand-made tensors (DESIGN.md, idea 2): min-max per
// tensor and per channel, the moving average, percentile ignoring a planted outlier, MSE
// clipping beating min-max on heavy-tailed data, KL picking a threshold inside the range.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "quant/error.h"
#include "quant/fake_quant.h"
#include "quant/observer.h"
#include "tests/support/tensors.h"

using namespace crayon;

namespace {

QuantSpec make_spec(int bits, bool symmetric, int axis = -1) {
  QuantSpec s;
  s.bits = bits;
  s.symmetric = symmetric;
  s.axis = axis;
  return s;
}

// Laplace(0, b) by inverting its CDF: heavy tails (max of n draws ~ b ln n).
Tensor laplace(int64_t n, uint64_t seed, float b = 1.f) {
  Rng rng(seed);
  Tensor t = Tensor::empty({n});
  for (float& v : t.values()) {
    const double u = double(rng.uniform()) - 0.5;  // [-0.5, 0.5)
    v = float(-b * (u < 0 ? -1 : 1) * std::log(1 - 2 * std::fabs(u)));
  }
  return t;
}

bool same_qparams(const QParams& a, const QParams& b) {
  return a.scale == b.scale && a.zero_point == b.zero_point && a.axis == b.axis;
}

}  // namespace

TEST_CASE("minmax observer: per tensor, the scale spans the running min and max over all batches") {
  MinMaxObserver obs(make_spec(8, true));
  obs.observe(Tensor::from({2}, {-3.f, 1.f}));
  obs.observe(Tensor::from({2, 1}, {2.54f, 0.5f}));
  const QParams qp = obs.qparams();
  CHECK(qp.scale == std::vector<float>{3.f / 127.f});
  CHECK(qp.zero_point == std::vector<int32_t>{0});
  CHECK(qp.axis == -1);

  MinMaxObserver affine(make_spec(8, false));
  affine.observe(Tensor::from({3}, {-1.f, 0.f, 3.f}));
  CHECK(affine.qparams().scale[0] == float(4.0 / 255.0));
  CHECK(affine.qparams().zero_point[0] == -64);
}

TEST_CASE("minmax observer: per channel, each output channel gets max|w_c| / 127") {
  MinMaxObserver obs(make_spec(8, true, 0));
  const Tensor w = Tensor::from({3, 4}, {0.5f, -0.2f, 0.1f, 0.f,    //
                                         -2.f, 1.f, 0.3f, 1.5f,     //
                                         0.01f, -0.005f, 0.f, 0.f});
  obs.observe(w);
  const QParams qp = obs.qparams();
  CHECK(qp.axis == 0);
  CHECK(qp.scale == std::vector<float>{0.5f / 127.f, 2.f / 127.f, 0.01f / 127.f});
  CHECK(qp.zero_point == std::vector<int32_t>{0, 0, 0});
  CHECK_THROWS_WITH_AS(obs.observe(Tensor::zeros({2, 4})), doctest::Contains("earlier batches had 3"),
                       std::invalid_argument);
}

TEST_CASE("ema observer: the first batch sets the range, later ones move it by 1 % of the difference") {
  MovingAverageMinMaxObserver obs(make_spec(8, true));
  obs.observe(Tensor::from({2}, {-1.f, 1.f}));
  CHECK(obs.qparams().scale[0] == 1.f / 127.f);
  obs.observe(Tensor::from({2}, {-2.f, 2.f}));
  CHECK(obs.min()[0] == doctest::Approx(-1.01));
  CHECK(obs.max()[0] == doctest::Approx(1.01));
  CHECK(obs.qparams().scale[0] == doctest::Approx(1.01 / 127).epsilon(1e-6));
  CHECK(obs.name() == "ema");
}

TEST_CASE("percentile observer: the threshold is the nearest-rank percentile of |x|") {
  PercentileObserver half(make_spec(8, true), 50.0);
  half.observe(Tensor::from({10}, {-1.f, 2.f, -3.f, 4.f, -5.f, 6.f, -7.f, 8.f, -9.f, 10.f}));
  CHECK(half.threshold() == 5.f);  // k = ceil(0.5 * 10) = 5
  CHECK(half.qparams().scale[0] == 5.f / 127.f);
  PercentileObserver p85(make_spec(8, true), 85.0);
  p85.observe(Tensor::from({10}, {-1.f, 2.f, -3.f, 4.f, -5.f, 6.f, -7.f, 8.f, -9.f, 10.f}));
  CHECK(p85.threshold() == 9.f);  // k = ceil(8.5) = 9
}

TEST_CASE("percentile observer: the 99.9th percentile ignores a planted outlier that min-max follows") {
  // 9999 values with |x| = k / 9999 (alternating signs) and one outlier 1000.
  Tensor x = Tensor::empty({10000});
  for (int k = 1; k <= 9999; ++k) x.data()[k - 1] = (k % 2 ? 1.f : -1.f) * float(k) / 9999.f;
  x.data()[9999] = 1000.f;
  PercentileObserver pct(make_spec(8, true), 99.9);
  MinMaxObserver mm(make_spec(8, true));
  pct.observe(x);
  mm.observe(x);
  CHECK(pct.threshold() <= 1.f);
  CHECK(pct.threshold() >= 0.998f);
  CHECK(pct.qparams().scale[0] <= 1.f / 127.f);
  CHECK(mm.qparams().scale[0] == 1000.f / 127.f);
  // Affine on ReLU-like data: the range becomes [0, threshold].
  Tensor relu = x.clone();
  for (float& v : relu.values()) v = std::fabs(v);
  PercentileObserver pa(make_spec(8, false), 99.9);
  pa.observe(relu);
  CHECK(pa.qparams().zero_point[0] == -128);
  CHECK(pa.qparams().scale[0] == doctest::Approx(pa.threshold() / 255.0).epsilon(1e-6));
}

TEST_CASE("mse observer: on heavy-tailed data, its clipping beats min-max and is the best of the sweep") {
  const Tensor x = laplace(20000, 12);
  const QuantSpec spec = make_spec(4, true);
  MseObserver mse(spec);
  MinMaxObserver mm(spec);
  mse.observe(x.slice(0, 10000));
  mse.observe(x.slice(10000, 20000));
  mm.observe(x);
  const double e_mse = decompose_error(x, mse.qparams(), spec).total_sse();
  const double e_mm = decompose_error(x, mm.qparams(), spec).total_sse();
  INFO("mse ratio ", mse.ratio(), ": sse ", e_mse, " vs min-max ", e_mm);
  CHECK(mse.ratio() < 0.8f);
  CHECK(e_mse < 0.6 * e_mm);
  std::vector<float> ratios;
  for (int k = 1; k <= 100; ++k) ratios.push_back(float(k) / 100.f);
  for (const ClipPoint& p : clip_sweep(x, spec, ratios)) {
    INFO("ratio ", p.ratio);
    CHECK(e_mse <= p.error.total_sse() * (1 + 1e-4));
  }
}

TEST_CASE("kl observer: on heavy-tailed data the entropy threshold lies strictly inside the range") {
  const Tensor x = laplace(100000, 3);
  KlObserver kl(make_spec(8, true));
  kl.observe(x);
  MinMaxObserver mm(make_spec(8, true));
  mm.observe(x);
  const float max_abs = mm.qparams().scale[0] * 127.f;
  INFO("threshold ", kl.threshold(), " of max|x| ", max_abs);
  CHECK(kl.threshold() < 0.9f * max_abs);
  CHECK(kl.threshold() > 0.2f * max_abs);
  CHECK(kl.qparams().scale[0] == doctest::Approx(kl.threshold() / 127.0).epsilon(1e-6));
}

TEST_CASE("kl observer: on uniform data, where clipping only hurts, the threshold keeps nearly the whole range") {
  const Tensor x = crayon::testing::uniform({100000}, 6, -1.f, 1.f);
  KlObserver kl(make_spec(8, true));
  kl.observe(x);
  INFO("threshold ", kl.threshold());
  CHECK(kl.threshold() >= 0.95f);
  CHECK(kl.threshold() <= 1.f);
}

TEST_CASE("kl observer: a growing range doubles the histogram exactly, as if binned at the final width") {
  // First batch: max |x| = 1 sets the range to 1; the second has max 4, so the range doubles
  // twice (bin pairs merge) to 4. Binning everything at once with range 4 gives the same
  // histogram, except for the first batch's top value 1.0: it sat in the last (closed) bin
  // [1 - w, 1] and, after merging, in [1 - 4w, 1), while direct binning puts the edge value 1.0
  // in the next bin [1, 1 + 4w).
  KlObserver grown(make_spec(8, true)), direct(make_spec(8, true));
  grown.observe(Tensor::from({4}, {1.f, -0.3f, 0.7f, 0.001f}));
  CHECK(grown.histogram_range() == 1.f);
  grown.observe(Tensor::from({4}, {-4.f, 2.5f, 0.2f, 3.9f}));
  direct.observe(Tensor::from({8}, {-4.f, 2.5f, 0.2f, 3.9f, 1.f, -0.3f, 0.7f, 0.001f}));
  CHECK(grown.histogram_range() == 4.f);
  CHECK(direct.histogram_range() == 4.f);
  std::vector<double> moved = direct.histogram();
  moved[512] -= 1;  // 1.0 / 4 * 2048 = 512
  moved[511] += 1;
  CHECK(grown.histogram() == moved);
  double total = 0;
  for (double c : grown.histogram()) total += c;
  CHECK(total == 8.0);
}

TEST_CASE("observers: a restored state gives the same qparams and continues like an uninterrupted run") {
  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"}) {
    INFO("observer ", name);
    const QuantSpec spec = make_spec(8, false);
    auto a = make_observer(name, spec), b = make_observer(name, spec);
    CHECK(a->name() == name);
    // 3 x 30000 values: the reservoir (65536) fills and then starts replacing.
    a->observe(laplace(30000, 1));
    a->observe(laplace(30000, 2));
    b->load_state(a->state());
    CHECK(same_qparams(a->qparams(), b->qparams()));
    a->observe(laplace(30000, 3, 2.f));
    b->observe(laplace(30000, 3, 2.f));
    CHECK(same_qparams(a->qparams(), b->qparams()));
  }
  MinMaxObserver pc(make_spec(8, true, 1)), pc2(make_spec(8, true, 1));
  pc.observe(crayon::testing::uniform({2, 5, 3}, 4));
  pc2.load_state(pc.state());
  CHECK(same_qparams(pc.qparams(), pc2.qparams()));
}

TEST_CASE("observers: misuse is rejected with a message naming what is wrong") {
  MinMaxObserver mm(make_spec(8, true));
  CHECK_THROWS_AS(mm.qparams(), std::logic_error);
  CHECK_THROWS_WITH_AS(mm.observe(Tensor::from({3}, {1.f, NAN, 2.f})), doctest::Contains("index 1"),
                       std::invalid_argument);
  CHECK_THROWS_AS(mm.observe(Tensor::zeros({0})), std::invalid_argument);
  CHECK_THROWS_WITH_AS(mm.load_state({{"min", Tensor::from({1}, {0.f})}}), doctest::Contains("'max'"),
                       std::invalid_argument);
  CHECK_THROWS_AS(mm.load_state({{"min", Tensor::from({1}, {2.f})}, {"max", Tensor::from({1}, {1.f})}}),
                  std::invalid_argument);
  KlObserver kl(make_spec(8, true));
  CHECK_THROWS_AS(kl.load_state({{"min", Tensor::from({1}, {0.f})}, {"max", Tensor::from({1}, {1.f})},
                                 {"histogram", Tensor::zeros({5})}, {"range", Tensor::from({1}, {1.f})}}),
                  std::invalid_argument);
  CHECK_THROWS_WITH_AS(PercentileObserver(make_spec(8, true, 0)), doctest::Contains("per-tensor only"),
                       std::invalid_argument);
  CHECK_THROWS_AS(PercentileObserver(make_spec(8, true), 0.0), std::invalid_argument);
  CHECK_THROWS_AS(MinMaxObserver(make_spec(8, true, 2)).observe(Tensor::zeros({2, 2})), std::invalid_argument);
}

TEST_CASE("make_observer: knows the five names and a percentile parameter, and names an unknown one") {
  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"})
    CHECK(make_observer(name, QuantSpec{})->name() == name);
  auto p = make_observer("percentile:99.9", QuantSpec{});
  CHECK(dynamic_cast<PercentileObserver&>(*p).percentile() == 99.9);
  CHECK_THROWS_WITH_AS(make_observer("histogram", QuantSpec{}), doctest::Contains("'histogram'"),
                       std::invalid_argument);
  CHECK_THROWS_AS(make_observer("percentile:abc", QuantSpec{}), std::invalid_argument);
}

TEST_CASE("observers: an all-zero tensor gives a usable grid that keeps 0 exact") {
  for (const char* name : {"minmax", "ema", "percentile", "mse", "kl"}) {
    INFO("observer ", name);
    auto o = make_observer(name, make_spec(8, false));
    o->observe(Tensor::zeros({16}));
    const QParams qp = o->qparams();
    CHECK(qp.scale[0] == 1.f);
    CHECK(fake_quant_values(Tensor::zeros({2}), qp, make_spec(8, false)).data()[0] == 0.f);
  }
}
