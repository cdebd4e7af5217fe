#include "quant/summary.h"

#include <algorithm>
#include <cstdio>

#include "core/check.h"
#include "core/variable.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "quant/fake_quant_module.h"
#include "quant/qat.h"

namespace crayon {

namespace {

Shape per_image(const Shape& s) { return s.empty() ? s : Shape(s.begin() + 1, s.end()); }

std::string grouped(int64_t v) {  // 1234567 -> "1,234,567"
  std::string d = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0) out += ',';
    out += d[i];
  }
  return v < 0 ? "-" + out : out;
}

std::string shape_text(const Shape& s) { return s.empty() ? "?" : shape_str(s); }

std::string scale_text(float v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", double(v));
  return b;
}

}  // namespace

std::string grid_text(int bits, const std::vector<float>& scales, const std::vector<int32_t>& zero_points) {
  std::string s = bits > 0 ? str(bits, "-bit ") : "";
  if (scales.empty()) return s + "(no scale)";
  const auto [lo, hi] = std::minmax_element(scales.begin(), scales.end());
  const bool zero = std::all_of(zero_points.begin(), zero_points.end(), [](int32_t z) { return z == 0; });
  if (scales.size() > 1 && *lo != *hi) {
    s += str("per-channel (", scales.size(), ") scale ", scale_text(*lo), "..", scale_text(*hi));
    if (!zero) s += " zp varies";
    else s += " zp 0";
    return s;
  }
  return s + str("scale ", scale_text(*lo), " zp ", zero_points.empty() ? 0 : zero_points[0]);
}

Summary summarize(Sequential& model, const Shape& input_shape) {
  if (input_shape.size() != 3)
    throw std::invalid_argument(str("summary: expected an input shape (C, H, W), got ", shape_str(input_shape)));
  Summary s;
  NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();
  Variable x(Tensor::zeros({1, input_shape[0], input_shape[1], input_shape[2]}));
  for (const auto& [name, layer] : model.children()) {
    const int64_t in_features = x.value().numel();
    x = layer->forward(x);
    SummaryRow r;
    r.name = name;
    r.type = layer->spec();
    r.output = per_image(x.value().shape());
    for (const auto& [p, v] : layer->named_parameters()) r.params += v.numel(), r.bytes += v.numel() * 4;
    if (const auto* c = dynamic_cast<const Conv2d*>(layer.get()))
      r.macs = x.value().numel() * c->in_channels() * c->kernel_h() * c->kernel_w();
    else if (dynamic_cast<const Linear*>(layer.get()))
      r.macs = x.value().numel() * in_features;
    if (const auto* fq = dynamic_cast<const FakeQuant*>(layer.get())) {
      r.type = "fakequant";
      if (fq->observed()) {
        const QParams qp = fq->qparams();
        r.grid = str("act ", grid_text(fq->quant_spec().bits, qp.scale, qp.zero_point), " [", fq->quant_spec().qmin(),
                     ", ", fq->quant_spec().qmax(), "]");
      } else {
        r.grid = "act (not observed)";
      }
    }
    if (const WeightFakeQuant* w = weight_fake_quant_of(*layer)) {
      const QParams qp = weight_qparams(layer->named_parameters().at(0).second.value(), w->spec);
      r.grid = str("w ", grid_text(w->spec.bits, qp.scale, qp.zero_point));
    }
    s.rows.push_back(std::move(r));
  }
  model.train(training);
  return s;
}

Summary summarize(const Int8Model& m) {
  Summary s;
  Tensor q = Tensor::zeros({1, m.input_shape.at(0), m.input_shape.at(1), m.input_shape.at(2)}, DType::i8);
  std::vector<Tensor> trace;
  m.forward_raw(q, /*reference=*/true, &trace);
  const auto [lo, hi] = std::minmax_element(m.input_lut.begin(), m.input_lut.end());
  s.rows.push_back({"input", "lut", m.input_shape, 0, 0, int64_t(m.input_lut.size()),
                    str("act ", grid_text(0, {m.input_scale}, {m.input_zero_point}), " [",
                        m.input_lut.empty() ? 0 : *lo, ", ", m.input_lut.empty() ? 0 : *hi, "]")});
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Int8Layer& l = m.layers[i];
    SummaryRow r;
    r.name = str(i);
    r.type = int8_op_name(l.op);
    r.output = i < trace.size() ? per_image(trace[i].shape()) : Shape{};
    if (l.op == Int8Layer::Op::conv2d || l.op == Int8Layer::Op::linear) {
      const int64_t out = l.weight.size(0), fan_in = l.weight.numel() / out;
      if (l.activation != "none") r.type += "+" + l.activation;
      r.params = l.weight.numel() + l.bias.numel();
      r.bytes = l.weight.numel() + 4 * l.bias.numel() + 4 * int64_t(l.weight_scale.size());
      r.macs = i < trace.size() ? trace[i].numel() * fan_in : 0;
      const int8_t* w = l.weight.data_as<int8_t>();
      int max_code = 0;
      for (int64_t k = 0; k < l.weight.numel(); ++k) max_code = std::max(max_code, std::abs(int(w[k])));
      r.grid = str("w ", grid_text(0, l.weight_scale, std::vector<int32_t>(l.weight_scale.size(), 0)),
                   " |q|<=", max_code);
      if (l.logits) r.grid += "; out: int32 logits";
      else r.grid += str("; out ", grid_text(0, {l.out_scale}, {l.out_zero_point}), " [", l.act_min, ", ", l.act_max, "]");
    } else if (l.op == Int8Layer::Op::avgpool2d) {
      r.grid = str("out ", grid_text(0, {l.out_scale}, {l.out_zero_point}), " [", l.act_min, ", ", l.act_max, "]");
    }
    s.rows.push_back(std::move(r));
  }
  return s;
}

std::string format_summary(const Summary& s) {
  std::vector<std::vector<std::string>> cells{{"layer", "type", "output", "params", "MACs", "bytes", "grid"}};
  int64_t params = 0, macs = 0, bytes = 0;
  for (const SummaryRow& r : s.rows) {
    cells.push_back({r.name, r.type, shape_text(r.output), grouped(r.params), grouped(r.macs), grouped(r.bytes), r.grid});
    params += r.params, macs += r.macs, bytes += r.bytes;
  }
  cells.push_back({"total", "", "", grouped(params), grouped(macs), grouped(bytes), ""});
  std::vector<size_t> width(7, 0);
  for (const auto& row : cells)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  std::string out = s.title.empty() ? "" : s.title + "\n";
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i + 1 == cells.size()) {
      size_t rule = 0;
      for (size_t w : width) rule += w + 2;
      out += std::string(rule - 2, '-') + "\n";
    }
    std::string line;
    for (size_t c = 0; c < cells[i].size(); ++c) {
      const std::string& v = cells[i][c];
      const bool right = c >= 3 && c <= 5;  // numbers
      const std::string pad(width[c] - v.size(), ' ');
      line += right ? pad + v : (c + 1 == cells[i].size() ? v : v + pad);
      if (c + 1 < cells[i].size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  for (const std::string& n : s.notes) out += n + "\n";
  return out;
}

}  // namespace crayon
