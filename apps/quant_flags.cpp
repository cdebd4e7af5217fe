#include "apps/quant_flags.h"

#include <utility>

#include "core/check.h"

namespace crayon {

namespace {
// Flags whose value goes straight to set_qat_option(key, value).
const std::pair<const char*, const char*> kValueFlags[] = {{"weight-bits", "weight_bits"}, {"act-bits", "act_bits"},
                                                           {"observer", "observer"},       {"rounding", "rounding"},
                                                           {"ste", "ste"},                 {"qat-warmup", "warmup"}};
}  // namespace

void add_quant_options(po::options_description& opts, QuantFlags& flags, bool training) {
  // clang-format off
  opts.add_options()
    ("weight-bits", po::value<std::string>(), "weight bits, 2..8 (default 8)")
    ("act-bits", po::value<std::string>(), "activation bits, 2..8 (default 8)")
    ("per-channel", po::bool_switch(&flags.per_channel), "one weight scale per output channel (default)")
    ("per-tensor", po::bool_switch(&flags.per_tensor), "one weight scale per tensor")
    ("observer", po::value<std::string>(), "how activation ranges are chosen: minmax | ema | percentile[:P] | mse | kl");
  if (training)
    opts.add_options()
      ("rounding", po::value<std::string>(), "nearest | stochastic (training passes; evaluation always rounds to nearest)")
      ("ste", po::value<std::string>(), "straight-through estimator: plain | clipped (zero gradient where saturated)")
      ("qat-warmup", po::value<std::string>(), "training steps the activation observers watch before their grids freeze");
  opts.add_options()
    ("qat-config", po::value(&flags.config), "every quantization setting as key=value,... (quant/qat_config.h); "
                                             "the flags above override it");
  // clang-format on
}

std::string given_quant_flag(const po::variables_map& vm) {
  for (const auto& [flag, key] : kValueFlags)
    if (vm.count(flag)) return flag;
  for (const char* flag : {"per-channel", "per-tensor", "qat-config"})
    if (vm.count(flag) && !vm[flag].defaulted()) return flag;
  return "";
}

QatConfig quant_config_from(const po::variables_map& vm, const QuantFlags& flags) {
  if (flags.per_channel && flags.per_tensor) throw UsageError("--per-channel and --per-tensor: expected one, got both");
  QatConfig q;
  try {
    q = parse_qat_config(flags.config);
  } catch (const std::invalid_argument& e) {
    throw UsageError(str("--qat-config: ", e.what()));
  }
  auto apply = [&](const char* flag, const char* key, const std::string& value) {
    try {
      set_qat_option(q, key, value);
      validate(q);
    } catch (const std::invalid_argument& e) {
      throw UsageError(str("--", flag, ": ", e.what()));
    }
  };
  for (const auto& [flag, key] : kValueFlags)
    if (vm.count(flag)) apply(flag, key, vm[flag].as<std::string>());
  if (flags.per_channel) apply("per-channel", "per_channel", "1");
  if (flags.per_tensor) apply("per-tensor", "per_channel", "0");
  return q;
}

}  // namespace crayon
