// Optimizers against hand-derived updates (torch.optim's documented formulas), their
// checkpoint state, gradient clipping, and an end-to-end logistic regression.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/regularizer.h"
#include "optim/sgd.h"

using namespace crayon;

namespace {

// The fixed starting point and gradients of the hand-derived cases.
const std::vector<float> kW0 = {1.f, -2.f, 0.5f};
const std::vector<std::vector<float>> kGrads = {{0.5f, 1.f, -2.f}, {-1.f, 1.f, 0.5f},
                                                {2.f, -0.5f, 0.25f}};

Variable param(const std::vector<float>& w) {
  return Variable(Tensor::from({int64_t(w.size())}, w), true);
}

void set_grad(Variable& p, const std::vector<float>& g) {
  p.zero_grad();
  p.add_grad(Tensor::from(p.shape(), g));
}

// Every element within `rel` of the expected value, relative to it.
void check_values(const Tensor& t, const std::vector<double>& expected, double rel = 1e-6) {
  REQUIRE(t.numel() == int64_t(expected.size()));
  for (size_t k = 0; k < expected.size(); ++k) {
    INFO("element ", k, ": got ", t.data()[k], ", expected ", expected[k]);
    CHECK(std::fabs(double(t.data()[k]) - expected[k]) <= rel * std::fabs(expected[k]));
  }
}

// Run `steps` steps from kW0 with the gradients g1, g2, g3 of kGrads, in turn.
template <typename Opt, typename Options>
Tensor run(Options options, int steps) {
  Variable w = param(kW0);
  Opt opt({w}, options);
  for (int s = 0; s < steps; ++s) {
    set_grad(w, kGrads[size_t(s)]);
    opt.step();
  }
  return w.value();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// SGD. w = [1, -2, 0.5], lr = 0.1 and the same gradient g = [0.5, 1, -2] at every step.

TEST_CASE("sgd: a plain step is w - lr * g") {
  // w1 = w - 0.1 g = [0.95, -2.1, 0.7]; w2 = w1 - 0.1 g = [0.9, -2.2, 0.9]
  Variable w = param(kW0);
  SGD opt({w}, {.lr = 0.1f});
  set_grad(w, kGrads[0]);
  opt.step();
  check_values(w.value(), {0.95, -2.1, 0.7});
  opt.step();
  check_values(w.value(), {0.9, -2.2, 0.9});
  CHECK(opt.steps() == 2);
}

TEST_CASE("sgd: momentum starts its buffer at the first gradient and then accumulates") {
  // mu = 0.9. step 1: b = g, w1 = w - 0.1 g = [0.95, -2.1, 0.7]
  // step 2: b = 0.9 g + g = 1.9 g,  w2 = w1 - 0.19 g = [0.855, -2.29, 1.08]
  // step 3: b = 0.9 * 1.9 g + g = 2.71 g,  w3 = w2 - 0.271 g = [0.7195, -2.561, 1.622]
  Variable w = param(kW0);
  SGD opt({w}, {.lr = 0.1f, .momentum = 0.9f});
  set_grad(w, kGrads[0]);
  opt.step();
  check_values(w.value(), {0.95, -2.1, 0.7});
  opt.step();
  check_values(w.value(), {0.855, -2.29, 1.08});
  opt.step();
  check_values(w.value(), {0.7195, -2.561, 1.622});
}

TEST_CASE("sgd: nesterov steps along g + mu * b") {
  // step 1: b = g, step g + 0.9 b = 1.9 g, w1 = w - 0.19 g = [0.905, -2.19, 0.88]
  // step 2: b = 1.9 g, step g + 0.9 * 1.9 g = 2.71 g, w2 = w1 - 0.271 g = [0.7695, -2.461, 1.422]
  Variable w = param(kW0);
  SGD opt({w}, {.lr = 0.1f, .momentum = 0.9f, .nesterov = true});
  set_grad(w, kGrads[0]);
  opt.step();
  check_values(w.value(), {0.905, -2.19, 0.88});
  opt.step();
  check_values(w.value(), {0.7695, -2.461, 1.422});
}

TEST_CASE("sgd: weight decay adds wd * w to the gradient, before momentum") {
  // wd = 0.1. step 1: d1 = g + 0.1 w = [0.6, 0.8, -1.95], w1 = w - 0.1 d1 = [0.94, -2.08, 0.695]
  // step 2: d2 = g + 0.1 w1 = [0.594, 0.792, -1.9305]
  //   plain:    w2 = w1 - 0.1 d2 = [0.8806, -2.1592, 0.88805]
  //   momentum: b = 0.9 d1 + d2 = [1.134, 1.512, -3.6855], w2 = w1 - 0.1 b = [0.8266, -2.2312, 1.06355]
  {
    Variable w = param(kW0);
    SGD opt({w}, {.lr = 0.1f, .weight_decay = 0.1f});
    set_grad(w, kGrads[0]);
    opt.step();
    check_values(w.value(), {0.94, -2.08, 0.695});
    opt.step();
    check_values(w.value(), {0.8806, -2.1592, 0.88805});
  }
  {
    Variable w = param(kW0);
    SGD opt({w}, {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f});
    set_grad(w, kGrads[0]);
    opt.step();
    check_values(w.value(), {0.94, -2.08, 0.695});
    opt.step();
    check_values(w.value(), {0.8266, -2.2312, 1.06355});
  }
}

TEST_CASE("sgd: bad hyper-parameters are refused") {
  Variable w = param(kW0);
  CHECK_THROWS_AS(SGD({w}, {.lr = -1.f}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({w}, {.lr = 0.1f, .momentum = -0.5f}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({w}, {.lr = 0.1f, .nesterov = true}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({w}, {.lr = 0.1f, .weight_decay = NAN}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({w, w}, {.lr = 0.1f}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Adam / AdamW. w = [1, -2, 0.5], lr = 0.1, betas (0.9, 0.999), eps = 1e-8, gradients
// g1 = [0.5, 1, -2], g2 = [-1, 1, 0.5], g3 = [2, -0.5, 0.25].
//
// step 1 (t = 1): m = 0.1 g1 = [0.05, 0.1, -0.2], v = 0.001 g1^2 = [0.00025, 0.001, 0.004],
//   m_hat = g1, v_hat = g1^2, so the step is lr * g1 / (|g1| + eps) = lr * sign(g1)
//   (to 2e-8): w1 = [0.9, -2.1, 0.6].
// step 2 (t = 2): m = 0.9 m + 0.1 g2 = [-0.055, 0.19, -0.13],
//   v = 0.999 v + 0.001 g2^2 = [0.00124975, 0.001999, 0.004246],
//   m_hat = m / (1 - 0.9^2) = m / 0.19, v_hat = v / (1 - 0.999^2) = v / 0.001999,
//   w2 = w1 - 0.1 m_hat / sqrt(v_hat) = [0.936610354, -2.2, 0.646946816].
// step 3 (t = 3): m = [0.1505, 0.121, -0.092], v = [0.00524850025, 0.002247001, 0.004304254],
//   m_hat = m / 0.271, v_hat = v / 0.002997001, w3 = [0.894644793, -2.25156534, 0.675274628].

TEST_CASE("adam: three steps match the bias-corrected update") {
  check_values(run<Adam>(AdamOptions{.lr = 0.1f}, 1), {0.9, -2.1, 0.6});
  check_values(run<Adam>(AdamOptions{.lr = 0.1f}, 2), {0.936610354, -2.2, 0.646946816});
  check_values(run<Adam>(AdamOptions{.lr = 0.1f}, 3), {0.894644793, -2.25156534, 0.675274628});
}

TEST_CASE("adam: weight decay is added to the gradient before the moments") {
  // wd = 0.1: d = g + 0.1 w. step 1: d1 = [0.6, 0.8, -1.95], w1 = w - 0.1 sign(d1) = [0.9, -2.1, 0.6]
  // step 2: d2 = g2 + 0.1 w1 = [-0.91, 0.79, 0.56], m = [-0.037, 0.151, -0.1195],
  //   v = [0.00118774, 0.00126346, 0.0041122975], w2 = [0.925263519, -2.19996523, 0.643850892]
  // step 3: w3 = [0.877617261, -2.23055634, 0.667555726]
  const AdamOptions o{.lr = 0.1f, .weight_decay = 0.1f};
  check_values(run<Adam>(o, 1), {0.9, -2.1, 0.6});
  check_values(run<Adam>(o, 2), {0.925263519, -2.19996523, 0.643850892});
  check_values(run<Adam>(o, 3), {0.877617261, -2.23055634, 0.667555726});
}

TEST_CASE("adamw: weight decay shrinks w by lr * wd before the adam step") {
  // wd = 0.1: w <- (1 - 0.01) w, then the plain Adam step (moments as in plain Adam).
  // step 1: w1 = 0.99 w - 0.1 sign(g1) = [0.89, -2.08, 0.595]
  // step 2: w2 = 0.99 w1 - 0.1 m_hat / sqrt(v_hat) = [0.8811 + 0.0366103540, -2.0592 - 0.1,
  //   0.58905 + 0.0469468164] = [0.917710354, -2.1592, 0.635996816]
  // step 3: w3 = [0.866567689, -2.18917334, 0.65796466]
  const AdamWOptions o{.lr = 0.1f, .weight_decay = 0.1f};
  check_values(run<AdamW>(o, 1), {0.89, -2.08, 0.595});
  check_values(run<AdamW>(o, 2), {0.917710354, -2.1592, 0.635996816});
  check_values(run<AdamW>(o, 3), {0.866567689, -2.18917334, 0.65796466});
  CHECK(AdamW({param(kW0)}, {}).options().weight_decay == 0.01f);  // PyTorch's default
  CHECK(AdamW({param(kW0)}, {}).options().decoupled_weight_decay);
}

TEST_CASE("adam: bad hyper-parameters are refused") {
  Variable w = param(kW0);
  CHECK_THROWS_AS(Adam({w}, {.beta1 = 1.f}), std::invalid_argument);
  CHECK_THROWS_AS(Adam({w}, {.beta2 = -0.1f}), std::invalid_argument);
  CHECK_THROWS_AS(Adam({w}, {.eps = -1e-8f}), std::invalid_argument);
  CHECK_THROWS_AS(Adam({w}, {.weight_decay = INFINITY}), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// The base class: skipping, zero_grad, lr.

TEST_CASE("optimizer: a parameter without a gradient is left alone and gets no state") {
  Variable a = param(kW0), b = param({3.f, 4.f});
  SGD opt({a, b}, {.lr = 0.1f, .momentum = 0.9f});
  set_grad(a, kGrads[0]);
  opt.step();
  check_values(a.value(), {0.95, -2.1, 0.7});
  CHECK(b.value().data()[0] == 3.f);
  CHECK(b.value().data()[1] == 4.f);
  std::vector<std::string> names;
  for (const auto& [name, t] : opt.state()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"step", "step.0", "momentum.0"});

  opt.zero_grad();
  CHECK_FALSE(a.has_grad());
  opt.step();  // nothing has a gradient: nothing moves, the step is still counted
  check_values(a.value(), {0.95, -2.1, 0.7});
  CHECK(opt.steps() == 2);
}

TEST_CASE("optimizer: set_lr changes the next update and bad values are refused") {
  Variable w = param(kW0);
  SGD opt({w}, {.lr = 0.1f});
  opt.set_lr(0.2f);
  CHECK(opt.lr() == 0.2f);
  set_grad(w, kGrads[0]);
  opt.step();
  check_values(w.value(), {0.9, -2.2, 0.9});
  CHECK_THROWS_AS(opt.set_lr(-0.1f), std::invalid_argument);
  CHECK_THROWS_AS(opt.set_lr(NAN), std::invalid_argument);
  CHECK(opt.lr() == 0.2f);
}

TEST_CASE("optimizer: the update does not record autograd history") {
  Variable w = param(kW0);
  Adam opt({w}, {.lr = 0.1f});
  set_grad(w, kGrads[0]);
  opt.step();
  CHECK(w.is_leaf());
  CHECK(w.requires_grad());
}

// ---------------------------------------------------------------------------------------
// Checkpoint state.

namespace {

// Parameters (2, 3) and (4,), and a gradient that depends on w and the step, so resumed
// and uninterrupted runs only agree if they hold the same weights and state. Parameter 1
// gets no gradient on step 1, so per-parameter step counts differ from the global one.
std::vector<Variable> make_params(uint64_t seed) {
  Rng rng(seed);
  return {Variable(Tensor::randn({2, 3}, rng), true), Variable(Tensor::randn({4}, rng), true)};
}

std::vector<Variable> clone_params(const std::vector<Variable>& ps) {
  std::vector<Variable> out;
  for (const Variable& p : ps) out.emplace_back(p.value().clone(), true);
  return out;
}

void make_grads(std::vector<Variable>& ps, int64_t step) {
  for (size_t i = 0; i < ps.size(); ++i) {
    ps[i].zero_grad();
    if (i == 1 && step == 1) continue;
    Tensor g = Tensor::empty(ps[i].shape());
    for (int64_t k = 0; k < g.numel(); ++k)
      g.data()[k] = std::sin(float(step + 1) * ps[i].value().data()[k]) + 0.1f * float(k);
    ps[i].add_grad(g);
  }
}

using MakeOpt = std::function<std::unique_ptr<Optimizer>(std::vector<Variable>)>;

void check_resume_is_exact(const MakeOpt& make) {
  std::vector<Variable> a = make_params(7);
  std::unique_ptr<Optimizer> opt_a = make(a);
  for (int64_t s = 0; s < 3; ++s) {
    make_grads(a, s);
    opt_a->step();
  }
  const NamedTensors saved = opt_a->state();

  std::vector<Variable> b = clone_params(a);
  std::unique_ptr<Optimizer> opt_b = make(b);
  opt_b->load_state(saved);
  CHECK(opt_b->steps() == 3);
  for (int64_t s = 3; s < 5; ++s) {
    make_grads(a, s);
    opt_a->step();
    make_grads(b, s);
    opt_b->step();
  }
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("parameter ", i);
    CHECK(std::memcmp(a[i].value().data(), b[i].value().data(), a[i].value().nbytes()) == 0);
  }
}

}  // namespace

TEST_CASE("optimizer state: a resumed run continues bit for bit") {
  SUBCASE("sgd with nesterov momentum and weight decay") {
    check_resume_is_exact([](std::vector<Variable> ps) {
      return std::make_unique<SGD>(std::move(ps), SgdOptions{.lr = 0.05f, .momentum = 0.9f,
                                                             .nesterov = true, .weight_decay = 1e-3f});
    });
  }
  SUBCASE("adam") {
    check_resume_is_exact([](std::vector<Variable> ps) {
      return std::make_unique<Adam>(std::move(ps), AdamOptions{.lr = 0.01f, .weight_decay = 1e-3f});
    });
  }
  SUBCASE("adamw") {
    check_resume_is_exact([](std::vector<Variable> ps) {
      return std::make_unique<AdamW>(std::move(ps), AdamWOptions{.lr = 0.01f});
    });
  }
}

TEST_CASE("optimizer state: adam names its step counts and both moments per parameter") {
  std::vector<Variable> ps = make_params(1);
  Adam opt(ps, {});
  for (int64_t s = 0; s < 3; ++s) {
    make_grads(ps, s);
    opt.step();
  }
  std::vector<std::string> names;
  for (const auto& [name, t] : opt.state()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"step", "step.0", "step.1", "exp_avg.0", "exp_avg.1",
                                          "exp_avg_sq.0", "exp_avg_sq.1"});
  const NamedTensors st = opt.state();
  CHECK(st[0].second.data_as<int32_t>()[0] == 3);
  CHECK(st[1].second.data_as<int32_t>()[0] == 3);
  CHECK(st[2].second.data_as<int32_t>()[0] == 2);  // parameter 1 had no gradient on step 1
}

TEST_CASE("optimizer state: a wrong entry is refused, naming it, and nothing changes") {
  std::vector<Variable> ps = make_params(3);
  Adam opt(ps, {});
  make_grads(ps, 0);
  opt.step();
  const NamedTensors good = opt.state();

  auto with = [&](const std::string& name, Tensor t) {
    NamedTensors s = good;
    for (auto& [n, v] : s)
      if (n == name) v = t;
    return s;
  };
  Adam fresh(clone_params(ps), {});
  CHECK_THROWS_WITH_AS(fresh.load_state(with("exp_avg.0", Tensor::zeros({3, 2}))),
                       doctest::Contains("\"exp_avg.0\": expected float32 (2, 3), got float32 (3, 2)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(fresh.load_state(with("exp_avg_sq.1", Tensor::zeros({5}))),
                       doctest::Contains("\"exp_avg_sq.1\": expected float32 (4,), got float32 (5,)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(fresh.load_state(with("step", Tensor::zeros({1}))),
                       doctest::Contains("\"step\": expected int32 (1,), got float32 (1,)"),
                       std::invalid_argument);
  NamedTensors unknown = good;
  unknown.emplace_back("momentum.0", Tensor::zeros({2, 3}));
  CHECK_THROWS_WITH_AS(fresh.load_state(unknown), doctest::Contains("unknown entry \"momentum.0\""),
                       std::invalid_argument);
  NamedTensors out_of_range = good;
  out_of_range.emplace_back("exp_avg.2", Tensor::zeros({2, 3}));
  CHECK_THROWS_WITH_AS(fresh.load_state(out_of_range),
                       doctest::Contains("unknown entry \"exp_avg.2\""), std::invalid_argument);
  NamedTensors twice = good;
  twice.push_back(good.back());
  CHECK_THROWS_WITH_AS(fresh.load_state(twice), doctest::Contains("appears twice"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(fresh.load_state(NamedTensors(good.begin() + 1, good.end())),
                       doctest::Contains("missing entry \"step\""), std::invalid_argument);
  CHECK(fresh.steps() == 0);
  CHECK(fresh.state().size() == 1);  // still fresh: only "step"

  SGD sgd(clone_params(ps), {.lr = 0.1f, .momentum = 0.9f});
  CHECK_THROWS_WITH_AS(sgd.load_state(good), doctest::Contains("unknown entry \"exp_avg.0\""),
                       std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Gradient clipping.

TEST_CASE("clip_grad_norm: reports the global norm and scales the gradients down to max_norm") {
  // grads [3, 4] and [12]: norm sqrt(9 + 16 + 144) = 13.
  Variable a = param({0.f, 0.f}), b = param({0.f}), c = param({1.f});
  set_grad(a, {3.f, 4.f});
  set_grad(b, {12.f});
  std::vector<Variable> ps = {a, b, c};  // c has no gradient: skipped
  CHECK(clip_grad_norm(ps, 6.5f) == doctest::Approx(13.0).epsilon(1e-7));
  const double coef = 6.5 / (13.0 + 1e-6);
  check_values(a.grad(), {3 * coef, 4 * coef});
  check_values(b.grad(), {12 * coef});
  CHECK_FALSE(c.has_grad());
  CHECK(clip_grad_norm(ps, 100.f) == doctest::Approx(6.5).epsilon(1e-6));  // new norm
}

TEST_CASE("clip_grad_norm: gradients below max_norm are left exactly as they are") {
  Variable a = param({0.f, 0.f});
  set_grad(a, {3.f, 4.f});
  CHECK(clip_grad_norm({a}, 5.1f) == 5.f);
  CHECK(a.grad().data()[0] == 3.f);
  CHECK(a.grad().data()[1] == 4.f);
  CHECK_THROWS_AS(clip_grad_norm({a}, -1.f), std::invalid_argument);
}

TEST_CASE("clip_grad_norm: a non-finite norm is reported and the gradients are untouched") {
  Variable a = param({0.f, 0.f});
  set_grad(a, {INFINITY, 1.f});
  CHECK(std::isinf(clip_grad_norm({a}, 1.f)));
  CHECK(a.grad().data()[1] == 1.f);
}

// ---------------------------------------------------------------------------------------
// End to end: a 3-class logistic regression on linearly separable synthetic data.

namespace {

struct Problem {
  Tensor x, labels;  // x: (N, D), labels: int32 (N,)
};

Problem make_problem() {
  const int64_t N = 96, D = 4, C = 3;
  Rng rng(42);
  Tensor x = Tensor::randn({N, D}, rng);
  Tensor w_true = Tensor::randn({D, C}, rng, 0.f, 2.f);
  std::vector<int32_t> labels(N);
  for (int64_t n = 0; n < N; ++n) {
    int32_t best = 0;
    float best_z = -INFINITY;
    for (int32_t c = 0; c < C; ++c) {
      float z = 0.f;
      for (int64_t d = 0; d < D; ++d) z += x.at({n, d}) * w_true.at({d, c});
      if (z > best_z) best_z = z, best = c;
    }
    labels[size_t(n)] = best;
  }
  return {x, Tensor::from_i32({N}, labels)};
}

// Train for `steps` full-batch steps; returns {initial loss, final loss}.
std::pair<float, float> train(const MakeOpt& make, int steps, const Regularizer* reg = nullptr) {
  const Problem p = make_problem();
  Variable w(Tensor::zeros({4, 3}), true), b(Tensor::zeros({3}), true);
  std::unique_ptr<Optimizer> opt = make({w, b});
  const Variable x(p.x);
  float first = 0.f, last = 0.f;
  for (int s = 0; s < steps; ++s) {
    opt->zero_grad();
    Variable loss = cross_entropy(matmul(x, w) + b, p.labels);
    if (s == 0) first = loss.item();
    last = loss.item();
    loss.backward();
    if (reg) reg->add_gradient({w});
    opt->step();
  }
  return {first, last};
}

}  // namespace

TEST_CASE("end to end: every optimizer drives a logistic regression's loss down") {
  const float ln3 = std::log(3.f);  // the loss of the all-zero start
  auto expect_falls = [&](const char* name, const MakeOpt& make, const Regularizer* reg = nullptr) {
    const auto [first, last] = train(make, 200, reg);
    INFO(name, ": loss ", first, " -> ", last);
    CHECK(first == doctest::Approx(ln3));
    CHECK(last < 0.25f * first);
  };
  expect_falls("sgd", [](std::vector<Variable> ps) {
    return std::make_unique<SGD>(std::move(ps), SgdOptions{.lr = 0.5f});
  });
  expect_falls("sgd momentum", [](std::vector<Variable> ps) {
    return std::make_unique<SGD>(std::move(ps), SgdOptions{.lr = 0.1f, .momentum = 0.9f});
  });
  expect_falls("sgd nesterov", [](std::vector<Variable> ps) {
    return std::make_unique<SGD>(std::move(ps),
                                 SgdOptions{.lr = 0.1f, .momentum = 0.9f, .nesterov = true});
  });
  expect_falls("adam", [](std::vector<Variable> ps) {
    return std::make_unique<Adam>(std::move(ps), AdamOptions{.lr = 0.05f});
  });
  expect_falls("adamw", [](std::vector<Variable> ps) {
    return std::make_unique<AdamW>(std::move(ps), AdamWOptions{.lr = 0.05f});
  });
  const L2Regularizer l2(1e-3);
  expect_falls("sgd momentum + L2 prior", [](std::vector<Variable> ps) {
    return std::make_unique<SGD>(std::move(ps), SgdOptions{.lr = 0.1f, .momentum = 0.9f});
  }, &l2);
}
