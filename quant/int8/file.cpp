#include "quant/int8/file.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "core/check.h"
#include "core/h5io.h"

namespace crayon {

namespace {

std::string layer_path(size_t i) {
  char b[32];
  std::snprintf(b, sizeof b, "layers/%03zu", i);
  return b;
}

Tensor vector_tensor(const std::vector<float>& v) { return Tensor::from({int64_t(v.size())}, v); }

std::vector<int64_t> pair(int a, int b) { return {a, b}; }

const char* kRounding =
    "input and activations: round half to even (ONNX QuantizeLinear); bias: round half away from zero; "
    "requantization: round half to even of acc * multiplier * 2^(shift - 31), the exact int64 product rounded "
    "once (TFLite QuantizeMultiplier's multiplier and shift; TFLITE_SINGLE_ROUNDING with ties to even)";

}  // namespace

void save_int8(const Int8Model& m, const std::string& path) {
  H5Writer w(path);
  w.set_attr("/", "format", kInt8Format);
  w.set_attr("/", "format_version", kInt8FormatVersion);
  w.set_attr("/", "input_shape", std::vector<int64_t>(m.input_shape.begin(), m.input_shape.end()));
  w.set_attr("/", "num_classes", m.num_classes());
  w.set_attr("/", "source_spec", m.source_spec);
  w.set_attr("/", "quantization", m.quantization);
  w.set_attr("/", "dataset", m.dataset);
  w.set_attr("/", "rounding", kRounding);
  Tensor lut = Tensor::empty({m.input_shape[0], 256}, DType::i8);
  std::copy(m.input_lut.begin(), m.input_lut.end(), lut.data_as<int8_t>());
  w.write_tensor("input/lut", lut);
  w.set_attr("input", "scale", double(m.input_scale));
  w.set_attr("input", "zero_point", m.input_zero_point);
  w.set_attr("input", "mean", std::vector<double>(m.input_mean.begin(), m.input_mean.end()));
  w.set_attr("input", "std", std::vector<double>(m.input_std.begin(), m.input_std.end()));
  w.set_attr("layers", "count", int64_t(m.layers.size()));
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Int8Layer& l = m.layers[i];
    const std::string g = layer_path(i);
    w.set_attr(g, "op", int8_op_name(l.op));
    switch (l.op) {
      case Int8Layer::Op::flatten: break;
      case Int8Layer::Op::maxpool2d:
      case Int8Layer::Op::avgpool2d:
        w.set_attr(g, "kernel", pair(l.pool.kernel_h, l.pool.kernel_w));
        w.set_attr(g, "stride", pair(l.pool.stride_h, l.pool.stride_w));
        w.set_attr(g, "padding", pair(l.pool.pad_h, l.pool.pad_w));
        if (l.op == Int8Layer::Op::avgpool2d) {
          w.set_attr(g, "input_scale", double(l.in_scale));
          w.set_attr(g, "input_zero_point", l.in_zero_point);
          w.set_attr(g, "output_scale", double(l.out_scale));
          w.set_attr(g, "output_zero_point", l.out_zero_point);
          w.set_attr(g, "act_min", l.act_min);
          w.set_attr(g, "act_max", l.act_max);
        }
        break;
      case Int8Layer::Op::conv2d:
      case Int8Layer::Op::linear: {
        w.write_tensor(g + "/weight", l.weight);
        w.write_tensor(g + "/weight_scale", vector_tensor(l.weight_scale));
        w.set_attr(g, "weight_zero_point", 0);
        w.write_tensor(g + "/bias", l.bias);
        w.set_attr(g, "layout", l.op == Int8Layer::Op::conv2d ? "OIHW" : "OI");
        if (l.op == Int8Layer::Op::conv2d) {
          w.set_attr(g, "stride", pair(l.conv.stride_h, l.conv.stride_w));
          w.set_attr(g, "padding", pair(l.conv.pad_h, l.conv.pad_w));
        }
        w.set_attr(g, "input_scale", double(l.in_scale));
        w.set_attr(g, "input_zero_point", l.in_zero_point);
        w.set_attr(g, "activation", l.activation);
        w.set_attr(g, "logits", int64_t(l.logits));
        if (!l.logits) {
          w.set_attr(g, "output_scale", double(l.out_scale));
          w.set_attr(g, "output_zero_point", l.out_zero_point);
          w.set_attr(g, "act_min", l.act_min);
          w.set_attr(g, "act_max", l.act_max);
        }
        break;
      }
    }
  }
  w.commit();
}

namespace {

int32_t int_in(H5Reader& r, const std::string& g, const char* key, int64_t lo, int64_t hi) {
  const int64_t v = r.attr_int(g, key);
  if (v < lo || v > hi)
    throw std::runtime_error(str(r.path(), ": ", g, ": expected attribute ", key, " in [", lo, ", ", hi, "], found ", v));
  return int32_t(v);
}

float scale_attr(H5Reader& r, const std::string& g, const char* key) {
  const double v = r.attr_double(g, key);
  if (!(v > 0) || !std::isfinite(v) || float(v) != v)
    throw std::runtime_error(str(r.path(), ": ", g, ": expected attribute ", key, " a positive float32, found ", v));
  return float(v);
}

std::pair<int, int> int_pair(H5Reader& r, const std::string& g, const char* key, int64_t lo) {
  const auto v = r.attr_ints(g, key);
  if (v.size() != 2 || v[0] < lo || v[1] < lo || v[0] > 4096 || v[1] > 4096)
    throw std::runtime_error(str(r.path(), ": ", g, ": expected attribute ", key, " of two integers in [", lo,
                                 ", 4096]"));
  return {int(v[0]), int(v[1])};
}

}  // namespace

bool is_int8_file(const std::string& path) {
  try {
    H5Reader r(path);
    return r.has_attr("/", "format") && r.attr_string("/", "format") == kInt8Format;
  } catch (const std::exception&) {
    return false;
  }
}

Int8Model load_int8(const std::string& path) {
  H5Reader r(path);
  if (!r.has_attr("/", "format") || r.attr_string("/", "format") != kInt8Format)
    throw std::runtime_error(str(path, ": expected an int8 model (root attribute format = '", kInt8Format, "'), found ",
                                 r.has_attr("/", "format") ? "'" + r.attr_string("/", "format") + "'" : "none"));
  const int64_t version = r.attr_int("/", "format_version");
  if (version < 1 || version > kInt8FormatVersion)
    throw std::runtime_error(str(path, ": expected format_version 1 to ", kInt8FormatVersion, ", found ", version));
  Int8Model m;
  const auto in = r.attr_ints("/", "input_shape");
  if (in.size() != 3 || in[0] < 1 || in[1] < 1 || in[2] < 1 || in[0] > 4096 || in[1] > 65536 || in[2] > 65536)
    throw std::runtime_error(str(path, ": /: expected input_shape (C, H, W) with positive sizes"));
  m.input_shape = Shape(in.begin(), in.end());
  m.source_spec = r.attr_string("/", "source_spec");
  m.quantization = r.attr_string("/", "quantization");
  m.dataset = r.attr_string("/", "dataset");
  const Tensor lut = r.read_tensor("input/lut", DType::i8, {m.input_shape[0], 256});
  m.input_lut.assign(lut.data_as<int8_t>(), lut.data_as<int8_t>() + lut.numel());
  m.input_scale = scale_attr(r, "input", "scale");
  m.input_zero_point = int_in(r, "input", "zero_point", -128, 127);
  for (auto [key, dst] : {std::pair{"mean", &m.input_mean}, std::pair{"std", &m.input_std}}) {
    const auto v = r.attr_doubles("input", key);
    if (int64_t(v.size()) != m.input_shape[0])
      throw std::runtime_error(str(path, ": input: expected ", m.input_shape[0], " values of ", key, ", found ", v.size()));
    dst->assign(v.begin(), v.end());
  }
  const int64_t count = r.attr_int("layers", "count");
  if (count < 1 || count > 1000 || int64_t(r.children("layers").size()) != count)
    throw std::runtime_error(str(path, ": layers: expected 1 to 1000 layers matching attribute count, found count ",
                                 count, " and ", r.children("layers").size(), " groups"));
  for (int64_t i = 0; i < count; ++i) {
    const std::string g = layer_path(size_t(i));
    if (!r.has(g)) throw std::runtime_error(str(path, ": missing group ", g));
    Int8Layer l;
    const std::string op = r.attr_string(g, "op");
    if (op == "flatten") {
      l.op = Int8Layer::Op::flatten;
    } else if (op == "maxpool2d" || op == "avgpool2d") {
      l.op = op == "maxpool2d" ? Int8Layer::Op::maxpool2d : Int8Layer::Op::avgpool2d;
      std::tie(l.pool.kernel_h, l.pool.kernel_w) = int_pair(r, g, "kernel", 1);
      std::tie(l.pool.stride_h, l.pool.stride_w) = int_pair(r, g, "stride", 1);
      std::tie(l.pool.pad_h, l.pool.pad_w) = int_pair(r, g, "padding", 0);
      if (l.op == Int8Layer::Op::avgpool2d) {
        l.in_scale = scale_attr(r, g, "input_scale");
        l.in_zero_point = int_in(r, g, "input_zero_point", -128, 127);
        l.out_scale = scale_attr(r, g, "output_scale");
        l.out_zero_point = int_in(r, g, "output_zero_point", -128, 127);
        if (version >= 2) {
          l.act_min = int_in(r, g, "act_min", -128, 127);
          l.act_max = int_in(r, g, "act_max", -128, 127);
        }
      }
    } else if (op == "conv2d" || op == "linear") {
      const bool conv = op == "conv2d";
      l.op = conv ? Int8Layer::Op::conv2d : Int8Layer::Op::linear;
      l.weight = r.read_tensor(g + "/weight", DType::i8);
      if (l.weight.ndim() != (conv ? 4 : 2) || l.weight.numel() == 0)
        throw std::runtime_error(str(path, ": ", g, "/weight: expected rank ", conv ? 4 : 2, ", found ",
                                     shape_str(l.weight.shape())));
      const int64_t out = l.weight.size(0);
      const std::string layout = r.attr_string(g, "layout");
      if (layout != (conv ? "OIHW" : "OI"))
        throw std::runtime_error(str(path, ": ", g, ": expected layout ", conv ? "OIHW" : "OI", ", found ", layout));
      const Tensor ws = r.read_tensor(g + "/weight_scale", DType::f32, {out});
      l.weight_scale.assign(ws.data(), ws.data() + out);
      int_in(r, g, "weight_zero_point", 0, 0);  // symmetric weights
      l.bias = r.read_tensor(g + "/bias", DType::i32, {out});
      if (conv) {
        std::tie(l.conv.stride_h, l.conv.stride_w) = int_pair(r, g, "stride", 1);
        std::tie(l.conv.pad_h, l.conv.pad_w) = int_pair(r, g, "padding", 0);
      }
      l.in_scale = scale_attr(r, g, "input_scale");
      l.in_zero_point = int_in(r, g, "input_zero_point", -128, 127);
      l.activation = r.attr_string(g, "activation");
      if (l.activation != "none" && l.activation != "relu" && l.activation != "relu6")
        throw std::runtime_error(str(path, ": ", g, ": expected activation none, relu or relu6, found ", l.activation));
      l.logits = int_in(r, g, "logits", 0, 1) != 0;
      if (!l.logits) {
        l.out_scale = scale_attr(r, g, "output_scale");
        l.out_zero_point = int_in(r, g, "output_zero_point", -128, 127);
        l.act_min = int_in(r, g, "act_min", -128, 127);
        l.act_max = int_in(r, g, "act_max", -128, 127);
      }
    } else {
      throw std::runtime_error(str(path, ": ", g, ": unknown op '", op,
                                   "' (expected conv2d, linear, maxpool2d, avgpool2d or flatten)"));
    }
    m.layers.push_back(std::move(l));
  }
  try {
    m.prepare();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(path, ": ", e.what()));
  }
  return m;
}

}  // namespace crayon
