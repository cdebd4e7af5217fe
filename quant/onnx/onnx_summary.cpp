#include "quant/onnx/onnx_summary.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "core/check.h"
#include "core/limits.h"

namespace crayon {

namespace {

size_t element_size(int type) {
  switch (type) {
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL: return 1;
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16: return 2;
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64: return 8;
    default: return 4;
  }
}

int type_bits(int type) { return int(element_size(type)) * 8; }

// The values of a small initializer (scales, zero points), whichever field holds them.
std::vector<double> values_of(const onnx::TensorProto& t) {
  std::vector<double> v;
  const std::string& raw = t.raw_data();
  auto from_raw = [&](auto sample) {
    using T = decltype(sample);
    for (size_t i = 0; i + sizeof(T) <= raw.size(); i += sizeof(T)) {
      T x;
      std::memcpy(&x, raw.data() + i, sizeof(T));
      v.push_back(double(x));
    }
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (!raw.empty()) from_raw(float{});
      for (float x : t.float_data()) v.push_back(x);
      break;
    case onnx::TensorProto::INT8:
      if (!raw.empty()) from_raw(int8_t{});
      for (int32_t x : t.int32_data()) v.push_back(x);
      break;
    case onnx::TensorProto::UINT8:
      if (!raw.empty()) from_raw(uint8_t{});
      for (int32_t x : t.int32_data()) v.push_back(x);
      break;
    case onnx::TensorProto::INT32:
      if (!raw.empty()) from_raw(int32_t{});
      for (int32_t x : t.int32_data()) v.push_back(x);
      break;
    default: break;
  }
  return v;
}

Shape dims_of(const onnx::TensorShapeProto& s) {
  Shape d;
  for (const auto& dim : s.dim()) d.push_back(dim.has_dim_value() ? dim.dim_value() : -1);
  return d;
}

}  // namespace

Summary summarize_onnx(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw std::runtime_error(str(path, ": cannot read: ", ec.message()));
  // Protobuf's own limit is 2 GiB; crayon's is what its parameter cap allows in float32.
  const uint64_t cap = std::min<uint64_t>(uint64_t(2) << 30, uint64_t(limits().parameters) * 4 + (uint64_t(64) << 20));
  if (size > cap)
    throw std::runtime_error(str(path, ": ", size, " bytes; expected an ONNX model of at most ", cap, " bytes"));
  std::string bytes(size_t(size), '\0');
  {
    std::ifstream f(path, std::ios::binary);
    if (!f.read(bytes.data(), std::streamsize(size))) throw std::runtime_error(str(path, ": cannot read"));
  }
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes) || !m.has_graph())
    throw std::runtime_error(str(path, ": not an ONNX model (expected a serialized onnx.ModelProto with a graph)"));
  Summary s;
  std::string opsets;
  for (const auto& o : m.opset_import()) opsets += str(opsets.empty() ? "" : ", ", o.domain().empty() ? "ai.onnx" : o.domain(), " ", o.version());
  s.title = str(path, ": ONNX model, IR version ", m.ir_version(), ", opset ", opsets, ", producer ",
                m.producer_name().empty() ? "?" : m.producer_name(), " ", m.producer_version());
  // Shapes only for a model the checker accepts: shape inference trusts the graph's structure.
  try {
    onnx::checker::check_model(m);
    try {
      onnx::shape_inference::InferShapes(m);
    } catch (const std::exception& e) {
      s.notes.push_back(str("shape inference failed: ", e.what()));
    }
  } catch (const std::exception& e) {
    s.notes.push_back(str("the ONNX checker rejects it (no shapes): ", e.what()));
  }
  const onnx::GraphProto& g = m.graph();
  std::map<std::string, Shape> shapes;
  auto note_shape = [&](const onnx::ValueInfoProto& v) {
    if (v.type().has_tensor_type() && v.type().tensor_type().has_shape())
      shapes[v.name()] = dims_of(v.type().tensor_type().shape());
  };
  for (const auto& v : g.input()) note_shape(v);
  for (const auto& v : g.value_info()) note_shape(v);
  for (const auto& v : g.output()) note_shape(v);
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : g.initializer()) {
    inits[t.name()] = &t;
    Shape d(t.dims().begin(), t.dims().end());
    shapes[t.name()] = d;
  }
  std::map<std::string, Shape> weight_of;  // a DequantizeLinear's output -> its initializer's dims
  for (const auto& in : g.input())
    if (!inits.count(in.name()))
      s.notes.push_back(str("graph input '", in.name(), "': ", shape_str(shapes.count(in.name()) ? shapes[in.name()] : Shape{}),
                            " (-1: any batch size)"));
  for (const auto& n : g.node()) {
    SummaryRow r;
    r.name = n.name().empty() ? (n.output_size() ? n.output(0) : "?") : n.name();
    r.type = n.op_type();
    if (n.output_size() && shapes.count(n.output(0))) {
      const Shape& o = shapes[n.output(0)];
      r.output = !o.empty() && o[0] < 0 ? Shape(o.begin() + 1, o.end()) : o;  // the free batch dimension dropped
    } else if (n.op_type() == "DequantizeLinear" && n.input_size() > 0 && inits.count(n.input(0))) {
      r.output = shapes[n.input(0)];  // a dequantized initializer keeps its dims
    }
    for (const std::string& in : n.input()) {
      const auto it = inits.find(in);
      if (it == inits.end()) continue;
      Shape d(it->second->dims().begin(), it->second->dims().end());
      int64_t numel = 1;
      for (int64_t x : d) numel = numel < 0 || x < 0 ? -1 : mul_or_overflow(numel, x);
      if (numel < 0) throw std::runtime_error(str(path, ": initializer ", in, " has impossible dims ", shape_str(d)));
      r.params += numel;
      r.bytes += numel * int64_t(element_size(it->second->data_type()));
    }
    auto attr = [&](const char* name, int64_t fallback) {
      for (const auto& a : n.attribute())
        if (a.name() == name) return a.i();
      return fallback;
    };
    auto weight_dims = [&](int i) -> Shape {
      if (n.input_size() <= i) return {};
      const std::string& w = n.input(i);
      if (weight_of.count(w)) return weight_of[w];
      return inits.count(w) ? shapes[w] : Shape{};
    };
    const int64_t out_numel = [&] {
      int64_t p = r.output.empty() ? 0 : 1;
      for (int64_t x : r.output) p = x > 0 ? p * x : 0;
      return p;
    }();
    if (n.op_type() == "DequantizeLinear" && n.input_size() > 0 && inits.count(n.input(0)))
      weight_of[n.output(0)] = shapes[n.input(0)];
    if (n.op_type() == "Conv") {
      const Shape w = weight_dims(1);
      if (w.size() >= 3) {
        int64_t k = 1;
        for (size_t i = 1; i < w.size(); ++i) k *= w[i];
        r.macs = out_numel * k;
      }
    } else if (n.op_type() == "Gemm" || n.op_type() == "MatMul") {
      const Shape w = weight_dims(1);
      if (w.size() == 2) r.macs = out_numel * (n.op_type() == "Gemm" && attr("transB", 0) ? w[1] : w[0]);
    } else if ((n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear") && n.input_size() >= 2) {
      const auto sc = inits.find(n.input(1));
      const auto zp = n.input_size() >= 3 ? inits.find(n.input(2)) : inits.end();
      std::vector<float> scales;
      std::vector<int32_t> zeros;
      if (sc != inits.end())
        for (double v : values_of(*sc->second)) scales.push_back(float(v));
      int bits = 8;
      if (zp != inits.end()) {
        bits = type_bits(zp->second->data_type());
        for (double v : values_of(*zp->second)) zeros.push_back(int32_t(v));
      }
      r.grid = sc == inits.end() ? "(scale computed in the graph)" : grid_text(bits, scales, zeros);
    }
    s.rows.push_back(std::move(r));
  }
  for (const auto& p : m.metadata_props()) s.notes.push_back(str(p.key(), " = ", p.value()));
  return s;
}

}  // namespace crayon
