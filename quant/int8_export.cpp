#include "quant/int8_export.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "quant/fake_quant.h"
#include "quant/fake_quant_module.h"
#include "quant/qat.h"

namespace crayon {

namespace {

template <typename T>
const T* as(const std::shared_ptr<Module>& m) {
  return dynamic_cast<const T*>(m.get());
}

// A FakeQuant's grid as the engine stores it.
void grid_of(const FakeQuant& fq, float& scale, int32_t& zero_point) {
  const QParams qp = fq.qparams();
  scale = qp.scale.at(0);
  zero_point = qp.zero_point.at(0);
}

// The weights of a conv / linear on the int8 grid their own fake-quant parametrization
// trained them on (never re-derived from a config), checked to be exactly what that
// parametrization gives in eval.
void quantize_weights(const Module& m, Int8Layer& l, const std::string& where) {
  const WeightFakeQuant* wfq = weight_fake_quant_of(m);
  if (!wfq) throw std::invalid_argument(str(where, ": its weight has no fake-quant; prepare the model for quantization"));
  const auto params = m.named_parameters();
  const Tensor& w = params.at(0).second.value();
  QuantSpec s = wfq->spec;
  s.rounding = Rounding::nearest_even;
  const QParams qp = weight_qparams(w, s);
  for (int32_t z : qp.zero_point)
    if (z != 0) throw std::invalid_argument(str(where, ": weights need zero point 0 (symmetric), found ", z));
  const Tensor q = quantize(w, qp, s);
  l.weight = Tensor::empty(w.shape(), DType::i8);
  const int32_t* pq = q.data_as<int32_t>();
  for (int64_t i = 0; i < q.numel(); ++i) {
    if (pq[i] < -127 || pq[i] > 127)
      throw std::invalid_argument(str(where, ": weights must lie in [-127, 127] (narrow range), found ", pq[i]));
    l.weight.data_as<int8_t>()[i] = int8_t(pq[i]);
  }
  const int64_t out = w.size(0);
  l.weight_scale.assign(size_t(out), qp.scale[0]);
  if (qp.axis == 0) l.weight_scale = qp.scale;
  // What the model computes with in eval must be these codes times these scales, exactly.
  {
    NoGradGuard ng;
    const bool training = m.is_training();
    const_cast<Module&>(m).eval();
    const Tensor seen = (*wfq)(Variable(w)).value();
    const_cast<Module&>(m).train(training);
    const int64_t per = w.numel() / out;
    for (int64_t i = 0; i < w.numel(); ++i)
      if (seen.data()[i] != float(pq[i]) * l.weight_scale[size_t(i / per)])
        throw std::invalid_argument(str(where, ": weight ", i, " is ", seen.data()[i], " in the model but ", pq[i],
                                        " x ", l.weight_scale[size_t(i / per)], " on the grid its spec says"));
  }
  // Bias on the accumulator's scale s_in * s_w[o], rounded half away from zero.
  l.bias = Tensor::zeros({out}, DType::i32);
  if (params.size() > 1) {
    const float* b = params[1].second.value().data();
    for (int64_t o = 0; o < out; ++o) {
      const double v = std::round(double(b[o]) / (double(l.in_scale) * double(l.weight_scale[size_t(o)])));
      if (!(std::fabs(v) <= 2147483647.0))
        throw std::invalid_argument(str(where, ": bias ", b[o], " of channel ", o, " does not fit int32 on scale ",
                                        double(l.in_scale) * l.weight_scale[size_t(o)]));
      l.bias.data_as<int32_t>()[o] = int32_t(v);
    }
  }
}

}  // namespace

Int8Model export_int8(const Sequential& model, const Shape& input_shape, const ChannelStats& norm) {
  const auto& layers = model.children();
  if (layers.empty() || !as<FakeQuant>(layers[0].second))
    throw std::invalid_argument("export: the model has no input FakeQuant; prepare it for quantization first "
                                "(crayon train --qat, or crayon quantize)");
  if (input_shape.size() != 3)
    throw std::invalid_argument(str("export: expected an input shape (C, H, W), got ", shape_str(input_shape)));
  const std::vector<float> pixel_values = pixel_table(norm, input_shape[0]);
  Int8Model m;
  m.input_shape = input_shape;
  m.input_mean = norm.mean.empty() ? std::vector<float>(size_t(input_shape[0]), 0.f) : norm.mean;
  m.input_std = norm.std.empty() ? std::vector<float>(size_t(input_shape[0]), 1.f) : norm.std;
  m.source_spec = float_spec(model);

  // The input: the normalization and the input FakeQuant as one table.
  const FakeQuant& in_fq = *as<FakeQuant>(layers[0].second);
  grid_of(in_fq, m.input_scale, m.input_zero_point);
  {
    QuantSpec s = in_fq.quant_spec();
    s.rounding = Rounding::nearest_even;
    const Tensor x = Tensor::from({int64_t(pixel_values.size())}, pixel_values);
    const Tensor q = quantize(x, in_fq.qparams(), s);
    m.input_lut.resize(pixel_values.size());
    for (size_t i = 0; i < pixel_values.size(); ++i) m.input_lut[i] = int8_t(q.data_as<int32_t>()[i]);
  }

  float scale = m.input_scale;
  int32_t zero_point = m.input_zero_point;
  for (size_t i = 1; i < layers.size(); ++i) {
    const auto& layer = layers[i].second;
    const std::string where = str("export: layer ", layers[i].first, " (", layer->spec(), ")");
    if (as<Dropout>(layer)) continue;  // identity in eval
    Int8Layer l;
    l.in_scale = scale;
    l.in_zero_point = zero_point;
    if (as<Flatten>(layer)) {
      l.op = Int8Layer::Op::flatten;
    } else if (const auto* p = as<MaxPool2d>(layer)) {
      l.op = Int8Layer::Op::maxpool2d;
      l.pool = p->params();
    } else if (const auto* p = as<AvgPool2d>(layer)) {
      l.op = Int8Layer::Op::avgpool2d;
      l.pool = p->params();
      const FakeQuant* fq = i + 1 < layers.size() ? as<FakeQuant>(layers[i + 1].second) : nullptr;
      if (!fq) throw std::invalid_argument(str(where, ": needs a FakeQuant after it (the output grid)"));
      grid_of(*fq, l.out_scale, l.out_zero_point);
      l.act_min = std::max<int32_t>(int32_t(fq->quant_spec().qmin()), -128);  // the grid's own range
      l.act_max = std::min<int32_t>(int32_t(fq->quant_spec().qmax()), 127);
      ++i;
    } else if (as<Conv2d>(layer) || as<Linear>(layer)) {
      const auto* conv = as<Conv2d>(layer);
      l.op = conv ? Int8Layer::Op::conv2d : Int8Layer::Op::linear;
      if (conv) l.conv = conv->params();
      quantize_weights(*layer, l, where);
      size_t j = i + 1;
      if (j < layers.size() && as<BatchNorm>(layers[j].second))
        throw std::invalid_argument(str(where, ": the batch norm after it was not folded (fold_bn=0); the integer "
                                        "engine has none"));
      if (j < layers.size() && (as<ReLU>(layers[j].second) || as<ReLU6>(layers[j].second))) {
        l.activation = as<ReLU>(layers[j].second) ? "relu" : "relu6";
        ++j;
      }
      const FakeQuant* fq = j < layers.size() ? as<FakeQuant>(layers[j].second) : nullptr;
      if (fq) {
        grid_of(*fq, l.out_scale, l.out_zero_point);
        // The fused activation and the grid's own range, as one clamp on the output codes:
        // real 0 is the zero point, real 6 is zero_point + round(6 / scale).
        l.act_min = std::max<int32_t>(int32_t(fq->quant_spec().qmin()), -128);
        l.act_max = std::min<int32_t>(int32_t(fq->quant_spec().qmax()), 127);
        if (l.activation != "none") l.act_min = std::max(l.act_min, l.out_zero_point);
        if (l.activation == "relu6")
          l.act_max = std::min<int64_t>(l.act_max, l.out_zero_point + std::llround(6.0 / double(l.out_scale)));
        i = j;
      } else {
        if (l.activation != "none" || j != layers.size())
          throw std::invalid_argument(str(where, ": only the last layer may have no output grid (its logits)"));
        l.logits = true;
        i = j - 1;
      }
    } else if (as<BatchNorm>(layer)) {
      throw std::invalid_argument(str(where, ": batch norm was not folded (fold_bn=0); the integer engine has none"));
    } else {
      throw std::invalid_argument(str(where, ": has no integer form here (expected conv, linear, relu/relu6 after "
                                      "them, maxpool, avgpool, flatten, dropout)"));
    }
    if (l.op == Int8Layer::Op::conv2d || l.op == Int8Layer::Op::linear || l.op == Int8Layer::Op::avgpool2d) {
      scale = l.out_scale;
      zero_point = l.out_zero_point;
    }
    m.layers.push_back(std::move(l));
  }
  m.prepare();
  return m;
}

}  // namespace crayon
