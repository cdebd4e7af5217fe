#pragma once
// Anomaly detection (`crayon train --detect-anomaly`, PyTorch's torch.autograd.detect_anomaly):
// while on, every op's output and every gradient an op's backward passes to its inputs is
// checked for NaN and Inf, and the first non-finite value throws AnomalyError naming the op,
// the layer that ran it (the innermost AnomalyLabel alive when the op ran forward) and where
// in the tensor. Off by default: the checks read every tensor once more.
#include <stdexcept>
#include <string>

#include "core/tensor.h"

namespace crayon {

struct AnomalyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void set_detect_anomaly(bool on);  // process-wide
bool detect_anomaly();

// Names the layer whose ops run in its scope (Sequential::forward sets one per child).
// Costs nothing when anomaly detection is off.
class AnomalyLabel {
 public:
  explicit AnomalyLabel(const std::string& label);
  ~AnomalyLabel();
  AnomalyLabel(const AnomalyLabel&) = delete;
  AnomalyLabel& operator=(const AnomalyLabel&) = delete;

 private:
  const std::string* previous_;
  bool active_;
};
const std::string& anomaly_label();  // "" outside any label

// Throws AnomalyError if t (float32) holds a NaN or Inf: "<what> of op 'OP' in LAYER: NaN at
// element I of shape S". Does nothing for other dtypes.
void check_finite(const Tensor& t, const char* op, const std::string& layer, const char* what);

}  // namespace crayon
