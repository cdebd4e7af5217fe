// The instruments of quant/analysis and quant/bound on real MNIST and on planted data: the
// error-propagation bound is never exceeded, certified predictions are kept, KL meets its
// second-order approximation, entropy bits and SQNR meet their closed forms, and layer
// sensitivity finds a layer made fragile on purpose.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>

#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/spec.h"
#include "optim/sgd.h"
#include "quant/analysis.h"
#include "quant/fake_quant.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"

using namespace crayon;

namespace {

std::string mnist_dir() { return std::string(CRAYON_SOURCE_DIR) + "/data/mnist"; }

// A float model of `spec` trained for one epoch on the first `n` MNIST training images.
std::shared_ptr<Sequential> trained(const std::string& spec, int64_t n, uint64_t seed = 1) {
  const Dataset train = load_dataset("mnist", true, mnist_dir()).slice(0, n);
  Rng rng(seed);
  auto model = build_model(spec, {1, 28, 28}, rng);
  SGD opt(model->parameters(), {.lr = 0.05f, .momentum = 0.9f});
  DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = seed, .norm = mnist_stats()});
  for (Batch b; loader.next(b);) {
    opt.zero_grad();
    cross_entropy((*model)(Variable(b.images)), b.labels).backward();
    opt.step();
  }
  return model;
}

// A copy of `model` quantized by PTQ at `bits` (weights and activations), calibrated on
// training batches.
std::shared_ptr<Sequential> ptq(const Sequential& model, const std::string& spec, int bits, bool per_channel = true) {
  Rng rng(0);
  auto q = build_model(spec, {1, 28, 28}, rng);
  const auto src = model.parameters();
  auto dst = q->parameters();
  for (size_t i = 0; i < src.size(); ++i) dst[i].value().copy_from(src[i].value());
  QatConfig c;
  c.weight.bits = c.act.bits = bits;
  if (!per_channel) c.weight.axis = -1;
  const Dataset train = load_dataset("mnist", true, mnist_dir()).slice(0, 1024);
  DataLoader loader(train, {.batch_size = 128, .shuffle = false, .norm = mnist_stats()});
  calibrate(*q, loader.images(), 8, c);
  return q;
}

// The first n MNIST test images in batches of 500.
struct TestBatches {
  Dataset test;
  DataLoader loader;
  explicit TestBatches(int64_t n)
      : test(load_dataset("mnist", false, mnist_dir()).slice(0, n)),
        loader(test, {.batch_size = 500, .shuffle = false, .norm = mnist_stats()}) {}
};

Analysis analyze_on(Sequential& q, TestBatches& t, bool sensitivity = false) {
  t.loader.start_epoch(0);
  return analyze(q, {1, 28, 28}, t.loader.labelled(), [&] { t.loader.start_epoch(0); }, sensitivity);
}

// Every sample, every grid and every logit of the 10000 test images: measured <= bound, and
// a certified prediction is kept.
void check_bound_holds(const std::string& spec, double min_certified_at_8_bits) {
  TestBatches test(10000);
  const auto model = trained(spec, 6000);
  for (int bits : {8, 4, 2}) {
    CAPTURE(bits);
    auto q = ptq(*model, spec, bits);
    const Analysis a = analyze_on(*q, test);
    REQUIRE(a.samples == 10000);
    int64_t exceeded = 0, certified_not_kept = 0;
    for (const BoundPoint& p : a.bound.points)
      for (size_t i = 0; i < p.bound.size(); ++i) exceeded += p.measured[i] > p.bound[i];
    const Tensor& zf = a.bound.reference_logits;
    const Tensor& zq = a.bound.quantized_logits;
    for (int64_t i = 0; i < zf.numel(); ++i)
      exceeded += std::fabs(double(zf.data()[i]) - double(zq.data()[i])) > double(a.bound.logit_bound.data()[i]);
    for (size_t i = 0; i < a.bound.certified.size(); ++i) certified_not_kept += a.bound.certified[i] && !a.bound.kept[i];
    const Tightness& t = a.tightness.back();
    MESSAGE(spec, " W", bits, "A", bits, ": accuracy ", a.reference_accuracy * 100, " -> ", a.quantized_accuracy * 100,
            " %, certified ", a.certified * 100, " %, kept ", a.kept * 100, " %, logit tightness median ", t.median,
            " p90 ", t.p90, ", mean bound ", t.mean_bound, " vs measured ", t.mean_measured);
    CHECK(exceeded == 0);
    CHECK(certified_not_kept == 0);
    CHECK(a.certified <= a.kept);
    CHECK(t.max <= 1.0);
    if (bits == 8) CHECK(a.certified >= min_certified_at_8_bits);
  }
}

}  // namespace

TEST_CASE("bound: never exceeded on any of the 10000 MNIST test images, lenet5 at 8, 4 and 2 bits") {
  check_bound_holds("lenet5", 0.0);  // five layers deep: the worst case certifies nothing (see the messages)
}

TEST_CASE("bound: never exceeded on any of the 10000 MNIST test images, mlp at 8, 4 and 2 bits") {
  check_bound_holds("mlp", 0.15);  // measured 29.5 %
}

TEST_CASE("bound: a wrong rule would be caught, since measured changes come close to the bound somewhere") {
  // The bound is only worth something if it is not vacuous: at 8 bits on mlp the largest
  // measured / bound ratio at the logits is well above a tiny fraction.
  TestBatches test(2000);
  const auto model = trained("mlp", 3000);
  auto q = ptq(*model, "mlp", 8);
  const Analysis a = analyze_on(*q, test);
  CHECK(a.tightness.back().max > 0.05);
  CHECK(a.tightness.front().max > 0.2);  // the input grid: the bound is the error itself
}

TEST_CASE("kl: exact KL is >= 0 and meets 1/2 Var to second order as the perturbation shrinks") {
  Rng rng(4);
  const Tensor z = Tensor::randn({200, 10}, rng, 0.f, 3.f);
  const Tensor noise = Tensor::randn({200, 10}, rng);
  double last = 1;
  for (float eps : {0.1f, 0.03f, 0.01f, 0.003f}) {
    Tensor zq = z.clone();
    for (int64_t i = 0; i < zq.numel(); ++i) zq.data()[i] += eps * noise.data()[i];
    const PredictionShift s = prediction_shift(z, zq);
    double rel = 0;
    for (size_t i = 0; i < s.kl.size(); ++i) {
      CHECK(s.kl[i] >= 0);
      rel = std::max(rel, std::fabs(s.kl_approx[i] - s.kl[i]) / std::max(s.kl[i], 1e-300));
    }
    MESSAGE("eps ", eps, ": largest relative error of 1/2 Var ", rel);
    CHECK(rel < 3.0 * eps);  // third-order remainder: relative error O(eps)
    CHECK(rel < last);
    last = rel;
  }
}

TEST_CASE("entropy bits: the closed form on a hand-made integer tensor") {
  // 8 values: four 0s, two 1s, one -1, one 3: H = 4(1) + 2(2) + 1(3) + 1(3) = 14 bits.
  CHECK(entropy_bits({0, 0, 0, 0, 1, 1, -1, 3}) == doctest::Approx(14.0).epsilon(1e-12));
  CHECK(entropy_bits({5, 5, 5}) == 0.0);
  std::vector<int32_t> uniform;
  for (int i = 0; i < 256; ++i) uniform.push_back(i - 128);
  CHECK(entropy_bits(uniform) == doctest::Approx(256.0 * 8).epsilon(1e-12));
}

TEST_CASE("sqnr: a uniform input on a known grid gives 10 log10(4 R^2 / step^2), 6.02 dB a bit") {
  // x uniform on [-R, R), an 8-bit symmetric grid with scale R / 127: rounding noise step^2/12,
  // signal R^2/3, nothing saturates.
  Rng rng(9);
  const float R = 2.f;
  const Tensor x = Tensor::uniform({200000}, rng, -R, R);
  QuantSpec s;
  s.bits = 8;
  s.symmetric = true;
  s.narrow_range = true;
  const float step = R / 127.f;
  const QParams qp{{step}, {0}, -1};
  GridError g{"x", decompose_error(x, qp, s), 0};
  for (float v : x.values()) g.signal += double(v) * v;
  const double want = 10.0 * std::log10(4.0 * double(R) * R / (double(step) * step));
  MESSAGE("SQNR ", g.sqnr_db(), " dB, closed form ", want, " dB");
  CHECK(g.error.saturated == 0);
  CHECK(g.sqnr_db() == doctest::Approx(want).epsilon(0.002));
}

TEST_CASE("sensitivity: a layer made fragile by one huge weight is the one that breaks first") {
  // mlp with per-tensor weight grids at 4 bits: one weight of the second linear set to 50x
  // the layer's largest stretches its grid so every other weight rounds to 0.
  TestBatches test(1000);
  const auto model = trained("mlp", 3000);
  const auto params = model->named_parameters();
  Tensor w = params[2].second.value();  // "3.weight": the second linear (128 x 256)
  REQUIRE(w.shape() == Shape{128, 256});
  float mx = 0;
  for (float v : w.values()) mx = std::max(mx, std::fabs(v));
  w.data()[0] = 50 * mx;
  auto q = ptq(*model, "mlp", 4, /*per_channel=*/false);
  const Analysis a = analyze_on(*q, test, /*sensitivity=*/true);
  REQUIRE(a.sensitivity.size() == 4);  // input, three linears
  size_t worst = 0;
  for (size_t k = 0; k < a.sensitivity.size(); ++k) {
    const Sensitivity& s = a.sensitivity[k];
    MESSAGE(s.name, ": only it quantized ", s.only_accuracy * 100, " % (KL ", s.only_kl, "), all but it ",
            s.all_but_accuracy * 100, " % (KL ", s.all_but_kl, ")");
    if (s.only_kl > a.sensitivity[worst].only_kl) worst = k;
  }
  CHECK(a.sensitivity[worst].name.find("linear(128)") != std::string::npos);
  // And leaving that layer in float recovers most of the accuracy the fully quantized model lost.
  const Sensitivity& fragile = a.sensitivity[worst];
  CHECK(fragile.all_but_accuracy > a.quantized_accuracy + 0.05);
}
