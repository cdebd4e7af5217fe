// int8 export and the integer engine end to end on real MNIST: a lenet5 trained briefly in
// float, quantized (PTQ), exported; the engine must reproduce the fake-quant model (within
// 1 LSB per activation, same predictions), its fast kernels the reference ones bit for bit,
// a numpy/h5py reading of the file crayon's engine bit for bit; and malformed files must be
// refused with the file and the object named.
#include <doctest/doctest.h>
#include <hdf5.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/check.h"
#include "core/h5io.h"
#include "core/limits.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "nn/spec.h"
#include "optim/sgd.h"
#include "quant/fake_quant.h"
#include "quant/int8_export.h"
#include "quant/prediction_kl.h"
#include "quant/qat.h"
#include "tests/support/temp_dir.h"

using namespace crayon;
namespace fs = std::filesystem;

namespace {

std::string mnist_dir() { return std::string(CRAYON_SOURCE_DIR) + "/data/mnist"; }

// lenet5 trained for one epoch on 2000 MNIST images, then 8-bit PTQ: one model for every
// test in this file (built once; the tests only read it).
struct Fixture {
  std::shared_ptr<Sequential> model;
  QatConfig config;
  Dataset test;
  Int8Model int8;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    const ChannelStats norm = mnist_stats();
    const Dataset train = load_dataset("mnist", true, mnist_dir()).slice(0, 2000);
    f.test = load_dataset("mnist", false, mnist_dir()).slice(0, 1000);
    Rng rng(7);
    f.model = build_model("lenet5", {1, 28, 28}, rng);
    SGD opt(f.model->parameters(), {.lr = 0.05f, .momentum = 0.9f});
    DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 7, .norm = norm});
    Batch b;
    while (loader.next(b)) {
      opt.zero_grad();
      cross_entropy((*f.model)(Variable(b.images)), b.labels).backward();
      opt.step();
    }
    loader.start_epoch(1);
    calibrate(*f.model, loader.images(), 8, f.config);
    f.model->eval();
    f.int8 = export_int8(*f.model, {1, 28, 28}, norm);
    f.int8.dataset = "mnist";
    return f;
  }();
  return f;
}

// The fake-quant model's logits and the codes of every FakeQuant output after the input,
// in forward order, for images [0, n) of `test`.
struct FakeQuantRun {
  Tensor logits;
  std::vector<Tensor> codes;  // int32, one per activation grid
};

FakeQuantRun run_fake_quant(Sequential& model, const Dataset& test, int64_t n) {
  DataLoader loader(test, {.batch_size = n, .shuffle = false, .norm = mnist_stats()});
  Batch b;
  loader.next(b);
  NoGradGuard ng;
  model.eval();
  FakeQuantRun out;
  Variable x(b.images);
  bool first = true;
  for (const auto& [name, layer] : model.children()) {
    x = (*layer)(x);
    if (const auto* fq = dynamic_cast<const FakeQuant*>(layer.get())) {
      if (!first) {
        QuantSpec s = fq->quant_spec();
        s.rounding = Rounding::nearest_even;
        out.codes.push_back(quantize(x.value(), fq->qparams(), s));  // exact: x is on the grid
      }
      first = false;
    }
  }
  out.logits = x.value();
  return out;
}
FakeQuantRun run_fake_quant(const Fixture& f, int64_t n) { return run_fake_quant(*f.model, f.test, n); }

// The engine's reference run of the same n images beside the fake-quant codes: every layer
// that writes an activation grid (conv2d / linear with an output grid, avgpool2d) in order.
struct CodeMatch {
  int max_diff = 0;
  int64_t exact = 0, total = 0, off_grid = 0;  // off_grid: codes outside [act_min, act_max]
  size_t layers = 0;
  std::string per_layer;  // "layer: exact/total max" for each
  Tensor logits;
};

CodeMatch match_codes(const Int8Model& m, const Dataset& test, int64_t n, const FakeQuantRun& fq) {
  std::vector<Tensor> trace;
  CodeMatch r;
  r.logits = m.forward(m.quantize_images(test.image(0), n), /*reference=*/true, &trace);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Int8Layer& l = m.layers[i];
    const bool gridded = ((l.op == Int8Layer::Op::conv2d || l.op == Int8Layer::Op::linear) && !l.logits) ||
                         l.op == Int8Layer::Op::avgpool2d;
    if (!gridded) continue;
    REQUIRE(r.layers < fq.codes.size());
    const Tensor& want = fq.codes[r.layers++];
    const Tensor& got = trace[i];
    REQUIRE(got.numel() == want.numel());
    int64_t exact = 0;
    int max_diff = 0;
    for (int64_t j = 0; j < got.numel(); ++j) {
      const int g = got.data_as<int8_t>()[j];
      const int d = std::abs(g - want.data_as<int32_t>()[j]);
      max_diff = std::max(max_diff, d);
      exact += d == 0;
      r.off_grid += g < l.act_min || g > l.act_max;
    }
    r.max_diff = std::max(r.max_diff, max_diff);
    r.exact += exact;
    r.total += got.numel();
    r.per_layer += str(" ", int8_op_name(l.op), " ", exact, "/", got.numel(), " max ", max_diff, ";");
  }
  CHECK(r.layers == fq.codes.size());
  return r;
}

// Each layer of the engine that writes a grid against the fake-quant model's stretch up to
// the same grid, fed with the engine's own previous grid (dequantized): the rounding of each
// layer alone, without the differences earlier layers pass on. The largest difference in LSB.
int max_layer_diff(Sequential& model, const Int8Model& m, const Dataset& test, int64_t n) {
  std::vector<size_t> fq_at;  // positions of the FakeQuant modules
  for (size_t i = 0; i < model.size(); ++i)
    if (dynamic_cast<const FakeQuant*>(&model[i])) fq_at.push_back(i);
  std::vector<Tensor> trace;
  Tensor codes = m.quantize_images(test.image(0), n);
  m.forward(codes, /*reference=*/true, &trace);
  NoGradGuard ng;
  model.eval();
  float scale = m.input_scale;
  int32_t zero_point = m.input_zero_point;
  size_t k = 1;
  int worst = 0;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const Int8Layer& l = m.layers[i];
    if (!(((l.op == Int8Layer::Op::conv2d || l.op == Int8Layer::Op::linear) && !l.logits) ||
          l.op == Int8Layer::Op::avgpool2d))
      continue;
    REQUIRE(k < fq_at.size());
    Tensor x = Tensor::empty(codes.shape());
    for (int64_t j = 0; j < codes.numel(); ++j) x.data()[j] = float(codes.data_as<int8_t>()[j] - zero_point) * scale;
    Variable h(x);
    for (size_t p = fq_at[k - 1] + 1; p <= fq_at[k]; ++p) h = model[p](h);
    const auto& fq = dynamic_cast<const FakeQuant&>(model[fq_at[k]]);
    QuantSpec s = fq.quant_spec();
    s.rounding = Rounding::nearest_even;
    const Tensor want = quantize(h.value(), fq.qparams(), s);
    const Tensor& got = trace[i];
    REQUIRE(got.numel() == want.numel());
    int diff = 0;
    for (int64_t j = 0; j < got.numel(); ++j)
      diff = std::max(diff, std::abs(int(got.data_as<int8_t>()[j]) - want.data_as<int32_t>()[j]));
    INFO("layer ", i, " (", int8_op_name(l.op), ")");
    worst = std::max(worst, diff);
    codes = got;
    scale = l.out_scale;
    zero_point = l.out_zero_point;
    ++k;
  }
  return worst;
}

// tests/quant/int8_reference.py, numpy and h5py alone, runs the file on MNIST test images
// [begin, begin + n) and must give the engine's raw outputs and logits bit for bit.
bool numpy_agrees(const std::string& model_path, int64_t begin, const Tensor& raw, const Tensor& logits) {
  const std::string engine = model_path + ".engine.h5";
  {
    H5Writer w(engine);
    w.set_attr("/", "begin", begin);
    w.set_attr("/", "count", raw.size(0));
    w.write_tensor("raw", raw);
    w.write_tensor("logits", logits);
    w.commit();
  }
  const std::string out = model_path + ".python.txt";
  const std::string cmd = "/usr/bin/python3 " + std::string(CRAYON_SOURCE_DIR) + "/tests/quant/int8_reference.py " +
                          model_path + " " + engine + " " + mnist_dir() + " > " + out + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream said(out);
  const std::string text((std::istreambuf_iterator<char>(said)), {});
  INFO(text, "(needs Debian's python3-numpy and python3-h5py: scripts/install-deps.sh installs them)");
  CHECK(status == 0);
  return status == 0 && text.find("agree bit for bit") != std::string::npos;
}

}  // namespace

TEST_CASE("int8 engine: every activation within 1 LSB of the fake-quant model and the same predictions") {
  const Fixture& f = fixture();
  const int64_t n = 500;
  const FakeQuantRun fq = run_fake_quant(f, n);
  const CodeMatch r = match_codes(f.int8, f.test, n, fq);
  CHECK(r.max_diff <= 1);
  MESSAGE(r.exact, " of ", r.total, " activations equal to fake-quant's, the rest 1 LSB apart");
  CHECK(double(r.exact) / double(r.total) > 0.99);

  const PredictionShift s = prediction_shift(fq.logits, r.logits);
  MESSAGE("top-1 agreement ", s.agreement * 100, " %, mean KL ", s.mean_kl);
  CHECK(s.agreement >= 0.99);
  CHECK(s.mean_kl < 1e-3);
}

TEST_CASE("int8 engine: at 8, 4, 3 and 2 bits every activation stays on its grid, within 1 LSB of fake-quant") {
  // conv, relu6, avgpool, conv, relu, maxpool, linear, relu, linear: every op the engine has,
  // trained briefly in float on real MNIST, then quantized at each width.
  const std::string spec =
      "conv(6,3,pad=1)-relu6-avgpool(2)-conv(8,3,pad=1)-relu-maxpool(2)-flatten-linear(32)-relu-linear(10)";
  const Dataset train = load_dataset("mnist", true, mnist_dir()).slice(0, 1024);
  const Dataset test = load_dataset("mnist", false, mnist_dir()).slice(0, 300);
  Rng rng(11);
  auto trained = build_model(spec, {1, 28, 28}, rng);
  {
    SGD opt(trained->parameters(), {.lr = 0.05f, .momentum = 0.9f});
    DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 3, .norm = mnist_stats()});
    Batch b;
    while (loader.next(b)) {
      opt.zero_grad();
      cross_entropy((*trained)(Variable(b.images)), b.labels).backward();
      opt.step();
    }
  }
  for (int bits : {8, 4, 3, 2}) {
    CAPTURE(bits);
    Rng unused(0);
    auto model = build_model(spec, {1, 28, 28}, unused);
    const auto src = trained->parameters();
    auto dst = model->parameters();
    for (size_t i = 0; i < src.size(); ++i) dst[i].value().copy_from(src[i].value());
    QatConfig q;
    q.weight.bits = q.act.bits = bits;
    DataLoader loader(train, {.batch_size = 128, .shuffle = false, .norm = mnist_stats()});
    calibrate(*model, loader.images(), 8, q);
    const Int8Model m = export_int8(*model, {1, 28, 28}, mnist_stats());
    const FakeQuantRun fq = run_fake_quant(*model, test, test.size());
    const CodeMatch r = match_codes(m, test, test.size(), fq);
    const int layer_diff = max_layer_diff(*model, m, test, test.size());
    const PredictionShift s = prediction_shift(fq.logits, r.logits);
    MESSAGE(bits, " bits: end to end ", r.exact, " of ", r.total, " activations equal (", r.per_layer,
            " ), largest difference ", r.max_diff, " LSB, ", r.off_grid, " off the grid; each layer alone within ",
            layer_diff, " LSB; top-1 agreement ", s.agreement * 100, " %");
    CHECK(r.layers == 4);  // conv1 (relu6), avgpool, conv2 (relu), linear (relu)
    CHECK(r.off_grid == 0);
    CHECK(layer_diff <= 1);
    // Both round half to even, but the engine's bias is on the int32 grid and fake-quant
    // computes in float32: next to a rounding boundary they can part by 1 LSB, and a
    // difference passed on can grow by a layer; so end to end, a bound of 2 LSB.
    CHECK(r.max_diff <= 2);
    if (bits == 8) CHECK(s.agreement >= 0.99);
  }
}

TEST_CASE("int8 engine: the fast kernels give the reference kernels' outputs bit for bit") {
  const Fixture& f = fixture();
  for (int64_t n : {1, 7, 256}) {
    CAPTURE(n);
    const Tensor q = f.int8.quantize_images(f.test.image(3), n);
    const Tensor fast = f.int8.forward_raw(q), ref = f.int8.forward_raw(q, true);
    REQUIRE(fast.shape() == ref.shape());
    CHECK(std::memcmp(fast.data_as<int32_t>(), ref.data_as<int32_t>(), fast.nbytes()) == 0);
  }
}

TEST_CASE("int8 export: the file reloads to the same engine, and numpy + h5py run it bit for bit") {
  const Fixture& f = fixture();
  TempDir dir;
  const std::string path = dir / "lenet5.int8.h5";
  save_int8(f.int8, path);
  CHECK(is_int8_file(path));
  const Int8Model back = load_int8(path);
  const int64_t begin = 100, n = 200;
  const Tensor q = back.quantize_images(f.test.image(begin), n);
  const Tensor raw = back.forward_raw(q), logits = back.forward(q);
  CHECK(std::memcmp(raw.data_as<int32_t>(), f.int8.forward_raw(q).data_as<int32_t>(), raw.nbytes()) == 0);

  // The file is small: int8 weights are a quarter of float's, plus scales and metadata.
  int64_t float_bytes = 0;
  for (const auto& [name, v] : f.model->named_parameters()) float_bytes += 4 * v.numel();
  const double ratio = double(fs::file_size(path)) / double(float_bytes);
  MESSAGE("int8 file ", fs::file_size(path), " bytes = ", ratio, " x the float weights");
  CHECK(ratio <= 0.3);

  CHECK(numpy_agrees(path, begin, raw, logits));
}

TEST_CASE("int8 file: numpy + h5py run mlp, padded avg/max pools and a 4-bit model bit for bit as well") {
  const Dataset train = load_dataset("mnist", true, mnist_dir()).slice(0, 512);
  const Dataset test = load_dataset("mnist", false, mnist_dir());
  const std::string pools =
      "conv(4,3,pad=1)-relu-avgpool(3,stride=2,pad=1)-conv(8,3)-relu6-maxpool(3,stride=2,pad=1)-flatten-linear(10)";
  TempDir dir;
  int k = 0;
  for (const auto& [spec, bits] : {std::pair{std::string("mlp"), 8}, std::pair{pools, 8}, std::pair{pools, 4},
                                   std::pair{std::string("lenet5"), 3}}) {
    CAPTURE(spec);
    CAPTURE(bits);
    Rng rng(uint64_t(5 + k));
    auto model = build_model(spec, {1, 28, 28}, rng);
    QatConfig q;
    q.weight.bits = q.act.bits = bits;
    DataLoader loader(train, {.batch_size = 128, .shuffle = false, .norm = mnist_stats()});
    calibrate(*model, loader.images(), 4, q);
    const Int8Model m = export_int8(*model, {1, 28, 28}, mnist_stats());
    const std::string path = dir / str("model", k++, ".int8.h5");
    save_int8(m, path);
    const int64_t begin = 37, n = 150;
    const Tensor qx = m.quantize_images(test.image(begin), n);
    CHECK(numpy_agrees(path, begin, m.forward_raw(qx), m.forward(qx)));
  }
}

TEST_CASE("int8 file: truncated, mistyped, reshaped, incomplete and linked-out files are refused by name") {
  const Fixture& f = fixture();
  TempDir dir;
  const std::string good = dir / "good.h5";
  save_int8(f.int8, good);

  auto refused = [&](const std::string& path, const std::string& expect) {
    try {
      load_int8(path);
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(path) != std::string::npos);
      CHECK(msg.find(expect) != std::string::npos);
      return true;
    }
    return false;
  };
  {
    const std::string bytes = [&] {
      std::ifstream in(good, std::ios::binary);
      return std::string((std::istreambuf_iterator<char>(in)), {});
    }();
    const std::string truncated = dir / "truncated.h5";
    std::ofstream(truncated, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() * 2 / 3));
    CHECK(refused(truncated, ""));
  }
  // Variants written through the writer: a float weight, a short bias, grids that do not
  // chain, a weight of -128, an empty clamp.
  auto variant = [&](const std::string& name, auto mutate) {
    Int8Model m = f.int8;
    mutate(m);
    const std::string p = dir / name;
    save_int8(m, p);
    return p;
  };
  CHECK(refused(variant("float_weight.h5", [](Int8Model& m) { m.layers[0].weight = Tensor::zeros({6, 1, 5, 5}); }),
                "layers/000/weight"));
  CHECK(refused(variant("short_bias.h5", [](Int8Model& m) { m.layers[0].bias = Tensor::zeros({5}, DType::i32); }),
                "layers/000/bias"));
  CHECK(refused(variant("scale.h5", [](Int8Model& m) { m.layers[0].out_scale *= 2; }), "layers/002"));
  CHECK(refused(variant("minus128.h5", [](Int8Model& m) {
                  m.layers[0].weight = m.layers[0].weight.clone();  // not the fixture's storage
                  m.layers[0].weight.data_as<int8_t>()[0] = -128;
                }),
                "layers/000"));
  CHECK(refused(variant("clamp.h5", [](Int8Model& m) { m.layers[0].act_min = 100, m.layers[0].act_max = 50; }),
                "layers/000"));

  // With the raw HDF5 API: a dataset removed, a dataset replaced by an external link, a
  // dataset claiming huge dims.
  auto edit = [&](const std::string& name, auto change) {
    const std::string p = dir / name;
    fs::copy_file(good, p);
    const hid_t file = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(file >= 0);
    change(file);
    H5Fclose(file);
    return p;
  };
  CHECK(refused(edit("missing.h5", [](hid_t file) { H5Ldelete(file, "layers/002/weight", H5P_DEFAULT); }),
                "layers/002/weight"));
  CHECK(refused(edit("external.h5",
                     [](hid_t file) {
                       H5Ldelete(file, "layers/002/bias", H5P_DEFAULT);
                       H5Lcreate_external("/etc/other.h5", "/bias", file, "layers/002/bias", H5P_DEFAULT,
                                          H5P_DEFAULT);
                     }),
                "layers/002/bias"));
  CHECK(refused(edit("huge.h5",
                     [](hid_t file) {
                       H5Ldelete(file, "input/lut", H5P_DEFAULT);
                       const hsize_t dims[2] = {hsize_t(1) << 40, hsize_t(1) << 20};
                       const hsize_t chunk[2] = {1, 256};
                       const hid_t space = H5Screate_simple(2, dims, nullptr);
                       const hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
                       H5Pset_chunk(dcpl, 2, chunk);
                       const hid_t d = H5Dcreate2(file, "input/lut", H5T_STD_I8LE, space, H5P_DEFAULT, dcpl,
                                                  H5P_DEFAULT);
                       H5Dclose(d);
                       H5Pclose(dcpl);
                       H5Sclose(space);
                     }),
                "input/lut"));
  // And a checkpoint or garbage is not mistaken for an int8 model.
  const std::string garbage = dir / "garbage.h5";
  std::ofstream(garbage) << "not hdf5";
  CHECK_FALSE(is_int8_file(garbage));
  CHECK(refused(garbage, ""));
}

TEST_CASE("int8 file: absurd scales and statistics, a bias that overflows and outputs beyond the limits are refused by name") {
  const Fixture& f = fixture();
  TempDir dir;
  auto refused = [&](const std::string& name, auto mutate, const std::string& expect) {
    CAPTURE(name);
    Int8Model m = f.int8;
    mutate(m);
    const std::string p = dir / name;
    save_int8(m, p);
    try {
      load_int8(p);
      FAIL("load_int8 accepted ", name);
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find(p) != std::string::npos);
      CHECK(msg.find(expect) != std::string::npos);
    }
  };
  refused("tiny_weight_scale.h5", [](Int8Model& m) { m.layers[0].weight_scale[2] = 1e-30f; },
          "layers/000 (conv2d): expected weight scales in [1e-12, 1e+12], found 1e-30");
  refused("huge_out_scale.h5", [](Int8Model& m) { m.layers[0].out_scale = 1e30f; }, "output_scale");
  refused("std_zero.h5", [](Int8Model& m) { m.input_std[0] = 0; }, "std in [1e-6, 1e6], found mean 0.1307, std 0");
  refused("std_nan.h5", [](Int8Model& m) { m.input_std[0] = std::nanf(""); }, "std nan");
  refused("mean_inf.h5", [](Int8Model& m) { m.input_mean[0] = INFINITY; }, "mean inf");
  // bias - z_in * rowsum must fit in int32 for every channel: push each past the end its
  // row sum points away from.
  refused("bias.h5", [](Int8Model& m) {
    Int8Layer& l = m.layers[0];
    l.bias = l.bias.clone();  // a copied Int8Model shares its tensors' storage
    const int64_t per = l.weight.numel() / l.weight.size(0);
    for (int64_t o = 0; o < l.weight.size(0); ++o) {
      int64_t rowsum = 0;
      for (int64_t k = 0; k < per; ++k) rowsum += l.weight.data_as<int8_t>()[o * per + k];
      const int64_t zr = int64_t(l.in_zero_point) * rowsum;
      l.bias.data_as<int32_t>()[o] = zr < 0 ? INT32_MAX : INT32_MIN;
    }
    REQUIRE(l.in_zero_point != 0);
  }, "does not fit in int32");
  // An input of 65536 x 65536 pixels: 4 GiB per image before the first layer.
  refused("input.h5", [](Int8Model& m) { m.input_shape = {1, 65536, 65536}; }, "CRAYON_MAX_ACTIVATION_BYTES");
  // Padding that makes the first conv's int32 output 6 x 8216 x 8216 x 4 bytes = 1.6 GB: within
  // the default limit, refused under a lower one, which is a setting.
  const Limits saved = limits();
  Limits low = saved;
  low.activation_bytes = int64_t(1) << 30;
  set_limits(low);
  refused("padding.h5", [](Int8Model& m) { m.layers[0].conv.pad_h = m.layers[0].conv.pad_w = 4096; },
          "layers/000 (conv2d): an output of (6, 8216, 8216) per image exceeds the activation limit of 1073741824 bytes");
  set_limits(saved);
  // And the model as exported loads, its largest batch within the limit.
  const std::string ok = dir / "ok.h5";
  save_int8(f.int8, ok);
  const Int8Model m = load_int8(ok);
  CHECK(m.largest_activation == 6 * 28 * 28 * 4);  // conv1's int32 accumulators
  CHECK(m.largest_batch() == limits().activation_bytes / (6 * 28 * 28 * 4));
}

TEST_CASE("int8 export: what has no integer form is refused naming the layer") {
  Rng rng(1);
  auto model = build_model("conv(4,3)-bn-relu-flatten-linear(10)", {1, 8, 8}, rng);
  QatConfig keep_bn;
  keep_bn.fold_bn = false;
  prepare_qat(*model, keep_bn);
  calibrate(*model, [n = 0](Tensor& x) mutable {
    x = Tensor::full({2, 1, 8, 8}, 0.5f);
    return n++ < 1;
  }, 1, keep_bn);
  const ChannelStats norm = mnist_stats();
  try {
    export_int8(*model, {1, 8, 8}, norm);
    FAIL("an unfolded batch norm should not export");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("batch norm after it was not folded") != std::string::npos);
  }
  auto plain = build_model("flatten-linear(10)", {1, 8, 8}, rng);
  CHECK_THROWS_WITH_AS(export_int8(*plain, {1, 8, 8}, norm),
                       doctest::Contains("no input FakeQuant"), std::invalid_argument);
}

TEST_CASE("int8 export: each weight's grid comes from its own fake-quant, and a weight without one is refused") {
  Rng rng(2);
  auto model = build_model("conv(4,3)-relu-flatten-linear(10)", {1, 8, 8}, rng);
  const QatConfig q;  // 8-bit weights
  prepare_qat(*model, q);
  // The conv's weight re-parametrized on a 4-bit grid after preparation: export must store
  // what that parametrization computes ([-7, 7]), not the 8 bits the config says.
  Module& conv = (*model)[1];
  QuantSpec four = q.weight;
  four.bits = 4;
  conv.set_parametrization("weight", weight_fake_quant(conv, four, q.ste, 5));
  Rng data(3);
  calibrate(*model, [&, n = 0](Tensor& x) mutable {
    x = Tensor::randn({4, 1, 8, 8}, data);
    return n++ < 2;
  }, 2, q);
  model->eval();
  const Int8Model m = export_int8(*model, {1, 8, 8}, ChannelStats{});
  const Tensor& w = m.layers[0].weight;
  int lo = 0, hi = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    lo = std::min<int>(lo, w.data_as<int8_t>()[i]);
    hi = std::max<int>(hi, w.data_as<int8_t>()[i]);
  }
  CHECK(lo == -7);
  CHECK(hi == 7);
  // The linear kept its 8-bit grid.
  int linear_max = 0;
  for (int64_t i = 0; i < m.layers[2].weight.numel(); ++i)
    linear_max = std::max<int>(linear_max, std::abs(m.layers[2].weight.data_as<int8_t>()[i]));
  CHECK(linear_max == 127);

  // A parametrization that is not crayon's weight fake-quant: export cannot know its grid.
  conv.set_parametrization("weight", [](const Variable& v) { return v; });
  CHECK_THROWS_WITH_AS(export_int8(*model, {1, 8, 8}, ChannelStats{}), doctest::Contains("has no fake-quant"),
                       std::invalid_argument);
}
