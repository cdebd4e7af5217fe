#include "optim/schedule.h"

#include <charconv>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "core/parse.h"

namespace crayon {

LrSchedule LrSchedule::constant() { return LrSchedule(); }

LrSchedule LrSchedule::step(int64_t every_epochs, double gamma) {
  if (every_epochs < 1)
    throw std::invalid_argument(str("step schedule: every must be >= 1 epoch, got ", every_epochs));
  if (!std::isfinite(gamma) || gamma <= 0.0)
    throw std::invalid_argument(str("step schedule: gamma must be finite and > 0, got ", gamma));
  LrSchedule s;
  s.kind_ = Kind::step;
  s.every_ = every_epochs;
  s.gamma_ = gamma;
  return s;
}

LrSchedule LrSchedule::cosine(double min_lr) {
  if (!std::isfinite(min_lr) || min_lr < 0.0)
    throw std::invalid_argument(str("cosine schedule: min lr must be finite and >= 0, got ", min_lr));
  LrSchedule s;
  s.kind_ = Kind::cosine;
  s.min_lr_ = min_lr;
  return s;
}

LrSchedule LrSchedule::with_warmup(int64_t warmup_steps) const {
  if (warmup_steps < 0)
    throw std::invalid_argument(str("warm-up: steps must be >= 0, got ", warmup_steps));
  LrSchedule s = *this;
  s.warmup_ = warmup_steps;
  return s;
}

float LrSchedule::lr(float base_lr, const Progress& p) const {
  if (p.step < 0 || p.steps_per_epoch < 1 || p.total_steps < 1)
    throw std::invalid_argument(str("lr schedule: expected step >= 0, steps_per_epoch >= 1 and "
                                    "total_steps >= 1, got ", p.step, ", ", p.steps_per_epoch,
                                    " and ", p.total_steps));
  double lr = base_lr;
  switch (kind_) {
    case Kind::constant:
      break;
    case Kind::step:
      lr *= std::pow(gamma_, double((p.step / p.steps_per_epoch) / every_));
      break;
    case Kind::cosine: {
      const double t = double(std::min(p.step, p.total_steps)) / double(p.total_steps);
      lr = min_lr_ + (lr - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
      break;
    }
  }
  if (p.step < warmup_) lr *= double(p.step + 1) / double(warmup_);
  return float(lr);
}

namespace {

std::string num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest exact form
  return std::string(buf, end);
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? s.npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

}  // namespace

std::string LrSchedule::spec() const {
  std::string main;
  switch (kind_) {
    case Kind::constant: main = "constant"; break;
    case Kind::step: main = str("step:", every_, ":", num(gamma_)); break;
    case Kind::cosine: main = min_lr_ == 0.0 ? "cosine" : "cosine:" + num(min_lr_); break;
  }
  if (warmup_ == 0) return main;
  return str("warmup:", warmup_, kind_ == Kind::constant ? "" : "+" + main);
}

LrSchedule parse_schedule(const std::string& spec) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument(one_line(str(
        "invalid learning-rate schedule \"", spec, "\": ", why,
        " (expected constant, step:EVERY_EPOCHS:GAMMA, cosine, cosine:MIN_LR, optionally "
        "preceded by warmup:STEPS+, or warmup:STEPS alone)")));
  };
  // One schedule without warm-up, e.g. "step:30:0.1".
  auto parse_main = [&](std::string_view s) {
    const std::vector<std::string_view> f = split(s, ':');
    if (f[0] == "constant" && f.size() == 1) return LrSchedule::constant();
    if (f[0] == "step") {
      int64_t every = 0;
      double gamma = 0.0;
      if (f.size() != 3 || !parse_number(f[1], every) || !parse_number(f[2], gamma))
        throw bad("step takes two numbers, step:EVERY_EPOCHS:GAMMA");
      if (every < 1 || !std::isfinite(gamma) || gamma <= 0.0)
        throw bad("step needs EVERY_EPOCHS >= 1 and GAMMA > 0");
      return LrSchedule::step(every, gamma);
    }
    if (f[0] == "cosine") {
      double min_lr = 0.0;
      if (f.size() > 2 || (f.size() == 2 && !parse_number(f[1], min_lr)))
        throw bad("cosine takes at most one number, cosine:MIN_LR");
      if (!std::isfinite(min_lr) || min_lr < 0.0) throw bad("cosine needs MIN_LR >= 0");
      return LrSchedule::cosine(min_lr);
    }
    throw bad(str("unknown schedule \"", s, "\""));
  };
  auto parse_warmup = [&](std::string_view s, int64_t& steps) {
    const std::vector<std::string_view> f = split(s, ':');
    if (f[0] != "warmup") return false;
    if (f.size() != 2 || !parse_number(f[1], steps) || steps < 1)
      throw bad("warmup takes a number of steps >= 1, warmup:STEPS");
    return true;
  };

  const std::vector<std::string_view> parts = split(spec, '+');
  int64_t warmup = 0;
  if (parts.size() == 1)
    return parse_warmup(parts[0], warmup) ? LrSchedule::constant().with_warmup(warmup)
                                          : parse_main(parts[0]);
  if (parts.size() == 2 && parse_warmup(parts[0], warmup))
    return parse_main(parts[1]).with_warmup(warmup);
  throw bad("only warmup:STEPS may be combined with a schedule, as warmup:STEPS+SCHEDULE");
}

}  // namespace crayon
