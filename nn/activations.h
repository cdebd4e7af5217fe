#pragma once
// Stateless layers: ReLU, ReLU6 (DESIGN.md idea 3: a bounded range quantizes on a finer
// grid), Flatten, and Dropout.
#include "core/ops_elementwise.h"
#include "core/ops_shape.h"
#include "nn/module.h"

namespace crayon {

class ReLU : public Module {
 public:
  Variable forward(const Variable& x) override { return relu(x); }
  std::string spec() const override { return "relu"; }
};

class ReLU6 : public Module {
 public:
  Variable forward(const Variable& x) override { return relu6(x); }
  std::string spec() const override { return "relu6"; }
};

class Flatten : public Module {
 public:
  Variable forward(const Variable& x) override { return flatten(x, 1); }
  std::string spec() const override { return "flatten"; }
};

// Inverted dropout. Its generator's state is a buffer ("rng_state", 8 int32 words), so a
// checkpoint saves it and a resumed run drops exactly the same units.
class Dropout : public Module {
 public:
  Dropout(float p, uint64_t seed);
  Variable forward(const Variable& x) override;
  std::string spec() const override;
  float p() const { return p_; }

 private:
  float p_;
};

}  // namespace crayon
