#pragma once
// Int8Model: a network as the integer engine runs it (DESIGN.md, "Export"), built from a
// QAT / PTQ model by export_int8() (quant/int8_export.h) or read from its HDF5 file.
//
// The pipeline, for (B, C, H, W) uint8 images:
//   input      q = input_lut[c][pixel]: the image normalization and the input FakeQuant
//              folded into one table per channel, so the engine starts from integers
//   conv2d / linear   acc = sum (q_x - z_in) * q_w + bias (int32, exact), then
//              q_y = clamp(z_out + R(acc, M[c]), act_min, act_max), M[c] = s_in s_w[c] / s_out
//              (quant/int8/requant.h); act_min / act_max carry the fused ReLU / ReLU6 and the
//              activation grid's own range; the last such layer may have no output grid:
//              it is the logits layer, whose int32 acc is dequantized
//   maxpool2d  exact on int8;  avgpool2d  requantized sum, M = s_in / (s_out KH KW)
//   flatten    (B, C, H, W) -> (B, C*H*W), NCHW order
//   output     logits[b][c] = float(double(acc[b][c]) * (double(s_in) * double(s_w[c]))),
//              or s_out * (q - z_out) when the model ends on a grid
// No float arithmetic happens inside a layer; floats appear only in the input table's
// construction and in the final dequantization.
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops_conv.h"
#include "core/tensor.h"
#include "quant/int8/gemm.h"
#include "quant/int8/requant.h"

namespace crayon {

struct Int8Layer {
  enum class Op { conv2d, linear, maxpool2d, avgpool2d, flatten };
  Op op = Op::linear;

  // conv2d, linear
  Tensor weight;                     // int8 (O, C, KH, KW) or (O, I), symmetric, in [-127, 127]
  std::vector<float> weight_scale;   // (O,)
  Tensor bias;                       // int32 (O,) on the scale s_in * s_w[c], zero point 0
  Conv2dParams conv;                 // conv2d: stride, padding
  std::string activation = "none";   // fused into [act_min, act_max]: none | relu | relu6
  bool logits = false;               // no output grid: int32 acc, dequantized
  // maxpool2d, avgpool2d
  Pool2dParams pool;

  // The grids around the layer (the output equals the input for maxpool2d and flatten).
  float in_scale = 1;
  int32_t in_zero_point = 0;
  float out_scale = 1;
  int32_t out_zero_point = 0;
  int32_t act_min = -128, act_max = 127;

  // Filled by Int8Model::prepare() from the above; what the layer runs.
  PackedWeights packed;
  OutputStage stage;                 // conv2d, linear (not logits)
  FixedPointMultiplier pool_multiplier;  // avgpool2d
};

const char* int8_op_name(Int8Layer::Op op);  // "conv2d", "linear", ...

struct Int8Model {
  Shape input_shape;                 // (C, H, W)
  float input_scale = 1;             // the input grid, from the input FakeQuant
  int32_t input_zero_point = 0;
  std::vector<float> input_mean, input_std;  // (C,) the normalization the model was trained with
  std::vector<int8_t> input_lut;     // (C * 256): q for channel c and pixel value v at [c * 256 + v]
  std::vector<Int8Layer> layers;
  std::string source_spec;           // the float model the grid was trained on
  std::string dataset;               // what it was trained on (for crayon eval's default)
  std::string quantization;          // its QatConfig text

  // Checks every layer's shapes and grids against the next and derives what the kernels
  // need (packed weights, fixed-point multipliers). Throws std::invalid_argument
  // naming the layer. export_int8() and load_int8() call it.
  // Also checks the model against limits() (core/limits.h): layers, weights, and the bytes
  // of one image's largest layer output.
  void prepare();

  int64_t num_classes() const;
  int64_t largest_activation = 0;  // bytes of one image's largest layer output (int32 counted), from prepare()
  int64_t largest_batch() const;   // images per forward() within limits().activation_bytes (>= 1)

  // images: (B, C, H, W) uint8, as Dataset stores them -> (B, C, H, W) int8 via input_lut.
  Tensor quantize_images(const uint8_t* images, int64_t batch) const;

  // q: (B, C, H, W) int8 on the input grid -> (B, classes) float logits. reference = true
  // runs the plain-loop kernels (quant/int8/ops.h), the oracle of the fast ones; trace, if
  // given, receives every layer's output in order. The fast path gives each thread a slice of
  // the batch through the whole network and fuses a conv with the max pool after it; the
  // numbers are the same for any thread count (every image is computed alone).
  Tensor forward(const Tensor& q, bool reference = false, std::vector<Tensor>* trace = nullptr) const;
  // The last layer's raw output: int32 accumulators (logits layer) or int8 codes.
  Tensor forward_raw(const Tensor& q, bool reference = false, std::vector<Tensor>* trace = nullptr) const;
};

}  // namespace crayon
