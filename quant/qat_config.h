#pragma once
// QatConfig: how prepare_qat() and calibrate() (quant/qat.h) put a model on the integer
// grid, and its text form for command lines and checkpoints.
//
// Defaults are the TFLite int8 scheme (Krishnamoorthi 2018, "Quantizing deep convolutional
// networks for efficient inference: A whitepaper", sec. 2 and 3; Jacob et al. 2018):
//   weights      8 bits, symmetric, narrow range [-127, 127], one scale per output channel
//                (axis 0 of both Linear (out, in) and Conv2d (out, in, kh, kw) weights),
//                scale = max|w_c| / 127 from the current weights at every forward pass
//   activations  8 bits, affine [-128, 127] with a zero point, one scale per tensor, chosen
//                by an observer during a warm-up of `warmup_steps` training forward passes,
//                then frozen
//
// Text form: comma-separated key=value items, e.g.
//   "weight_bits=4,act_bits=8,per_channel=1,rounding=stochastic,ste=clipped,observer=kl,warmup=200"
//   weight_bits=N  act_bits=N          2..8
//   per_channel=0|1                    weights per output channel (1) or per tensor (0)
//   weight_symmetric=0|1  weight_narrow=0|1  act_symmetric=0|1
//   rounding=nearest|nearest-even|nearest-away|stochastic     both weights and activations
//   act_rounding=NAME                  activations only (after rounding=)
//   ste=plain|clipped                  straight-through estimator (quant/fake_quant.h)
//   observer=minmax|ema|percentile|percentile:P|mse|kl        activations only
//   warmup=N                           N >= 0 training forward passes of observation
//   fold_bn=0|1                        fold batch norm into the preceding conv/linear
//   seed=N                             stochastic rounding's generator
//   layer_weight_bits=B1:B2:...        mixed precision: the weight bits of each conv / linear
//                                      in forward order (overrides weight_bits; 2..8 each)
// describe() writes every key (layer_weight_bits only when set), and
// parse_qat_config(describe(c)) gives back c.
#include <cstdint>
#include <string>
#include <vector>

#include "quant/fake_quant.h"
#include "quant/quant_spec.h"

namespace crayon {

struct QatConfig {
  QuantSpec weight{.bits = 8, .symmetric = true, .narrow_range = true, .axis = 0};
  QuantSpec act{.bits = 8, .symmetric = false, .narrow_range = false, .axis = -1};
  std::string observer = "minmax";  // activations; weights always use min-max of the current weights
  Ste ste = Ste::plain;
  int64_t warmup_steps = 200;  // observers update for this many training forward passes, then freeze
  bool fold_bn = true;
  uint64_t seed = 0;  // for stochastic rounding
  // Mixed precision: weight bits per conv / linear layer in forward order; empty: every
  // layer at weight.bits. prepare_qat() requires one entry per weight layer.
  std::vector<int> layer_weight_bits;
};

// Throws std::invalid_argument naming the field: a bad QuantSpec, per-channel activations
// (activation fake-quant is per tensor), weights per channel on an axis other than 0, an
// unknown observer, warmup_steps < 0.
void validate(const QatConfig& config);

// "W8A8", or with bits per layer "W[5:6:3:2:6]A8".
std::string grid_name(const QatConfig& config);

// Every key of the text form, e.g. "weight_bits=8,weight_symmetric=1,...".
std::string describe(const QatConfig& config);

// One command-line flag: key as in the text form (a leading "--" and '-' for '_' are
// accepted, so "--weight-bits" works). Throws std::invalid_argument naming the key and
// the expected values.
void set_qat_option(QatConfig& config, const std::string& key, const std::string& value);

// Starts from the defaults, applies each item, validates. An empty text gives the defaults.
QatConfig parse_qat_config(const std::string& text);

}  // namespace crayon
