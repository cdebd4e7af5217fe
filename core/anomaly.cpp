#include "core/anomaly.h"

#include <atomic>
#include <cmath>

#include "core/check.h"

namespace crayon {

namespace {
std::atomic<bool> g_on{false};
const std::string kNoLabel;
thread_local const std::string* t_label = &kNoLabel;
}  // namespace

void set_detect_anomaly(bool on) { g_on = on; }
bool detect_anomaly() { return g_on.load(std::memory_order_relaxed); }

AnomalyLabel::AnomalyLabel(const std::string& label) : previous_(t_label), active_(detect_anomaly()) {
  if (active_) t_label = &label;
}
AnomalyLabel::~AnomalyLabel() {
  if (active_) t_label = previous_;
}

const std::string& anomaly_label() { return *t_label; }

void check_finite(const Tensor& t, const char* op, const std::string& layer, const char* what) {
  if (!t.defined() || t.dtype() != DType::f32) return;
  const float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(p[i]))
      throw AnomalyError(str(what, " of op '", op, "'", layer.empty() ? "" : " in " + layer, ": ",
                             std::isnan(p[i]) ? "NaN" : p[i] > 0 ? "+Inf" : "-Inf", " at element ", i, " of shape ",
                             shape_str(t.shape())));
}

}  // namespace crayon
