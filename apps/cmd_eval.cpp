// crayon eval: accuracy, loss and per-class accuracy of a checkpoint on a test set.
#include <cstdio>
#include <iostream>

#include "apps/checkpoint.h"
#include "apps/cli.h"
#include "apps/evaluate.h"
#include "core/check.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/qat.h"

namespace crayon {

int cmd_eval(int argc, char** argv) {
  std::string model_path, dataset, data_dir;
  int threads = 2;
  int64_t batch = 1000, limit = 0;
  bool json = false;
  po::options_description opts("crayon eval options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&model_path)->required(), "checkpoint (.h5) to evaluate")
    ("dataset", po::value(&dataset), "mnist | fashion-mnist | cifar10 (default: the one it was trained on)")
    ("data-dir", po::value(&data_dir), "folder holding the dataset's files")
    ("batch-size", po::value(&batch)->default_value(batch), "examples per forward pass")
    ("limit", po::value(&limit)->default_value(0), "evaluate on the first N test examples (0: all)")
    ("threads", po::value(&threads)->default_value(threads), "threads")
    ("json", po::bool_switch(&json), "print one JSON object");
  // clang-format on
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon eval --model M.h5 [options]")) return 0;
  require_positive(vm, "batch-size");
  require_positive(vm, "threads");
  require_non_negative(vm, "limit");
  require_one_of(vm, "dataset", {"mnist", "fashion-mnist", "cifar10"});
  set_num_threads(threads);

  LoadedCheckpoint ck = load_checkpoint(model_path);
  if (dataset.empty()) dataset = ck.config.dataset;
  if (data_dir.empty() && dataset == ck.config.dataset) data_dir = ck.config.data_dir;
  Dataset test = load_dataset(dataset, false, data_dir);
  if (limit > 0 && limit < test.size()) test = test.slice(0, limit);
  const Shape data_shape{test.channels(), test.height(), test.width()};
  if (data_shape != ck.input_shape)
    throw std::runtime_error(str(model_path, ": the model takes ", shape_str(ck.input_shape), " images but '", dataset,
                                 "' has ", shape_str(data_shape)));
  const EvalResult r = evaluate(*ck.model, test, dataset_stats(dataset), batch);
  // A quantized model is also evaluated without its grid (same weights, no fake-quant):
  // the difference is what quantization costs.
  EvalResult f;
  if (ck.quantized) f = evaluate(*float_copy(*ck.model, ck.input_shape), test, dataset_stats(dataset), batch);
  const auto& names = test.class_names();
  if (json) {
    std::printf("{\"model\": \"%s\", \"dataset\": \"%s\", \"n\": %lld, \"accuracy\": %.6f, \"loss\": %.6f, ",
                model_path.c_str(), dataset.c_str(), (long long)r.n, r.accuracy, r.loss);
    if (ck.quantized)
      std::printf("\"quantization\": \"%s\", \"float_accuracy\": %.6f, \"float_loss\": %.6f, ", ck.config.qat.c_str(),
                  f.accuracy, f.loss);
    std::printf("\"per_class\": {");
    for (size_t c = 0; c < names.size(); ++c)
      std::printf("%s\"%s\": %.6f", c ? ", " : "", names[c].c_str(),
                  r.class_total[c] ? double(r.class_correct[c]) / double(r.class_total[c]) : 0.0);
    std::printf("}}\n");
  } else {
    std::printf("%s on %s test (%lld images): accuracy %.2f%%, loss %.4f\n", model_path.c_str(), dataset.c_str(),
                (long long)r.n, r.accuracy * 100, r.loss);
    if (ck.quantized) {
      const QatConfig q = parse_qat_config(ck.config.qat);
      std::printf("  quantized W%dA%d (fake-quant): accuracy %.2f%%; the same weights in float: %.2f%% (%+.2f points)\n",
                  q.weight.bits, q.act.bits, r.accuracy * 100, f.accuracy * 100, (r.accuracy - f.accuracy) * 100);
    }
    for (size_t c = 0; c < names.size(); ++c)
      std::printf("  %-12s %6.2f%%  (%lld/%lld)\n", names[c].c_str(),
                  r.class_total[c] ? 100.0 * double(r.class_correct[c]) / double(r.class_total[c]) : 0.0,
                  (long long)r.class_correct[c], (long long)r.class_total[c]);
  }
  return 0;
}

}  // namespace crayon
