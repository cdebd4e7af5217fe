#pragma once
// Checkpoints (HDF5, DESIGN.md "Files on disk"): a model, its optimizer's state, where
// training stands, and any settings, for any program built on the libraries:
//
//   /                 attrs: format = "crayon-checkpoint", format_version = 1,
//                     model_spec, input_shape (C, H, W), epoch, step, quantized (0/1),
//                     rng_state (4 x uint64 stored as int64), and each setting as
//                     config.<key> (text, int64 or float64)
//   /model/<layer>/<name>   float32 parameters and buffers, one group per layer, from the
//                     module's hierarchical names ("3.weight" -> /model/3/weight)
//   /optimizer/<name> the optimizer's named state (optim/optimizer.h)
//
// A model prepared for QAT or PTQ (quant/qat.h) has quantized = 1, model_spec = its float
// spec (batch norm folded, no fakequant layers) and its QatConfig text in the setting "qat";
// loading builds the float model, runs prepare_qat, then reads every parameter and buffer
// (the FakeQuant modules' scales, zero points and observer state among them).
//
// Saving goes through H5Writer: a temporary file, fsync, rename, fsync of the directory,
// and non-finite weights are refused, so a crash or a NaN never costs the last good file.
// `crayon train` maps its TrainConfig onto the settings (apps/train_checkpoint.h).
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "nn/sequential.h"
#include "nn/spec.h"
#include "optim/optimizer.h"

namespace crayon {

inline constexpr const char* kCheckpointFormat = "crayon-checkpoint";
inline constexpr int64_t kCheckpointVersion = 1;

struct TrainState {
  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;   // optimizer steps completed
  std::array<uint64_t, 4> rng_state{};
};

// Named settings, stored as root attributes config.<key>.
using Setting = std::variant<std::string, int64_t, double>;
using Settings = std::vector<std::pair<std::string, Setting>>;
// The text setting `key`, or "" if there is none.
std::string text_setting(const Settings& settings, const std::string& key);

// A quantized model needs its QatConfig text as the setting "qat".
void save_checkpoint(const std::string& path, const Sequential& model, const Shape& input_shape,
                     const TrainState& state, const Settings& settings, const Optimizer* optimizer = nullptr);

struct LoadedCheckpoint {
  Shape input_shape;
  std::shared_ptr<Sequential> model;
  ModelSize size;  // of model_spec (nn/spec.h)
  NamedTensors optimizer_state;
  TrainState state;
  Settings settings;
  bool quantized = false;  // the model was prepared for quantization (setting "qat" says how)
};

// Reads and validates everything (format, version, epoch, step and generator state, the
// spec against limits(), shapes of every parameter against the model its spec builds);
// throws std::runtime_error naming the file and the object. `settings`: the keys to read
// and their types, by their defaults; a key missing from the file keeps its default.
LoadedCheckpoint load_checkpoint(const std::string& path, Settings settings);

}  // namespace crayon
