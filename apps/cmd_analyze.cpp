// crayon analyze: what quantization does to one model, per layer and at its predictions
// (quant/analysis.h): grid errors and SQNR, the certified error-propagation bound and its
// tightness, certified vs kept predictions, exact KL beside 1/2 Var, layer sensitivity, and
// the description length (model bits two ways, data bits). A float checkpoint is quantized
// by PTQ with the flags given; a quantized one is analyzed against its own float copy.
// Layer sensitivity, at the analyzed grid (--sensitivity) or at other bit widths
// (--sensitivity-bits, each calibrated the same way), is the one costly instrument.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "apps/cli.h"
#include "apps/evaluate.h"
#include "apps/plot.h"
#include "apps/quant_flags.h"
#include "apps/train_checkpoint.h"
#include "apps/trainer.h"
#include "core/check.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/analysis.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"

namespace crayon {

namespace {

// JSON numbers: finite with enough digits, null otherwise (SQNR of an exact grid is +inf).
std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

std::string grid_json(const GridError& g, const std::string& more = "") {
  return str("{\"name\": ", json_string(g.name), ", \"count\": ", g.error.count, ", \"sqnr_db\": ", num(g.sqnr_db()),
             ", \"saturated_fraction\": ", num(g.saturated_fraction()), ", \"saturation_sse\": ",
             num(g.error.saturation_sse), ", \"rounding_sse\": ", num(g.error.rounding_sse),
             ", \"max_saturation_error\": ", num(g.error.max_saturation_error), ", \"max_rounding_error\": ",
             num(g.error.max_rounding_error), more, "}");
}

// One grid's layer sensitivity.
struct SensitivitySet {
  std::string grid;
  std::vector<Sensitivity> units;
};


struct Description {  // idea 1, in bits
  double prior_bits = 0, entropy_bits = 0, float_data_bits = 0, quantized_data_bits = 0;
  int64_t train_examples = 0;
};

}  // namespace

int cmd_analyze(int argc, char** argv) {
  std::string model_path, dataset, data_dir, plot_dir, sensitivity_bits;
  int64_t calib_batches = 16, batch = 128, limit = 0, train_limit = 10000;
  int threads = 2;
  bool json = false, sensitivity = false;
  QuantFlags qflags;
  po::options_description opts("crayon analyze options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&model_path)->required(), "float checkpoint (quantized here by PTQ) or quantized checkpoint")
    ("calib-batches", po::value(&calib_batches)->default_value(calib_batches), "PTQ: training batches the observers see")
    ("batch-size", po::value(&batch)->default_value(batch), "PTQ: images per calibration batch")
    ("dataset", po::value(&dataset), "mnist | fashion-mnist | cifar10 (default: the one it was trained on)")
    ("data-dir", po::value(&data_dir), "folder holding the dataset's files")
    ("limit", po::value(&limit)->default_value(0), "analyze the first N test examples (0: all)")
    ("train-limit", po::value(&train_limit)->default_value(train_limit), "data bits over the first N training examples "
                                                                         "(0: all)")
    ("sensitivity", po::bool_switch(&sensitivity), "also quantize one unit at a time, and all but one (two more "
                                                   "passes over the test set per layer)")
    ("sensitivity-bits", po::value(&sensitivity_bits), "layer sensitivity at each of these bit widths, weights and "
                                                        "activations together (e.g. 8,4,2; float checkpoints)")
    ("threads", po::value(&threads)->default_value(threads), "threads")
    ("json", po::bool_switch(&json), "print one JSON object with every number")
    ("plot", po::value(&plot_dir), "write PNG plots (gnuplot) into this folder");
  // clang-format on
  add_quant_options(opts, qflags, false);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm,
                          "usage: crayon analyze --model M.h5 [--weight-bits B --act-bits B --observer O] [options]"))
    return 0;
  for (const char* f : {"calib-batches", "batch-size"}) require_positive(vm, f);
  for (const char* f : {"limit", "train-limit"}) require_non_negative(vm, f);
  require_threads(vm);
  require_path(vm, "plot");
  const std::vector<int> other_bits =
      vm.count("sensitivity-bits") ? bit_width_list("sensitivity-bits", sensitivity_bits) : std::vector<int>{};
  require_one_of(vm, "dataset", {"mnist", "fashion-mnist", "cifar10"});
  set_num_threads(threads);

  TrainCheckpoint ck = load_train_checkpoint(model_path);
  std::string how;
  QatConfig q;
  if (ck.quantized) {
    const std::string f = given_quant_flag(vm);
    if (!f.empty())
      throw UsageError(str("--", f, ": ", model_path, " is already quantized (", ck.config.qat, "); its grids are used"));
    if (!other_bits.empty())
      throw UsageError(str("--sensitivity-bits: ", model_path, " is already quantized (", ck.config.qat,
                           "); use --sensitivity for its own grids"));
    q = parse_qat_config(ck.config.qat);
    how = "quantized checkpoint against its float copy";
  } else {
    q = quant_config_from(vm, qflags);
  }
  if (dataset.empty()) dataset = ck.config.dataset;
  if (data_dir.empty() && dataset == ck.config.dataset) data_dir = ck.config.data_dir;
  const ChannelStats norm = dataset_stats(dataset);
  const Dataset train_all = load_dataset(dataset, true, data_dir);
  Dataset test = load_dataset(dataset, false, data_dir);
  if (limit > 0 && limit < test.size()) test = test.slice(0, limit);
  const Shape image{test.channels(), test.height(), test.width()};
  if (image != ck.input_shape)
    throw std::runtime_error(str(model_path, ": the model takes ", shape_str(ck.input_shape), " images but '", dataset,
                                 "' has ", shape_str(image)));
  Sequential& model = *ck.model;
  // PTQ as the flags say: the observers see calib_batches shuffled training batches.
  const auto calibrate_ptq = [&](Sequential& m, const QatConfig& config) {
    DataLoader calib(train_all, {.batch_size = batch, .shuffle = true, .seed = uint64_t(ck.config.seed),
                                 .augment = false, .norm = norm});
    calibrate(m, calib.images(), calib_batches, config);
  };
  if (!ck.quantized) {
    try {
      check_batch(ck.size, batch, "--batch-size");
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    calibrate_ptq(model, q);
    how = str("PTQ, ", q.observer, " observer on ", std::min(calib_batches * batch, train_all.size()),
              " training images");
  }

  // The instruments over the test set, in batches that fit the activation limit.
  const int64_t eval_batch = std::min<int64_t>(500, largest_batch(ck.size));
  DataLoader loader(test, {.batch_size = eval_batch, .shuffle = false, .norm = norm});
  Analysis a;
  try {
    a = analyze(model, ck.input_shape, loader.labelled(), [&] { loader.start_epoch(0); }, sensitivity);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(model_path, ": ", e.what()));
  }

  // Layer sensitivity at the analyzed grid, then at each other width asked for: a fresh copy
  // of the float model calibrated at that width, against the same float logits.
  std::vector<SensitivitySet> sensitivities;
  if (sensitivity) sensitivities.push_back({grid_name(q), a.sensitivity});
  for (int b : other_bits) {
    QatConfig qb = q;
    qb.weight.bits = qb.act.bits = b;
    qb.layer_weight_bits.clear();  // one width for every layer
    if (std::any_of(sensitivities.begin(), sensitivities.end(),
                    [&](const SensitivitySet& s) { return s.grid == grid_name(qb); }))
      continue;
    TrainCheckpoint fresh = load_train_checkpoint(model_path);
    calibrate_ptq(*fresh.model, qb);
    sensitivities.push_back({grid_name(qb), layer_sensitivity(*fresh.model, ck.input_shape, loader.labelled(),
                                                            [&] { loader.start_epoch(0); }, a.bound.reference_logits)});
  }

  // Description length (idea 1): the float weights under the prior training assumed and the
  // quantized ones under their own empirical entropy; the training labels under each model.
  Description d;
  const Dataset train = train_limit > 0 && train_limit < train_all.size() ? train_all.slice(0, train_limit) : train_all;
  d.train_examples = train.size();
  const auto reference = float_copy(model, ck.input_shape);
  d.prior_bits = prior_bits(ck.config, prior_weights(*reference), train_all.size());
  for (const WeightBits& w : a.weight_bits) d.entropy_bits += w.bits;
  d.float_data_bits = evaluate(*reference, train, norm, eval_batch).loss * double(train.size()) / std::log(2.0);
  d.quantized_data_bits = evaluate(model, train, norm, eval_batch).loss * double(train.size()) / std::log(2.0);

  const std::string grid = grid_name(q);
  if (!plot_dir.empty()) {
    Plot bound{str(model_path, " ", grid, ": logit change against its certified bound (", a.samples, " test images)"),
               "bound on the largest logit change of the image", "measured largest logit change", true, true, true,
               {{"one test image", {}, {}, "points pt 7 ps 0.4"}}};
    const BoundPoint& logits = a.bound.points.back();
    for (size_t i = 0; i < logits.bound.size(); ++i)
      if (logits.measured[i] > 0) bound.series[0].points.emplace_back(logits.bound[i], logits.measured[i]);
    write_plot(plot_dir, "bound", bound);
    const PredictionShift s = prediction_shift(a.bound.reference_logits, a.bound.quantized_logits);
    Plot kl{str(model_path, " ", grid, ": exact KL(float || quantized) against 1/2 Var of the logit change"),
            "1/2 Var_p[logit change] (nats)", "exact KL divergence (nats)", true, true, true,
            {{"one test image", {}, {}, "points pt 7 ps 0.4"}}};
    for (size_t i = 0; i < s.kl.size(); ++i)
      if (s.kl[i] > 0 && s.kl_approx[i] > 0) kl.series[0].points.emplace_back(s.kl_approx[i], s.kl[i]);
    write_plot(plot_dir, "kl", kl);
    Plot sqnr{str(model_path, " ", grid, ": signal-to-quantization-noise ratio per layer"), "layer (forward order)",
              "SQNR (dB)", false, false, false, {{"weights", {}, {}, "linespoints"}, {"activations", {}, {}, "linespoints"}}};
    for (size_t i = 0; i < a.weights.size(); ++i) sqnr.series[0].points.emplace_back(double(i + 1), a.weights[i].sqnr_db());
    for (size_t i = 0; i < a.activations.size(); ++i)
      sqnr.series[1].points.emplace_back(double(i), a.activations[i].sqnr_db());
    write_plot(plot_dir, "sqnr", sqnr);
    if (!sensitivities.empty()) {
      Plot sens{str(model_path, ": which layer breaks first (", a.samples, " test images)"),
                "unit quantized alone, the rest float (0: the input, then each conv / linear layer in order)",
                "accuracy drop (points)", false, false, false, {}};
      for (const SensitivitySet& set : sensitivities) {
        PlotSeries line{set.grid, {}, {}, "linespoints"};
        for (size_t i = 0; i < set.units.size(); ++i)
          line.points.emplace_back(double(i), 100 * (a.reference_accuracy - set.units[i].only_accuracy));
        sens.series.push_back(line);
      }
      write_plot(plot_dir, "sensitivity", sens);
    }
  }

  if (json) {
    std::string out = str("{\"model\": ", json_string(model_path), ", \"grid\": \"", grid, "\", \"quantization\": ",
                          json_string(describe(q)), ", \"how\": ", json_string(how), ", \"dataset\": \"", dataset,
                          "\", \"samples\": ", a.samples, ", \"float_accuracy\": ", num(a.reference_accuracy),
                          ", \"quantized_accuracy\": ", num(a.quantized_accuracy), ", \"kept\": ", num(a.kept),
                          ", \"certified\": ", num(a.certified), ", \"weights\": [");
    for (size_t i = 0; i < a.weights.size(); ++i) {
      const WeightBits& w = a.weight_bits[i];
      out += str(i ? ", " : "",
                 grid_json(a.weights[i], str(", \"distinct_values\": ", w.distinct, ", \"entropy_bits\": ", num(w.bits))));
    }
    out += "], \"activations\": [";
    for (size_t i = 0; i < a.activations.size(); ++i) out += str(i ? ", " : "", grid_json(a.activations[i]));
    out += "], \"bound\": [";
    for (size_t i = 0; i < a.tightness.size(); ++i) {
      const Tightness& t = a.tightness[i];
      out += str(i ? ", " : "", "{\"name\": ", json_string(t.name), ", \"mean_bound\": ", num(t.mean_bound),
                 ", \"mean_measured\": ", num(t.mean_measured), ", \"tightness_median\": ", num(t.median),
                 ", \"tightness_p90\": ", num(t.p90), ", \"tightness_max\": ", num(t.max), "}");
    }
    out += str("], \"kl\": {\"mean\": ", num(a.kl.mean_kl), ", \"mean_half_var\": ", num(a.kl.mean_approx),
               ", \"correlation\": ", num(a.kl.correlation), ", \"bins\": [");
    for (size_t i = 0; i < a.kl.bins.size(); ++i) {
      const KlBin& b = a.kl.bins[i];
      out += str(i ? ", " : "", "{\"from\": ", num(b.lo), ", \"to\": ", num(b.hi), ", \"count\": ", b.count,
                 ", \"median_relative_error\": ", num(b.median_relative_error), "}");
    }
    out += "]}, \"sensitivity\": [";
    bool first = true;
    for (const SensitivitySet& set : sensitivities)
      for (const Sensitivity& s : set.units) {
        out += str(first ? "" : ", ", "{\"grid\": \"", set.grid, "\", \"unit\": ", json_string(s.name),
                   ", \"only_accuracy\": ", num(s.only_accuracy), ", \"only_kl\": ", num(s.only_kl),
                   ", \"all_but_accuracy\": ", num(s.all_but_accuracy), ", \"all_but_kl\": ", num(s.all_but_kl), "}");
        first = false;
      }
    out += str("], \"description_bits\": {\"prior_model_bits\": ", num(d.prior_bits), ", \"entropy_model_bits\": ",
               num(d.entropy_bits), ", \"float_data_bits\": ", num(d.float_data_bits), ", \"quantized_data_bits\": ",
               num(d.quantized_data_bits), ", \"train_examples\": ", d.train_examples, "}}");
    std::printf("%s\n", out.c_str());
    return 0;
  }

  std::printf("%s %s (%s) on %s test (%lld images)\n", model_path.c_str(), grid.c_str(), how.c_str(), dataset.c_str(),
              (long long)a.samples);
  std::printf("accuracy: float %.2f%%, quantized %.2f%% (%+.2f points); predictions kept %.2f%%, certified %.2f%%\n\n",
              a.reference_accuracy * 100, a.quantized_accuracy * 100, (a.quantized_accuracy - a.reference_accuracy) * 100,
              a.kept * 100, a.certified * 100);
  std::printf("%-32s %9s %8s %10s %10s %8s %11s\n", "weights", "SQNR dB", "sat %", "max sat", "max round", "values",
              "bits/weight");
  for (size_t i = 0; i < a.weights.size(); ++i) {
    const GridError& g = a.weights[i];
    const WeightBits& w = a.weight_bits[i];
    std::printf("%-32s %9.2f %8.3f %10.4g %10.4g %8d %11.3f\n", g.name.c_str(), g.sqnr_db(), g.saturated_fraction() * 100,
                g.error.max_saturation_error, g.error.max_rounding_error, w.distinct, w.bits / double(w.count));
  }
  std::printf("\n%-32s %9s %8s %10s %10s %12s %12s %9s %9s\n", "activation grids / logits", "SQNR dB", "sat %",
              "max sat", "max round", "mean |dx|", "mean bound", "tight 50", "tight 90");
  for (size_t i = 0; i < a.tightness.size(); ++i) {
    const Tightness& t = a.tightness[i];
    if (i < a.activations.size()) {
      const GridError& g = a.activations[i];
      std::printf("%-32s %9.2f %8.3f %10.4g %10.4g", g.name.c_str(), g.sqnr_db(), g.saturated_fraction() * 100,
                  g.error.max_saturation_error, g.error.max_rounding_error);
    } else {
      std::printf("%-32s %9s %8s %10s %10s", t.name.c_str(), "", "", "", "");
    }
    std::printf(" %12.4g %12.4g %9.4f %9.4f\n", t.mean_measured, t.mean_bound, t.median, t.p90);
  }
  std::printf("\nKL(float || quantized): mean %.4g nats, 1/2 Var approximation %.4g, correlation %.4f\n", a.kl.mean_kl,
              a.kl.mean_approx, a.kl.correlation);
  for (const KlBin& b : a.kl.bins)
    std::printf("  KL in [%.0e, %.0e): %6lld images, median relative error of 1/2 Var %.3g\n", b.lo, b.hi,
                (long long)b.count, b.median_relative_error);
  for (const SensitivitySet& set : sensitivities) {
    std::printf("\n%-32s %14s %12s %14s %12s\n", str(set.grid, " unit (weights + output grid)").c_str(),
                "only it: acc", "KL", "all but: acc", "KL");
    for (const Sensitivity& s : set.units)
      std::printf("%-32s %13.2f%% %12.4g %13.2f%% %12.4g\n", s.name.c_str(), s.only_accuracy * 100, s.only_kl,
                  s.all_but_accuracy * 100, s.all_but_kl);
  }
  std::printf("\ndescription length (bits): float model %.0f (prior) + data %.0f = %.0f; quantized model %.0f "
              "(entropy of the integer weights) + data %.0f = %.0f; data over %lld training images\n",
              d.prior_bits, d.float_data_bits, d.prior_bits + d.float_data_bits, d.entropy_bits, d.quantized_data_bits,
              d.entropy_bits + d.quantized_data_bits, (long long)d.train_examples);
  return 0;
}

}  // namespace crayon
