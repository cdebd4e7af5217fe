#include "quant/onnx/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/check.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "quant/qat.h"

#ifndef CRAYON_VERSION
#error "CRAYON_VERSION must be defined by quant/onnx/CMakeLists.txt"
#endif

namespace crayon {

namespace {

// The graph under construction: initializers and nodes with fresh tensor names.
class Graph {
 public:
  explicit Graph(onnx::GraphProto* g) : g_(g) {}

  std::string floats(const std::string& name, const Shape& dims, const float* v) {
    return initializer(name, dims, onnx::TensorProto::FLOAT, v, 4);
  }
  std::string scalar(const std::string& name, float v) { return floats(name, {}, &v); }
  std::string int8s(const std::string& name, const Shape& dims, const int8_t* v) {
    return initializer(name, dims, onnx::TensorProto::INT8, v, 1);
  }
  std::string uint8s(const std::string& name, const Shape& dims, const uint8_t* v) {
    return initializer(name, dims, onnx::TensorProto::UINT8, v, 1);
  }
  std::string int32s(const std::string& name, const Shape& dims, const int32_t* v) {
    return initializer(name, dims, onnx::TensorProto::INT32, v, 4);
  }

  // Adds op(inputs) -> one fresh output named after `name`; returns the node for attributes.
  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(str(name, "/", op));
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(str(name, "/", op, ":0"));
    return n;
  }
  std::string apply(const std::string& op, const std::string& name, const std::vector<std::string>& inputs) {
    return node(op, name, inputs)->output(0);
  }

  static void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const char* name, float v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

 private:
  std::string initializer(const std::string& name, const Shape& dims, int type, const void* data, size_t item) {
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(data, size_t(shape_numel(dims)) * item);  // little-endian, as ONNX's raw_data
    return name;
  }
  onnx::GraphProto* g_;
};

void window_attrs(onnx::NodeProto* n, int kh, int kw, int sh, int sw, int ph, int pw) {
  Graph::ints(n, "kernel_shape", {kh, kw});
  Graph::ints(n, "strides", {sh, sw});
  Graph::ints(n, "pads", {ph, pw, ph, pw});
}

// Shapes through the layers, for the graph's declared output and the final Flatten.
Shape windowed(const Shape& s, int64_t channels, int kh, int kw, int sh, int sw, int ph, int pw, const char* what) {
  if (s.size() != 4) throw std::invalid_argument(str(what, ": expected a (N, C, H, W) input, got ", shape_str(s)));
  return {s[0], channels, window_out_size(s[2], kh, sh, ph, what), window_out_size(s[3], kw, sw, pw, what)};
}

// Flatten(axis 1) of x, (N, C, H, W) -> (N, C*H*W) as `shape` follows.
std::string flattened(Graph& g, const std::string& name, const std::string& x, Shape& shape) {
  onnx::NodeProto* n = g.node("Flatten", name, {x});
  Graph::integer(n, "axis", 1);
  shape = {shape[0], shape_numel(shape) / shape[0]};
  return n->output(0);
}

// x in [0, 1] -> (x - mean[c]) / std[c], per channel; no nodes when there is no normalization.
std::string normalized(Graph& g, const std::string& x, const ChannelStats& norm, int64_t channels) {
  if (norm.mean.empty() && norm.std.empty()) return x;
  if (int64_t(norm.mean.size()) != channels || int64_t(norm.std.size()) != channels)
    throw std::invalid_argument(str("export: expected ", channels, " mean and std values, got ", norm.mean.size(),
                                    " and ", norm.std.size()));
  const std::string mean = g.floats("input.mean", {1, channels, 1, 1}, norm.mean.data());
  const std::string stdev = g.floats("input.std", {1, channels, 1, 1}, norm.std.data());
  return g.apply("Div", "input", {g.apply("Sub", "input", {x, mean}), stdev});
}

std::string join(const std::vector<float>& v) {
  std::string s;
  for (float x : v) s += str(s.empty() ? "" : ",", x);
  return s;
}

// The model around the graph: opset, I/O, metadata. Checks everything, then writes.
void finish_and_write(onnx::ModelProto& m, const Shape& input_shape, const Shape& output, const OnnxMetadata& meta,
                      const std::string& kind, const std::string& spec, const std::string& path) {
  m.set_ir_version(7);  // the IR of opset 13
  m.set_producer_name("crayon");
  m.set_producer_version(CRAYON_VERSION);
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  const std::string convention =
      "float NCHW pixels in [0, 1], shape (N, " + str(input_shape[0], ", ", input_shape[1], ", ", input_shape[2]) +
      "); the normalization (x - mean) / std is inside the graph; output: float logits (N, " + str(output[1]) + ")";
  m.set_doc_string(str("crayon ", kind, " model of ", spec, ". Input: ", convention));
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("crayon");
  auto declare = [](onnx::ValueInfoProto* v, const std::string& name, const Shape& dims) {
    v->set_name(name);
    onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (size_t i = 0; i < dims.size(); ++i) {
      auto* d = t->mutable_shape()->add_dim();
      if (i == 0) d->set_dim_param("N");
      else d->set_dim_value(dims[i]);
    }
  };
  declare(g->add_input(), "input", {0, input_shape[0], input_shape[1], input_shape[2]});
  declare(g->add_output(), "logits", output);
  auto meta_prop = [&](const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  };
  meta_prop("crayon.version", CRAYON_VERSION);
  meta_prop("crayon.kind", kind);
  meta_prop("crayon.source_spec", spec);
  meta_prop("crayon.dataset", meta.dataset);
  meta_prop("crayon.input_shape", str(input_shape[0], ",", input_shape[1], ",", input_shape[2]));
  meta_prop("crayon.mean", join(meta.norm.mean));
  meta_prop("crayon.std", join(meta.norm.std));
  meta_prop("crayon.input", convention);
  if (!meta.quantization.empty()) meta_prop("crayon.quantization", meta.quantization);
  if (!meta.source.empty()) meta_prop("crayon.source", meta.source);

  try {
    onnx::checker::check_model(m);
    onnx::ModelProto inferred = m;
    onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict=*/1));
  } catch (const std::exception& e) {
    throw std::invalid_argument(str(path, ": the ONNX model fails the ONNX checker (not written): ", e.what()));
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::runtime_error(str(path, ": cannot serialize the ONNX model"));
  write_file_atomic(path, bytes);
}

// Renames the tensor `from` (the last node's output) to the graph output "logits".
void name_output(onnx::GraphProto* g, const std::string& from) {
  for (int i = 0; i < g->node_size(); ++i)
    for (int j = 0; j < g->node(i).output_size(); ++j)
      if (g->node(i).output(j) == from) g->mutable_node(i)->set_output(j, "logits");
}

template <typename T>
const T* as(const std::shared_ptr<Module>& m) {
  return dynamic_cast<const T*>(m.get());
}

}  // namespace

void write_onnx_float(const Sequential& model, const Shape& input_shape, const OnnxMetadata& meta,
                      const std::string& path) {
  if (input_shape.size() != 3)
    throw std::invalid_argument(str("export: expected an input shape (C, H, W), got ", shape_str(input_shape)));
  onnx::ModelProto m;
  Graph g(m.mutable_graph());
  std::string x = normalized(g, "input", meta.norm, input_shape[0]);
  Shape shape{1, input_shape[0], input_shape[1], input_shape[2]};
  std::string zero, six;  // ReLU6's bounds, shared
  for (const auto& [name, layer] : model.children()) {
    const std::string where = str("export: layer ", name, " (", layer->spec(), ")");
    const std::string prefix = str("layer", name);
    const auto params = layer->named_parameters();
    auto param = [&](size_t i) {
      const Tensor& t = params.at(i).second.value();
      return g.floats(str(prefix, ".", params[i].first), t.shape(), t.data());
    };
    if (const auto* c = as<Conv2d>(layer)) {
      const Conv2dParams& p = c->params();
      std::vector<std::string> in{x, param(0)};
      if (c->has_bias()) in.push_back(param(1));
      onnx::NodeProto* n = g.node("Conv", prefix, in);
      window_attrs(n, c->kernel_h(), c->kernel_w(), p.stride_h, p.stride_w, p.pad_h, p.pad_w);
      x = n->output(0);
      shape = windowed(shape, c->out_channels(), c->kernel_h(), c->kernel_w(), p.stride_h, p.stride_w, p.pad_h,
                       p.pad_w, where.c_str());
    } else if (as<Linear>(layer)) {
      if (shape.size() != 2) throw std::invalid_argument(str(where, ": expected a (N, features) input, got ",
                                                             shape_str(shape), "; put a flatten before it"));
      std::vector<std::string> in{x, param(0)};
      if (params.size() > 1) in.push_back(param(1));
      onnx::NodeProto* n = g.node("Gemm", prefix, in);
      Graph::integer(n, "transB", 1);
      x = n->output(0);
      shape = {shape[0], params[0].second.value().size(0)};
    } else if (as<ReLU>(layer)) {
      x = g.apply("Relu", prefix, {x});
    } else if (as<ReLU6>(layer)) {
      if (zero.empty()) zero = g.scalar("relu6.min", 0.f), six = g.scalar("relu6.max", 6.f);
      x = g.apply("Clip", prefix, {x, zero, six});
    } else if (const auto* p = as<MaxPool2d>(layer)) {
      const Pool2dParams& q = p->params();
      onnx::NodeProto* n = g.node("MaxPool", prefix, {x});
      window_attrs(n, q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w);
      x = n->output(0);
      shape = windowed(shape, shape.at(1), q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w,
                       where.c_str());
    } else if (const auto* p = as<AvgPool2d>(layer)) {
      const Pool2dParams& q = p->params();
      onnx::NodeProto* n = g.node("AveragePool", prefix, {x});
      window_attrs(n, q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w);
      Graph::integer(n, "count_include_pad", 1);
      x = n->output(0);
      shape = windowed(shape, shape.at(1), q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w,
                       where.c_str());
    } else if (as<Flatten>(layer)) {
      x = flattened(g, prefix, x, shape);
    } else if (const auto* bn = as<BatchNorm>(layer)) {
      const auto buffers = layer->named_buffers();
      auto buffer = [&](const char* which) {
        for (const auto& [b, t] : buffers)
          if (b == which) return g.floats(str(prefix, ".", b), t.shape(), t.data());
        throw std::invalid_argument(str(where, ": has no ", which));
      };
      onnx::NodeProto* n =
          g.node("BatchNormalization", prefix, {x, param(0), param(1), buffer("running_mean"), buffer("running_var")});
      Graph::real(n, "epsilon", bn->eps());
      x = n->output(0);
    } else if (as<Dropout>(layer)) {
      continue;  // the identity at inference
    } else {
      throw std::invalid_argument(str(where, ": has no ONNX form here (expected conv, linear, relu, relu6, maxpool, "
                                      "avgpool, flatten, bn or dropout; a quantized model exports as QDQ)"));
    }
  }
  if (shape.size() != 2) x = flattened(g, "logits", x, shape);
  if (x == "input") throw std::invalid_argument("export: the model has no layers");
  name_output(m.mutable_graph(), x);
  finish_and_write(m, input_shape, shape, meta, "float", float_spec(model), path);
}

void write_onnx_qdq(const Int8Model& model, const OnnxMetadata& given, const std::string& path) {
  const Shape& input_shape = model.input_shape;
  if (input_shape.size() != 3 || model.layers.empty())
    throw std::invalid_argument("export: the int8 model has no layers or no (C, H, W) input shape");
  OnnxMetadata meta = given;
  meta.norm.mean = model.input_mean;
  meta.norm.std = model.input_std;
  onnx::ModelProto m;
  Graph g(m.mutable_graph());
  // Real y -> codes on the grid (s, z) clamped to [lo, hi] (the engine's int8 codes, stored
  // + 128 as uint8): a Clip in real units first when that range is narrower than int8's,
  // which QuantizeLinear saturates to by itself.
  auto quantized = [&](const std::string& y, const std::string& name, float s, int32_t z, int32_t lo, int32_t hi) {
    std::string v = y;
    if (lo > -128 || hi < 127) {
      const std::string a = g.scalar(str(name, ".clip_min"), float(double(s) * double(lo - z)));
      const std::string b = g.scalar(str(name, ".clip_max"), float(double(s) * double(hi - z)));
      v = g.apply("Clip", name, {v, a, b});
    }
    const uint8_t zp = uint8_t(z + 128);  // the int8 code + 128 (see the header)
    return g.apply("QuantizeLinear", name, {v, g.scalar(str(name, ".scale"), s), g.uint8s(str(name, ".zero_point"), {}, &zp)});
  };
  auto dequantized = [&](const std::string& q, const std::string& name, float s, int32_t z) {
    const uint8_t zp = uint8_t(z + 128);
    return g.apply("DequantizeLinear", name,
                   {q, g.scalar(str(name, ".in_scale"), s), g.uint8s(str(name, ".in_zero_point"), {}, &zp)});
  };

  // The input grid: the codes the engine's table reaches bound the Clip, so every pixel value
  // v / 255 maps to the table's code.
  const auto [lut_lo, lut_hi] = std::minmax_element(model.input_lut.begin(), model.input_lut.end());
  std::string x = quantized(normalized(g, "input", meta.norm, input_shape[0]), "input", model.input_scale,
                            model.input_zero_point, model.input_lut.empty() ? -128 : *lut_lo,
                            model.input_lut.empty() ? 127 : *lut_hi);
  float scale = model.input_scale;
  int32_t zero_point = model.input_zero_point;
  Shape shape{1, input_shape[0], input_shape[1], input_shape[2]};
  bool real_output = false;
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Int8Layer& l = model.layers[i];
    const std::string prefix = str("layer", i, ".", int8_op_name(l.op));
    const std::string where = str("export: layer ", i, " (", int8_op_name(l.op), ")");
    if (real_output) throw std::invalid_argument(str(where, ": follows the logits layer"));
    switch (l.op) {
      case Int8Layer::Op::flatten:
        x = flattened(g, prefix, x, shape);
        break;
      case Int8Layer::Op::maxpool2d: {
        const Pool2dParams& q = l.pool;
        onnx::NodeProto* n = g.node("MaxPool", prefix, {x});  // on the int8 codes: exact
        window_attrs(n, q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w);
        x = n->output(0);
        shape = windowed(shape, shape.at(1), q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w,
                         where.c_str());
        break;
      }
      case Int8Layer::Op::avgpool2d: {
        const Pool2dParams& q = l.pool;
        // On the codes themselves (scale 1): the window sums are exact in float, so an exact tie
        // (common when s_out = s_in) stays a tie and rounds to even as in the engine; in real
        // units float round-off would break it either way. The ratio s_out / s_in keeps the result.
        onnx::NodeProto* n = g.node("AveragePool", prefix, {dequantized(x, prefix, 1.f, l.in_zero_point)});
        window_attrs(n, q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w);
        Graph::integer(n, "count_include_pad", 1);
        x = quantized(n->output(0), prefix, float(double(l.out_scale) / double(l.in_scale)), l.out_zero_point,
                      l.act_min, l.act_max);
        scale = l.out_scale;
        zero_point = l.out_zero_point;
        shape = windowed(shape, shape.at(1), q.kernel_h, q.kernel_w, q.stride_h, q.stride_w, q.pad_h, q.pad_w,
                         where.c_str());
        break;
      }
      case Int8Layer::Op::conv2d:
      case Int8Layer::Op::linear: {
        const int64_t out = l.weight.size(0);
        const bool per_channel =
            std::any_of(l.weight_scale.begin(), l.weight_scale.end(), [&](float s) { return s != l.weight_scale[0]; });
        const Shape axis_dims = per_channel ? Shape{out} : Shape{};
        std::vector<float> bias_scale(static_cast<size_t>(out));
        for (int64_t o = 0; o < out; ++o)
          bias_scale[size_t(o)] = float(double(l.in_scale) * double(l.weight_scale[size_t(o)]));
        const std::vector<int8_t> w_zero(size_t(out), 0);
        const std::vector<int32_t> b_zero(size_t(out), 0);
        onnx::NodeProto* wdq = g.node("DequantizeLinear", prefix + ".weight",
                                      {g.int8s(prefix + ".weight", l.weight.shape(), l.weight.data_as<int8_t>()),
                                       g.floats(prefix + ".weight_scale", axis_dims, l.weight_scale.data()),
                                       g.int8s(prefix + ".weight_zero_point", axis_dims, w_zero.data())});
        onnx::NodeProto* bdq = g.node("DequantizeLinear", prefix + ".bias",
                                      {g.int32s(prefix + ".bias", {out}, l.bias.data_as<int32_t>()),
                                       g.floats(prefix + ".bias_scale", axis_dims, bias_scale.data()),
                                       g.int32s(prefix + ".bias_zero_point", axis_dims, b_zero.data())});
        if (per_channel) Graph::integer(wdq, "axis", 0), Graph::integer(bdq, "axis", 0);
        const std::string xf = dequantized(x, prefix, l.in_scale, l.in_zero_point);
        onnx::NodeProto* n;
        if (l.op == Int8Layer::Op::conv2d) {
          const Conv2dParams& p = l.conv;
          n = g.node("Conv", prefix, {xf, wdq->output(0), bdq->output(0)});
          window_attrs(n, int(l.weight.size(2)), int(l.weight.size(3)), p.stride_h, p.stride_w, p.pad_h, p.pad_w);
          shape = windowed(shape, out, int(l.weight.size(2)), int(l.weight.size(3)), p.stride_h, p.stride_w, p.pad_h,
                           p.pad_w, where.c_str());
        } else {
          if (shape.size() != 2)
            throw std::invalid_argument(str(where, ": expected a (N, features) input, got ", shape_str(shape)));
          n = g.node("Gemm", prefix, {xf, wdq->output(0), bdq->output(0)});
          Graph::integer(n, "transB", 1);
          shape = {shape[0], out};
        }
        if (l.logits) {
          x = n->output(0);
          real_output = true;
        } else {
          x = quantized(n->output(0), prefix, l.out_scale, l.out_zero_point, l.act_min, l.act_max);
          scale = l.out_scale;
          zero_point = l.out_zero_point;
        }
        break;
      }
    }
  }
  if (!real_output) x = dequantized(x, "logits", scale, zero_point);
  if (shape.size() != 2) x = flattened(g, "logits", x, shape);
  name_output(m.mutable_graph(), x);
  finish_and_write(m, input_shape, shape, meta, "qdq", model.source_spec, path);
}

}  // namespace crayon
