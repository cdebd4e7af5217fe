#pragma once
// Everything `crayon train` is told, in one struct that the checkpoint stores and a
// resumed run reads back.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace crayon {

struct TrainConfig {
  std::string dataset = "mnist";
  std::string data_dir;  // empty: the dataset's default location
  std::string model = "lenet5";
  int64_t epochs = 10;
  int64_t batch_size = 128;
  double lr = 0.01;
  std::string optimizer = "sgd";  // sgd | adam | adamw
  double momentum = 0.9;
  int64_t nesterov = 0;
  double weight_decay = 0.0;
  double l1 = 0.0;
  double l2 = 0.0;
  double kure = 0.0;     // KURE lambda (optim/kure.h), 0: off
  double grad_l1 = 0.0;  // gradient-L1 lambda (optim/grad_l1.h), 0: off; float training only
  std::string lr_schedule = "constant";
  double clip_grad_norm = 0.0;  // 0: off
  int64_t seed = 1;
  int64_t val = 0;      // held-out validation examples taken from the training set
  int64_t augment = -1; // -1: on for cifar10 only
  std::string init = "pytorch";
  int64_t train_limit = 0;  // use only the first N training examples (0: all)
  int64_t test_limit = 0;   // evaluate on the first N test examples (0: all)
  // Quantization-aware training: the QatConfig text (quant/qat_config.h), empty for float
  // training; prepare_qat() runs when qat_start_epoch epochs are complete.
  std::string qat;
  int64_t qat_start_epoch = 0;
  // Low-precision weight updates (optim/weight_grid.h): weights on a fixed-point grid of
  // update_bits bits (0: off) with update_frac_bits fractional bits (-1: fitted to the
  // initial weights, then stored resolved), rounded "nearest" or "stochastic".
  int64_t update_bits = 0;
  int64_t update_frac_bits = -1;
  std::string update_rounding = "nearest";
};

// Visits every field with its name, so saving and loading cannot forget one.
struct ConfigVisitor {
  std::function<void(const char*, std::string&)> text;
  std::function<void(const char*, int64_t&)> integer;
  std::function<void(const char*, double&)> real;
};
void visit_config(TrainConfig& c, const ConfigVisitor& v);

inline constexpr int64_t kMaxEpochs = 1000000;

// The first setting of c that breaks a rule of `crayon train`: its name as stored
// ("batch_size"; the flag is --batch-size) and what was expected and found. The one place
// those rules live: flags and checkpoints are both checked here.
struct ConfigProblem {
  std::string setting, message;
};
std::optional<ConfigProblem> check_config(const TrainConfig& c);

// "--batch-size" for "batch_size".
std::string flag_name(const std::string& setting);

}  // namespace crayon
