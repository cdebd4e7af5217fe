#pragma once
// Learning-rate schedules as pure functions of where training is: lr(base_lr, progress)
// depends on nothing else, so a resumed run gets the same rates from its step count.
//
//   constant              lr = base
//   step:EVERY:GAMMA      lr = base * GAMMA^floor(epoch / EVERY)          (torch StepLR)
//   cosine[:MIN_LR]       lr = MIN + (base - MIN) (1 + cos(pi t / T)) / 2  (torch
//                         CosineAnnealingLR, per step: t = step, T = total_steps,
//                         t clamped to T; MIN defaults to 0)
//   warmup:W+<schedule>   lr = min(1, (step + 1) / W) * <schedule>
//   warmup:W              warm-up, then constant
//
// Warm-up multiplies the schedule after it on the same clock, as torch's ChainedScheduler
// does with LinearLR: the first update uses base/W and the W-th reaches the full schedule.
// Warm-up and cosine count optimizer steps; step decay counts epochs.
#include <cstdint>
#include <string>

namespace crayon {

// Where training is. step counts optimizer updates done so far (0 for the first update);
// epoch = floor(step / steps_per_epoch).
struct Progress {
  int64_t step = 0;
  int64_t steps_per_epoch = 1;
  int64_t total_steps = 1;  // the length of the run, for cosine
};

class LrSchedule {
 public:
  enum class Kind { constant, step, cosine };

  static LrSchedule constant();
  static LrSchedule step(int64_t every_epochs, double gamma);  // every >= 1, gamma > 0
  static LrSchedule cosine(double min_lr = 0.0);              // min_lr >= 0
  LrSchedule with_warmup(int64_t warmup_steps) const;         // >= 0 (0: none)

  // Throws std::invalid_argument on a negative step, steps_per_epoch or total_steps < 1.
  float lr(float base_lr, const Progress& progress) const;

  Kind kind() const { return kind_; }
  int64_t warmup_steps() const { return warmup_; }
  std::string spec() const;  // the string parse_schedule() reads back

 private:
  LrSchedule() = default;
  Kind kind_ = Kind::constant;
  int64_t every_ = 1;    // step: epochs between decays
  double gamma_ = 1.0;   // step: factor per decay
  double min_lr_ = 0.0;  // cosine: final lr
  int64_t warmup_ = 0;   // linear warm-up steps
};

// Parses the strings above ("constant", "step:30:0.1", "cosine", "cosine:1e-5",
// "warmup:500+cosine", "warmup:500"). Throws std::invalid_argument naming the string and
// what was expected.
LrSchedule parse_schedule(const std::string& spec);

}  // namespace crayon
