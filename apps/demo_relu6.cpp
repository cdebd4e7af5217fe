// crayon demo relu6 (DESIGN.md idea 3): the same network, same seed, same data, trained once
// with ReLU and once with ReLU6. ReLU's outputs have no ceiling, so an int8 grid over their
// observed range [0, max] gets a step of max / 255; ReLU6 caps them at 6, so its step is at
// most 6 / 255 and every value rounds on a finer grid: the architecture chosen for the grid.
#include <algorithm>
#include <cmath>

#include "apps/demo.h"
#include "core/check.h"
#include "quant/error.h"

namespace crayon {

Demo demo_relu6(const DemoOptions& o) {
  Demo d{"relu6", {}, {}, {}, {}};
  const Tensor images = mnist_batch(o, false, 1000).images;
  const QuantSpec act{.bits = 8, .symmetric = false};  // the activation grid crayon uses: affine int8, one scale
  DemoTable t{"int8 grid (affine, min-max over 1000 test images) of each hidden layer's outputs",
              {"network", "layer", "max", "99.9th pct", "outputs > 6 %", "step Δ", "rounding RMS", "SQNR dB"},
              {}};
  DemoTable acc{str("accuracy on ", kDemoTestImages, " test images"), {"network", "float %", "W8A8 PTQ %", "W4A4 PTQ %"},
                {}};
  for (const char* f : {"relu", "relu6"}) {
    const std::string spec = str("flatten-linear(256)-", f, "-linear(128)-", f, "-linear(10)");
    const DemoNet net = demo_net(o, spec);
    for (size_t layer : {size_t(3), size_t(5)}) {
      const Tensor x = run_layers(*net.model, images, layer);
      std::vector<float> v(x.values().begin(), x.values().end());
      std::sort(v.begin(), v.end());
      const double p999 = v[size_t(0.999 * double(v.size() - 1))];
      const double above6 = double(v.end() - std::upper_bound(v.begin(), v.end(), 6.f)) / double(v.size());
      const QParams qp = choose_qparams(v.front(), v.back(), act);
      const QuantError e = decompose_error(x, qp, act);
      double signal = 0;
      for (float a : v) signal += double(a) * double(a);
      const double rms = std::sqrt(e.total_sse() / double(e.count));
      const std::string which = layer == 3 ? "hidden 1" : "hidden 2";
      t.rows.push_back({f, str(which, " (", layer == 3 ? 256 : 128, ")"), fixed(v.back(), 2), fixed(p999, 2),
                        fixed(100 * above6, 2), sci(qp.scale[0]), sci(rms), fixed(10 * std::log10(signal / e.total_sse()), 1)});
      const std::string key = str(f, layer == 3 ? "_hidden1" : "_hidden2");
      d.numbers.push_back({key + "_max", v.back()});
      d.numbers.push_back({key + "_step", qp.scale[0]});
      d.numbers.push_back({key + "_rms", rms});
    }
    QatConfig w8;
    QatConfig w4;
    w4.weight.bits = 4, w4.act.bits = 4;
    const double a8 = demo_accuracy(o, *demo_ptq(o, net, w8)), a4 = demo_accuracy(o, *demo_ptq(o, net, w4));
    acc.rows.push_back({f, fixed(100 * net.test_accuracy, 2), fixed(100 * a8, 2), fixed(100 * a4, 2)});
    d.numbers.push_back({str(f, "_float_accuracy"), net.test_accuracy});
    d.numbers.push_back({str(f, "_w8a8_accuracy"), a8});
    d.numbers.push_back({str(f, "_w4a4_accuracy"), a4});
  }
  d.tables = {t, acc};
  d.notes = {str("Hidden 1: ReLU reaches ", fixed(d.number("relu_hidden1_max"), 2), ", so its int8 step is ",
                 sci(d.number("relu_hidden1_step")), "; ReLU6 stops at ", fixed(d.number("relu6_hidden1_max"), 2),
                 " with a step of ", sci(d.number("relu6_hidden1_step")), "; ReLU's rounding RMS is ",
                 fixed(d.number("relu_hidden1_rms") / d.number("relu6_hidden1_rms"), 2), "x ReLU6's."),
             str("Float accuracy: ", fixed(100 * d.number("relu_float_accuracy"), 2), " % with ReLU, ",
                 fixed(100 * d.number("relu6_float_accuracy"), 2), " % with ReLU6; at W4A4 ",
                 fixed(100 * d.number("relu_w4a4_accuracy"), 2), " % and ", fixed(100 * d.number("relu6_w4a4_accuracy"), 2),
                 " %.")};
  Plot p{"int8 step of each hidden layer's outputs, ReLU vs ReLU6", "hidden layer", "int8 step (range / 255)",
         false, false, false, {}};
  for (const char* f : {"relu", "relu6"})
    p.series.push_back({f,
                        {{1, d.number(str(f, "_hidden1_step"))}, {2, d.number(str(f, "_hidden2_step"))}},
                        {},
                        "linespoints"});
  p.xtics = 1;
  d.plots.push_back({"demo-relu6", p});
  return d;
}

}  // namespace crayon
