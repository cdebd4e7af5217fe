#pragma once
// crayon summary of an ONNX file (any producer's): every node with its output shape (from
// ONNX shape inference), the parameters and bytes of the initializers it reads, MACs for
// Conv / Gemm / MatMul, and the scale and zero point of each QuantizeLinear /
// DequantizeLinear; the notes give the opset, the producer and the metadata.
#include <string>

#include "quant/summary.h"

namespace crayon {

// Throws std::runtime_error naming the file: unreadable, too big, or not an ONNX model.
Summary summarize_onnx(const std::string& path);

}  // namespace crayon
