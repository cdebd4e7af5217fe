#pragma once
// `crayon demo NAME`: one runnable demonstration per idea of DESIGN.md, each a few seconds on
// two cores, every number computed on the spot (seeded; real MNIST wherever a trained network
// is needed, trained on the fly unless --model names one). A demo returns tables to print,
// the key numbers it stands on (what --json prints and what the tests assert) and plots.
// Each demo lives in its own demo_NAME.cpp; the docs chapters quote their output.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apps/cli.h"
#include "apps/plot.h"
#include "apps/train_config.h"
#include "core/tensor.h"
#include "nn/sequential.h"
#include "quant/qat_config.h"

namespace crayon {

struct DemoTable {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct Demo {
  std::string name;
  std::vector<DemoTable> tables;
  std::vector<std::string> notes;                     // printed after the tables: what they show
  std::vector<std::pair<std::string, double>> numbers;  // the claims' numbers, by key
  std::vector<std::pair<std::string, Plot>> plots;      // file name (no extension) -> plot
  double number(const std::string& key) const;        // throws std::out_of_range naming the key
};

struct DemoOptions {
  std::string model;     // a float checkpoint to use instead of training one ("" : train)
  std::string data_dir;  // MNIST's folder ("" : the default location)
  uint64_t seed = 1;
  int threads = 2;
};

struct DemoInfo {
  const char* name;
  const char* idea;     // "1 MDL", ...
  const char* summary;  // one line for `crayon demo`
  Demo (*run)(const DemoOptions&);
  bool uses_model;      // takes --model (the others train the networks they compare)
};
const std::vector<DemoInfo>& demos();
const DemoInfo& find_demo(const std::string& name);  // throws std::invalid_argument listing them

// Text (aligned tables, then the notes) and JSON ({"demo": ..., "numbers": {...}}).
std::string format_demo(const Demo& d);
std::string demo_json(const Demo& d);

// What the demos share (and fixed() / sci() of apps/cli.h).
// A small network trained on the first `images` MNIST training images for `epochs` epochs
// (SGD, momentum 0.9, lr 0.05, cosine; `adjust` may change any setting), or the --model
// checkpoint when one is given and `spec` is empty. Trained in a temporary folder that is
// removed afterwards.
struct DemoNet {
  std::shared_ptr<Sequential> model;
  Shape input_shape;
  std::string spec;
  TrainConfig config;        // as trained (update_frac_bits resolved)
  double test_accuracy = 0;  // on the first `kDemoTestImages` test images
};
inline constexpr int64_t kDemoTestImages = 2000;
DemoNet demo_net(const DemoOptions& o, const std::string& spec = "", int64_t images = 10000, int64_t epochs = 1,
                 const std::function<void(TrainConfig&)>& adjust = {});

// A PTQ copy of a demo network: prepare_qat(q) on a copy, calibrated on 8 batches of 128
// training images; and a model's accuracy on the first kDemoTestImages test images.
std::shared_ptr<Sequential> demo_ptq(const DemoOptions& o, const DemoNet& net, const QatConfig& q);
double demo_accuracy(const DemoOptions& o, Sequential& model);

// The first n MNIST test (or training) images and labels, normalized as training saw them.
struct DemoBatch {
  Tensor images, labels;
};
DemoBatch mnist_batch(const DemoOptions& o, bool train, int64_t n);

// x through the first `layers` layers of model (eval mode, no gradient).
Tensor run_layers(Sequential& model, const Tensor& x, size_t layers);

Demo demo_mdl(const DemoOptions& o);
Demo demo_rounding(const DemoOptions& o);
Demo demo_relu6(const DemoOptions& o);
Demo demo_bound(const DemoOptions& o);
Demo demo_kl(const DemoOptions& o);
Demo demo_ste(const DemoOptions& o);
Demo demo_stochastic(const DemoOptions& o);

}  // namespace crayon
