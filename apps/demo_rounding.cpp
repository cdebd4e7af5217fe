// crayon demo rounding (DESIGN.md idea 2): real activations of a trained network put on the
// int8 grid (-128..127, symmetric, one scale) in three ways. With a range assumed instead of
// measured (±1, the "no calibration" guess) the step is fine but the tail saturates; with the
// max-abs scale (clip ratio 1) nothing saturates but every value rounds on the widest step; the
// clip ratios in between trade one error for the other, and the best lies inside. Beside it,
// the range each calibration observer picks on the same values.
#include <cmath>

#include "apps/demo.h"
#include "core/check.h"
#include "quant/error.h"
#include "quant/observer.h"

namespace crayon {

namespace {

double signal_of(const Tensor& x) {
  double s = 0;
  for (float v : x.values()) s += double(v) * double(v);
  return s;
}

std::vector<std::string> error_row(const std::string& label, const QParams& qp, const QuantSpec& spec,
                                   const QuantError& e, double signal) {
  const double lo = (spec.qmin() - qp.zero_point[0]) * double(qp.scale[0]);
  const double hi = (spec.qmax() - qp.zero_point[0]) * double(qp.scale[0]);
  return {label,
          str("[", fixed(lo, 2), ", ", fixed(hi, 2), "]"),
          sci(qp.scale[0]),
          fixed(100.0 * double(e.saturated) / double(e.count), 3),
          sci(e.saturation_sse),
          sci(e.rounding_sse),
          sci(e.total_sse()),
          fixed(10 * std::log10(signal / e.total_sse()), 1)};
}

}  // namespace

Demo demo_rounding(const DemoOptions& o) {
  Demo d{"rounding", {}, {}, {}, {}};
  const DemoNet net = demo_net(o);
  // The first hidden layer's pre-activations (flatten, linear) on 1000 test images: signed,
  // mostly small, with a long tail.
  const Tensor x = run_layers(*net.model, mnist_batch(o, false, 1000).images, 2);
  const QuantSpec spec{.bits = 8, .symmetric = true};
  const double signal = signal_of(x);
  const Ranges r = tensor_ranges(x, -1);
  const double max_abs = std::max(std::fabs(r.min[0]), std::fabs(r.max[0]));

  DemoTable t{str(net.spec, " (test accuracy ", fixed(100 * net.test_accuracy, 2), " %): layer 1's outputs on 1000 "
                  "test images, ", x.numel(), " values in [", fixed(r.min[0], 2), ", ", fixed(r.max[0], 2),
                  "], on int8 (-128..127, one scale)"),
              {"grid", "range", "step Δ", "saturated %", "saturation SSE", "rounding SSE", "total SSE", "SQNR dB"},
              {}};
  // No calibration: the range is assumed to be [-1, 1], whatever the values are.
  const QParams assumed{{1.f / 127.f}, {0}, -1};
  const QuantError ea = decompose_error(x, assumed, spec);
  t.rows.push_back(error_row("assumed ±1 (no calibration)", assumed, spec, ea, signal));
  std::vector<float> ratios;
  for (int i = 1; i <= 20; ++i) ratios.push_back(float(i) / 20.f);
  const std::vector<ClipPoint> sweep = clip_sweep(x, spec, ratios);
  size_t best = 0;
  for (size_t i = 0; i < sweep.size(); ++i)
    if (sweep[i].error.total_sse() < sweep[best].error.total_sse()) best = i;
  for (size_t i = 0; i < sweep.size(); ++i) {
    if (i % 2 == 0 && i != best) continue;  // every tenth of the range, and the best
    const std::string label = str("clip ratio ", fixed(sweep[i].ratio, 2), i + 1 == sweep.size() ? " (max-abs)" : "",
                                  i == best ? "  <- best" : "");
    t.rows.push_back(error_row(label, sweep[i].qparams, spec, sweep[i].error, signal));
  }
  d.tables.push_back(t);

  DemoTable obs{"what each calibration observer picks on the same values", {"observer", "range", "step Δ",
                "saturated %", "saturation SSE", "rounding SSE", "total SSE", "SQNR dB"}, {}};
  for (const char* name : {"minmax", "percentile", "mse", "kl"}) {
    auto ob = make_observer(name, spec);
    ob->observe(x);
    const QParams qp = ob->qparams();
    const QuantError e = decompose_error(x, qp, spec);
    obs.rows.push_back(error_row(name, qp, spec, e, signal));
    d.numbers.push_back({str(name, "_sse"), e.total_sse()});
    d.numbers.push_back({str(name, "_ratio"), double(qp.scale[0]) * 127.0 / max_abs});
  }
  d.tables.push_back(obs);

  const ClipPoint& b = sweep[best];
  const ClipPoint& m = sweep.back();
  d.numbers.insert(d.numbers.begin(),
                   {{"assumed_saturated_fraction", double(ea.saturated) / double(ea.count)},
                    {"assumed_saturation_sse", ea.saturation_sse},
                    {"assumed_sse", ea.total_sse()},
                    {"maxabs_saturation_sse", m.error.saturation_sse},
                    {"maxabs_rounding_sse", m.error.rounding_sse},
                    {"best_ratio", b.ratio},
                    {"best_saturation_sse", b.error.saturation_sse},
                    {"best_rounding_sse", b.error.rounding_sse},
                    {"best_sse", b.error.total_sse()}});
  d.notes = {
      str("Assumed ±1: ", fixed(100.0 * double(ea.saturated) / double(ea.count), 1), " % of the values saturate; "
          "saturation error ", sci(ea.saturation_sse), ", rounding error ", sci(ea.rounding_sse), "."),
      str("Max-abs scaling: nothing saturates, but the step is ", sci(m.qparams.scale[0]), " and the rounding error is ",
          sci(m.error.rounding_sse), "."),
      b.ratio < 1 ? str("Clipping at ", fixed(b.ratio, 2), " of the range saturates ", fixed(100.0 *
                        double(b.error.saturated) / double(b.error.count), 3), " % and cuts the total error ",
                        fixed(m.error.total_sse() / b.error.total_sse(), 2), "x below max-abs: the rounding error falls "
                        "with the step (Δ²/12 per value) faster than the few clipped values add.")
                  : std::string("No clip ratio below 1 beats max-abs on these values.")};

  Plot p{"int8 error of layer 1's outputs by clip ratio (the grid covers ratio x max |x|)",
         "clip ratio (1 = max-abs scaling)", "sum of squared errors (log scale)", false, true, false, {}};
  PlotSeries sat{"saturation", {}, {}, "linespoints"}, rnd{"rounding", {}, {}, "linespoints"},
      tot{"total", {}, {}, "linespoints"};
  for (const ClipPoint& c : sweep) {
    if (c.error.saturation_sse > 0) sat.points.emplace_back(c.ratio, c.error.saturation_sse);
    rnd.points.emplace_back(c.ratio, c.error.rounding_sse);
    tot.points.emplace_back(c.ratio, c.error.total_sse());
  }
  p.series = {sat, rnd, tot};
  for (size_t i = 0; i < obs.rows.size(); ++i)
    p.series.push_back({str(obs.rows[i][0], " observer"),
                        {{d.number(str(obs.rows[i][0], "_ratio")), d.number(str(obs.rows[i][0], "_sse"))}},
                        {},
                        "points pt 7 ps 1.5"});
  d.plots.push_back({"demo-rounding", p});
  return d;
}

}  // namespace crayon
