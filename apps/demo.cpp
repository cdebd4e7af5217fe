#include "apps/demo.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "apps/evaluate.h"
#include "apps/train_checkpoint.h"
#include "apps/trainer.h"
#include "core/check.h"
#include "core/variable.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/qat.h"

namespace crayon {

namespace fs = std::filesystem;

double Demo::number(const std::string& key) const {
  for (const auto& [k, v] : numbers)
    if (k == key) return v;
  throw std::out_of_range(str("demo ", name, ": no number '", key, "'"));
}

const std::vector<DemoInfo>& demos() {
  static const std::vector<DemoInfo> all{
      {"mdl", "1 MDL", "description length of one model: L1 and L2 priors vs the entropy of its 8/4/2-bit weights",
       demo_mdl, true},
      {"rounding", "2 rounding", "saturation vs rounding error of real activations by clip ratio, and each observer's pick",
       demo_rounding, true},
      {"relu6", "3 ReLU6", "the same network with ReLU and ReLU6: activation range, int8 step and int8 error", demo_relu6,
       false},
      {"bound", "4 error propagation", "sum |w||err| against the actual change, small vs large weights, certified share",
       demo_bound, false},
      {"kl", "5 KL", "exact KL vs 1/2 Var of the logit change for a shift, growing noise and real quantization", demo_kl,
       true},
      {"ste", "6 STE", "round() has no gradient: a model that learns only through the straight-through estimator",
       demo_ste, false},
      {"stochastic", "7 stochastic rounding", "unbiased rounding, and low-precision SGD that stalls with nearest",
       demo_stochastic, false},
  };
  return all;
}

const DemoInfo& find_demo(const std::string& name) {
  std::string list;
  for (const DemoInfo& d : demos()) {
    if (name == d.name) return d;
    list += list.empty() ? d.name : str(", ", d.name);
  }
  throw std::invalid_argument(str("expected a demo name (", list, "), got '", name, "'"));
}


namespace {

// Display width of UTF-8 text: code points, not bytes (the tables hold Δ, ½, ‖).
size_t width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string format_table(const DemoTable& t) {
  std::vector<size_t> w(t.header.size(), 0);
  for (size_t j = 0; j < t.header.size(); ++j) w[j] = width(t.header[j]);
  for (const auto& row : t.rows)
    for (size_t j = 0; j < row.size() && j < w.size(); ++j) w[j] = std::max(w[j], width(row[j]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t j = 0; j < cells.size() && j < w.size(); ++j) {
      const std::string pad(w[j] - width(cells[j]), ' ');
      // The first column (a label) reads left-aligned, numbers right-aligned.
      out += j == 0 ? cells[j] + pad : "  " + pad + cells[j];
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out + "\n";
  };
  std::string out = t.title.empty() ? "" : t.title + "\n";
  out += line(t.header);
  for (const auto& row : t.rows) out += line(row);
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// MNIST, read once per run.
const Dataset& mnist(const DemoOptions& o, bool train) {
  static std::map<std::pair<std::string, bool>, Dataset> cache;
  auto [it, fresh] = cache.try_emplace({o.data_dir, train});
  if (fresh) {
    try {
      it->second = load_dataset("mnist", train, o.data_dir);
    } catch (...) {
      cache.erase(it);
      throw;
    }
  }
  return it->second;
}

}  // namespace

std::string format_demo(const Demo& d) {
  std::string out;
  for (size_t i = 0; i < d.tables.size(); ++i) {
    if (i) out += "\n";
    out += format_table(d.tables[i]);
  }
  if (!d.notes.empty()) out += "\n";
  for (const std::string& n : d.notes) out += n + "\n";
  return out;
}

std::string demo_json(const Demo& d) {
  std::string out = str("{\"demo\": \"", json_escape(d.name), "\", \"numbers\": {");
  for (size_t i = 0; i < d.numbers.size(); ++i) {
    char b[64] = "null";  // JSON has no NaN or infinity
    if (std::isfinite(d.numbers[i].second)) std::snprintf(b, sizeof b, "%.9g", d.numbers[i].second);
    out += str(i ? ", " : "", "\"", json_escape(d.numbers[i].first), "\": ", b);
  }
  return out + "}}";
}

DemoBatch mnist_batch(const DemoOptions& o, bool train, int64_t n) {
  const Dataset& all = mnist(o, train);
  const Dataset part = all.slice(0, std::min(n, all.size()));
  DataLoader loader(part, {.batch_size = part.size(), .shuffle = false, .norm = mnist_stats()});
  Batch b;
  loader.next(b);
  return {b.images, b.labels};
}

Tensor run_layers(Sequential& model, const Tensor& x, size_t layers) {
  NoGradGuard no_grad;
  model.eval();
  Variable v(x);
  for (size_t i = 0; i < layers && i < model.size(); ++i) v = model[i].forward(v);
  return v.value();
}

std::shared_ptr<Sequential> demo_ptq(const DemoOptions& o, const DemoNet& net, const QatConfig& q) {
  auto copy = float_copy(*net.model, net.input_shape);
  const Dataset& train = mnist(o, true);
  const Dataset part = train.slice(0, std::min<int64_t>(1024, train.size()));
  DataLoader loader(part, {.batch_size = 128, .shuffle = true, .seed = o.seed, .norm = mnist_stats()});
  calibrate(*copy, loader.images(), 8, q);
  return copy;
}

double demo_accuracy(const DemoOptions& o, Sequential& model) {
  const Dataset& test = mnist(o, false);
  return evaluate(model, test.slice(0, std::min(kDemoTestImages, test.size())), mnist_stats()).accuracy;
}

DemoNet demo_net(const DemoOptions& o, const std::string& spec, int64_t images, int64_t epochs,
                 const std::function<void(TrainConfig&)>& adjust) {
  DemoNet net;
  if (spec.empty() && !o.model.empty()) {
    TrainCheckpoint ck = load_train_checkpoint(o.model);
    if (is_quantized(*ck.model))
      throw std::runtime_error(str(o.model, ": expected a float checkpoint, found a quantized one (its float copy "
                                   "is what the demos quantize: train without --qat)"));
    if (ck.config.dataset != "mnist")
      throw std::runtime_error(str(o.model, ": expected a model trained on mnist, found one trained on ",
                                   ck.config.dataset));
    net.model = ck.model;
    net.input_shape = ck.input_shape;
    net.config = ck.config;
    net.spec = ck.model->spec();
  } else {
    TrainRun run;
    run.config.dataset = "mnist";
    run.config.data_dir = o.data_dir;
    run.config.model = spec.empty() ? "mlp" : spec;
    run.config.epochs = epochs;
    run.config.lr = 0.05;
    run.config.lr_schedule = "cosine";
    run.config.seed = int64_t(o.seed);
    run.config.train_limit = images;
    run.config.test_limit = kDemoTestImages;
    if (adjust) adjust(run.config);
    run.quiet = true;
    run.threads = o.threads;
    const fs::path dir = fs::temp_directory_path() / str("crayon-demo-", ::getpid());
    fs::create_directories(dir);
    run.out = (dir / "net.h5").string();
    try {
      run_training(run);
      TrainCheckpoint ck = load_train_checkpoint(run.out);
      net.model = ck.model;
      net.input_shape = ck.input_shape;
      net.config = ck.config;
    } catch (...) {
      fs::remove_all(dir);
      throw;
    }
    fs::remove_all(dir);
    net.spec = run.config.model;  // as given: a preset's name or a spec
  }
  net.test_accuracy = demo_accuracy(o, *net.model);
  return net;
}

}  // namespace crayon
