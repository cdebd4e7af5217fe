// Every demo runs, and the claim its chapter makes holds on the numbers it computed (real
// MNIST from the repository's data/, seed 1).
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "apps/demo.h"
#include "core/check.h"
#include "tests/apps/app_support.h"

using namespace crayon;

namespace {

DemoOptions options() {
  DemoOptions o;
  o.data_dir = std::string(CRAYON_SOURCE_DIR) + "/data/mnist";
  return o;
}

Demo run(const char* name) {
  const Demo d = find_demo(name).run(options());
  INFO(format_demo(d));
  CHECK(d.name == name);
  CHECK(!d.tables.empty());
  for (const DemoTable& t : d.tables)
    for (const auto& row : t.rows) CHECK(row.size() == t.header.size());
  CHECK(demo_json(d).find("\"numbers\": {\"") != std::string::npos);
  return d;
}

}  // namespace

TEST_CASE("demo mdl: priors send the weights in far fewer than 32 bits and coarser grids trade model bits for data bits") {
  const Demo d = run("mdl");
  const double n = d.number("weights"), sigma = d.number("sigma"), b = d.number("b");
  CHECK(d.number("float32_model_bits") == 32 * n);
  // A prior fitted by maximum likelihood, each weight sent to 2^-8: the expected code length
  // per weight is the prior's differential entropy + 8 bits, exactly, since E[w²] = σ² and
  // E|w| = b by the fit: ½ log2(2πe σ²) + 8 (Gaussian), log2(2e b) + 8 (Laplace).
  const double e = std::exp(1.0), pi = std::acos(-1.0);
  CHECK(d.number("gaussian_model_bits") / n == doctest::Approx(0.5 * std::log2(2 * pi * e * sigma * sigma) + 8).epsilon(1e-6));
  CHECK(d.number("laplace_model_bits") / n == doctest::Approx(std::log2(2 * e * b) + 8).epsilon(1e-6));
  // Entropy coding of 8-bit integers beats 8 bits each, scales included; coarser grids are shorter.
  CHECK(d.number("int8_model_bits") < 8 * n);
  CHECK(d.number("int4_model_bits") < d.number("int8_model_bits") - n);
  CHECK(d.number("int2_model_bits") < d.number("int4_model_bits") - n);
  CHECK(d.number("int2_data_bits") > d.number("int8_data_bits"));
  CHECK(d.number("int8_data_bits") == doctest::Approx(d.number("float32_data_bits")).epsilon(0.01));
}

TEST_CASE("demo rounding: the best clip ratio lies inside (0 and 1) and beats both no calibration and max-abs") {
  const Demo d = run("rounding");
  CHECK(d.number("best_ratio") > 0.f);
  CHECK(d.number("best_ratio") < 1.f);
  CHECK(d.number("best_sse") < d.number("maxabs_saturation_sse") + d.number("maxabs_rounding_sse"));
  CHECK(d.number("best_sse") < d.number("assumed_sse"));
  // Max-abs: no saturation at all; assumed ±1 on values reaching ~9: mostly saturation.
  CHECK(d.number("maxabs_saturation_sse") == 0);
  CHECK(d.number("assumed_saturated_fraction") > 0.01);
  CHECK(d.number("assumed_saturation_sse") > 0.9 * d.number("assumed_sse"));
  CHECK(d.number("best_rounding_sse") < d.number("maxabs_rounding_sse"));
  // The observers that clip land near the sweep's best, min-max at ratio 1.
  CHECK(d.number("minmax_ratio") == doctest::Approx(1.0).epsilon(0.01));
  CHECK(d.number("mse_sse") < 1.05 * d.number("best_sse"));
}

TEST_CASE("demo relu6: ReLU6's int8 step and error are below ReLU's in every hidden layer") {
  const Demo d = run("relu6");
  for (const char* layer : {"hidden1", "hidden2"}) {
    CAPTURE(layer);
    CHECK(d.number(std::string("relu6_") + layer + "_max") <= 6.0);
    CHECK(d.number(std::string("relu_") + layer + "_max") > 6.0);
    CHECK(d.number(std::string("relu6_") + layer + "_step") < d.number(std::string("relu_") + layer + "_step"));
    CHECK(d.number(std::string("relu6_") + layer + "_rms") < d.number(std::string("relu_") + layer + "_rms"));
  }
  CHECK(d.number("relu6_float_accuracy") > 0.8);
}

TEST_CASE("demo bound: never exceeded and larger weights give larger bounds and certified <= kept") {
  const Demo d = run("bound");
  for (const char* net : {"none", "l2"}) {
    CAPTURE(net);
    const std::string k = net;
    CHECK(d.number(k + "_max_ratio") <= 1.0);
    CHECK(d.number(k + "_max_ratio") > 0.0);
    CHECK(d.number(k + "_layer_measured") < d.number(k + "_layer_bound"));
    CHECK(d.number(k + "_large_bound") > d.number(k + "_small_bound"));
    for (const char* bits : {"_8", "_4"}) CHECK(d.number(k + "_certified" + bits) <= d.number(k + "_kept" + bits));
    CHECK(d.number(k + "_certified_4") <= d.number(k + "_certified_8"));
  }
  CHECK(d.number("l2_layer_l1") < d.number("none_layer_l1"));
  CHECK(d.number("l2_layer_bound") < d.number("none_layer_bound"));
}

TEST_CASE("demo kl: a constant shift costs nothing and 1/2 Var matches KL for small noise but not for large") {
  const Demo d = run("kl");
  CHECK(d.number("shift_kl") < 1e-9);
  CHECK(d.number("noise_0.01_relative_error") < 0.02);
  CHECK(d.number("noise_3_relative_error") > 0.3);
  CHECK(d.number("noise_0.01_relative_error") < d.number("noise_0.1_relative_error"));
  CHECK(d.number("noise_0.1_relative_error") < d.number("noise_1_relative_error"));
  CHECK(d.number("w8_kl") < d.number("w4_kl"));
  CHECK(d.number("w4_kl") < d.number("w2_kl"));
}

TEST_CASE("demo ste: the model learns through STE and cannot without it and round's finite difference is 0") {
  const Demo d = run("ste");
  CHECK(d.number("finite_difference_max") == 0);
  // round()'s own derivative, computed by autograd, is 0: no weight moves, and the model
  // stays at its initial grid values (all 0).
  CHECK(d.number("none_gradient") == 0);
  CHECK(d.number("none_moved") == 0);
  CHECK(d.number("initial_nonzero") == 0);
  CHECK(d.number("none_accuracy") < 0.2);
  CHECK(d.number("plain_moved") > 0.1);
  CHECK(d.number("plain_accuracy") > 0.7);
  CHECK(d.number("clipped_accuracy") > 0.7);
  // Clipped STE stops a clamped weight; plain STE lets it drift further.
  CHECK(d.number("clipped_drift") < d.number("plain_drift") / 2);
  CHECK(d.number("clipped_outside") < 0.05);
}

TEST_CASE("demo stochastic: stochastic rounding is unbiased and low-precision SGD learns with it and stalls without") {
  const Demo d = run("stochastic");
  CHECK(d.number("stochastic_mean_abs_bias") < d.number("nearest_mean_abs_bias") / 10);
  CHECK(d.number("stochastic_worst_z") < 4.5);  // 7 values, |z| of a standard normal
  CHECK(d.number("stochastic_accuracy") > d.number("nearest_accuracy") + 0.1);
  CHECK(d.number("stochastic_accuracy") > d.number("float_accuracy") - 0.03);
}

TEST_CASE("demo: an unknown name is refused listing the demos") {
  CHECK_THROWS_WITH_AS(find_demo("nope"), doctest::Contains("mdl, rounding, relu6, bound, kl, ste, stochastic"),
                       std::invalid_argument);
}

TEST_CASE("crayon demo: lists the demos and --json prints the numbers and --plot writes the PNG and a bad name exits 2") {
  TempDir dir;
  const Cli cli(dir);
  const std::string data = str(" --data-dir ", CRAYON_SOURCE_DIR, "/data/mnist");
  REQUIRE(cli("demo") == 0);
  for (const DemoInfo& d : demos()) CHECK(slurp(dir / "stdout.txt").find(str("  ", d.name, " ")) != std::string::npos);
  REQUIRE(cli("demo kl --json --plot " + (dir / "plots") + data) == 0);
  CHECK(slurp(dir / "stdout.txt").rfind("{\"demo\": \"kl\", \"numbers\": {\"shift_kl\": ", 0) == 0);
  CHECK(slurp(dir / "plots/demo-kl.png").compare(1, 3, "PNG") == 0);
  CHECK(cli("demo nope") == 2);
  CHECK(slurp(dir / "stderr.txt").find("crayon demo: NAME: expected a demo name (mdl, rounding") == 0);
  CHECK(cli("demo kl --model missing.h5" + data) == 1);
  CHECK(slurp(dir / "stderr.txt").find("missing.h5") != std::string::npos);
  CHECK(cli("demo ste --model missing.h5" + data) == 2);  // ste trains its own model
  CHECK(slurp(dir / "stderr.txt").find("crayon demo: --model: the ste demo trains its own networks") == 0);
  REQUIRE(cli("fetch --help") == 0);
  CHECK(slurp(dir / "stdout.txt").find("--name") == std::string::npos);  // the positional's option stays hidden
}
