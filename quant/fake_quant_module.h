#pragma once
// FakeQuant: a module that puts the tensor flowing through it on a per-tensor integer grid
// chosen by an observer (DESIGN.md, idea 6). prepare_qat() (quant/qat.h) inserts it between
// layers; no layer's own code mentions it.
//
// Life cycle (Jacob et al. 2018, sec. 3; PyTorch's FakeQuantize with observer and
// fake-quant enabled, then the observer disabled):
//   warm-up    training mode, step < warmup_steps: observe x, then y = fake_quant(x) with
//              the observer's current qparams; step += 1; at step == warmup_steps the
//              qparams freeze. warmup_steps = 0: training never observes (calibrate first).
//   frozen     training or eval: y = fake_quant(x) with the frozen qparams
//   eval       y = fake_quant(x) with the current qparams (frozen, or the warm-up's latest);
//              it never observes. Before ANY observation there are no qparams and forward()
//              throws std::logic_error: an unobserved model evaluated "quantized" would
//              silently report float numbers. Calibrate (quant/qat.h) or train first.
//   calibrating  set by calibrate(): in any mode, observe x and pass it through unchanged
//              (PTQ observes the float activations); freeze() ends it.
// Rounding: spec.rounding in training mode; in eval mode always round-to-nearest-even, the
// rounding of the integer engine, so evaluation sees exactly what export will run.
// Backward: the straight-through estimator `ste` (quant/fake_quant.h).
//
// State as buffers, so a checkpoint (which saves named_buffers()) holds all of it:
//   scale (1,) f32, zero_point (1,) i32   the qparams in use (valid once observed = 1)
//   step (2,) i32      training forward passes observed so far, as a uint64 (low, high words)
//   observed (1,) i32, frozen (1,) i32    flags
//   rng (8,) i32       stochastic rounding's generator state (4 uint64 words)
//   observer_<entry>   each entry of the observer's state() (quant/observer.h): fixed-size
//                      buffers, an entry whose length varies is padded to its capacity
//                      (min/max: 1; a reservoir's samples: 65536 floats), with the true
//                      lengths in observer_lengths (i32, one per entry)
// Between observations the live observer object holds the statistics; named_buffers()
// writes them into the buffers first (sync_buffers), and the next observation after anyone
// has held those handles reloads the observer from them. So restoring buffers restores the
// FakeQuant exactly, mid-warm-up included, and a warm-up step copies no reservoir.
//
// Rebuilding a QAT checkpoint: spec() gives "fakequant(8)", which nn/spec.cpp does not parse
// (nn cannot see quant). So the checkpoint (apps/checkpoint.h) stores float_spec(model)
// (quant/qat.h: the model's spec without the fakequant layers; after BN folding, the folded
// float model) and describe(QatConfig); loading calls build_model(float spec), then
// prepare_qat(model, parse_qat_config(text)), which inserts the FakeQuant modules at the
// same positions with the same names, and only then reads parameters and buffers.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "quant/fake_quant.h"
#include "quant/observer.h"

namespace crayon {

class FakeQuant : public Module {
 public:
  // spec must be per-tensor (axis -1); observer is a make_observer() name. Throws
  // std::invalid_argument for either, or warmup_steps < 0.
  FakeQuant(const QuantSpec& spec, const std::string& observer, int64_t warmup_steps, Ste ste = Ste::plain,
            uint64_t seed = 0);
  // x: any shape -> same shape
  Variable forward(const Variable& x) override;
  // "fakequant(8)" for the default affine min-max grid; other choices are listed,
  // e.g. "fakequant(4,symmetric,observer=kl)".
  std::string spec() const override;

  void observe(const Tensor& x);  // one observation; updates the qparams (unless frozen)
  // Stop observing: the qparams are chosen now (from everything observed) and stay.
  // Throws std::logic_error if nothing was observed.
  void freeze();
  void reset();                   // back to a fresh observer, step 0, not frozen
  void set_calibrating(bool on) { calibrating_ = on; }

  bool observed() const;  // has qparams: observed in a warm-up, or calibrated and frozen
  bool frozen() const;
  uint64_t steps() const;
  QParams qparams() const;  // throws std::logic_error before the first observation
  const QuantSpec& quant_spec() const { return qspec_; }
  const std::string& observer_name() const { return observer_name_; }
  int64_t warmup_steps() const { return warmup_; }

 private:
  void load_observer() const;   // buffers -> observer_
  void store_observer() const;  // observer_ -> buffers
  void sync_buffers() const override;
  void set_qparams();           // observer_'s qparams -> scale, zero_point; observed = 1
  int32_t flag(size_t index) const;
  void set_flag(size_t index, int32_t v);

  QuantSpec qspec_;
  std::string observer_name_;
  int64_t warmup_;
  Ste ste_;
  std::unique_ptr<Observer> observer_;  // a calculator; its state lives in the buffers
  std::vector<std::string> entries_;    // observer state entry names, buffer k_first_entry + i
  bool calibrating_ = false;
  mutable bool observer_dirty_ = false;    // observer_ has statistics the buffers lack
  mutable bool buffers_exposed_ = false;   // handles to the buffers went out: they may be newer
};

}  // namespace crayon
