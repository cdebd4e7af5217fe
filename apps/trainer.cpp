#include "apps/trainer.h"

#include <chrono>
#include <cstdio>
#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>

#include "apps/cli.h"
#include "apps/evaluate.h"
#include "apps/progress.h"
#include "apps/train_checkpoint.h"
#include "core/anomaly.h"
#include "core/check.h"
#include "core/ops.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/spec.h"
#include "optim/adam.h"
#include "optim/clip.h"
#include "optim/data_parallel.h"
#include "optim/grad_l1.h"
#include "optim/kure.h"
#include "optim/regularizer.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "optim/weight_grid.h"
#include "quant/qat.h"

namespace crayon {

std::vector<Variable> prior_weights(const Module& m) {
  std::vector<Variable> w;
  for (auto& [name, v] : m.named_parameters())
    if (v.ndim() >= 2) w.push_back(v);
  return w;
}

// The loss is mean CE + lambda * R(w), so the prior that objective assumes has strength
// n * lambda; without one, the maximum-likelihood Gaussian (sigma = rms w).
double prior_bits(const TrainConfig& c, const std::vector<Variable>& w, int64_t n) {
  if (c.l1 > 0) return L1Regularizer(c.l1 * double(n)).model_bits(w);
  if (c.l2 > 0) return L2Regularizer(c.l2 * double(n)).model_bits(w);
  double ss = 0;
  int64_t count = 0;
  for (const Variable& v : w) {
    for (float x : v.value().values()) ss += double(x) * x;
    count += v.numel();
  }
  if (count == 0 || ss == 0) return 0;
  const double sigma2 = ss / double(count);
  return L2Regularizer(1.0 / (2.0 * sigma2)).model_bits(w);
}

namespace {

std::unique_ptr<Optimizer> make_optimizer(const TrainConfig& c, std::vector<Variable> params) {
  const float lr = float(c.lr), wd = float(c.weight_decay);
  if (c.optimizer == "sgd")
    return std::make_unique<SGD>(std::move(params),
                                 SgdOptions{lr, float(c.momentum), c.nesterov != 0, wd});
  if (c.optimizer == "adam") return std::make_unique<Adam>(std::move(params), AdamOptions{.lr = lr, .weight_decay = wd});
  if (c.optimizer == "adamw")
    return std::make_unique<AdamW>(std::move(params), AdamWOptions{.lr = lr, .weight_decay = wd});
  throw std::invalid_argument(str("--optimizer: expected sgd, adam or adamw, got '", c.optimizer, "'"));
}

class EpochLog {
 public:
  EpochLog(const std::string& path, bool append) : path_(path) {
    if (path.empty()) return;
    jsonl_ = path.size() >= 5 && (path.ends_with(".jsonl") || path.ends_with(".json"));
    const bool exists = std::ifstream(path).good();
    f_.open(path, append ? std::ios::app : std::ios::trunc);
    if (!f_) throw std::runtime_error(str("--log: cannot open '", path, "' for writing"));
    if (!jsonl_ && !(append && exists))
      f_ << "epoch,step,lr,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,data_bits,model_bits,grad_norm,"
            "seconds,images_per_s\n";
  }
  void write(const EpochRecord& r) {
    if (!f_.is_open()) return;
    // Without a validation split its columns are empty (CSV) or null (JSON).
    const bool has_val = r.val_acc >= 0;
    auto num = [&](double v, const char* fmt) {
      char b[64];
      std::snprintf(b, sizeof b, fmt, v);
      return std::string(b);
    };
    const std::string val_loss = has_val ? num(r.val_loss, "%.6f") : (jsonl_ ? "null" : "");
    const std::string val_acc = has_val ? num(r.val_acc, "%.6f") : (jsonl_ ? "null" : "");
    char buf[1024];
    if (jsonl_)
      std::snprintf(buf, sizeof buf,
                    "{\"epoch\": %lld, \"step\": %lld, \"lr\": %.6g, \"train_loss\": %.6f, \"train_acc\": %.6f, "
                    "\"val_loss\": %s, \"val_acc\": %s, \"test_loss\": %.6f, \"test_acc\": %.6f, "
                    "\"data_bits\": %.1f, \"model_bits\": %.1f, \"grad_norm\": %.6g, \"seconds\": %.3f, "
                    "\"images_per_s\": %.1f}\n",
                    (long long)r.epoch, (long long)r.step, r.lr, r.train_loss, r.train_acc, val_loss.c_str(),
                    val_acc.c_str(), r.test_loss, r.test_acc, r.data_bits, r.model_bits, r.grad_norm, r.seconds,
                    r.images_per_s);
    else
      std::snprintf(buf, sizeof buf, "%lld,%lld,%.6g,%.6f,%.6f,%s,%s,%.6f,%.6f,%.1f,%.1f,%.6g,%.3f,%.1f\n",
                    (long long)r.epoch, (long long)r.step, r.lr, r.train_loss, r.train_acc, val_loss.c_str(),
                    val_acc.c_str(), r.test_loss, r.test_acc, r.data_bits, r.model_bits, r.grad_norm, r.seconds,
                    r.images_per_s);
    f_ << buf;
    f_.flush();
    if (!f_) throw std::runtime_error(str("--log: write to '", path_, "' failed"));
  }

 private:
  std::string path_;
  std::ofstream f_;
  bool jsonl_ = false;
};

std::string fixed4(double v) { return fixed(v, 4); }
std::string fixed1(double v) { return fixed(v, 1); }
std::string pct(double v) { return fixed(v * 100, 2) + "%"; }

// --init names a float checkpoint to fine-tune: its model (spec and values) replaces --model.
std::shared_ptr<Sequential> init_from_checkpoint(TrainConfig& cfg, const Shape& input_shape, ModelSize& size) {
  TrainCheckpoint ck = load_train_checkpoint(cfg.init);
  if (ck.quantized)
    throw std::invalid_argument(str("--init: '", cfg.init, "' is already prepared for quantization (", ck.config.qat,
                                    "); expected a float checkpoint"));
  if (ck.input_shape != input_shape)
    throw std::invalid_argument(str("--init: '", cfg.init, "' takes ", shape_str(ck.input_shape), " images, but '",
                                    cfg.dataset, "' has ", shape_str(input_shape)));
  cfg.model = ck.model->spec();
  size = ck.size;
  return ck.model;
}

Dataset limited(Dataset d, int64_t limit) { return limit > 0 && limit < d.size() ? d.slice(0, limit) : d; }

// Mean loss and accuracy over data; with peers each rank evaluates its part of it.
std::pair<double, double> evaluate_over(Module& model, const Dataset& data, const ChannelStats& norm, int64_t batch,
                                        Replicas* peers) {
  if (!peers) {
    const EvalResult e = evaluate(model, data, norm, batch);
    return {e.loss, e.accuracy};
  }
  const int64_t n = data.size(), r = peers->rank(), k = peers->size();
  const int64_t lo = n * r / k, hi = n * (r + 1) / k;
  double totals[3] = {0, 0, double(hi - lo)};
  if (hi > lo) {
    const EvalResult e = evaluate(model, data.slice(lo, hi), norm, batch);
    totals[0] = e.loss * double(hi - lo), totals[1] = e.accuracy * double(hi - lo);
  }
  peers->sum(totals);
  return {totals[0] / totals[2], totals[1] / totals[2]};
}

}  // namespace

std::vector<EpochRecord> run_training(const TrainRun& run) {
  set_num_threads(run.threads);
  Replicas* const peers = run.replicas && run.replicas->size() > 1 ? run.replicas : nullptr;
  const int rank = peers ? peers->rank() : 0, ranks = peers ? peers->size() : 1;
  const bool root = rank == 0;
  struct Anomaly {  // on for this run only
    explicit Anomaly(bool on) { set_detect_anomaly(on); }
    ~Anomaly() { set_detect_anomaly(false); }
  } anomaly(run.detect_anomaly);
  TrainConfig cfg = run.config;
  std::shared_ptr<Sequential> model;
  NamedTensors opt_state;
  TrainState state;
  Shape input_shape;
  ModelSize size;
  if (!run.resume.empty()) {
    TrainCheckpoint ck = load_train_checkpoint(run.resume);
    const int64_t epochs = cfg.epochs;
    cfg = ck.config;
    cfg.epochs = epochs;
    model = ck.model;
    opt_state = std::move(ck.optimizer_state);
    state = ck.state;
    input_shape = ck.input_shape;
    size = ck.size;
  }
  if (const auto p = check_config(cfg)) throw std::invalid_argument(str(flag_name(p->setting), ": ", p->message));
  if (peers && cfg.grad_l1 > 0)
    throw std::invalid_argument(str("--grad-l1: not available in data-parallel training (", ranks,
                                    " ranks): its extra forward and backward passes are not synchronized"));
  if (peers && !cfg.qat.empty()) {
    const std::string obs = parse_qat_config(cfg.qat).observer;
    if (obs != "minmax" && obs != "ema")
      throw std::invalid_argument(str("--observer: ", obs, " is not synchronized across the ", ranks,
                                      " data-parallel ranks; use minmax or ema"));
  }

  Dataset train_all = limited(load_dataset(cfg.dataset, true, cfg.data_dir), cfg.train_limit);
  const Dataset test = limited(load_dataset(cfg.dataset, false, cfg.data_dir), cfg.test_limit);
  if (cfg.val < 0 || cfg.val >= train_all.size())
    throw std::invalid_argument(str("--val: expected 0 to ", train_all.size() - 1, " examples, got ", cfg.val));
  Dataset train, val;
  if (cfg.val > 0) std::tie(train, val) = train_all.split(cfg.val);
  else train = std::move(train_all);
  const Shape data_shape{train.channels(), train.height(), train.width()};
  if (model && input_shape != data_shape)
    throw std::runtime_error(str(run.resume, ": model input ", shape_str(input_shape), " does not match dataset '",
                                 cfg.dataset, "' images ", shape_str(data_shape)));
  input_shape = data_shape;

  Rng rng(uint64_t(cfg.seed));
  if (model) rng.set_state(state.rng_state);
  else if (is_init_scheme(cfg.init)) model = build_model(cfg.model, input_shape, rng, parse_init(cfg.init), &size);
  else model = init_from_checkpoint(cfg, input_shape, size);
  check_batch(size, cfg.batch_size, "--batch-size");
  // 256 images per evaluation batch: as fast as 1000 per image, and a quarter of the memory.
  const int64_t eval_batch = std::min<int64_t>(256, largest_batch(size));
  if (!is_quantized(*model)) {
    // The classifier must emit one logit per class. Probed in eval mode, so no running
    // statistic or dropout generator moves (a quantized model was probed when it was made).
    NoGradGuard ng;
    model->eval();
    Variable probe = (*model)(Variable(Tensor::zeros({2, input_shape[0], input_shape[1], input_shape[2]})));
    if (probe.ndim() != 2 || probe.size(1) != train.num_classes())
      throw std::invalid_argument(str("--model: the network outputs ", shape_str(probe.shape()), " per batch of 2, but '",
                                      cfg.dataset, "' has ", train.num_classes(), " classes (expected (2, ",
                                      train.num_classes(), "))"));
  }
  std::unique_ptr<Regularizer> reg;
  if (cfg.l1 > 0) reg = std::make_unique<L1Regularizer>(cfg.l1);
  if (cfg.l2 > 0) reg = std::make_unique<L2Regularizer>(cfg.l2);
  const QatConfig qat = cfg.qat.empty() ? QatConfig{} : parse_qat_config(cfg.qat);

  // The optimizer and what hangs on the parameter list; made again when QAT starts, since
  // folding batch norm changes the parameters (the optimizer then starts afresh, as when
  // fine-tuning from --init).
  std::vector<Variable> params, weights;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<WeightGrid> grid;
  auto setup_optimizer = [&] {
    params = model->parameters();
    weights = prior_weights(*model);
    opt = make_optimizer(cfg, params);
    if (cfg.update_bits > 0) {
      grid = std::make_unique<WeightGrid>(
          params, WeightGridOptions{.bits = int(cfg.update_bits), .frac_bits = int(cfg.update_frac_bits),
                                    .rounding = parse_rounding(cfg.update_rounding), .seed = uint64_t(cfg.seed)});
      cfg.update_frac_bits = grid->frac_bits();  // fixed from now on, and stored in the checkpoint
    }
  };
  setup_optimizer();
  if (!opt_state.empty()) {
    try {
      opt->load_state(opt_state);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(str(run.resume, ": ", e.what()));
    }
  }
  const LrSchedule schedule = parse_schedule(cfg.lr_schedule);

  const ChannelStats norm = dataset_stats(cfg.dataset);
  const bool augment = cfg.augment < 0 ? cfg.dataset == "cifar10" : cfg.augment != 0;
  DataLoader loader(train, {.batch_size = cfg.batch_size, .shuffle = true, .seed = uint64_t(cfg.seed),
                            .augment = augment, .norm = norm, .shard = rank, .shards = ranks});
  const int64_t per_epoch = loader.num_batches();
  if (peers) {
    // Every rank needs a part of every batch (an empty shard has no batch-norm statistics).
    const int64_t smallest = std::min(cfg.batch_size, train.size() % cfg.batch_size == 0 ? cfg.batch_size
                                                                                           : train.size() % cfg.batch_size);
    if (smallest < ranks)
      throw std::invalid_argument(str("--batch-size: ", ranks, " ranks need at least ", ranks,
                                      " examples in every batch, but a batch of ", cfg.batch_size, " over ",
                                      train.size(), " training examples leaves a last batch of ", smallest));
    // The same starting point everywhere: rank 0's parameters and buffers.
    std::vector<Tensor> state_tensors;
    for (const Variable& p : model->parameters()) state_tensors.push_back(p.value());
    for (const auto& [n, t] : model->named_buffers()) state_tensors.push_back(t);
    broadcast_tensors(state_tensors, *peers);
  }
  GradientSync sync;
  // A checkpoint is written at the end of an epoch, so its step count is a whole number of
  // epochs of this data and batch size.
  if (!run.resume.empty() && state.step != state.epoch * per_epoch)  // epoch <= 10^6, per_epoch <= 2^31
    throw std::runtime_error(str(run.resume, ": /: expected step = epoch x ", per_epoch, " steps per epoch = ",
                                 state.epoch * per_epoch, ", found step ", state.step, " at epoch ", state.epoch));
  ProgressBar progress(run.quiet || !root);
  if (grid) progress.line(str("weights on a ", grid->bits(), "-bit fixed-point grid ", grid->describe()));
  EpochLog log(root ? run.log : std::string(), !run.resume.empty());
  if (peers) {
    int64_t floats = 0;
    for (const Variable& p : params) floats += p.numel();
    progress.line(str("data-parallel over ", ranks, " ranks: every batch of ", cfg.batch_size, " split ", ranks,
                      " ways; ", floats, " gradient floats (", fixed(double(floats) * 4 / 1e6, 2),
                      " MB) summed per step"));
  }
  std::vector<EpochRecord> records;

  const int64_t last = run.stop_after > 0 ? std::min(cfg.epochs, state.epoch + run.stop_after) : cfg.epochs;
  if (state.epoch >= cfg.epochs)
    progress.line(str(run.resume, " has already trained ", state.epoch, " epochs (--epochs ", cfg.epochs,
                      "): nothing to do"));
  int64_t saved_epoch = 0;  // the epoch this run last wrote to run.out
  for (int64_t epoch = state.epoch; epoch < last; ++epoch) {
    if (!cfg.qat.empty() && !is_quantized(*model) && epoch >= cfg.qat_start_epoch) {
      prepare_qat(*model, qat);
      setup_optimizer();
      if (epoch > 0) progress.line(str("epoch ", epoch + 1, ": quantization-aware training starts (", cfg.qat, ")"));
    }
    const auto t0 = std::chrono::steady_clock::now();
    loader.start_epoch(epoch);
    model->train();
    progress.start_epoch(epoch + 1, cfg.epochs, per_epoch);
    double loss_sum = 0, norm_sum = 0;
    int64_t seen = 0, correct = 0, batch_index = 0;
    float lr = 0;
    Batch b;
    while (loader.next(b)) {
      lr = schedule.lr(float(cfg.lr), {state.step, per_epoch, per_epoch * cfg.epochs});
      opt->set_lr(lr);
      opt->zero_grad();
      const std::string stop_note =
          saved_epoch > 0 ? str("The last checkpoint '", run.out, "' (epoch ", saved_epoch, ") is intact.")
          : run.resume.empty() ? std::string("No checkpoint was written.")
                               : str("The checkpoint '", run.resume, "' is untouched.");
      const std::string where = str("epoch ", epoch + 1, ", step ", state.step + 1, " (batch ", batch_index + 1, " of ",
                                    per_epoch, ")");
      // Gradient L1 runs the step's forward and backward twice more from the same state
      // (running statistics, observers, dropout generators: the buffers).
      std::vector<Tensor> buffers_before;
      if (cfg.grad_l1 > 0)
        for (const auto& [n, t] : model->named_buffers()) buffers_before.push_back(t.clone());
      Variable logits, loss, objective;
      // With peers, this shard's share of the global batch's loss: its mean weighted by
      // shard / batch, so the gradients summed over the ranks are the global batch's.
      ReplicaScope scope(peers, {b.offset, b.size(), b.global_size});
      auto forward = [&] {
        logits = (*model)(Variable(b.images));
        loss = cross_entropy(logits, b.labels);
        if (cfg.kure > 0) objective = loss + kure_penalty(weights, float(cfg.kure));
        if (peers) objective = (objective.defined() ? objective : loss) * (float(b.size()) / float(b.global_size));
      };
      try {
        forward();
      } catch (const AnomalyError& e) {
        throw AnomalyError(str("anomaly at ", where, ", forward: ", e.what(), "; stopped. ", stop_note));
      }
      const float lv = loss.item();
      const float ov = cfg.kure > 0 ? objective.item() : lv;
      if (!std::isfinite(lv) || !std::isfinite(ov)) throw std::runtime_error(str("loss became ", lv, " at ", where, "; stopped. ", stop_note));
      try {
        (objective.defined() ? objective : loss).backward();
      } catch (const AnomalyError& e) {
        throw AnomalyError(str("anomaly at ", where, ", backward: ", e.what(), "; stopped. ", stop_note));
      }
      if (cfg.grad_l1 > 0) {
        std::vector<Tensor> buffers_after;
        auto handles = model->named_buffers();
        for (const auto& [n, t] : handles) buffers_after.push_back(t.clone());
        const Variable first_logits = logits;
        add_gradient_l1(params, weights, {.lambda = cfg.grad_l1}, [&] {
          for (size_t i = 0; i < handles.size(); ++i) handles[i].second.copy_from(buffers_before[i]);
          opt->zero_grad();
          forward();
          (objective.defined() ? objective : loss).backward();
        });
        for (size_t i = 0; i < handles.size(); ++i) handles[i].second.copy_from(buffers_after[i]);
        logits = first_logits;
      }
      if (peers) sum_gradients(params, *peers, sync);
      if (reg) reg->add_gradient(weights);
      const float gn = clip_grad_norm(params, cfg.clip_grad_norm > 0 ? float(cfg.clip_grad_norm)
                                                                     : std::numeric_limits<float>::infinity());
      opt->step();
      if (grid) grid->apply(state.step);
      ++state.step;
      ++batch_index;
      // Running statistics of the epoch (on the training batches, before each update).
      const std::vector<int32_t> pred = predictions(logits.value());
      const int32_t* y = b.labels.data_as<int32_t>();
      for (int64_t i = 0; i < b.size(); ++i) correct += pred[size_t(i)] == y[i];
      loss_sum += double(lv) * double(b.size());
      norm_sum += gn;
      seen += b.size();
      progress.update(batch_index, seen, loss_sum / double(seen), double(correct) / double(seen));
    }
    if (peers) {  // the epoch's statistics over the global batches
      double totals[3] = {loss_sum, double(correct), double(seen)};
      peers->sum(totals);
      loss_sum = totals[0], correct = int64_t(totals[1]), seen = int64_t(totals[2]);
    }
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    EpochRecord r;
    r.epoch = epoch + 1;
    r.step = state.step;
    r.lr = lr;
    r.train_loss = loss_sum / double(seen);
    r.train_acc = double(correct) / double(seen);
    r.grad_norm = norm_sum / double(std::max<int64_t>(1, batch_index));
    std::tie(r.test_loss, r.test_acc) = evaluate_over(*model, test, norm, eval_batch, peers);
    if (!val.empty()) std::tie(r.val_loss, r.val_acc) = evaluate_over(*model, val, norm, eval_batch, peers);
    r.data_bits = r.train_loss * double(train.size()) / std::log(2.0);
    r.model_bits = prior_bits(cfg, weights, train.size());
    r.seconds = train_seconds;
    r.images_per_s = double(seen) / train_seconds;

    state.epoch = epoch + 1;
    state.rng_state = rng.state();
    if (root) save_checkpoint(run.out, cfg, input_shape, *model, opt.get(), state);
    saved_epoch = state.epoch;
    log.write(r);
    records.push_back(r);
    progress.line(str("epoch ", r.epoch, "/", cfg.epochs, "  loss ", fixed4(r.train_loss), "  train acc ",
                      pct(r.train_acc), (val.empty() ? std::string() : str("  val acc ", pct(r.val_acc))),
                      "  test loss ", fixed4(r.test_loss), "  test acc ", pct(r.test_acc),
                      (is_quantized(*model) ? str(" (", grid_name(qat), ")") : std::string()), "  bits: data ",
                      int64_t(r.data_bits), " + model ", int64_t(r.model_bits), "  ", int64_t(r.images_per_s),
                      " img/s  ", fixed1(train_seconds), "s",
                      peers ? str("  (summing gradients ", fixed1(1e3 * sync.seconds / double(batch_index)), " ms/step)")
                            : std::string()));
    sync.seconds = 0;
  }
  return records;
}

}  // namespace crayon
