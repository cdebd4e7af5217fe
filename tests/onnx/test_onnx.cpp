// ONNX export checked by a real ONNX Runtime (onnxruntime-node, pinned in tests/onnx/
// package.json, installed by scripts/install-deps.sh) and by python3-onnx's checker, on the
// 10,000 real MNIST test images: float graphs against crayon's float models, QDQ graphs
// against crayon's integer engine. Also the export's refusals and crayon summary's totals.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "apps/evaluate.h"
#include "core/check.h"
#include "quant/int8/file.h"
#include "quant/onnx/onnx_summary.h"
#include "quant/qat_config.h"
#include "quant/summary.h"
#include "tests/apps/app_support.h"

namespace crayon {

namespace {

const Dataset& mnist_test() {
  static const Dataset d = load_dataset("mnist", false, std::string(CRAYON_SOURCE_DIR) + "/data/mnist");
  return d;
}

// The test images as ONNX Runtime gets them: float32 pixels / 255, NCHW.
std::string images_file(const TempDir& dir) {
  const Dataset& d = mnist_test();
  const std::string path = dir / "images.f32";
  std::vector<float> x(size_t(d.size() * 784));
  const uint8_t* p = d.image(0);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(p[i]) / 255.f;
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(x.data()), std::streamsize(x.size() * 4));
  return path;
}

bool have_ort() {
  if (std::system("command -v node > /dev/null 2>&1") != 0) return false;
  return fs::exists(fs::path(CRAYON_SOURCE_DIR) / "tests/onnx/node_modules/onnxruntime-node");
}

// ONNX Runtime's logits (N, classes) for the test images.
std::vector<float> ort_logits(const std::string& model, const TempDir& dir, int64_t classes) {
  const std::string out = dir / "ort.f32";
  const std::string cmd = str("node ", CRAYON_SOURCE_DIR, "/tests/onnx/run_ort.js ", model, " ", images_file(dir), " ",
                              mnist_test().size(), " 1 28 28 ", out, " --threads 2 > ", dir / "ort.txt", " 2>&1");
  const int status = std::system(cmd.c_str());
  INFO(slurp(dir / "ort.txt"));
  REQUIRE(status == 0);
  const std::string bytes = slurp(out);
  REQUIRE(bytes.size() == size_t(mnist_test().size() * classes * 4));
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

// python3-onnx's checker, full check (strict shape inference too).
void python_check(const std::string& model) {
  const std::string cmd = str("/usr/bin/python3 -c \"import onnx, sys; onnx.checker.check_model(sys.argv[1], "
                              "full_check=True)\" ", model, " 2>&1");
  CHECK_MESSAGE(std::system(cmd.c_str()) == 0, "python3 onnx.checker rejects ", model);
}

struct Agreement {
  double agree = 0, accuracy_a = 0, accuracy_b = 0, max_abs = 0, worst_ratio = 0;  // ratio: |a-b| / (atol + rtol|a|)
};

Agreement compare(const Tensor& a, const std::vector<float>& b, double rtol, double atol) {
  const int64_t n = a.size(0), k = a.size(1);
  Agreement r;
  const std::vector<int32_t> pa = predictions(a);
  for (int64_t i = 0; i < n; ++i) {
    int64_t pb = 0;
    for (int64_t c = 0; c < k; ++c) {
      const double x = a.data()[i * k + c], y = b[size_t(i * k + c)];
      r.max_abs = std::max(r.max_abs, std::fabs(x - y));
      r.worst_ratio = std::max(r.worst_ratio, std::fabs(x - y) / (atol + rtol * std::fabs(x)));
      if (b[size_t(i * k + c)] > b[size_t(i * k + pb)]) pb = c;
    }
    const int label = mnist_test().label(i);
    r.agree += pa[size_t(i)] == pb;
    r.accuracy_a += pa[size_t(i)] == label;
    r.accuracy_b += pb == label;
  }
  r.agree /= double(n), r.accuracy_a /= double(n), r.accuracy_b /= double(n);
  return r;
}

TrainRun run_for(const TempDir& dir, const std::string& name, const std::string& model, const std::string& qat = "") {
  TrainRun run = small_run(dir / (name + ".h5"), model);
  run.config.epochs = 1;
  run.config.train_limit = 6000;
  run.config.qat = qat;
  return run;
}

std::string qat_text(int weight_bits, int act_bits, bool per_channel) {
  QatConfig q;
  q.weight.bits = weight_bits;
  q.act.bits = act_bits;
  q.weight.axis = per_channel ? 0 : -1;
  q.warmup_steps = 40;
  return describe(q);
}

}  // namespace

TEST_CASE("onnx: float export runs in ONNX Runtime with crayon's logits (mlp, lenet5, conv-bn-avgpool-dropout)") {
  if (!have_ort()) {
    MESSAGE("SKIPPED: node or tests/onnx/node_modules missing (run scripts/install-deps.sh)");
    return;
  }
  for (const std::string spec : {"mlp", "lenet5",
                           "conv(8,3,pad=1)-bn-relu-avgpool(2)-conv(16,3,stride=2,bias=0)-bn-relu6-maxpool(3,stride=1,"
                           "pad=1)-flatten-dropout(0.2)-linear(32)-bn-relu-linear(10)"}) {
    CAPTURE(spec);
    TempDir dir;
    TrainRun run = run_for(dir, "float", spec);
    run_training(run);
    Cli cli(dir);
    const std::string onnx = dir / "float.onnx";
    REQUIRE(cli(str("export --model ", run.out, " --format onnx --out ", onnx)) == 0);
    python_check(onnx);
    TrainCheckpoint ck = load_train_checkpoint(run.out);
    Tensor logits;
    evaluate(*ck.model, mnist_test(), dataset_stats("mnist"), 1000, &logits);
    const Agreement a = compare(logits, ort_logits(onnx, dir, 10), 1e-4, 1e-4);
    MESSAGE(spec, ": max |logit difference| ", a.max_abs, ", worst / (1e-4 + 1e-4 |logit|) ", a.worst_ratio);
    CHECK(a.worst_ratio <= 1.0);  // every logit within 1e-4 relative (1e-4 absolute near 0)
    CHECK(a.agree == 1.0);
    CHECK(a.accuracy_a > 0.8);   // a trained model, not a constant
  }
}

TEST_CASE("onnx: QDQ export runs in ONNX Runtime and agrees with crayon's integer engine") {
  if (!have_ort()) {
    MESSAGE("SKIPPED: node or tests/onnx/node_modules missing (run scripts/install-deps.sh)");
    return;
  }
  struct Case {
    const char* spec;
    int weight_bits, act_bits;
    bool per_channel;
  };
  for (const Case c : {Case{"lenet5", 8, 8, true}, Case{"mlp", 8, 8, false},
                       Case{"conv(8,3,pad=1)-relu-avgpool(2)-conv(16,3)-relu6-maxpool(2)-flatten-linear(10)", 4, 4, true},
                       Case{"lenet5", 3, 3, true}}) {
    const std::string spec = c.spec;
    CAPTURE(spec);
    CAPTURE(c.weight_bits);
    TempDir dir;
    TrainRun run = run_for(dir, "qat", c.spec, qat_text(c.weight_bits, c.act_bits, c.per_channel));
    run_training(run);
    Cli cli(dir);
    const std::string int8 = dir / "m.int8.h5", onnx = dir / "m.onnx", from_int8 = dir / "from-int8.onnx";
    REQUIRE(cli(str("export --model ", run.out, " --out ", int8)) == 0);
    REQUIRE(cli(str("export --model ", run.out, " --format onnx --out ", onnx)) == 0);
    REQUIRE(cli(str("export --model ", int8, " --format onnx --out ", from_int8)) == 0);
    python_check(onnx);
    Tensor logits;
    evaluate(load_int8(int8), mnist_test(), 1000, &logits);
    const Agreement a = compare(logits, ort_logits(onnx, dir, 10), 0, 1);
    MESSAGE(spec, " W", c.weight_bits, "A", c.act_bits, ": top-1 agreement ", a.agree, ", accuracy engine ",
            a.accuracy_a, " ONNX Runtime ", a.accuracy_b, ", max |logit difference| ", a.max_abs);
    CHECK(a.agree >= 0.999);
    CHECK(std::fabs(a.accuracy_a - a.accuracy_b) <= 0.001);
    CHECK(a.accuracy_a > 0.8);
    // The int8 file holds the same model: the same graph, metadata aside.
    const Agreement b = compare(logits, ort_logits(from_int8, dir, 10), 0, 1);
    CHECK(b.agree == a.agree);
    CHECK(b.max_abs == a.max_abs);
  }
}

TEST_CASE("onnx: export refuses what it cannot write, and leaves nothing half-written") {
  TempDir dir;
  TrainRun run = run_for(dir, "bn", "conv(4,3)-bn-relu-flatten-linear(10)", "");
  run.config.train_limit = 500;
  run_training(run);
  TrainRun q = run_for(dir, "bnq", "conv(4,3)-bn-relu-flatten-linear(10)", "");
  q.config.train_limit = 500;
  QatConfig unfolded;
  unfolded.fold_bn = false;
  unfolded.warmup_steps = 4;
  q.config.qat = describe(unfolded);
  run_training(q);
  Cli cli(dir);
  CHECK(cli(str("export --model ", run.out, " --format tflite")) == 2);
  CHECK(cli.first_error_line().find("--format") != std::string::npos);
  CHECK(cli(str("export --model ", run.out, " --format onnx --out ", dir / "no/such/dir/m.onnx")) == 1);
  CHECK(cli.first_error_line().find("no/such/dir/m.onnx") != std::string::npos);
  CHECK(cli(str("export --model ", run.out, " --out ", dir / "m.int8.h5")) == 1);  // float checkpoint: int8 needs a grid
  CHECK(cli.first_error_line().find("float checkpoint") != std::string::npos);
  // Batch norm left unfolded has no integer form: refused naming the layer, nothing written.
  CHECK(cli(str("export --model ", q.out, " --format onnx --out ", dir / "q.onnx")) == 1);
  CHECK(cli.first_error_line().find("batch norm") != std::string::npos);
  CHECK(cli.first_error_line().find("layer") != std::string::npos);
  for (const auto& e : fs::directory_iterator(dir.path())) {
    CAPTURE(e.path());
    CHECK(e.path().filename().string().find(".onnx") == std::string::npos);
  }
}

TEST_CASE("summary: the same model's parameters and MACs agree across checkpoint, int8 file and ONNX") {
  TempDir dir;
  TrainRun run = run_for(dir, "qat", "lenet5", qat_text(8, 8, true));
  run.config.train_limit = 500;
  run_training(run);
  Cli cli(dir);
  REQUIRE(cli(str("export --model ", run.out, " --out ", dir / "m.int8.h5")) == 0);
  REQUIRE(cli(str("export --model ", run.out, " --format onnx --out ", dir / "m.onnx")) == 0);
  // lenet5 by hand: conv1 6*28*28*25, conv2 16*10*10*150, then 400*120, 120*84, 84*10.
  const int64_t macs = 117600 + 240000 + 48000 + 10080 + 840;
  const int64_t weights = 150 + 2400 + 48000 + 10080 + 840, biases = 6 + 16 + 120 + 84 + 10;
  auto total = [](const Summary& s, int64_t SummaryRow::*field) {
    int64_t t = 0;
    for (const SummaryRow& r : s.rows) t += r.*field;
    return t;
  };
  TrainCheckpoint ck = load_train_checkpoint(run.out);
  const Summary a = summarize(*ck.model, ck.input_shape);
  const Summary b = summarize(load_int8(dir / "m.int8.h5"));
  const Summary c = summarize_onnx(dir / "m.onnx");
  CHECK(total(a, &SummaryRow::macs) == macs);
  CHECK(total(b, &SummaryRow::macs) == macs);
  CHECK(total(c, &SummaryRow::macs) == macs);
  CHECK(total(a, &SummaryRow::params) == weights + biases);
  CHECK(total(b, &SummaryRow::params) == weights + biases);
  // int8: a byte a weight, 4 a bias and a scale, and the 256-entry input table.
  CHECK(total(b, &SummaryRow::bytes) == weights + 4 * biases + 4 * biases + 256);
  // The CLI prints the table with the totals line.
  REQUIRE(cli(str("summary --model ", dir / "m.onnx")) == 0);
  CHECK(cli.output().find("416,520") != std::string::npos);
  CHECK(cli.output().find("crayon.quantization") != std::string::npos);
  REQUIRE(cli(str("summary --model ", run.out)) == 0);
  CHECK(cli.output().find("per-channel (6)") != std::string::npos);
  CHECK(cli(str("summary --model ", dir / "stdout.txt")) == 1);
  fs::path junk = dir / "junk.onnx";
  std::ofstream(junk) << "not a protobuf at all, just text";
  CHECK(cli(str("summary --model ", junk.string())) == 1);
  CHECK(cli.first_error_line().find("not an ONNX model") != std::string::npos);
}

}  // namespace crayon
