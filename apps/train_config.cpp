#include "apps/train_config.h"

#include <cmath>
#include <initializer_list>
#include <stdexcept>

#include "core/check.h"
#include "optim/schedule.h"
#include "quant/qat_config.h"

namespace crayon {

void visit_config(TrainConfig& c, const ConfigVisitor& v) {
  v.text("dataset", c.dataset);
  v.text("data_dir", c.data_dir);
  v.text("model", c.model);
  v.integer("epochs", c.epochs);
  v.integer("batch_size", c.batch_size);
  v.real("lr", c.lr);
  v.text("optimizer", c.optimizer);
  v.real("momentum", c.momentum);
  v.integer("nesterov", c.nesterov);
  v.real("weight_decay", c.weight_decay);
  v.real("l1", c.l1);
  v.real("l2", c.l2);
  v.real("kure", c.kure);
  v.real("grad_l1", c.grad_l1);
  v.text("lr_schedule", c.lr_schedule);
  v.real("clip_grad_norm", c.clip_grad_norm);
  v.integer("seed", c.seed);
  v.integer("val", c.val);
  v.integer("augment", c.augment);
  v.text("init", c.init);
  v.integer("train_limit", c.train_limit);
  v.integer("test_limit", c.test_limit);
  v.text("qat", c.qat);
  v.integer("qat_start_epoch", c.qat_start_epoch);
  v.integer("update_bits", c.update_bits);
  v.integer("update_frac_bits", c.update_frac_bits);
  v.text("update_rounding", c.update_rounding);
}

}  // namespace crayon

namespace crayon {

std::string flag_name(const std::string& setting) {
  std::string f = "--" + setting;
  for (char& ch : f)
    if (ch == '_') ch = '-';
  return f;
}

std::optional<ConfigProblem> check_config(const TrainConfig& c) {
  std::optional<ConfigProblem> p;
  auto fail = [&](const char* setting, std::string message) {
    if (!p) p = ConfigProblem{setting, std::move(message)};
  };
  auto one_of = [&](const char* setting, const std::string& v, std::initializer_list<const char*> allowed) {
    std::string list;
    for (const char* a : allowed) {
      if (v == a) return;
      list += list.empty() ? a : str(", ", a);
    }
    fail(setting, str("expected one of ", list, ", got '", v, "'"));
  };
  auto at_least = [&](const char* setting, int64_t v, int64_t lo) {
    if (v < lo) fail(setting, str("expected an integer >= ", lo, ", got ", v));
  };
  auto non_negative = [&](const char* setting, double v) {
    if (!(v >= 0) || !std::isfinite(v)) fail(setting, str("expected a finite number >= 0, got ", v));
  };
  one_of("dataset", c.dataset, {"mnist", "fashion-mnist", "cifar10"});
  if (c.model.empty()) fail("model", "expected a preset or a spec, got ''");
  auto in_range = [&](const char* setting, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi) fail(setting, str("expected an integer in [", lo, ", ", hi, "], got ", v));
  };
  in_range("epochs", c.epochs, 1, kMaxEpochs);
  in_range("batch_size", c.batch_size, 1, int64_t(1) << 31);
  non_negative("lr", c.lr);
  one_of("optimizer", c.optimizer, {"sgd", "adam", "adamw"});
  non_negative("momentum", c.momentum);
  if (c.nesterov != 0 && c.nesterov != 1) fail("nesterov", str("expected 0 or 1, got ", c.nesterov));
  if (c.nesterov == 1 && !(c.momentum > 0)) fail("nesterov", "needs momentum > 0");
  non_negative("weight_decay", c.weight_decay);
  non_negative("l1", c.l1);
  non_negative("l2", c.l2);
  non_negative("kure", c.kure);
  non_negative("grad_l1", c.grad_l1);
  if (c.grad_l1 > 0 && c.kure > 0)
    fail("grad_l1", "expected one of gradient L1 and KURE, got both (gradient L1 differentiates the loss alone)");
  if (c.grad_l1 > 0 && !c.qat.empty())
    fail("grad_l1", "expected float training: under QAT the gradients are straight-through estimates, whose finite "
                    "differences are no Hessian");
  if (c.l1 > 0 && c.l2 > 0) fail("l1", "expected one prior, got both l1 and l2");
  try {
    parse_schedule(c.lr_schedule);
  } catch (const std::invalid_argument& e) {
    fail("lr_schedule", e.what());
  }
  non_negative("clip_grad_norm", c.clip_grad_norm);
  at_least("val", c.val, 0);
  if (c.augment < -1 || c.augment > 1) fail("augment", str("expected -1, 0 or 1, got ", c.augment));
  if (c.init.empty()) fail("init", "expected an init scheme or a checkpoint file, got ''");
  at_least("train_limit", c.train_limit, 0);
  at_least("test_limit", c.test_limit, 0);
  if (!c.qat.empty()) {
    try {
      if (parse_qat_config(c.qat).warmup_steps < 1)
        fail("qat", "expected warmup >= 1 step for training (the activation grids are observed during the first "
                    "steps), got 0");
    } catch (const std::invalid_argument& e) {
      fail("qat", e.what());
    }
  }
  at_least("qat_start_epoch", c.qat_start_epoch, 0);
  if (c.update_bits != 0 && (c.update_bits < 2 || c.update_bits > 32))
    fail("update_bits", str("expected 0 (off) or 2..32, got ", c.update_bits));
  if (c.update_frac_bits < -1 || (c.update_bits > 0 && c.update_frac_bits >= c.update_bits))
    fail("update_frac_bits", str("expected -1 (fitted) or 0..update_bits-1, got ", c.update_frac_bits));
  one_of("update_rounding", c.update_rounding, {"nearest", "stochastic"});
  return p;
}

}  // namespace crayon
