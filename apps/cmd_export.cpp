// crayon export: a model to a file another program runs.
//   --format crayon-int8   a quantized checkpoint (QAT or PTQ) -> the integer engine's int8 file
//                          (format in the README, "int8 model")
//   --format onnx          a quantized checkpoint or int8 file -> a QDQ ONNX model; a float
//                          checkpoint -> the float ONNX graph (quant/onnx/onnx_export.h)
#include <cstdio>
#include <filesystem>

#include "apps/cli.h"
#include "apps/train_checkpoint.h"
#include "core/check.h"
#include "data/loader.h"
#include "quant/int8/file.h"
#include "quant/int8_export.h"
#include "quant/qat.h"
#ifdef CRAYON_HAVE_ONNX
#include "quant/onnx/onnx_export.h"
#endif

namespace crayon {

namespace {

Int8Model to_int8(const TrainCheckpoint& ck, const std::string& path) {
  try {
    Int8Model m = export_int8(*ck.model, ck.input_shape, dataset_stats(ck.config.dataset));
    m.dataset = ck.config.dataset;
    m.quantization = ck.config.qat;
    return m;
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(path, ": ", e.what()));
  }
}

#ifdef CRAYON_HAVE_ONNX
// Layers with no ONNX form are refused naming the layer and the file.
template <typename F>
void onnx_or_fail(const std::string& model_path, F&& write) {
  try {
    write();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(str(model_path, ": ", e.what()));
  }
}
#endif

}  // namespace

int cmd_export(int argc, char** argv) {
  std::string model_path, out, format = "crayon-int8";
  bool quiet = false, as_float = false;
  po::options_description opts("crayon export options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&model_path)->required(), "checkpoint to export: quantized (crayon train --qat, crayon quantize) "
                                                  "for either format, float for onnx; or an int8 file for onnx")
    ("format", po::value(&format)->default_value(format), "crayon-int8 (the integer engine's file) | onnx (opset 13: "
                                                          "QDQ for quantized models, the float graph for float ones)")
    ("out", po::value(&out), "file to write (default model.int8.h5, or model.onnx for --format onnx)")
    ("float", po::bool_switch(&as_float), "onnx: a quantized checkpoint's weights without its grids, as the float "
                                          "graph (what crayon eval reports beside the quantized model)")
    ("quiet,q", po::bool_switch(&quiet), "print nothing");
  // clang-format on
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon export --model q.h5 [--format onnx] --out model.int8.h5"))
    return 0;
  require_one_of(vm, "format", {"crayon-int8", "onnx"});
  require_path(vm, "out");
  if (as_float && format != "onnx") throw UsageError("--float: needs --format onnx");
  if (out.empty()) out = format == "onnx" ? "model.onnx" : "model.int8.h5";
#ifndef CRAYON_HAVE_ONNX
  if (format == "onnx")
    throw std::runtime_error("--format onnx: this crayon was built without ONNX (install libonnx-dev and "
                             "libprotobuf-dev, or run scripts/install-deps.sh, then rebuild)");
#endif

  std::string what;
  if (is_int8_file(model_path)) {
    if (format != "onnx" || as_float)
      throw std::runtime_error(str(model_path, ": an int8 file; expected a checkpoint (an int8 file exports only as "
                                   "--format onnx, the QDQ graph)"));
#ifdef CRAYON_HAVE_ONNX
    const Int8Model m = load_int8(model_path);
    onnx_or_fail(model_path, [&] { write_onnx_qdq(m, {m.dataset, {}, m.quantization, model_path}, out); });
    what = str(m.layers.size(), " int8 layers as a QDQ ONNX model");
#endif
  } else {
    TrainCheckpoint ck = load_train_checkpoint(model_path);
    if (!ck.quantized && format == "crayon-int8")
      throw std::runtime_error(str(model_path, ": a float checkpoint; expected a quantized one (train it with --qat, "
                                   "or run crayon quantize on it first), or use --format onnx for the float graph"));
    if (format == "crayon-int8") {
      const Int8Model m = to_int8(ck, model_path);
      save_int8(m, out);
      int64_t weights = 0, float_bytes = 0;
      for (const auto& [name, v] : ck.model->named_parameters()) float_bytes += v.numel() * 4;
      for (const Int8Layer& l : m.layers) weights += l.weight.numel();
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%.2f", double(std::filesystem::file_size(out)) / double(float_bytes));
      what = str(m.layers.size(), " layers, ", weights, " int8 weights; ", std::filesystem::file_size(out),
                 " bytes on disk, ", ratio, " x the ", float_bytes, " bytes of float weights");
    } else {
#ifdef CRAYON_HAVE_ONNX
      const OnnxMetadata meta{ck.config.dataset, dataset_stats(ck.config.dataset), ck.config.qat, model_path};
      if (ck.quantized && as_float) {
        OnnxMetadata plain = meta;
        plain.quantization.clear();  // the graph has no grid
        onnx_or_fail(model_path, [&] {
          write_onnx_float(*float_copy(*ck.model, ck.input_shape), ck.input_shape, plain, out);
        });
        what = "the float ONNX graph of its weights without the grids";
      } else if (ck.quantized) {
        const Int8Model m = to_int8(ck, model_path);
        onnx_or_fail(model_path, [&] { write_onnx_qdq(m, meta, out); });
        what = str(m.layers.size(), " int8 layers as a QDQ ONNX model");
      } else {
        onnx_or_fail(model_path, [&] { write_onnx_float(*ck.model, ck.input_shape, meta, out); });
        what = "the float ONNX graph";
      }
#endif
    }
  }
  if (!quiet) std::printf("%s -> %s: %s\n", model_path.c_str(), out.c_str(), what.c_str());
  return 0;
}

}  // namespace crayon
