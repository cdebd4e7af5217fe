#pragma once
// int8 export: a QAT / PTQ model (quant/qat.h) to the integer engine's Int8Model
// (quant/int8/model.h), which quant/int8/file.h saves as a "crayon-int8" file.
//
// Conventions: TFLite's int8 quantization spec (tensorflow.org/lite/performance/
// quantization_spec), which maps one to one onto ONNX QuantizeLinear / DequantizeLinear:
//   weights      int8, symmetric (zero point 0), [-127, 127], one scale per output channel
//                (axis 0): w = weight_scale[o] * q  (DequantizeLinear with axis = 0)
//   biases       int32, zero point 0, scale input_scale * weight_scale[o]
//   activations  int8, one (scale, zero point) per tensor: x = scale * (q - zero_point)
//   rounding     real -> int8: round half to even (ONNX QuantizeLinear, and what the
//                fake-quant rounds to in eval); real bias -> int32: round half away from
//                zero; requantization: TFLite's fixed-point multiplier, rounded once, half
//                to even (quant/int8/requant.h)
#include <string>
#include <vector>

#include "core/normalize.h"
#include "nn/sequential.h"
#include "quant/int8/file.h"
#include "quant/int8/model.h"

namespace crayon {

// model: prepared by prepare_qat (trained or calibrated; every FakeQuant observed), taking
// (C, H, W) inputs normalized by `norm` (core/normalize.h; its table is folded into the
// input quantization). Every grid comes from the model itself: weights from their fake-quant
// parametrization, activations from the FakeQuant modules. The caller fills the metadata
// (dataset, quantization text). Throws std::invalid_argument naming the layer when something
// has no integer form: asymmetric weights, weights wider than [-127, 127], an unfolded batch
// norm, a layer the engine lacks, an activation without a grid after it.
Int8Model export_int8(const Sequential& model, const Shape& input_shape, const ChannelStats& norm);

}  // namespace crayon
