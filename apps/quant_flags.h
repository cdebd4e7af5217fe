#pragma once
// The quantization flags `crayon train --qat` and `crayon quantize` share, turned into a
// QatConfig (quant/qat_config.h) with every bad value a UsageError naming its flag.
#include <string>

#include "apps/cli.h"
#include "quant/qat_config.h"

namespace crayon {

struct QuantFlags {
  bool per_channel = false, per_tensor = false;
  std::string config;  // --qat-config text, applied before the other flags
};

// Adds --weight-bits --act-bits --per-channel --per-tensor --observer --qat-config, and
// with `training` also --rounding --ste --qat-warmup.
void add_quant_options(po::options_description& opts, QuantFlags& flags, bool training);

// The first quantization flag given on the command line, or "" if none was.
std::string given_quant_flag(const po::variables_map& vm);

QatConfig quant_config_from(const po::variables_map& vm, const QuantFlags& flags);

}  // namespace crayon
