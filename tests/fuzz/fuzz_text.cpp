// The small text parsers a flag or a checkpoint feeds: QatConfig (quant/qat_config.h), the
// learning-rate schedule (optim/schedule.h) and the observer name (quant/observer.h). Whatever
// is accepted prints back as text that parses to the same thing.
#include "optim/schedule.h"
#include "quant/observer.h"
#include "quant/qat_config.h"
#include "tests/fuzz/fuzz_support.h"

using namespace crayon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::refused_or_ok([&] {
    const QatConfig c = parse_qat_config(text);
    if (describe(parse_qat_config(describe(c))) != describe(c)) fuzz::fail("qat config: describe does not round-trip");
  });
  fuzz::refused_or_ok([&] {
    const LrSchedule s = parse_schedule(text);
    if (parse_schedule(s.spec()).spec() != s.spec()) fuzz::fail("schedule: spec() does not round-trip");
  });
  fuzz::refused_or_ok([&] {
    const QuantSpec spec{.bits = 8, .symmetric = false, .narrow_range = false, .axis = -1};
    if (!make_observer(text, spec)) fuzz::fail("observer: accepted but null");
  });
  return 0;
}
