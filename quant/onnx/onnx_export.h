#pragma once
// ONNX export, written with the ONNX project's own library (Debian's libonnx-dev); this target
// alone links protobuf, so the rest of crayon builds without it.
//
// Both graphs take what a user has: float NCHW pixels in [0, 1], shape (N, C, H, W) with N
// free, and normalize inside the graph (Sub mean, Div std, per channel), so images go in
// directly; the output "logits" is float (N, classes). Opset 13, the first with per-axis
// DequantizeLinear. The model's metadata_props say the same (crayon.* keys, listed in the
// README) and carry the dataset, mean, std, input shape, crayon's version and the QatConfig.
//
// - Float (write_onnx_float): Conv / Gemm / Relu / Clip(0, 6) / MaxPool / AveragePool /
//   Flatten / BatchNormalization (inference form, running statistics), dropout left out.
// - Quantized (write_onnx_qdq, from the Int8Model the integer engine runs, so both share
//   every code and scale): the QDQ form ONNX Runtime, OpenVINO and TensorRT fuse into integer
//   kernels. Activations travel as uint8 tensors holding the engine's int8 codes + 128 (zero
//   point + 128 too: the same grid, and the u8 x s8 form ONNX Runtime's x86 CPU kernels fuse;
//   its int8 x int8 convolution is not fused there); every conv / linear / avg pool reads them
//   through DequantizeLinear and writes through QuantizeLinear with the layer's grid; weights
//   are int8 initializers through DequantizeLinear(axis 0) with one scale per output channel,
//   biases int32 on the scale s_in * s_w; max pool and flatten run on the uint8 tensor itself
//   (exact, as in the engine). A grid narrower than int8 (sub-8-bit, or ReLU / ReLU6 that the
//   zero point does not already clip) gets a Clip to its real range before QuantizeLinear.
//   The logits layer has no output grid: its float output is the graph's.
//
// Every model passes onnx::checker::check_model and strict shape inference before a byte is
// written; the file appears by rename, complete or not at all.
#include <string>

#include "core/normalize.h"
#include "core/tensor.h"
#include "nn/sequential.h"
#include "quant/int8/model.h"

namespace crayon {

inline constexpr int kOnnxOpset = 13;

struct OnnxMetadata {
  std::string dataset;       // "mnist", ...
  ChannelStats norm;         // the normalization folded into the graph (empty: none)
  std::string quantization;  // QatConfig text ("" for a float model)
  std::string source;        // the file it was exported from
};

// A float model (no FakeQuant). Throws std::invalid_argument naming a layer with no ONNX form.
void write_onnx_float(const Sequential& model, const Shape& input_shape, const OnnxMetadata& meta,
                      const std::string& path);

// A quantized model as the integer engine holds it (export_int8 or load_int8); meta.norm is
// taken from the model.
void write_onnx_qdq(const Int8Model& model, const OnnxMetadata& meta, const std::string& path);

}  // namespace crayon
