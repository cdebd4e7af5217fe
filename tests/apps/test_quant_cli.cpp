// Quantization from the command line on real MNIST: `train --qat`, quantized checkpoints
// and their resume, `quantize` (PTQ), `eval` beside float, low-precision weight updates.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "apps/train_checkpoint.h"
#include "apps/evaluate.h"
#include "apps/trainer.h"
#include "data/dataset.h"
#include "quant/int8/file.h"
#include "quant/qat.h"
#include "tests/apps/app_support.h"

using namespace crayon;

namespace {

std::string mnist_dir() { return std::string(CRAYON_SOURCE_DIR) + "/data/mnist"; }

// A float mlp trained for one epoch on 1000 images: the checkpoint the CLI tests start from.
TrainRun one_epoch_mlp(const std::string& out) {
  TrainRun run = small_run(out);
  run.config.epochs = 1;
  run.config.train_limit = 1000;
  run_training(run);
  return run;
}

// A float lenet5 trained for one epoch on 3000 images: what the PTQ tests quantize.
void one_epoch_lenet5(const std::string& out) {
  TrainRun run = small_run(out, "lenet5");
  run.config.epochs = 1;
  run_training(run);
}

EvalResult eval_on_1000(Module& model) {
  const Dataset test = load_dataset("mnist", false, mnist_dir()).slice(0, 1000);
  return evaluate(model, test, dataset_stats("mnist"));
}

}  // namespace

TEST_CASE("train --qat: the checkpoint is quantized and reloads to the same predictions, near float") {
  TempDir dir;
  TrainRun run = small_run(dir / "qat.h5", "lenet5");
  QatConfig q;
  q.warmup_steps = 30;  // 47 steps per epoch: the grids freeze in epoch 1
  run.config.qat = describe(q);
  const auto records = run_training(run);
  REQUIRE(records.size() == 2);
  CHECK(records[1].test_acc > 0.85);

  TrainCheckpoint ck = load_train_checkpoint(run.out);
  REQUIRE(ck.quantized);
  CHECK(is_quantized(*ck.model));
  CHECK(ck.config.qat == run.config.qat);
  for (const auto& [name, fq] : fake_quant_modules(*ck.model)) {
    INFO(name);
    CHECK(fq->frozen());
  }
  // The reloaded model reproduces the accuracy the run measured on the same images.
  const EvalResult r = eval_on_1000(*ck.model);
  CHECK(r.accuracy == doctest::Approx(records[1].test_acc).epsilon(1e-12));
  // The same weights without the grid: 8 bits cost little.
  const EvalResult f = eval_on_1000(*float_copy(*ck.model, ck.input_shape));
  MESSAGE("QAT 8-bit ", r.accuracy * 100, " %, same weights in float ", f.accuracy * 100, " %");
  CHECK(std::abs(r.accuracy - f.accuracy) < 0.01);
}

TEST_CASE("train --qat: a run interrupted before and after the switch to QAT resumes bit for bit") {
  // Float with batch norm for one epoch, then BN folded and QAT with stochastic rounding and
  // a stochastic weight grid: every piece of state (folded model, FakeQuant buffers with
  // mid-warm-up observers, optimizer restarted at the switch) must survive a checkpoint.
  TempDir dir;
  TrainRun full = small_run(dir / "full.h5", "conv(4,3,pad=1)-bn-relu-maxpool(2)-flatten-linear(10)");
  full.config.epochs = 3;
  full.config.train_limit = 640;  // 10 steps per epoch
  full.config.test_limit = 200;
  full.config.qat_start_epoch = 1;
  QatConfig q = parse_qat_config("weight_bits=6,act_bits=8,rounding=stochastic,warmup=15");
  full.config.qat = describe(q);
  full.config.update_bits = 16;
  full.config.update_rounding = "stochastic";
  const auto records = run_training(full);
  CHECK(records.back().test_acc > 0.3);  // learning (chance is 0.1); the point is the resume
  TrainCheckpoint end = load_train_checkpoint(full.out);
  CHECK(end.quantized);
  CHECK(end.model->spec().find("bn") == std::string::npos);  // folded at the switch
  CHECK(end.config.update_frac_bits >= 0);                     // resolved and stored

  for (int64_t first : {1, 2}) {
    CAPTURE(first);
    TrainRun part = full;
    part.out = dir / "part.h5";
    part.stop_after = first;
    run_training(part);
    CHECK(load_train_checkpoint(part.out).quantized == (first >= 2));
    TrainRun rest;
    rest.config.epochs = 3;
    rest.out = part.out;
    rest.resume = part.out;
    rest.quiet = true;
    run_training(rest);
    check_same_weights(full.out, part.out);
  }
}

TEST_CASE("quantize and eval: PTQ from the command line, reported beside the float model") {
  TempDir dir;
  one_epoch_lenet5(dir / "float.h5");
  const Cli cli(dir);
  REQUIRE(cli("quantize --model " + (dir / "float.h5") + " --out " + (dir / "q.h5") +
              " --weight-bits 8 --act-bits 8 --observer percentile --calib-batches 4 --threads 2") == 0);
  const std::string said = cli.output();
  INFO(said);
  CHECK(said.find("W8A8, percentile observer on 512 calibration images") != std::string::npos);
  TrainCheckpoint q = load_train_checkpoint(dir / "q.h5");
  REQUIRE(q.quantized);
  CHECK(parse_qat_config(q.config.qat).observer == "percentile");

  REQUIRE(cli("eval --model " + (dir / "q.h5") + " --limit 1000 --json") == 0);
  const std::string json = cli.output();
  INFO(json);
  CHECK(json.find("\"float_accuracy\"") != std::string::npos);
  CHECK(json.find("\"quantization\": \"weight_bits=8") != std::string::npos);
  const EvalResult fq = eval_on_1000(*q.model);
  const EvalResult fl = eval_on_1000(*load_train_checkpoint(dir / "float.h5").model);
  CHECK(std::abs(fq.accuracy - fl.accuracy) < 0.01);

  // Quantizing twice, or fine-tuning a quantized file as if it were float, is refused.
  CHECK(cli("quantize --model " + (dir / "q.h5") + " --out " + (dir / "qq.h5")) == 1);
  CHECK(cli.first_error_line().find("already quantized") != std::string::npos);
  CHECK(cli("train --qat --init " + (dir / "q.h5") + " --out " + (dir / "x.h5") + " --epochs 1 --quiet") == 1);
  CHECK(cli.first_error_line().find("expected a float checkpoint") != std::string::npos);
}

TEST_CASE("quantize --equalize --bias-correction: the PTQ pipeline from the command line, exported to int8") {
  TempDir dir;
  one_epoch_lenet5(dir / "float.h5");
  const Cli cli(dir);
  REQUIRE(cli("quantize --model " + (dir / "float.h5") + " --out " + (dir / "q.h5") +
              " --weight-bits 4 --per-tensor --equalize --bias-correction --calib-batches 4") == 0);
  const std::string said = cli.output();
  INFO(said);
  CHECK(said.find("equalized 4 layer pairs") != std::string::npos);
  CHECK(said.find("4 ReLU6 replaced by ReLU") != std::string::npos);
  CHECK(said.find("bias correction (empirical): 5 of 5 layers") != std::string::npos);
  // The result is a normal quantized checkpoint (ReLU in place of the equalized ReLU6s):
  // it evaluates near float and exports to the integer engine unchanged.
  TrainCheckpoint q = load_train_checkpoint(dir / "q.h5");
  REQUIRE(q.quantized);
  CHECK(float_spec(*q.model) == "conv(6,5,pad=2)-relu-maxpool(2)-conv(16,5)-relu-maxpool(2)-flatten-linear(120)-relu-"
                                "linear(84)-relu-linear(10)");
  const EvalResult fq = eval_on_1000(*q.model);
  const EvalResult fl = eval_on_1000(*load_train_checkpoint(dir / "float.h5").model);
  CHECK(fq.accuracy > fl.accuracy - 0.05);
  REQUIRE(cli("export --model " + (dir / "q.h5") + " --out " + (dir / "q.int8.h5")) == 0);
  REQUIRE(cli("eval --model " + (dir / "q.int8.h5") + " --limit 1000 --json") == 0);
  CHECK(cli.output().find("\"accuracy\"") != std::string::npos);

  // Data-free correction needs batch norms (lenet5 has none: nothing is corrected) and is
  // refused beside --equalize; bad values are named.
  REQUIRE(cli("quantize --model " + (dir / "float.h5") + " --out " + (dir / "d.h5") + " --bias-correction data-free") == 0);
  CHECK(cli.output().find("bias correction (data-free): 0 of 5 layers") != std::string::npos);
  CHECK(cli("quantize --model " + (dir / "float.h5") + " --equalize --bias-correction data-free") == 2);
  CHECK(cli.first_error_line().find("--bias-correction data-free") != std::string::npos);
  CHECK(cli("quantize --model " + (dir / "float.h5") + " --bias-correction sometimes") == 2);
  CHECK(cli.first_error_line().find("--bias-correction: expected none, empirical or data-free") != std::string::npos);
  CHECK(cli("quantize --model " + (dir / "float.h5") + " --equalize --equalize-relu6 clip") == 2);
  CHECK(cli.first_error_line().find("--equalize-relu6") != std::string::npos);
}

TEST_CASE("quantize --adaround: learned rounding at 2 bits beats nearest and exports to the int8 engine") {
  TempDir dir;
  one_epoch_lenet5(dir / "float.h5");
  const Cli cli(dir);
  const std::string base = "quantize --model " + (dir / "float.h5") + " --weight-bits 2 --calib-batches 4";
  REQUIRE(cli(base + " --out " + (dir / "near.h5")) == 0);
  REQUIRE(cli(base + " --out " + (dir / "ada.h5") + " --adaround --adaround-iters 300") == 0);
  INFO(cli.output());
  CHECK(cli.output().find("AdaRound: 5 layers") != std::string::npos);
  const EvalResult nearest = eval_on_1000(*load_train_checkpoint(dir / "near.h5").model);
  const EvalResult ada = eval_on_1000(*load_train_checkpoint(dir / "ada.h5").model);
  MESSAGE("W2A8 on 1000 test images: nearest ", nearest.accuracy * 100, " %, AdaRound ", ada.accuracy * 100, " %");
  CHECK(ada.accuracy > nearest.accuracy + 0.05);
  REQUIRE(cli("export --model " + (dir / "ada.h5") + " --out " + (dir / "ada.int8.h5")) == 0);
  REQUIRE(cli("eval --model " + (dir / "ada.h5") + " --compare " + (dir / "ada.int8.h5") + " --limit 1000") == 0);
  CHECK(cli(base + " --adaround-iters 0") == 2);
  CHECK(cli.first_error_line().find("--adaround-iters") != std::string::npos);
}

TEST_CASE("quantize --bits-budget: bits per layer within the budget, stored, and run by the int8 engine") {
  TempDir dir;
  one_epoch_lenet5(dir / "float.h5");
  const Cli cli(dir);
  REQUIRE(cli("quantize --model " + (dir / "float.h5") + " --out " + (dir / "mp.h5") + " --bits-budget 3 "
              "--calib-batches 4") == 0);
  INFO(cli.output());
  CHECK(cli.output().find(": W[") != std::string::npos);
  CHECK(cli.output().find("mixed precision: W[") != std::string::npos);
  TrainCheckpoint q = load_train_checkpoint(dir / "mp.h5");
  const std::vector<int> bits = parse_qat_config(q.config.qat).layer_weight_bits;
  REQUIRE(bits.size() == 5);
  REQUIRE(cli("export --model " + (dir / "mp.h5") + " --out " + (dir / "mp.int8.h5")) == 0);
  const Int8Model m = load_int8(dir / "mp.int8.h5");
  int64_t total = 0, weights = 0;
  size_t k = 0;
  for (const Int8Layer& l : m.layers) {
    if (l.op != Int8Layer::Op::conv2d && l.op != Int8Layer::Op::linear) continue;
    REQUIRE(k < bits.size());
    const int limit = (1 << (bits[k] - 1)) - 1;
    int worst = 0;
    for (int64_t e = 0; e < l.weight.numel(); ++e) worst = std::max(worst, std::abs(int(l.weight.data_as<int8_t>()[e])));
    CHECK(worst == limit);  // the codes use exactly the layer's width
    total += bits[k] * l.weight.numel();
    weights += l.weight.numel();
    ++k;
  }
  CHECK(k == 5);
  CHECK(double(total) <= 3.0 * double(weights));
  REQUIRE(cli("eval --model " + (dir / "mp.h5") + " --compare " + (dir / "mp.int8.h5") + " --limit 1000 --json") == 0);
  CHECK(cli.output().find("\"agreement\"") != std::string::npos);

  const std::string base = "quantize --model " + (dir / "float.h5") + " --out " + (dir / "x.h5");
  CHECK(cli(base + " --bits-budget 1.5") == 2);
  CHECK(cli.first_error_line().find("--bits-budget: expected mean weight bits in [2, 8]") != std::string::npos);
  CHECK(cli(base + " --bits-budget 4 --weight-bits 4") == 2);
  CHECK(cli.first_error_line().find("drop --weight-bits") != std::string::npos);
  CHECK(cli(base + " --bits-widths 8,4") == 2);
  CHECK(cli.first_error_line().find("--bits-widths: needs --bits-budget") != std::string::npos);
  CHECK(cli(base + " --bits-budget 3 --qat-config fold_bn=0") == 2);
  CHECK(cli.first_error_line().find("fold_bn=0") != std::string::npos);
  CHECK(cli(base + " --bits-budget 3 --bits-widths 8,4") == 2);
  CHECK(cli.first_error_line().find("--bits-budget: choose bits: a budget of") != std::string::npos);
}

TEST_CASE("train --init: QAT fine-tunes a float checkpoint, starting from its accuracy") {
  TempDir dir;
  TrainRun base = small_run(dir / "float.h5", "lenet5");
  base.config.epochs = 1;
  const double float_acc = run_training(base).back().test_acc;
  TrainRun tune = small_run(dir / "tuned.h5");
  tune.config.model = "lenet5";
  tune.config.init = dir / "float.h5";
  tune.config.epochs = 1;
  tune.config.lr = 0.01;
  tune.config.qat = describe(QatConfig{});
  const auto records = run_training(tune);
  TrainCheckpoint ck = load_train_checkpoint(tune.out);
  CHECK(ck.quantized);
  CHECK(ck.config.init == dir / "float.h5");
  MESSAGE("float ", float_acc * 100, " %, after one QAT epoch from it ", records[0].test_acc * 100, " %");
  CHECK(records[0].test_acc > float_acc - 0.02);
}

TEST_CASE("cli: quantization flags are checked and named") {
  TempDir dir;
  const Cli cli(dir);
  CHECK(cli("train --weight-bits 4") == 2);
  CHECK(cli.first_error_line().find("--weight-bits: needs --qat") != std::string::npos);
  CHECK(cli("train --qat --weight-bits 9") == 2);
  CHECK(cli.first_error_line().find("--weight-bits") != std::string::npos);
  CHECK(cli("train --qat --per-channel --per-tensor") == 2);
  CHECK(cli.first_error_line().find("--per-channel and --per-tensor") != std::string::npos);
  CHECK(cli("train --qat --observer median") == 2);
  CHECK(cli.first_error_line().find("--observer") != std::string::npos);
  CHECK(cli("train --qat --rounding sideways") == 2);
  CHECK(cli.first_error_line().find("--rounding") != std::string::npos);
  CHECK(cli("train --init " + (dir / "nothing.h5")) == 2);
  CHECK(cli.first_error_line().find("--init") != std::string::npos);
  CHECK(cli("train --update-bits 40") == 2);
  CHECK(cli.first_error_line().find("--update-bits") != std::string::npos);
  CHECK(cli("train --update-rounding up") == 2);
  CHECK(cli.first_error_line().find("--update-rounding") != std::string::npos);
  CHECK(cli("quantize --model " + (dir / "nothing.h5")) == 1);
  CHECK(cli.first_error_line().find(dir / "nothing.h5") != std::string::npos);
  CHECK(cli("quantize --model x.h5 --calib-batches 0") == 2);
  CHECK(cli.first_error_line().find("--calib-batches") != std::string::npos);
}

TEST_CASE("eval --save-logits: per-image outputs of float, quantized and int8 models, in HDF5 (h5py) and CSV") {
  TempDir dir;
  const Cli cli(dir);
  const TrainRun run = one_epoch_mlp(dir / "float.h5");
  const std::string data = " --data-dir " + mnist_dir() + " --limit 300";
  REQUIRE(cli("quantize -q --model " + run.out + " --calib-batches 2 --out " + (dir / "q.h5") + " --data-dir " +
              mnist_dir()) == 0);
  REQUIRE(cli("export -q --model " + (dir / "q.h5") + " --out " + (dir / "q.int8.h5")) == 0);
  for (const std::string& model : {run.out, dir / "q.h5", dir / "q.int8.h5"}) {
    CAPTURE(model);
    REQUIRE(cli("eval --json --model " + model + data + " --save-logits " + (dir / "out.h5")) == 0);
    const std::string json = cli.output();
    const size_t at = json.find("\"accuracy\": ");
    REQUIRE(at != std::string::npos);
    const double accuracy = std::stod(json.substr(at + 12));
    // h5py reads it; the predictions are the logits' argmax and score what eval printed.
    const std::string py = dir / "check.py";
    std::ofstream(py) << "import sys, h5py, numpy as np\n"
                         "f = h5py.File(sys.argv[1], 'r')\n"
                         "i, y, p, z = (f[k][()] for k in ('index', 'label', 'prediction', 'logits'))\n"
                         "assert z.shape == (300, 10) and z.dtype == np.float32, z.shape\n"
                         "assert (i == np.arange(300)).all() and (p == z.argmax(axis=1)).all()\n"
                         "print('%.6f' % (p == y).mean())\n";
    const std::string out = dir / "py.txt";
    REQUIRE(std::system(("/usr/bin/python3 " + py + " " + (dir / "out.h5") + " > " + out + " 2>&1").c_str()) == 0);
    CHECK(std::stod(slurp(out)) == doctest::Approx(accuracy).epsilon(1e-6));
    // The same rows as CSV.
    REQUIRE(cli("eval --model " + model + data + " --save-logits " + (dir / "out.csv")) == 0);
    std::ifstream csv(dir / "out.csv");
    std::string header, line;
    std::getline(csv, header);
    CHECK(header == "index,label,prediction,logit_0,logit_1,logit_2,logit_3,logit_4,logit_5,logit_6,logit_7,logit_8,"
                    "logit_9");
    int rows = 0;
    while (std::getline(csv, line)) ++rows;
    CHECK(rows == 300);
  }
  CHECK(cli("eval --model " + run.out + data + " --save-logits ''") == 2);
}

TEST_CASE("analyze: a float checkpoint by PTQ and a quantized one, as text, JSON (parsed) and PNG plots") {
  TempDir dir;
  const Cli cli(dir);
  const TrainRun run = one_epoch_mlp(dir / "float.h5");
  const std::string data = " --data-dir " + mnist_dir() + " --limit 400 --train-limit 500";
  REQUIRE(cli("analyze --model " + run.out + " --weight-bits 4 --act-bits 4 --sensitivity" + data) == 0);
  const std::string text = cli.output();
  for (const char* want : {"W4A4 (PTQ, minmax observer", "SQNR dB", "certified", "KL(float || quantized)",
                           "only it: acc", "description length (bits)"})
    CHECK(text.find(want) != std::string::npos);
  // JSON: every instrument, readable by Python's json module; the numbers hold together.
  REQUIRE(cli("analyze --json --model " + run.out + " --weight-bits 3 --act-bits 3 --sensitivity-bits 8,2 --plot " +
              (dir / "plots") + data) == 0);
  const std::string py = dir / "check.py";
  std::ofstream(py) << "import json, sys\n"
                       "a = json.load(open(sys.argv[1]))\n"
                       "assert a['grid'] == 'W3A3' and a['samples'] == 400, a['grid']\n"
                       "assert len(a['weights']) == 3 and len(a['activations']) == 3 and len(a['bound']) == 4\n"
                       "assert 0 <= a['certified'] <= a['kept'] <= 1\n"
                       "assert all(b['mean_measured'] <= b['mean_bound'] for b in a['bound'])\n"
                       "assert a['kl']['mean'] > 0 and a['description_bits']['train_examples'] == 500\n"
                       "# layer sensitivity at 8 and 2 bits (not at the analyzed W3A3): 4 units each\n"
                       "s = a['sensitivity']\n"
                       "assert [x['grid'] for x in s] == ['W8A8'] * 4 + ['W2A2'] * 4, s\n"
                       "drop = {g: max(a['float_accuracy'] - x['only_accuracy'] for x in s if x['grid'] == g)\n"
                       "        for g in ('W8A8', 'W2A2')}\n"
                       "assert drop['W8A8'] < 0.02 and drop['W2A2'] > drop['W8A8'], drop\n"
                       "print('ok')\n";
  const std::string out = dir / "py.txt";
  CHECK(std::system(("/usr/bin/python3 " + py + " " + cli.out + " > " + out + " 2>&1").c_str()) == 0);
  CHECK(slurp(out) == "ok\n");
  for (const char* png : {"bound.png", "kl.png", "sqnr.png", "sensitivity.png"}) {
    CAPTURE(png);
    const std::string bytes = slurp(dir / ("plots/" + std::string(png)));
    CHECK(bytes.size() > 1000);
    CHECK(bytes.compare(1, 3, "PNG") == 0);
  }
  // A quantized checkpoint brings its own grids; a flag that would change them is refused.
  REQUIRE(cli("quantize -q --model " + run.out + " --calib-batches 2 --out " + (dir / "q.h5") + " --data-dir " +
              mnist_dir()) == 0);
  CHECK(cli("analyze --model " + (dir / "q.h5") + data) == 0);
  CHECK(cli.output().find("quantized checkpoint against its float copy") != std::string::npos);
  CHECK(cli("analyze --model " + (dir / "q.h5") + " --weight-bits 4" + data) == 2);
  CHECK(cli.first_error_line().find("--weight-bits: ") != std::string::npos);
  CHECK(cli("analyze --model " + (dir / "q.h5") + " --sensitivity-bits 4" + data) == 2);
  CHECK(cli.first_error_line().find("--sensitivity-bits: ") != std::string::npos);
  CHECK(cli("analyze --model " + run.out + " --sensitivity-bits 8,9" + data) == 2);
  CHECK(cli.first_error_line().find("--sensitivity-bits: expected widths in 2..8, got 9") != std::string::npos);
}

TEST_CASE("plot: a training log, CSV or JSONL, becomes loss and accuracy PNGs, and a broken one is refused by line") {
  TempDir dir;
  const Cli cli(dir);
  const std::string train = "train -q --model mlp --epochs 2 --train-limit 1000 --test-limit 200 --val 100 --data-dir " +
                            mnist_dir() + " --out " + (dir / "m.h5");
  for (const std::string& log : {dir / "run.csv", dir / "run.jsonl"}) {
    CAPTURE(log);
    REQUIRE(cli(train + " --log " + log) == 0);
    REQUIRE(cli("plot " + log + " --out " + (dir / "plots")) == 0);
    CHECK(cli.output().find("(2 epochs)") != std::string::npos);
    for (const char* png : {"run-loss.png", "run-accuracy.png"})
      CHECK(slurp(dir / ("plots/" + std::string(png))).compare(1, 3, "PNG") == 0);
    // The data beside it: train, val and test series, two epochs each.
    const std::string dat = slurp(dir / "plots/run-accuracy.dat");
    CHECK(dat.find("# train") != std::string::npos);
    CHECK(dat.find("# val") != std::string::npos);
    CHECK(dat.find("# test") != std::string::npos);
  }
  std::ofstream(dir / "bad.csv") << "epoch,train_loss\n1,0.5\n2,zero\n";
  CHECK(cli("plot " + (dir / "bad.csv")) == 1);
  CHECK(cli.first_error_line().find("bad.csv: line 3: train_loss = 'zero' is not a number") != std::string::npos);
  CHECK(cli("plot " + (dir / "missing.csv")) == 1);
  CHECK(cli("plot") == 2);
}
