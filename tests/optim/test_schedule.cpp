// Learning-rate schedules: values at given steps, and the CLI parser.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <string>

#include "optim/schedule.h"

using namespace crayon;

namespace {
float at(const LrSchedule& s, int64_t step, int64_t steps_per_epoch = 1, int64_t total = 100) {
  return s.lr(0.1f, {.step = step, .steps_per_epoch = steps_per_epoch, .total_steps = total});
}
}  // namespace

TEST_CASE("schedule: constant keeps the base lr") {
  const LrSchedule s = parse_schedule("constant");
  CHECK(at(s, 0) == 0.1f);
  CHECK(at(s, 12345) == 0.1f);
}

TEST_CASE("schedule: step multiplies by gamma every N epochs") {
  const LrSchedule s = parse_schedule("step:30:0.1");  // 10 steps per epoch
  CHECK(at(s, 0, 10) == doctest::Approx(0.1));
  CHECK(at(s, 299, 10) == doctest::Approx(0.1));   // epoch 29
  CHECK(at(s, 300, 10) == doctest::Approx(0.01));  // epoch 30
  CHECK(at(s, 599, 10) == doctest::Approx(0.01));
  CHECK(at(s, 600, 10) == doctest::Approx(0.001));
}

TEST_CASE("schedule: cosine falls from the base lr to the minimum over the run and stays") {
  const LrSchedule s = parse_schedule("cosine");
  CHECK(at(s, 0) == doctest::Approx(0.1));
  CHECK(at(s, 25) == doctest::Approx(0.05 * (1 + std::cos(std::numbers::pi / 4))));
  CHECK(at(s, 50) == doctest::Approx(0.05));
  CHECK(at(s, 100) == doctest::Approx(0.0));
  CHECK(at(s, 150) == doctest::Approx(0.0));
  const LrSchedule m = parse_schedule("cosine:0.001");
  CHECK(at(m, 50) == doctest::Approx(0.001 + 0.5 * (0.1 - 0.001)));
  CHECK(at(m, 100) == doctest::Approx(0.001));
}

TEST_CASE("schedule: warm-up ramps linearly into the schedule after it") {
  const LrSchedule s = parse_schedule("warmup:10+cosine");
  const LrSchedule c = parse_schedule("cosine");
  CHECK(at(s, 0) == doctest::Approx(0.1 * at(c, 0)));
  CHECK(at(s, 4) == doctest::Approx(0.5 * at(c, 4)));
  CHECK(at(s, 9) == doctest::Approx(at(c, 9)));
  CHECK(at(s, 10) == doctest::Approx(at(c, 10)));
  CHECK(at(s, 60) == doctest::Approx(at(c, 60)));

  const LrSchedule w = parse_schedule("warmup:5");  // then constant
  CHECK(at(w, 0) == doctest::Approx(0.02));
  CHECK(at(w, 4) == doctest::Approx(0.1));
  CHECK(at(w, 1000) == doctest::Approx(0.1));

  const LrSchedule ws = LrSchedule::step(1, 0.5).with_warmup(4);  // 2 steps per epoch
  CHECK(at(ws, 1, 2) == doctest::Approx(0.05));         // 2/4 of 0.1
  CHECK(at(ws, 3, 2) == doctest::Approx(0.05));         // full, epoch 1: 0.1 * 0.5
  CHECK(at(ws, 4, 2) == doctest::Approx(0.025));
}

TEST_CASE("schedule: the spec string round-trips through the parser") {
  for (const char* spec : {"constant", "step:30:0.1", "cosine", "cosine:1e-05", "warmup:500",
                           "warmup:500+cosine", "warmup:3+step:2:0.5"}) {
    INFO(spec);
    CHECK(parse_schedule(spec).spec() == spec);
  }
  CHECK(parse_schedule("warmup:7+constant").spec() == "warmup:7");
}

TEST_CASE("schedule: bad strings are refused with the string named") {
  for (const char* spec : {"", "linear", "constant:1", "step", "step:30", "step:0:0.1",
                           "step:30:abc", "step:30:0.1:5", "step:30:-1", "step:1.5:0.1",
                           "cosine:x", "cosine:-1", "cosine:1:2", "warmup", "warmup:0+cosine",
                           "warmup:abc+cosine", "cosine+warmup:5", "warmup:5+warmup:5",
                           "warmup:5+", "warmup:5+cosine+step:1:0.5", "Cosine", " cosine"}) {
    INFO("spec: \"", spec, "\"");
    CHECK_THROWS_WITH_AS(parse_schedule(spec),
                         doctest::Contains((std::string("schedule \"") + spec + "\"").c_str()),
                         std::invalid_argument);
  }
  CHECK_THROWS_WITH_AS(parse_schedule("step:30"), doctest::Contains("step:EVERY_EPOCHS:GAMMA"),
                       std::invalid_argument);
}

TEST_CASE("schedule: an impossible position in training is refused") {
  const LrSchedule s = LrSchedule::constant();
  CHECK_THROWS_AS(s.lr(0.1f, {.step = -1}), std::invalid_argument);
  CHECK_THROWS_AS(s.lr(0.1f, {.step = 0, .steps_per_epoch = 0}), std::invalid_argument);
  CHECK_THROWS_AS(s.lr(0.1f, {.step = 0, .steps_per_epoch = 1, .total_steps = 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(LrSchedule::step(0, 0.1), std::invalid_argument);
  CHECK_THROWS_AS(LrSchedule::cosine(-1.0), std::invalid_argument);
}
