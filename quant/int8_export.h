#pragma once
// int8 export: a QAT / PTQ model (quant/qat.h) to the integer engine's Int8Model
// (quant/int8_model.h), and its HDF5 file, "crayon-int8" version 1.
//
// Conventions: TFLite's int8 quantization spec (tensorflow.org/lite/performance/
// quantization_spec), which maps one to one onto ONNX QuantizeLinear / DequantizeLinear:
//   weights      int8, symmetric (zero point 0), [-127, 127], one scale per output channel
//                (axis 0): w = weight_scale[o] * q  (DequantizeLinear with axis = 0)
//   biases       int32, zero point 0, scale input_scale * weight_scale[o]
//   activations  int8, one (scale, zero point) per tensor: x = scale * (q - zero_point)
//   rounding     real -> int8: round half to even (ONNX QuantizeLinear, and what the
//                fake-quant rounds to in eval); real bias -> int32: round half away from
//                zero; requantization: gemmlowp / TFLite fixed point (quant/requant.h)
//
// File layout (every name below is exactly what the file holds; README has the same):
//   /                  attrs format = "crayon-int8", format_version = 1, input_shape (C, H, W),
//                      num_classes, source_spec, quantization (the QatConfig text), dataset,
//                      rounding (the conventions above, as text)
//   /input/lut         int8 (C, 256): the quantized input for pixel value v of channel c
//   /input             attrs scale, zero_point, mean (C,), std (C,): x = (v/255 - mean)/std,
//                      q = clamp(round_half_even(x / scale) + zero_point, qmin, qmax) = lut[c][v]
//   /layers            attr count; one group per layer, "/layers/000", "/layers/001", ...
//   /layers/NNN        attr op = conv2d | linear | maxpool2d | avgpool2d | flatten
//     conv2d, linear:  datasets weight int8 (O, C, KH, KW) / (O, I), weight_scale float32
//                      (O,), bias int32 (O,); attrs layout ("OIHW" / "OI"), weight_zero_point
//                      (0), input_scale, input_zero_point, activation (none | relu | relu6),
//                      logits (0/1), and unless logits: output_scale, output_zero_point,
//                      act_min, act_max; conv2d also stride (SH, SW), padding (PH, PW). The
//                      requantization multiplier of channel o is TFLite's QuantizeMultiplier of
//                      (input_scale * weight_scale[o]) / output_scale, in float64
//     maxpool2d, avgpool2d: attrs kernel (KH, KW), stride, padding; avgpool2d also
//                      input_scale, input_zero_point, output_scale, output_zero_point; its
//                      multiplier is QuantizeMultiplier of input_scale / (output_scale KH KW)
//     flatten:         nothing else
#include <string>
#include <vector>

#include "nn/sequential.h"
#include "quant/int8_model.h"
#include "quant/qat_config.h"

namespace crayon {

inline constexpr const char* kInt8Format = "crayon-int8";
inline constexpr int64_t kInt8FormatVersion = 1;

// model: prepared by prepare_qat (trained or calibrated; every FakeQuant observed) with
// `config`, taking (C, H, W) inputs; pixel_values: (C * 256) what the model sees for each
// pixel value (data/loader.h pixel_table), mean / std: the normalization behind it (kept
// in the file for readers). Throws std::invalid_argument naming the layer when something
// has no integer form: asymmetric weights, weights wider than [-127, 127], an unfolded batch
// norm, a layer the engine lacks, an activation without a grid after it.
Int8Model export_int8(const Sequential& model, const Shape& input_shape, const QatConfig& config,
                      const std::vector<float>& pixel_values, const std::vector<float>& mean,
                      const std::vector<float>& std);

// Atomic (temporary file + rename, core/h5io.h).
void save_int8(const Int8Model& model, const std::string& path);

// Reads and validates everything (core/h5io.h's checks on each dataset, then the model's
// own consistency, and the stored multipliers against the scales); throws
// std::runtime_error naming the file and the object.
Int8Model load_int8(const std::string& path);

// True if path is an HDF5 file whose root says format = "crayon-int8" (false for anything
// else, including files that do not open).
bool is_int8_file(const std::string& path);

}  // namespace crayon
