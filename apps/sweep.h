#pragma once
// crayon sweep: does a regularizer make a model robust to quantization, and at which bit
// width does it break? The grid
//     model x regularizer (none, L1, L2) x strength x seed      -> one float model each
//   x bits x scope (weights and activations / weights only) x method (PTQ, QAT fine-tune)
//   x rounding (QAT only: nearest, stochastic)                 -> one cell each
// Every float model is trained once (resumed if interrupted) and shared by its cells; each
// cell's row is appended to DIR/results.csv and DIR/results.jsonl the moment it finishes,
// and a restarted sweep skips every cell already there, so nothing finished is lost or
// computed twice. Cells run in `jobs` processes, each claiming the next cell free.
#include <cstdint>
#include <string>
#include <vector>

namespace crayon {

struct SweepOptions {
  std::string dir = "sweep";
  std::string dataset = "mnist", data_dir;
  std::vector<std::string> models{"lenet5", "mlp"};
  std::vector<std::string> regs{"none", "l1", "l2"};
  std::vector<double> l1{1e-5, 3e-5, 1e-4}, l2{1e-4, 3e-4, 1e-3};
  std::vector<double> kure{1e-2, 1e-1, 1.0};     // "kure" and "gradl1" join regs when asked for
  std::vector<double> grad_l1{1e-5, 1e-4, 1e-3};
  std::vector<int> bits{8, 6, 4, 3, 2};
  std::vector<std::string> scopes{"wa", "w"};  // wa: W_b A_b; w: W_b A8
  std::vector<std::string> methods{"ptq", "qat"};
  std::vector<std::string> roundings{"nearest", "stochastic"};
  std::vector<int64_t> seeds{1, 2, 3};
  int64_t epochs = 10, qat_epochs = 1;
  int64_t train_limit = 0, test_limit = 0;  // 0: all
  int64_t data_bits_limit = 10000;          // training images the data bits are measured on
  int jobs = 1, threads = 2;                // threads in all, shared by the jobs
  bool quiet = false;
  bool plots = true;
};

// The --quick subset: mlp, none and one L2, bits 8/4/2, weights and activations, PTQ and QAT
// (nearest), one seed, one epoch on 5000 images: a few minutes on two cores.
SweepOptions quick_sweep(SweepOptions base);

// One cell's identity: the text that names its row ("model=mlp,reg=l2,lambda=0.001,...").
struct SweepCell {
  std::string model, reg;
  double lambda = 0;
  int64_t seed = 1;
  int bits = 8;
  std::string scope, method, rounding;
  std::string key() const;
  std::string float_key() const;  // the float model it starts from
};

std::vector<SweepCell> sweep_cells(const SweepOptions& o);

// Runs what is not done yet and writes the plots; returns the number of cells computed now.
int64_t run_sweep(const SweepOptions& o);

}  // namespace crayon
