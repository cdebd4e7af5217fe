// crayon summary: a checkpoint, int8 file or ONNX file as a table of layers (quant/summary.h).
#include <cstdio>

#include "apps/cli.h"
#include "apps/train_checkpoint.h"
#include "core/check.h"
#include "quant/int8/file.h"
#include "quant/summary.h"
#ifdef CRAYON_HAVE_ONNX
#include "quant/onnx/onnx_summary.h"
#endif

namespace crayon {

int cmd_summary(int argc, char** argv) {
  std::string model_path;
  po::options_description opts("crayon summary options");
  opts.add_options()("help,h", "show this help")(
      "model", po::value(&model_path)->required(), "a checkpoint (.h5, float or quantized), an int8 file, or an .onnx file");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon summary --model M.h5|M.int8.h5|M.onnx")) return 0;
  require_path(vm, "model");
  Summary s;
  if (model_path.ends_with(".onnx")) {
#ifdef CRAYON_HAVE_ONNX
    s = summarize_onnx(model_path);
#else
    throw std::runtime_error(str(model_path, ": this crayon was built without ONNX (install libonnx-dev and "
                                 "libprotobuf-dev, or run scripts/install-deps.sh, then rebuild)"));
#endif
  } else if (is_int8_file(model_path)) {
    const Int8Model m = load_int8(model_path);
    s = summarize(m);
    s.title = str(model_path, ": int8 model of ", m.source_spec, " (", m.dataset, ")");
    if (!m.quantization.empty()) s.notes.push_back("quantization: " + m.quantization);
    s.notes.push_back("bytes: int8 weights 1 each, int32 biases and float32 scales 4 each, the input table 1 a code");
  } else {
    TrainCheckpoint ck = load_train_checkpoint(model_path);
    s = summarize(*ck.model, ck.input_shape);
    s.title = str(model_path, ": ", ck.quantized ? "quantized" : "float", " model, input ", shape_str(ck.input_shape),
                  " (", ck.config.dataset, ")");
    if (ck.quantized) s.notes.push_back("quantization: " + ck.config.qat);
    s.notes.push_back("bytes: float32 parameters, 4 each");
  }
  std::fputs(format_summary(s).c_str(), stdout);
  return 0;
}

}  // namespace crayon
