// crayon demo stochastic (DESIGN.md idea 7). Stochastic rounding sends v to floor(v) + 1 with
// probability v − floor(v), so E[round(v)] = v; round-to-nearest sends every draw to the same
// integer, off by up to ½. Part 1 rounds the same values many times and compares the means
// with the standard error. Part 2 is Gupta et al. 2015's setting: weights that live on an
// 8-bit fixed-point grid with no float copy, every SGD update rounded back onto it. An update
// below half a grid step is lost to nearest rounding and kept in expectation by stochastic.
#include <cmath>

#include "apps/demo.h"
#include "core/check.h"
#include "core/rng.h"
#include "core/rounding.h"

namespace crayon {

Demo demo_stochastic(const DemoOptions& o) {
  Demo d{"stochastic", {}, {}, {}, {}};
  constexpr int kDraws = 10000;
  DemoTable t{str("each value rounded ", kDraws, " times (in units of the grid step)"),
              {"value", "nearest", "nearest bias", "stochastic mean", "stochastic bias", "standard error",
               "|bias| / s.e."},
              {}};
  Rng rng(o.seed);
  double worst_z = 0, nearest_bias = 0, stochastic_bias = 0;
  const double values[] = {0.1, 0.25, 0.5, 0.7, 0.9, 2.3, -1.6};
  for (double v : values) {
    const double n = round_value(float(v), Rounding::nearest_even);
    double sum = 0, sq = 0;
    for (int i = 0; i < kDraws; ++i) {
      const double r = round_value(float(v), Rounding::stochastic, &rng);
      sum += r, sq += r * r;
    }
    const double mean = sum / kDraws;
    const double se = std::sqrt(std::max(0.0, sq / kDraws - mean * mean) / (kDraws - 1));
    const double z = se > 0 ? std::fabs(mean - v) / se : 0;
    worst_z = std::max(worst_z, z);
    nearest_bias += std::fabs(n - v), stochastic_bias += std::fabs(mean - v);
    t.rows.push_back({fixed(v, 2), fixed(n, 0), fixed(n - v, 2), fixed(mean, 4), fixed(mean - v, 4), fixed(se, 4),
                      fixed(z, 2)});
  }
  d.numbers.push_back({"nearest_mean_abs_bias", nearest_bias / double(std::size(values))});
  d.numbers.push_back({"stochastic_mean_abs_bias", stochastic_bias / double(std::size(values))});
  d.numbers.push_back({"stochastic_worst_z", worst_z});

  DemoTable sgd{"mlp on 10000 MNIST training images, one epoch, lr 0.05: weights on an 8-bit fixed-point grid, every "
                "update rounded onto it (no float copy)",
                {"weights", "grid step", "test accuracy %"},
                {}};
  const DemoNet fp = demo_net(o, "mlp");
  sgd.rows.push_back({"float32 (reference)", "-", fixed(100 * fp.test_accuracy, 2)});
  d.numbers.push_back({"float_accuracy", fp.test_accuracy});
  for (const char* r : {"nearest", "stochastic"}) {
    const DemoNet net = demo_net(o, "mlp", 10000, 1, [&](TrainConfig& c) {
      c.update_bits = 8;
      c.update_rounding = r;
    });
    sgd.rows.push_back({str("8-bit, rounded ", std::string(r) == "nearest" ? "to nearest" : "stochastically"), str("2^-", net.config.update_frac_bits),
                        fixed(100 * net.test_accuracy, 2)});
    d.numbers.push_back({str(r, "_accuracy"), net.test_accuracy});
  }
  d.tables = {t, sgd};
  d.notes = {
      str("Over these values nearest is off by ", fixed(d.number("nearest_mean_abs_bias"), 3),
          " on average, every time; stochastic's mean is off by ", fixed(d.number("stochastic_mean_abs_bias"), 4),
          ", at most ", fixed(worst_z, 1), " standard errors: unbiased."),
      str("Low-precision SGD: rounded to nearest, every update below half a grid step is lost; training reaches ",
          fixed(100 * d.number("nearest_accuracy"), 2), " %; rounded stochastically it reaches ",
          fixed(100 * d.number("stochastic_accuracy"), 2), " % (float: ", fixed(100 * fp.test_accuracy, 2), " %).")};
  Plot p{"mean of 10000 roundings of v against v", "v (grid steps)", "mean rounded value", false, false, true, {}};
  PlotSeries ns{"round to nearest", {}, {}, "lines"}, ss{"stochastic rounding (mean)", {}, {}, "points pt 7 ps 0.6"};
  for (int i = -400; i <= 400; ++i) {  // the staircase finely enough that its risers are vertical
    const double v = i / 200.0;
    ns.points.emplace_back(v, round_value(float(v), Rounding::nearest_even));
  }
  for (int i = -20; i <= 20; ++i) {
    const double v = i / 10.0;
    double sum = 0;
    for (int k = 0; k < kDraws; ++k) sum += round_value(float(v), Rounding::stochastic, &rng);
    ss.points.emplace_back(v, sum / kDraws);
  }
  p.series = {ns, ss};
  d.plots.push_back({"demo-stochastic", p});
  return d;
}

}  // namespace crayon
