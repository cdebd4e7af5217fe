// crayon eval: accuracy, loss and per-class accuracy of a checkpoint or an int8 model on a
// test set; with --compare, an int8 model beside it (agreement and KL of the predictions).
#include <cstdio>
#include <iostream>

#include "apps/cli.h"
#include "apps/evaluate.h"
#include "apps/train_checkpoint.h"
#include "core/check.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/int8/file.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"

namespace crayon {

namespace {

// One evaluated file: a checkpoint (float, QAT or PTQ; a quantized one is also evaluated
// without its grid) or an int8 model run by the integer engine.
struct Evaluated {
  std::string kind;       // "float", "W8A8 fake-quant", "int8 engine"
  EvalResult r;
  Tensor logits;          // (N, classes)
  bool has_float = false;
  EvalResult float_r;     // the same weights without the grid
};

struct Source {
  std::string path, dataset, data_dir;
  Shape input_shape;
  TrainCheckpoint ck;
  Int8Model int8;
  bool is_int8 = false;
};

Source open_source(const std::string& path) {
  Source s;
  s.path = path;
  s.is_int8 = is_int8_file(path);
  if (s.is_int8) {
    s.int8 = load_int8(path);
    s.dataset = s.int8.dataset;
    s.input_shape = s.int8.input_shape;
  } else {
    s.ck = load_train_checkpoint(path);
    s.dataset = s.ck.config.dataset;
    s.data_dir = s.ck.config.data_dir;
    s.input_shape = s.ck.input_shape;
  }
  return s;
}

Evaluated run(Source& s, const Dataset& test, const std::string& dataset, int64_t batch) {
  const Shape data_shape{test.channels(), test.height(), test.width()};
  if (data_shape != s.input_shape)
    throw std::runtime_error(str(s.path, ": the model takes ", shape_str(s.input_shape), " images but '", dataset,
                                 "' has ", shape_str(data_shape)));
  Evaluated e;
  try {
    if (s.is_int8) {
      e.kind = "int8 engine";
      e.r = evaluate(s.int8, test, batch, &e.logits);
      return e;
    }
    batch = std::min(batch, largest_batch(s.ck.size));
    const ChannelStats norm = dataset_stats(dataset);
    e.r = evaluate(*s.ck.model, test, norm, batch, &e.logits);
    e.kind = "float";
    if (s.ck.quantized) {
      const QatConfig q = parse_qat_config(s.ck.config.qat);
      e.kind = grid_name(q) + " fake-quant";
      e.has_float = true;
      e.float_r = evaluate(*float_copy(*s.ck.model, s.ck.input_shape), test, norm, batch);
    }
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(s.path, " on '", dataset, "': ", e.what()));
  }
  return e;
}

std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", v * 100);
  return b;
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  std::string model_path, compare_path, dataset, data_dir, save_logits_path;
  int threads = 2;
  int64_t batch = 1000, limit = 0;
  bool json = false;
  po::options_description opts("crayon eval options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&model_path)->required(), "checkpoint (.h5) or int8 model (from crayon export) to evaluate")
    ("compare", po::value(&compare_path), "an int8 model to run beside --model: both accuracies, top-1 agreement, "
                                          "mean KL divergence of the predictions")
    ("dataset", po::value(&dataset), "mnist | fashion-mnist | cifar10 (default: the one it was trained on)")
    ("data-dir", po::value(&data_dir), "folder holding the dataset's files")
    ("batch-size", po::value(&batch)->default_value(batch), "examples per forward pass")
    ("limit", po::value(&limit)->default_value(0), "evaluate on the first N test examples (0: all)")
    ("threads", po::value(&threads)->default_value(threads), "threads")
    ("json", po::bool_switch(&json), "print one JSON object")
    ("save-logits", po::value(&save_logits_path), "write every test image's index, label, prediction and logits: "
                                                  "FILE.h5 (h5py) or FILE.csv");
  // clang-format on
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon eval --model M.h5 [--compare M.int8.h5] [options]"))
    return 0;
  require_positive(vm, "batch-size");
  require_threads(vm);
  require_path(vm, "save-logits");
  require_non_negative(vm, "limit");
  require_one_of(vm, "dataset", {"mnist", "fashion-mnist", "cifar10"});
  set_num_threads(threads);

  Source main = open_source(model_path);
  Source other;
  if (!compare_path.empty()) {
    other = open_source(compare_path);
    if (!other.is_int8)
      throw std::runtime_error(str(compare_path, ": --compare expects an int8 model (from crayon export)"));
  }
  if (dataset.empty()) dataset = main.dataset;
  if (dataset.empty())
    throw std::runtime_error(str(model_path, ": names no dataset it was trained on; expected one, or --dataset"));
  if (data_dir.empty() && dataset == main.dataset) data_dir = main.data_dir;
  Dataset test = load_dataset(dataset, false, data_dir);
  if (limit > 0 && limit < test.size()) test = test.slice(0, limit);
  const Evaluated a = run(main, test, dataset, batch);
  const bool comparing = !compare_path.empty();
  Evaluated b;
  PredictionShift shift;
  if (comparing) {
    b = run(other, test, dataset, batch);
    shift = prediction_shift(a.logits, b.logits);
  }

  if (!save_logits_path.empty()) save_logits(save_logits_path, a.logits, test.labels(), model_path, a.kind);

  const EvalResult& r = a.r;
  const auto& names = test.class_names();
  if (json) {
    std::printf("{\"model\": \"%s\", \"kind\": \"%s\", \"dataset\": \"%s\", \"n\": %lld, \"accuracy\": %.6f, "
                "\"loss\": %.6f, ",
                model_path.c_str(), a.kind.c_str(), dataset.c_str(), (long long)r.n, r.accuracy, r.loss);
    if (a.has_float)
      std::printf("\"quantization\": \"%s\", \"float_accuracy\": %.6f, \"float_loss\": %.6f, ",
                  main.ck.config.qat.c_str(), a.float_r.accuracy, a.float_r.loss);
    if (comparing)
      std::printf("\"compare\": {\"model\": \"%s\", \"accuracy\": %.6f, \"loss\": %.6f, \"agreement\": %.6f, "
                  "\"mean_kl\": %.6g, \"mean_kl_approx\": %.6g}, ",
                  compare_path.c_str(), b.r.accuracy, b.r.loss, shift.agreement, shift.mean_kl, shift.mean_kl_approx);
    std::printf("\"per_class\": {");
    for (size_t c = 0; c < names.size(); ++c)
      std::printf("%s\"%s\": %.6f", c ? ", " : "", names[c].c_str(),
                  r.class_total[c] ? double(r.class_correct[c]) / double(r.class_total[c]) : 0.0);
    std::printf("}}\n");
    return 0;
  }
  std::printf("%s (%s) on %s test (%lld images): accuracy %s, loss %.4f\n", model_path.c_str(), a.kind.c_str(),
              dataset.c_str(), (long long)r.n, pct(r.accuracy).c_str(), r.loss);
  if (a.has_float)
    std::printf("  the same weights in float: accuracy %s (the grid costs %+.2f points)\n",
                pct(a.float_r.accuracy).c_str(), (a.float_r.accuracy - r.accuracy) * 100);
  if (comparing) {
    std::printf("%s (%s): accuracy %s, loss %.4f\n", compare_path.c_str(), b.kind.c_str(), pct(b.r.accuracy).c_str(),
                b.r.loss);
    std::printf("  top-1 agreement %s (%lld of %lld differ); mean KL(%s || int8) %.3g nats (1/2 Var approximation "
                "%.3g)\n",
                pct(shift.agreement).c_str(), (long long)std::llround((1 - shift.agreement) * double(r.n)),
                (long long)r.n, a.kind.c_str(), shift.mean_kl, shift.mean_kl_approx);
    return 0;
  }
  for (size_t c = 0; c < names.size(); ++c)
    std::printf("  %-12s %6.2f%%  (%lld/%lld)\n", names[c].c_str(),
                r.class_total[c] ? 100.0 * double(r.class_correct[c]) / double(r.class_total[c]) : 0.0,
                (long long)r.class_correct[c], (long long)r.class_total[c]);
  return 0;
}

}  // namespace crayon
