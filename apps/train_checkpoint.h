#pragma once
// crayon train's checkpoints: a checkpoint (apps/checkpoint.h) whose settings are every
// field of TrainConfig, checked on load by the rules the flags obey (check_config).
#include <string>

#include "apps/checkpoint.h"
#include "apps/train_config.h"

namespace crayon {

Settings settings_of(const TrainConfig& config);
TrainConfig config_of(const Settings& settings);  // a setting not there keeps TrainConfig's default

void save_checkpoint(const std::string& path, const TrainConfig& config, const Shape& input_shape,
                     const Sequential& model, const Optimizer* optimizer, const TrainState& state);

struct TrainCheckpoint : LoadedCheckpoint {
  TrainConfig config;
};

// load_checkpoint with TrainConfig's settings, then check_config() and epoch <= config.epochs;
// throws std::runtime_error naming the file and the setting.
TrainCheckpoint load_train_checkpoint(const std::string& path);

}  // namespace crayon
