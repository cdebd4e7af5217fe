#include "apps/train_checkpoint.h"

#include <stdexcept>

#include "core/check.h"

namespace crayon {

Settings settings_of(const TrainConfig& config) {
  Settings s;
  TrainConfig c = config;
  visit_config(c, {[&](const char* k, std::string& v) { s.emplace_back(k, v); },
                   [&](const char* k, int64_t& v) { s.emplace_back(k, v); },
                   [&](const char* k, double& v) { s.emplace_back(k, v); }});
  return s;
}

TrainConfig config_of(const Settings& settings) {
  TrainConfig c;
  auto find = [&](const char* key) -> const Setting* {
    for (const auto& [k, v] : settings)
      if (k == key) return &v;
    return nullptr;
  };
  auto take = [&](const char* key, auto& field) {
    using T = std::decay_t<decltype(field)>;
    if (const Setting* v = find(key))
      if (const T* x = std::get_if<T>(v)) field = *x;
  };
  visit_config(c, {[&](const char* k, std::string& v) { take(k, v); }, [&](const char* k, int64_t& v) { take(k, v); },
                   [&](const char* k, double& v) { take(k, v); }});
  return c;
}

void save_checkpoint(const std::string& path, const TrainConfig& config, const Shape& input_shape,
                     const Sequential& model, const Optimizer* optimizer, const TrainState& state) {
  save_checkpoint(path, model, input_shape, state, settings_of(config), optimizer);
}

TrainCheckpoint load_train_checkpoint(const std::string& path) {
  TrainCheckpoint ck;
  static_cast<LoadedCheckpoint&>(ck) = load_checkpoint(path, settings_of(TrainConfig{}));
  ck.config = config_of(ck.settings);
  // The settings obey the rules the flags do; the epoch is within the run.
  if (const auto p = check_config(ck.config))
    throw std::runtime_error(str(path, ": /: config.", p->setting, ": ", p->message));
  if (ck.state.epoch > ck.config.epochs)
    throw std::runtime_error(str(path, ": /: expected epoch in [0, config.epochs = ", ck.config.epochs, "], found ",
                                 ck.state.epoch));
  return ck;
}

}  // namespace crayon
