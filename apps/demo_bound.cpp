// crayon demo bound (DESIGN.md idea 4). For z = w·x + b with its input quantized to x̂,
// z − ẑ = w·(x − x̂), so |z − ẑ| ≤ Σ|w_j||x_j − x̂_j|: the weights' size multiplies the input's
// quantization error. The demo quantizes the input of one layer (mlp's second linear, 4-bit
// grid over its observed range) and measures, per test image, the actual change of one neuron
// with large weights, of one with small weights and of the whole layer beside the bound, for
// the network trained without and with L2. Then the whole network: the fraction of test
// predictions the certified bound of quant/bound.h proves cannot flip, beside those that kept.
#include <algorithm>
#include <cmath>

#include "apps/demo.h"
#include "core/check.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/analysis.h"
#include "quant/fake_quant.h"

namespace crayon {

namespace {

struct NeuronStats {
  double l1 = 0;                            // Σ|w_j|
  double mean_measured = 0, mean_bound = 0;  // over samples
  double max_ratio = 0;                      // max over samples of measured / bound
};

// Unit i of z = W h (b cancels) over the rows of h and ĥ (N, J).
NeuronStats neuron(const Tensor& weight, int64_t i, const Tensor& h, const Tensor& hq) {
  const int64_t n = h.size(0), j_count = h.size(1);
  const float* w = weight.data() + i * j_count;
  NeuronStats s;
  for (int64_t j = 0; j < j_count; ++j) s.l1 += std::fabs(double(w[j]));
  for (int64_t k = 0; k < n; ++k) {
    double change = 0, bound = 0;
    for (int64_t j = 0; j < j_count; ++j) {
      const double e = double(h.data()[k * j_count + j]) - double(hq.data()[k * j_count + j]);
      change += double(w[j]) * e;
      bound += std::fabs(double(w[j])) * std::fabs(e);
    }
    s.mean_measured += std::fabs(change) / double(n);
    s.mean_bound += bound / double(n);
    if (bound > 0) s.max_ratio = std::max(s.max_ratio, std::fabs(change) / bound);
  }
  return s;
}

}  // namespace

Demo demo_bound(const DemoOptions& o) {
  Demo d{"bound", {}, {}, {}, {}};
  const Tensor images = mnist_batch(o, false, 1000).images;
  DemoTable layer{"mlp's second linear layer (256 -> 128), its input quantized to 4 bits (affine, min-max): |Δz| "
                  "against Σ|w||Δx|, mean over 1000 test images",
                  {"network", "neuron", "Σ|w|", "mean |Δz|", "mean bound", "max |Δz| / bound"},
                  {}};
  DemoTable net_table{str("the whole network, weights and activations quantized (PTQ): certified and kept top-1 on ",
                          kDemoTestImages, " test images"),
                      {"network", "float %", "bits", "quantized %", "certified %", "kept %", "mean logit bound",
                       "mean |Δ logit|"},
                      {}};
  const QuantSpec act{.bits = 4, .symmetric = false};
  for (const char* reg : {"none", "l2"}) {
    const DemoNet net = demo_net(o, "mlp", 10000, 2, [&](TrainConfig& c) {
      if (std::string(reg) == "l2") c.l2 = 3e-3;
    });
    const std::string label = std::string(reg) == "l2" ? "L2 3e-3" : "no regularizer";
    // mlp: flatten linear relu linear relu linear; layer 3's input is the first ReLU's output.
    const Tensor h = run_layers(*net.model, images, 3).reshape({images.size(0), -1});
    const Ranges r = tensor_ranges(h, -1);
    const Tensor hq = fake_quant_values(h, choose_qparams(r.min[0], r.max[0], act), act);
    const Tensor& w = (*net.model)[3].named_parameters().at(0).second.value();  // weight (128, 256)
    int64_t big = 0, small = 0;
    std::vector<double> l1(size_t(w.size(0)), 0.0);
    for (int64_t i = 0; i < w.size(0); ++i) {
      for (int64_t j = 0; j < w.size(1); ++j) l1[size_t(i)] += std::fabs(double(w.data()[i * w.size(1) + j]));
      if (l1[size_t(i)] > l1[size_t(big)]) big = i;
      if (l1[size_t(i)] < l1[size_t(small)]) small = i;
    }
    NeuronStats all;
    for (int64_t i = 0; i < w.size(0); ++i) {
      const NeuronStats s = neuron(w, i, h, hq);
      all.l1 += s.l1 / double(w.size(0));
      all.mean_measured += s.mean_measured / double(w.size(0));
      all.mean_bound += s.mean_bound / double(w.size(0));
      all.max_ratio = std::max(all.max_ratio, s.max_ratio);
    }
    const std::string key = reg;
    const NeuronStats sb = neuron(w, big, h, hq), ss = neuron(w, small, h, hq);
    for (const auto& [name, s] : {std::pair{str("unit ", big, " (largest Σ|w|)"), sb},
                                  std::pair{str("unit ", small, " (smallest Σ|w|)"), ss},
                                  std::pair{str("all ", w.size(0), " (mean)"), all}})
      layer.rows.push_back({label, name, fixed(s.l1, 2), sci(s.mean_measured), sci(s.mean_bound), fixed(s.max_ratio, 3)});
    d.numbers.push_back({key + "_large_bound", sb.mean_bound});
    d.numbers.push_back({key + "_small_bound", ss.mean_bound});
    d.numbers.push_back({key + "_layer_l1", all.l1});
    d.numbers.push_back({key + "_layer_bound", all.mean_bound});
    d.numbers.push_back({key + "_layer_measured", all.mean_measured});
    d.numbers.push_back({key + "_max_ratio", all.max_ratio});
    const DemoBatch test = mnist_batch(o, false, kDemoTestImages);
    for (int bits : {8, 4}) {
      QatConfig q;
      q.weight.bits = bits, q.act.bits = bits;
      auto model = demo_ptq(o, net, q);
      bool given = false;
      const Analysis a = analyze(*model, net.input_shape, [&](Tensor& x, Tensor& y) {
        if (given) return false;
        x = test.images, y = test.labels, given = true;
        return true;
      }, [] {}, false);
      net_table.rows.push_back({label, fixed(100 * a.reference_accuracy, 2), str("W", bits, "A", bits),
                                fixed(100 * a.quantized_accuracy, 2), fixed(100 * a.certified, 2),
                                fixed(100 * a.kept, 2), sci(a.tightness.back().mean_bound),
                                sci(a.tightness.back().mean_measured)});
      d.numbers.push_back({str(key, "_certified_", bits), a.certified});
      d.numbers.push_back({str(key, "_kept_", bits), a.kept});
    }
  }
  d.tables = {layer, net_table};
  d.notes = {
      str("The bound is never exceeded: the largest |Δz| / bound over every unit and image is ",
          fixed(std::max(d.number("none_max_ratio"), d.number("l2_max_ratio")), 3), " (signs of w·Δx cancel, so the "
          "actual change is a fraction of it)."),
      str("Large weights amplify the same input error: without L2 the largest-Σ|w| unit's bound is ",
          fixed(d.number("none_large_bound") / d.number("none_small_bound"), 1), "x the smallest's."),
      str("L2 shrinks the layer's Σ|w| from ", fixed(d.number("none_layer_l1"), 2), " to ",
          fixed(d.number("l2_layer_l1"), 2), " per unit, and its mean bound from ", sci(d.number("none_layer_bound")),
          " to ", sci(d.number("l2_layer_bound")), "."),
      str("Whole network without L2: ", fixed(100 * d.number("none_certified_8"), 1), " % of the predictions are "
          "certified at W8A8 (", fixed(100 * d.number("none_kept_8"), 1), " % kept), ",
          fixed(100 * d.number("none_certified_4"), 1), " % at W4A4 (", fixed(100 * d.number("none_kept_4"), 1),
          " % kept): a certificate needs every other logit's margin to exceed the two logits' bounds, carried "
          "through every layer.")};
  return d;
}

}  // namespace crayon
