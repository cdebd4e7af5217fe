// crayon export: a quantized checkpoint (QAT or PTQ) to the integer engine's int8 file
// (format in the README, "int8 model").
#include <cstdio>
#include <filesystem>

#include "apps/cli.h"
#include "apps/train_checkpoint.h"
#include "core/check.h"
#include "data/loader.h"
#include "quant/int8_export.h"

namespace crayon {

int cmd_export(int argc, char** argv) {
  std::string model_path, out = "model.int8.h5";
  bool quiet = false;
  po::options_description opts("crayon export options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&model_path)->required(), "quantized checkpoint (from crayon train --qat or crayon quantize)")
    ("out", po::value(&out)->default_value(out), "int8 model file to write")
    ("quiet,q", po::bool_switch(&quiet), "print nothing");
  // clang-format on
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon export --model q.h5 --out model.int8.h5")) return 0;
  require_path(vm, "out");

  TrainCheckpoint ck = load_train_checkpoint(model_path);
  if (!ck.quantized)
    throw std::runtime_error(str(model_path, ": a float checkpoint; expected a quantized one (train it with --qat, or "
                                 "run crayon quantize on it first)"));
  const ChannelStats norm = dataset_stats(ck.config.dataset);
  Int8Model m;
  try {
    m = export_int8(*ck.model, ck.input_shape, norm);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(model_path, ": ", e.what()));
  }
  m.dataset = ck.config.dataset;
  m.quantization = ck.config.qat;
  save_int8(m, out);
  if (!quiet) {
    int64_t weights = 0, float_bytes = 0;
    for (const auto& [name, v] : ck.model->named_parameters()) float_bytes += v.numel() * 4;
    for (const Int8Layer& l : m.layers) weights += l.weight.numel();
    const auto bytes = std::filesystem::file_size(out);
    std::printf("%s -> %s: %zu layers, %lld int8 weights; %llu bytes on disk, %.2f x the %lld bytes of float weights\n",
                model_path.c_str(), out.c_str(), m.layers.size(), (long long)weights, (unsigned long long)bytes,
                double(bytes) / double(float_bytes), (long long)float_bytes);
  }
  return 0;
}

}  // namespace crayon
