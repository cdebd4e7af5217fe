// crayon demo mdl (DESIGN.md idea 1). The minimum description length principle scores a model
// by the bits of a two-part message: the model, then the training labels coded with it
// (data bits = n × cross-entropy / ln 2). One trained network is described six ways: its raw
// float32 weights; under a Gaussian prior (what L2 assumes) and a Laplace prior (L1), each
// fitted to the weights and sent to a precision of 2^-8; and as 8-, 4- and 2-bit integers per
// output channel, coded at their empirical entropy plus a float32 scale per channel. The
// fewer bits a grid leaves, the shorter the model part and the longer the data part.
#include <cmath>
#include <limits>

#include "apps/demo.h"
#include "apps/evaluate.h"
#include "apps/trainer.h"
#include "core/ops.h"
#include "core/check.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "optim/regularizer.h"
#include "quant/analysis.h"
#include "quant/fake_quant.h"
#include "quant/qat.h"

namespace crayon {

Demo demo_mdl(const DemoOptions& o) {
  Demo d{"mdl", {}, {}, {}, {}};
  const DemoNet net = demo_net(o);
  const DemoBatch train = mnist_batch(o, true, 10000);
  const int64_t n = train.images.size(0);
  // Data bits: the labels of the n training images coded by the model's predictions.
  auto data_bits_of = [&](Sequential& model) {
    NoGradGuard no_grad;
    model.eval();
    const double ce = cross_entropy(model.forward(Variable(train.images)), train.labels).item();
    return crayon::data_bits(ce, n);
  };
  const std::vector<Variable> weights = prior_weights(*net.model);
  int64_t count = 0;
  double ss = 0, sa = 0;
  for (const Variable& w : weights)
    for (float v : w.value().values()) ++count, ss += double(v) * v, sa += std::fabs(double(v));
  const double float_data = data_bits_of(*net.model);
  DemoTable t{str(net.spec, " (", count, " weights; biases left out) and the labels of ", n,
                  " training images: a two-part description"),
              {"description of the weights", "model bits", "data bits", "total bits", "bits / weight"},
              {}};
  struct Line {
    std::string label;
    double model, data;
  };
  std::vector<Line> lines;
  lines.push_back({"float32 as stored", 32.0 * double(count), float_data});
  const double sigma2 = ss / double(count), b = sa / double(count);
  lines.push_back({str("Gaussian prior (L2), σ = ", fixed(std::sqrt(sigma2), 4), ", to 2^-8"),
                   L2Regularizer(1.0 / (2.0 * sigma2)).model_bits(weights), float_data});
  lines.push_back({str("Laplace prior (L1), b = ", fixed(b, 4), ", to 2^-8"), L1Regularizer(1.0 / b).model_bits(weights),
                   float_data});
  for (int bits : {8, 4, 2}) {
    auto copy = float_copy(*net.model, net.input_shape);
    QuantSpec spec = QatConfig{}.weight;
    spec.bits = bits;
    double model_bits = 0;
    for (Variable& w : prior_weights(*copy)) {
      const QParams qp = weight_qparams(w.value(), spec);
      const Tensor q = quantize(w.value(), qp, spec);
      const int32_t* qi = q.data_as<int32_t>();
      model_bits += entropy_bits(std::vector<int32_t>(qi, qi + q.numel())) + 32.0 * double(qp.channels());
      w.value() = dequantize(q, qp);
    }
    lines.push_back({str(bits, "-bit integers per channel, entropy-coded"), model_bits, data_bits_of(*copy)});
  }
  size_t best = 0;
  for (size_t i = 0; i < lines.size(); ++i)
    if (lines[i].model + lines[i].data < lines[best].model + lines[best].data) best = i;
  const char* keys[] = {"float32", "gaussian", "laplace", "int8", "int4", "int2"};
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    t.rows.push_back({l.label + (i == best ? "  <- shortest" : ""), fixed(l.model, 0), fixed(l.data, 0),
                      fixed(l.model + l.data, 0), fixed(l.model / double(count), 3)});
    d.numbers.push_back({str(keys[i], "_model_bits"), l.model});
    d.numbers.push_back({str(keys[i], "_data_bits"), l.data});
  }
  d.numbers.push_back({"shortest_row", double(best)});  // 0 float32 ... 5 int2, as in the table
  d.numbers.push_back({"weights", double(count)});
  d.numbers.push_back({"sigma", std::sqrt(sigma2)});
  d.numbers.push_back({"b", b});
  d.tables.push_back(t);
  d.notes = {
      str("A prior fitted to the weights sends them to 2^-8 in ", fixed(lines[1].model / double(count), 2),
          " (Gaussian) or ", fixed(lines[2].model / double(count), 2), " (Laplace) bits each, not 32: the penalty "
          "λ‖w‖² or λ‖w‖₁ is that code length, up to constants."),
      str("Quantization shortens the model part by limiting the numbers themselves: ",
          fixed(lines[3].model / double(count), 2), " bits per weight at 8 bits, ", fixed(lines[5].model / double(count), 2),
          " at 2; the data part goes from ", fixed(lines[3].data, 0), " to ", fixed(lines[5].data, 0),
          " bits, the coarser grid's fit to the labels."),
      str("Shortest here: ", lines[best].label, ".")};
  Plot p{"two-part description length of one network by the weights' bits", "bits per weight on the grid",
         "bits (log scale)", false, true, false, {}};
  PlotSeries pm{"model bits", {}, {}, "linespoints"}, pd{"data bits", {}, {}, "linespoints"},
      pt{"total", {}, {}, "linespoints"};
  const int grid_bits[] = {32, 8, 4, 2};
  const size_t rows[] = {0, 3, 4, 5};
  for (size_t k = 0; k < 4; ++k) {
    const Line& l = lines[rows[k]];
    pm.points.emplace_back(grid_bits[k], l.model);
    pd.points.emplace_back(grid_bits[k], l.data);
    pt.points.emplace_back(grid_bits[k], l.model + l.data);
  }
  p.series = {pm, pd, pt};
  d.plots.push_back({"demo-mdl", p});
  return d;
}

}  // namespace crayon
