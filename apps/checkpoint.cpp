#include "apps/checkpoint.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "core/check.h"
#include "core/h5io.h"
#include "nn/spec.h"
#include "quant/qat.h"

namespace crayon {

namespace {
// "3.weight" -> "model/3/weight": one group per layer.
std::string model_path(const std::string& name) {
  std::string p = "model/" + name;
  for (char& c : p)
    if (c == '.') c = '/';
  return p;
}
}  // namespace

std::string text_setting(const Settings& settings, const std::string& key) {
  for (const auto& [k, v] : settings)
    if (k == key)
      if (const auto* t = std::get_if<std::string>(&v)) return *t;
  return "";
}

void save_checkpoint(const std::string& path, const Sequential& model, const Shape& input_shape,
                     const TrainState& state, const Settings& settings, const Optimizer* optimizer) {
  H5Writer w(path);
  w.set_attr("/", "format", kCheckpointFormat);
  w.set_attr("/", "format_version", kCheckpointVersion);
  // A prepared model is stored as its float spec (BN already folded) plus the QatConfig
  // text in config.qat; loading prepares it again before reading the FakeQuant buffers.
  const bool quantized = is_quantized(model);
  if (quantized && text_setting(settings, "qat").empty())
    throw std::invalid_argument(str(path, ": the model is prepared for quantization but the setting qat is empty"));
  w.set_attr("/", "model_spec", quantized ? float_spec(model) : model.spec());
  w.set_attr("/", "quantized", int64_t(quantized));
  w.set_attr("/", "input_shape", std::vector<int64_t>(input_shape.begin(), input_shape.end()));
  w.set_attr("/", "epoch", state.epoch);
  w.set_attr("/", "step", state.step);
  std::vector<int64_t> rng(4);
  std::memcpy(rng.data(), state.rng_state.data(), sizeof(state.rng_state));
  w.set_attr("/", "rng_state", rng);
  for (const auto& setting : settings)  // not a structured binding: clang 14 cannot capture one
    std::visit([&](const auto& v) { w.set_attr("/", "config." + setting.first, v); }, setting.second);
  for (const auto& [name, v] : model.named_parameters()) w.write_tensor(model_path(name), v.value());
  for (const auto& [name, t] : model.named_buffers()) w.write_tensor(model_path(name), t);
  if (optimizer)
    for (const auto& [name, t] : optimizer->state()) w.write_tensor("optimizer/" + name, t);
  w.commit();
}

namespace {
// Every parameter and buffer the model has must be in the file with its exact dtype and
// shape, and finite.
void read_model_state(H5Reader& r, Sequential& model) {
  auto read = [&](const std::string& name, Tensor& dst) {
    Tensor t = r.read_tensor(model_path(name), dst.dtype(), dst.shape());
    if (t.dtype() == DType::f32)
      for (float v : t.values())
        if (!std::isfinite(v))
          throw std::runtime_error(str(r.path(), ": ", model_path(name), ": expected finite values, found ", v));
    dst.copy_from(t);
  };
  for (auto& [name, v] : model.named_parameters()) read(name, v.value());
  for (auto& [name, t] : model.named_buffers()) read(name, t);
}
}  // namespace

LoadedCheckpoint load_checkpoint(const std::string& path, Settings settings) {
  H5Reader r(path);
  if (!r.has_attr("/", "format") || r.attr_string("/", "format") != kCheckpointFormat)
    throw std::runtime_error(str(path, ": expected a crayon checkpoint (root attribute format = '", kCheckpointFormat,
                                 "'), found ", r.has_attr("/", "format") ? "'" + r.attr_string("/", "format") + "'" : "none"));
  const int64_t version = r.attr_int("/", "format_version");
  if (version != kCheckpointVersion)
    throw std::runtime_error(str(path, ": expected checkpoint format_version ", kCheckpointVersion, ", found ", version));
  LoadedCheckpoint ck;
  for (auto& [key, value] : settings) {
    const std::string name = "config." + key;
    if (!r.has_attr("/", name)) continue;
    if (std::holds_alternative<std::string>(value)) value = r.attr_string("/", name);
    else if (std::holds_alternative<int64_t>(value)) value = r.attr_int("/", name);
    else value = r.attr_double("/", name);
  }
  ck.settings = std::move(settings);
  const auto in = r.attr_ints("/", "input_shape");
  if (in.size() != 3 || in[0] < 1 || in[1] < 1 || in[2] < 1 || in[0] > 4096 || in[1] > 65536 || in[2] > 65536)
    throw std::runtime_error(str(path, ": /: expected input_shape (C, H, W) with positive sizes, found ",
                                 shape_str(Shape(in.begin(), in.end()))));
  ck.input_shape = Shape(in.begin(), in.end());
  // A training state a run could reach.
  ck.state.epoch = r.attr_int("/", "epoch");
  ck.state.step = r.attr_int("/", "step");
  if (ck.state.epoch < 0 || ck.state.epoch > INT32_MAX)
    throw std::runtime_error(str(path, ": /: expected epoch in [0, 2^31), found ", ck.state.epoch));
  if (ck.state.step < 0 || (ck.state.epoch == 0) != (ck.state.step == 0) || ck.state.step > (int64_t(1) << 53))
    throw std::runtime_error(str(path, ": /: expected a step count of 0 at epoch 0 and in [1, 2^53] after it, found step ",
                                 ck.state.step, " at epoch ", ck.state.epoch));
  const auto rng = r.attr_ints("/", "rng_state");
  if (rng.size() != 4) throw std::runtime_error(str(path, ": /: expected rng_state of 4 words, found ", rng.size()));
  std::memcpy(ck.state.rng_state.data(), rng.data(), sizeof(ck.state.rng_state));
  if (ck.state.rng_state == std::array<uint64_t, 4>{})
    throw std::runtime_error(str(path, ": /: expected a generator state, found rng_state all zero (xoshiro256** "
                                 "would draw only zeros)"));
  const std::string spec = r.attr_string("/", "model_spec");
  Rng init_rng(0);  // values are overwritten from the file
  try {
    ck.model = build_model(spec, ck.input_shape, init_rng, Init::pytorch, &ck.size);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(path, ": /: model_spec does not build: ", e.what()));
  }
  ck.quantized = r.has_attr("/", "quantized") && r.attr_int("/", "quantized") != 0;
  if (ck.quantized) {
    const std::string qat = r.has_attr("/", "config.qat") ? r.attr_string("/", "config.qat") : "";
    try {
      prepare_qat(*ck.model, parse_qat_config(qat));
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(str(path, ": /: config.qat does not prepare the model: ", e.what()));
    }
  }
  read_model_state(r, *ck.model);
  if (r.has("optimizer"))
    for (const std::string& name : r.children("optimizer")) {
      const std::string full = "optimizer/" + name;
      const bool is_count = name == "step" || name.rfind("step.", 0) == 0;
      ck.optimizer_state.emplace_back(name, r.read_tensor(full, is_count ? DType::i32 : DType::f32));
    }
  return ck;
}

}  // namespace crayon
