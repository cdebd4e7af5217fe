#pragma once
// crayon summary: a model as a table, as torchinfo and Keras's model.summary() show it: each
// layer, its output shape for one image, parameters, multiply-accumulates, the bytes its
// parameters take as stored, and for quantized models each grid (bits, scale, zero point,
// per-channel or not); then the totals. Three sources: a checkpoint (float or quantized), an
// int8 engine file, and (quant/onnx/onnx_summary.h) an ONNX file.
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/sequential.h"
#include "quant/int8/model.h"

namespace crayon {

struct SummaryRow {
  std::string name;   // the layer's (or node's) name
  std::string type;   // what it is: its spec, int8 op, or ONNX op
  Shape output;       // for one image (no batch dimension); empty: not known
  int64_t params = 0;
  int64_t macs = 0;   // multiply-accumulates per image
  int64_t bytes = 0;  // of the parameters as stored (float32: 4 each; int8 weights: 1, ...)
  std::string grid;   // the quantization grid(s), "" for none
};

struct Summary {
  std::string title;               // e.g. "mlp.h5: float model"
  std::vector<std::string> notes;  // printed under the table
  std::vector<SummaryRow> rows;
};

// A float or quantized (prepared) model for inputs of shape (C, H, W); runs one zero image
// through it in eval mode (the model's mode is restored).
Summary summarize(Sequential& model, const Shape& input_shape);
// The integer engine's model (prepared: from export_int8 or load_int8).
Summary summarize(const Int8Model& model);

// "(6, 28, 28)"-style table with a totals line and the notes.
std::string format_summary(const Summary& s);

// "8-bit scale 0.0123 zp -128" / "per-channel (6) scale 1.2e-03..4.5e-03": grids as the table shows them.
std::string grid_text(int bits, const std::vector<float>& scales, const std::vector<int32_t>& zero_points);

}  // namespace crayon
