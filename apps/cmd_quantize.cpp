// crayon quantize: post-training quantization (PTQ). Loads a float checkpoint, prepares it
// for quantization (BN folded, fake-quant on weights and activations), lets the activation
// observers watch a few batches of training images, freezes them, and writes a quantized
// checkpoint that `crayon eval` and `crayon export` read like a QAT one.
//
// Before calibration, optionally (the PTQ pipeline of Nagel et al.'s 2021 white paper,
// sec. 4): cross-layer equalization of the float model (quant/equalize.h), then bias
// correction of the weight-quantized model, empirical on the calibration batches or
// data-free from the batch norms (quant/bias_correction.h); AdaRound's learned rounding
// (quant/adaround.h) before the bias correction; mixed precision, bits per layer under an
// average-bits budget from each layer's sensitivity (quant/mixed_precision.h).
#include <cstdio>
#include <tuple>

#include "apps/cli.h"
#include "apps/evaluate.h"
#include "apps/quant_flags.h"
#include "apps/train_checkpoint.h"
#include "core/check.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "optim/adam.h"
#include "quant/adaround.h"
#include "quant/bias_correction.h"
#include "quant/bn_fold.h"
#include "quant/equalize.h"
#include "quant/mixed_precision.h"
#include "quant/qat.h"

namespace crayon {

int cmd_quantize(int argc, char** argv) {
  std::string model_path, out = "model.q.h5", data_dir;
  int64_t calib_batches = 16, batch = 128;
  int threads = 2;
  bool quiet = false, equalize_layers = false, learn_rounding = false;
  int64_t adaround_iters = AdaRoundOptions{}.iterations;
  double bits_budget = 0;
  std::string bits_widths = "8,6,5,4,3,2";
  std::string relu6 = "relu", bias_correction = "none";
  QuantFlags qflags;
  po::options_description opts("crayon quantize options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&model_path)->required(), "float checkpoint (.h5) to quantize")
    ("out", po::value(&out)->default_value(out), "quantized checkpoint to write")
    ("calib-batches", po::value(&calib_batches)->default_value(calib_batches), "training batches the observers see")
    ("batch-size", po::value(&batch)->default_value(batch), "images per calibration batch")
    ("data-dir", po::value(&data_dir), "folder holding the dataset's files (default: where the model was trained from)")
    ("equalize", po::bool_switch(&equalize_layers), "cross-layer equalization of the float model before quantizing")
    ("equalize-relu6", po::value(&relu6)->default_value(relu6), "a ReLU6 between two layers to equalize: relu "
     "(replace it by ReLU, as AIMET does) or keep (leave the pair alone)")
    ("bits-budget", po::value(&bits_budget), "mixed precision: choose weight bits per layer so that the mean over "
     "all weights is at most this (e.g. 4.5)")
    ("bits-widths", po::value(&bits_widths)->default_value(bits_widths), "the widths --bits-budget chooses from")
    ("adaround", po::bool_switch(&learn_rounding), "learn each weight's rounding, up or down, layer by layer (AdaRound)")
    ("adaround-iters", po::value(&adaround_iters)->default_value(adaround_iters), "AdaRound's Adam steps per layer")
    ("bias-correction", po::value(&bias_correction)->default_value(bias_correction)->implicit_value("empirical"),
     "none, empirical (measured on the calibration batches) or data-free (from the batch norms)")
    ("threads", po::value(&threads)->default_value(threads), "threads")
    ("quiet,q", po::bool_switch(&quiet), "print nothing");
  // clang-format on
  add_quant_options(opts, qflags, false);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon quantize --model float.h5 [options] --out q.h5")) return 0;
  for (const char* f : {"calib-batches", "batch-size", "adaround-iters"}) require_positive(vm, f);
  require_threads(vm);
  require_path(vm, "out");
  for (const auto& [flag, needs, on] : {std::tuple{"adaround-iters", "--adaround", learn_rounding},
                                        std::tuple{"equalize-relu6", "--equalize", equalize_layers},
                                        std::tuple{"bits-widths", "--bits-budget", vm.count("bits-budget") > 0}})
    if (!vm[flag].defaulted() && !on) throw UsageError(str("--", flag, ": needs ", needs));
  if (relu6 != "relu" && relu6 != "keep")
    throw UsageError(str("--equalize-relu6: expected relu or keep, got '", relu6, "'"));
  if (bias_correction != "none" && bias_correction != "empirical" && bias_correction != "data-free")
    throw UsageError(str("--bias-correction: expected none, empirical or data-free, got '", bias_correction, "'"));
  if (equalize_layers && bias_correction == "data-free")
    throw UsageError("--bias-correction data-free: reads the batch norms' statistics, which --equalize rescales; "
                     "use --bias-correction empirical with --equalize");
  QatConfig q = quant_config_from(vm, qflags);
  if (!q.fold_bn && (equalize_layers || vm.count("bits-budget")))
    throw UsageError(str(equalize_layers ? "--equalize" : "--bits-budget", ": folds batch norm first, but the "
                         "quantization config says fold_bn=0"));
  std::vector<int> widths;
  if (vm.count("bits-budget")) {
    if (!(bits_budget >= 2 && bits_budget <= 8))
      throw UsageError(str("--bits-budget: expected mean weight bits in [2, 8], got ", bits_budget));
    if (vm.count("weight-bits")) throw UsageError("--bits-budget: chooses the weight bits per layer; drop --weight-bits");
    widths = bit_width_list("bits-widths", bits_widths);
  }
  set_num_threads(threads);

  TrainCheckpoint ck = load_train_checkpoint(model_path);
  if (ck.quantized)
    throw std::runtime_error(str(model_path, ": already quantized (", ck.config.qat, "); expected a float checkpoint"));
  try {
    check_batch(ck.size, batch, "--batch-size");
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  TrainConfig cfg = ck.config;
  cfg.grad_l1 = 0;  // a float-training setting (apps/train_config.h): the quantized checkpoint does not train with it
  if (!data_dir.empty()) cfg.data_dir = data_dir;
  const Dataset train = load_dataset(cfg.dataset, true, cfg.data_dir);
  const Dataset test = load_dataset(cfg.dataset, false, cfg.data_dir);
  const ChannelStats norm = dataset_stats(cfg.dataset);
  const int64_t eval_batch = std::min<int64_t>(1000, largest_batch(ck.size));
  EvalResult before;
  try {
    before = evaluate(*ck.model, test, norm, eval_batch);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(model_path, " on '", cfg.dataset, "': ", e.what()));
  }

  // Calibration images: the first batches of the training order of epoch 0, without
  // augmentation, so the choice is reproducible from the checkpoint's seed.
  DataLoader loader(train, {.batch_size = batch, .shuffle = true, .seed = uint64_t(cfg.seed), .augment = false, .norm = norm});
  loader.start_epoch(0);
  std::vector<Tensor> calib;
  for (Tensor b; int64_t(calib.size()) < calib_batches && loader.images()(b);) calib.push_back(b.clone());

  std::string steps;  // what was done before calibration, for the report
  Sequential& model = *ck.model;
  const std::vector<std::vector<double>> bn_means =
      bias_correction == "data-free" ? bn_input_means(model) : std::vector<std::vector<double>>{};
  if (equalize_layers) {
    fold_batchnorm(model);
    const EqualizeReport e =
        equalize(model, {.relu6 = relu6 == "relu" ? Relu6Policy::replace : Relu6Policy::keep});
    const EvalResult eq = evaluate(model, test, norm, eval_batch);
    steps += str("  equalized ", e.pairs, " layer pairs in ", e.iterations, " sweeps (channel range spread ",
                 fixed(e.spread_before, 1), " -> ", fixed(e.spread_after, 2), ")");
    if (e.relu6_replaced) steps += str(", ", e.relu6_replaced, " ReLU6 replaced by ReLU");
    if (e.pairs_skipped) steps += str(", ", e.pairs_skipped, " pairs through ReLU6 kept");
    steps += str("; float accuracy ", fixed(eq.accuracy * 100, 2), "%\n");
  }
  if (!widths.empty()) {
    fold_batchnorm(model);
    const std::vector<LayerSensitivity> sens = weight_sensitivity(model, calib, widths, q.weight);
    int64_t weights = 0;
    for (const LayerSensitivity& l : sens) weights += l.weights;
    BitsChoice choice;
    try {
      choice = choose_bits(sens, int64_t(bits_budget * double(weights)));
    } catch (const std::invalid_argument& e) {
      throw UsageError(str("--bits-budget: ", e.what()));
    }
    q.layer_weight_bits = choice.bits;
    steps += str("  mixed precision: ", grid_name(q), ", ", choice.total_bits, " bits in all (mean ",
                 fixed(double(choice.total_bits) / double(weights), 2), " over ", weights,
                 " weights), predicted KL ", sci(choice.predicted_kl), "\n");
  }
  prepare_qat(model, q);
  if (learn_rounding) {
    const auto make_adam = [](const std::vector<Variable>& v) {
      auto adam = std::make_shared<Adam>(v, AdamOptions{.lr = 1e-2f});
      return std::function<void()>([adam] { adam->step(); });
    };
    const std::vector<AdaRoundLayer> r =
        adaround(model, calib, make_adam, {.iterations = adaround_iters, .seed = uint64_t(cfg.seed)});
    double changed = 0, gain = 0;
    int kept = 0;
    for (const AdaRoundLayer& l : r) {
      changed += l.changed / double(r.size());
      gain += (l.nearest_loss - std::min(l.nearest_loss, l.adaround_loss)) / std::max(l.nearest_loss, 1e-30) / double(r.size());
      kept += l.kept_nearest;
    }
    steps += str("  AdaRound: ", r.size(), " layers, ", fixed(changed * 100, 1), "% of codes rounded the other way, "
                 "reconstruction error ", fixed(gain * 100, 1), "% below nearest on average");
    if (kept) steps += str(" (", kept, " kept nearest)");
    steps += "\n";
  }
  if (bias_correction != "none") {
    const std::vector<LayerBiasShift> r =
        bias_correction == "empirical" ? correct_bias(model, calib) : correct_bias_data_free(model, bn_means);
    int corrected = 0;
    double shift = 0;
    for (const LayerBiasShift& l : r)
      if (l.corrected) ++corrected, shift = std::max(shift, l.mean_abs_shift);
    steps += str("  bias correction (", bias_correction, "): ", corrected, " of ", r.size(),
                 " layers, largest mean |shift| ", sci(shift), "\n");
  }
  size_t next = 0;
  calibrate(model, [&](Tensor& b) { return next < calib.size() ? (b = calib[next++], true) : false; },
            calib_batches, q);
  q.seed = uint64_t(cfg.seed);
  cfg.qat = describe(q);
  save_checkpoint(out, cfg, ck.input_shape, *ck.model, nullptr, ck.state);

  const EvalResult after = evaluate(*ck.model, test, norm, eval_batch);
  if (!quiet)
    std::printf("%s: %s, %s observer on %lld calibration images -> %s\n%s  %s test accuracy: float %.2f%%, "
                "quantized %.2f%% (%+.2f points)\n",
                model_path.c_str(),
                grid_name(q).c_str(), q.observer.c_str(),
                (long long)std::min(calib_batches * batch, train.size()), out.c_str(), steps.c_str(),
                cfg.dataset.c_str(), before.accuracy * 100, after.accuracy * 100,
                (after.accuracy - before.accuracy) * 100);
  return 0;
}

}  // namespace crayon
