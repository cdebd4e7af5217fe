// Low-precision weight updates (optim/weight_grid.h, Gupta et al. 2015): the grid itself,
// Gupta's stagnation of round-to-nearest against unbiased stochastic rounding, a training
// run that shows both, reproducibility without generator state, and the options' checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "optim/sgd.h"
#include "optim/weight_grid.h"

using namespace crayon;

namespace {

Variable param(const std::vector<float>& w) {
  return Variable(Tensor::from({int64_t(w.size())}, w), true);
}

std::vector<float> values(const Variable& p) {
  const auto v = p.value().values();
  return {v.begin(), v.end()};
}

// Every value of p is q * eps for an integer q in [-2^(k-1), 2^(k-1) - 1].
void check_on_grid(const WeightGrid& grid, const Variable& p) {
  const double eps = grid.step_size(), q_lo = -std::ldexp(1.0, grid.bits() - 1);
  for (float w : p.value().values()) {
    const double q = double(w) / eps;
    INFO("w = ", w, ", w / eps = ", q, ", eps = ", eps);
    CHECK(q == std::nearbyint(q));
    CHECK(q >= q_lo);
    CHECK(q <= -q_lo - 1.0);
  }
}

// Adds u to every value (the "optimizer step" of the tests that need no gradients).
void add_update(Variable& p, const std::vector<float>& u) {
  auto v = p.value().values();
  for (size_t k = 0; k < v.size(); ++k) v[k] += u[k];
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The grid.

TEST_CASE("weight grid: after construction and after apply every value is a multiple of eps in range") {
  for (Rounding mode : {Rounding::nearest_even, Rounding::stochastic}) {
    INFO("rounding ", std::string(rounding_name(mode)));
    Rng rng(3);
    Variable w(Tensor::randn({7, 5}, rng, 0.f, 0.5f), true), b(Tensor::randn({5}, rng), true);
    WeightGrid grid({w, b}, {.bits = 8, .rounding = mode, .seed = 11});
    REQUIRE(grid.frac_bits() >= 0);
    check_on_grid(grid, w);
    check_on_grid(grid, b);
    CHECK(grid.saturated() == 0);  // the automatic FL holds the initial weights
    // Updates from tiny to far beyond the range, so some values saturate.
    for (int64_t step = 1; step <= 5; ++step) {
      for (Variable* p : {&w, &b}) {
        std::vector<float> u(size_t(p->numel()));
        for (float& x : u) x = rng.normal() * std::pow(4.f, float(step) - 4.f);
        add_update(*p, u);
      }
      grid.apply(step);
      check_on_grid(grid, w);
      check_on_grid(grid, b);
    }
    CHECK(grid.saturated() > 0);  // the last updates (sd 4) push values past the range
  }
}

TEST_CASE("weight grid: round to nearest loses every update smaller than eps/2") {
  // Gupta's stagnation: w = 3 eps plus u = +-0.4 eps rounds back to 3 eps, at every step,
  // so a thousand steps of the same update leave w exactly where it was.
  Variable w = param({0.f, 0.f, 0.f, 0.f});
  WeightGrid grid({w}, {.bits = 8, .frac_bits = 6});
  const float eps = float(grid.step_size());
  CHECK(eps == 1.f / 64.f);
  const std::vector<float> start = {3 * eps, -3 * eps, 0.f, 100 * eps};
  w.value().values()[0] = start[0], w.value().values()[1] = start[1];
  w.value().values()[3] = start[3];
  const std::vector<float> u = {0.4f * eps, -0.4f * eps, 0.49f * eps, -0.3f * eps};
  for (int64_t step = 1; step <= 1000; ++step) {
    add_update(w, u);
    grid.apply(step);
  }
  CHECK(values(w) == start);
  // One update above eps/2 moves it by one eps.
  add_update(w, {0.6f * eps, 0.f, 0.f, 0.f});
  grid.apply(1001);
  CHECK(values(w)[0] == 4 * eps);
}

TEST_CASE("weight grid: stochastic rounding moves w by eps with probability u/eps so the mean drift is the update") {
  // N weights start at 0; each step adds u = +-5/16 eps (exact in float) and rounds. Each
  // weight then moves by eps with probability p = 5/16 per step, so after T steps its drift
  // is eps * Binomial(T, p) with mean T * u and sd eps * sqrt(T p (1 - p)). The mean over
  // the N weights has standard error eps * sqrt(T p (1 - p) / N); we allow 4 of them
  // (a false failure once in ~16,000 seeds), and check the per-step move rate too.
  const int64_t N = 512, T = 200;
  const double p = 5.0 / 16.0;
  Variable w(Tensor::zeros({N}), true);
  WeightGrid grid({w}, {.bits = 16, .frac_bits = 6, .rounding = Rounding::stochastic, .seed = 5});
  const float eps = float(grid.step_size());
  std::vector<float> u(static_cast<size_t>(N));
  for (int64_t k = 0; k < N; ++k) u[size_t(k)] = (k % 2 == 0 ? 1.f : -1.f) * float(p) * eps;
  int64_t moves = 0, wrong = 0;
  for (int64_t step = 1; step <= T; ++step) {
    const std::vector<float> before = values(w);
    add_update(w, u);
    grid.apply(step);
    const std::vector<float> after = values(w);
    for (int64_t k = 0; k < N; ++k) {
      const float d = after[size_t(k)] - before[size_t(k)];
      wrong += d != 0.f && d != (k % 2 == 0 ? eps : -eps);  // the wrong way, or 2 eps
      moves += d != 0.f;
    }
  }
  CHECK(wrong == 0);
  CHECK(grid.saturated() == 0);
  const double se = eps * std::sqrt(double(T) * p * (1 - p) / double(N / 2));
  for (int sign : {1, -1}) {
    double drift = 0.0;
    for (int64_t k = (sign == 1 ? 0 : 1); k < N; k += 2) drift += w.value().data()[k];
    drift /= double(N / 2);
    const double expected = sign * double(T) * p * eps;
    INFO("sign ", sign, ": mean drift ", drift, ", expected ", expected, ", standard error ", se);
    CHECK(std::fabs(drift - expected) <= 4 * se);
  }
  const double rate = double(moves) / double(N * T);
  const double rate_se = std::sqrt(p * (1 - p) / double(N * T));
  INFO("moved in ", rate, " of the steps, expected ", p, " +- ", rate_se);
  CHECK(std::fabs(rate - p) <= 4 * rate_se);
}

// ---------------------------------------------------------------------------------------
// Training on the grid: a linear regression whose SGD updates are all below eps/2.

namespace {

struct Fit {
  float first_loss = 0.f, last_loss = 0.f;
  float max_update = 0.f;  // the largest |lr * g| of any step
  std::vector<float> w, b;
};

// y = x w* + b* + 0.1 noise, N = 64 samples of D = 4 features; full-batch SGD with lr 0.01
// on loss = mean((x w + b - y)^2) / 2, from w = 0, b = 0, with an optional grid.
Fit fit_regression(const WeightGridOptions* grid_options, int steps) {
  const int64_t N = 64, D = 4;
  const float lr = 0.01f;
  Rng rng(7);
  const Tensor x = Tensor::randn({N, D}, rng);
  const std::vector<float> w_true = {0.53f, -0.27f, 0.71f, -0.94f};
  const float b_true = 0.2f;
  std::vector<float> y(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    float z = b_true + 0.1f * rng.normal();
    for (int64_t d = 0; d < D; ++d) z += x.at({n, d}) * w_true[size_t(d)];
    y[size_t(n)] = z;
  }
  const Variable xv(x), yv(Tensor::from({N, 1}, y));
  Variable w(Tensor::zeros({D, 1}), true), b(Tensor::zeros({1}), true);
  SGD opt({w, b}, {.lr = lr});
  std::unique_ptr<WeightGrid> grid;
  if (grid_options) grid = std::make_unique<WeightGrid>(std::vector<Variable>{w, b}, *grid_options);
  Fit fit;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    const Variable r = matmul(xv, w) + b - yv;
    Variable loss = mean(r * r) * 0.5f;
    if (s == 0) fit.first_loss = loss.item();
    fit.last_loss = loss.item();
    loss.backward();
    for (const Variable* p : {&w, &b})
      for (float g : p->grad().values())
        fit.max_update = std::max(fit.max_update, lr * std::fabs(g));
    opt.step();
    if (grid) grid->apply(opt.steps());
  }
  fit.w = values(w);
  fit.b = values(b);
  return fit;
}

}  // namespace

TEST_CASE("weight grid: on a regression whose updates are below eps/2 nearest stalls and stochastic converges") {
  // An 8-bit grid <IL=3,FL=5>: eps = 1/32, eps/2 = 0.0156, and every SGD update (lr 0.01
  // times the gradient; the largest is 0.0092) is smaller, as the REQUIREs below check. The
  // stagnation Gupta et al. 2015 report for round-to-nearest, in miniature.
  const int steps = 2000;
  const Fit exact = fit_regression(nullptr, steps);
  const WeightGridOptions nearest{.bits = 8, .frac_bits = 5};
  const WeightGridOptions stochastic{.bits = 8, .frac_bits = 5, .rounding = Rounding::stochastic,
                                     .seed = 1};
  const Fit stalled = fit_regression(&nearest, steps);
  const Fit sr = fit_regression(&stochastic, steps);
  const float eps = 1.f / 32.f;
  INFO("float32: loss ", exact.first_loss, " -> ", exact.last_loss);
  INFO("nearest: loss ", stalled.first_loss, " -> ", stalled.last_loss, ", max update ",
       stalled.max_update);
  INFO("stochastic: loss ", sr.first_loss, " -> ", sr.last_loss, ", max update ", sr.max_update);
  REQUIRE(stalled.max_update < eps / 2);
  REQUIRE(sr.max_update < eps / 2);
  CHECK(exact.last_loss < 0.02f * exact.first_loss);  // the problem itself is easy
  // Nearest: not one weight ever moves, so the loss is the initial loss to the last bit.
  CHECK(stalled.last_loss == stalled.first_loss);
  CHECK(stalled.w == std::vector<float>(4, 0.f));
  // Stochastic: close to float's loss and within 2 eps of float's weights (they wander
  // around the optimum by about eps/2). Seed 1 gives loss 0.0064 against float's 0.0060
  // (the noise alone gives about 0.1^2 / 2 = 0.005) and weights within 0.65 eps; over seeds
  // 1..200 the worst were 0.0072 and 1.06 eps, so the bounds leave room across seeds.
  CHECK(sr.last_loss < 0.02f * sr.first_loss);
  CHECK(sr.last_loss <= 1.1f * exact.last_loss + 0.002f);
  for (size_t d = 0; d < 4; ++d) {
    INFO("w[", d, "]: stochastic ", sr.w[d], ", float ", exact.w[d]);
    CHECK(std::fabs(sr.w[d] - exact.w[d]) <= 2 * eps);
  }
  CHECK(std::fabs(sr.b[0] - exact.b[0]) <= 2 * eps);
}

// ---------------------------------------------------------------------------------------
// Reproducibility: the draws are a function of (seed, step, parameter index) only.

namespace {

// Values a little off the 1/64 grid, so stochastic rounding has something to decide.
std::vector<float> off_grid(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = float(int(rng.below(64)) - 32) / 64.f + rng.uniform() / 64.f;
  return v;
}

std::vector<float> rounded_once(uint64_t seed, int64_t step, const std::vector<float>& update) {
  Variable w(Tensor::zeros({int64_t(update.size())}), true);
  WeightGrid grid({w}, {.bits = 8, .frac_bits = 6, .rounding = Rounding::stochastic, .seed = seed});
  add_update(w, update);
  grid.apply(step);
  return values(w);
}

}  // namespace

TEST_CASE("weight grid: the same seed and step give the same draws and another step or seed gives others") {
  const std::vector<float> u = off_grid(1000, 9);
  const std::vector<float> a = rounded_once(4, 17, u);
  CHECK(rounded_once(4, 17, u) == a);
  CHECK(rounded_once(4, 18, u) != a);
  CHECK(rounded_once(5, 17, u) != a);
  // Two parameters holding the same values draw from different streams.
  Variable p(Tensor::zeros({1000}), true), q(Tensor::zeros({1000}), true);
  WeightGrid grid({p, q}, {.bits = 8, .frac_bits = 6, .rounding = Rounding::stochastic, .seed = 4});
  add_update(p, u);
  add_update(q, u);
  grid.apply(17);
  CHECK(values(p) == a);  // parameter 0's stream does not depend on what else is listed
  CHECK(values(q) != a);
}

TEST_CASE("weight grid: a resumed run rounds exactly as the uninterrupted one without saved generator state") {
  // Run A applies steps 1..6. Run B is built from A's weights after step 3 (as a resume
  // from a checkpoint would be, with A's frac_bits) and applies steps 4..6.
  const WeightGridOptions opts{.bits = 8, .rounding = Rounding::stochastic, .seed = 21};
  Variable a(Tensor::from({300}, off_grid(300, 1)), true);
  WeightGrid grid_a({a}, opts);
  std::vector<float> checkpoint;
  for (int64_t step = 1; step <= 6; ++step) {
    add_update(a, off_grid(300, 100 + uint64_t(step)));
    for (float& x : a.value().values()) x *= 0.05f;  // keep the walk inside the range
    grid_a.apply(step);
    if (step == 3) checkpoint = values(a);
  }
  Variable b(Tensor::from({300}, checkpoint), true);
  WeightGridOptions resumed = opts;
  resumed.frac_bits = grid_a.frac_bits();
  WeightGrid grid_b({b}, resumed);
  CHECK(values(b) == checkpoint);  // already on the grid: construction changes nothing
  for (int64_t step = 4; step <= 6; ++step) {
    add_update(b, off_grid(300, 100 + uint64_t(step)));
    for (float& x : b.value().values()) x *= 0.05f;
    grid_b.apply(step);
  }
  CHECK(values(b) == values(a));
}

// ---------------------------------------------------------------------------------------
// Choosing FL, saturation, and the options' checks.

TEST_CASE("weight grid: frac_bits -1 picks the finest grid whose range holds the largest weight") {
  // k = 8: the range is [-128, 127] * 2^-FL. max|w| = 1.5 fits FL = 6 (hi = 127/64 = 1.98)
  // but not FL = 7 (hi = 127/128 = 0.99).
  auto chosen = [](std::vector<float> w, int bits = 8) {
    Variable p = param(w);
    WeightGrid grid({p}, {.bits = bits});
    CHECK(grid.saturated() == 0);
    return grid.frac_bits();
  };
  CHECK(chosen({0.2f, -1.5f, 0.7f}) == 6);
  CHECK(chosen({0.2f, 1.5f}) == 6);
  CHECK(chosen({127.f / 128.f}) == 7);  // the boundary is inclusive
  CHECK(chosen({std::nextafter(127.f / 128.f, 1.f)}) == 6);
  CHECK(chosen({-1.f}) == 6);           // -1 is on the FL = 7 grid, but the range is symmetric
  CHECK(chosen({0.01f}) == 7);          // FL stops at k - 1
  CHECK(chosen({0.f, 0.f}) == 7);
  CHECK(chosen({100.f}) == 0);
  CHECK(chosen({1.f}, 2) == 0);         // 2 bits: {-2, -1, 0, 1} at FL = 0, {-1, ..., 0.5} at 1
  CHECK(chosen({0.5f}, 2) == 1);
  CHECK(chosen({0.9f}, 16) == 15);
  CHECK(chosen({0.9f}, 32) == 31);
  CHECK_THROWS_WITH_AS(chosen({200.f}), doctest::Contains("bits = 8 cannot hold max |w| = 200"),
                       std::invalid_argument);

  Variable p = param({0.2f, -1.5f});
  WeightGrid grid({p}, {.bits = 8, .rounding = Rounding::stochastic});
  CHECK(grid.step_size() == 1.0 / 64.0);
  CHECK(grid.describe() == "<IL=2,FL=6> stochastic");
  CHECK(values(p) == std::vector<float>{13.f / 64.f, -1.5f});  // 0.2 * 64 = 12.8 -> 13
}

TEST_CASE("weight grid: values past the range are clamped to its ends and counted") {
  // k = 8, FL = 7: range [-1, 127/128].
  Variable p = param({2.f, -3.f, 0.5f, 0.99f, -1.f});
  WeightGrid grid({p}, {.bits = 8, .frac_bits = 7});
  CHECK(values(p) == std::vector<float>{127.f / 128.f, -1.f, 0.5f, 127.f / 128.f, -1.f});
  CHECK(grid.saturated() == 2);  // 0.99 rounds to 127/128 and -1 is in range: not saturated
  add_update(p, {0.1f, 0.f, 0.f, -0.1f, -0.0035f});  // the last rounds back to -1 (-128.45 -> -128)
  grid.apply(1);
  CHECK(grid.saturated() == 1);
  CHECK(values(p)[0] == 127.f / 128.f);
  add_update(p, {0.f, 0.f, 0.f, 0.f, -0.1f});
  grid.apply(2);
  CHECK(grid.saturated() == 1);
  CHECK(values(p)[4] == -1.f);
  grid.apply(3);  // nothing moved: nothing saturates
  CHECK(grid.saturated() == 0);

  // 32 bits: 2^31 - 1 has no float, so the top of the range is the float just below it.
  Variable big = param({3e9f, -3e9f});
  WeightGrid grid32({big}, {.bits = 32, .frac_bits = 0});
  CHECK(grid32.saturated() == 2);
  CHECK(values(big) == std::vector<float>{2147483520.f, -2147483648.f});
  check_on_grid(grid32, big);
}

TEST_CASE("weight grid: non-finite values are left for the caller to see") {
  Variable p = param({0.3f, NAN, INFINITY, -INFINITY});
  WeightGrid grid({p}, {.bits = 8, .frac_bits = 4, .rounding = Rounding::stochastic});
  CHECK(std::isnan(values(p)[1]));
  CHECK(values(p)[2] == INFINITY);
  CHECK(values(p)[3] == -INFINITY);
  CHECK(values(p)[0] == 5.f / 16.f);
  CHECK(grid.saturated() == 0);
  CHECK_THROWS_WITH_AS(WeightGrid({p}, {.bits = 8}),
                       doctest::Contains("parameter 0 holds a non-finite"),
                       std::invalid_argument);
}

TEST_CASE("weight grid: bits 0 turns it off") {
  Variable p = param({0.123f, -7.f});
  WeightGrid grid({p}, {});
  CHECK(!grid.enabled());
  CHECK(grid.frac_bits() == -1);
  CHECK(grid.step_size() == 0.0);
  CHECK(grid.describe() == "off");
  add_update(p, {0.001f, 0.f});
  grid.apply(1);
  CHECK(values(p) == std::vector<float>{0.123f + 0.001f, -7.f});  // untouched
  CHECK(grid.saturated() == 0);
}

TEST_CASE("weight grid: bad options are refused with the option named") {
  Variable p = param({0.5f});
  auto refused = [&](WeightGridOptions o, const char* what) {
    CHECK_THROWS_WITH_AS(WeightGrid({p}, o), doctest::Contains(what), std::invalid_argument);
  };
  refused({.bits = 1}, "bits must be 0 (off) or in 2..32, got 1");
  refused({.bits = 33}, "bits must be 0 (off) or in 2..32, got 33");
  refused({.bits = -8}, "bits must be 0 (off) or in 2..32, got -8");
  refused({.bits = 8, .frac_bits = 8}, "frac_bits must be -1 (auto) or in 0..bits-1 = 0..7, got 8");
  refused({.bits = 8, .frac_bits = -2},
          "frac_bits must be -1 (auto) or in 0..bits-1 = 0..7, got -2");
  refused({.bits = 0, .frac_bits = 4}, "frac_bits = 4 given but bits = 0");
  Variable q = param({0.25f});
  CHECK_THROWS_WITH_AS(WeightGrid({p, q, p}, {.bits = 8}),
                       doctest::Contains("parameters 0 and 2 are the same Variable"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(WeightGrid({p, Variable()}, {.bits = 8}),
                       doctest::Contains("parameter 1 is an undefined Variable"),
                       std::invalid_argument);
  Variable ints(Tensor::zeros({2}, DType::i32));
  CHECK_THROWS_WITH_AS(WeightGrid({ints}, {.bits = 8}),
                       doctest::Contains("parameter 0 must be float32"),
                       std::invalid_argument);
  CHECK(values(p) == std::vector<float>{0.5f});  // nothing was rounded by a refused grid
}
