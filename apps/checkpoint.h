#pragma once
// Checkpoints (HDF5, DESIGN.md "Files on disk"), assembled here where training is driven:
//
//   /                 attrs: format = "crayon-checkpoint", format_version = 1,
//                     model_spec, input_shape (C, H, W), epoch, step, quantized (0/1),
//                     rng_state (4 x uint64 stored as int64), and the training settings
//                     (TrainConfig's fields, see train_config.h)
//   /model/<layer>/<name>   float32 parameters and buffers, one group per layer, from the
//                     module's hierarchical names ("3.weight" -> /model/3/weight)
//   /optimizer/<name> the optimizer's named state (optim/optimizer.h)
//
// A model prepared for QAT or PTQ (quant/qat.h) has quantized = 1, model_spec = its float
// spec (batch norm folded, no fakequant layers) and its QatConfig text in config.qat;
// loading builds the float model, runs prepare_qat, then reads every parameter and buffer
// (the FakeQuant modules' scales, zero points and observer state among them).
//
// Saving goes through H5Writer: a temporary file, fsync, rename, fsync of the directory,
// and non-finite weights are refused, so a crash or a NaN never costs the last good file.
#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "apps/train_config.h"
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

void save_checkpoint(const std::string& path, const TrainConfig& config, const Shape& input_shape,
                     const Sequential& model, const Optimizer* optimizer, const TrainState& state);

struct LoadedCheckpoint {
  TrainConfig config;
  Shape input_shape;
  std::shared_ptr<Sequential> model;
  ModelSize size;  // of model_spec (nn/spec.h)
  NamedTensors optimizer_state;
  TrainState state;
  bool quantized = false;  // the model was prepared for quantization (config.qat says how)
};

// Reads and validates everything (format, version, the settings by check_config(), epoch,
// step and generator state, the spec against limits(), shapes of every parameter against
// the model its spec builds); throws std::runtime_error naming the file and the object.
LoadedCheckpoint load_checkpoint(const std::string& path);

// Copies named parameters and buffers from an open checkpoint into a model of the same
// spec; used by load_checkpoint and by --init (fine-tuning from a float model).
void load_model_state(const std::string& path, Sequential& model);

}  // namespace crayon
