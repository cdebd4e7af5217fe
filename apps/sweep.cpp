#include "apps/sweep.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

#include "apps/evaluate.h"
#include "apps/plot.h"
#include "apps/train_checkpoint.h"
#include "apps/trainer.h"
#include "apps/world.h"
#include "core/atomic_file.h"
#include "core/check.h"
#include "core/parallel.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "quant/analysis.h"
#include "quant/qat.h"

namespace crayon {

namespace fs = std::filesystem;

namespace {

std::string real(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// The columns of a row, in order: the cell's settings, then what was measured.
const char* const kColumns[] = {
    "key", "model", "reg", "lambda", "seed", "bits", "scope", "method", "rounding", "float_accuracy",
    "quantized_accuracy", "drop", "kl", "kl_approx", "mean_bound", "mean_logit_change", "certified", "kept",
    "prior_bits", "entropy_bits", "data_bits", "w_l1", "w_l2", "w_max", "w_kurtosis", "seconds"};

using Row = std::map<std::string, std::string>;  // column -> text (numbers as written)

std::string csv_line(const Row& r) {
  std::string s;
  for (const char* c : kColumns) {
    if (!s.empty()) s += ",";
    const std::string& v = r.at(c);
    s += v.find(',') == std::string::npos ? v : "\"" + v + "\"";
  }
  return s + "\n";
}

bool is_text_column(const std::string& c) {
  return c == "key" || c == "model" || c == "reg" || c == "scope" || c == "method" || c == "rounding";
}

std::string json_line(const Row& r) {
  std::string s = "{";
  for (const char* c : kColumns) {
    if (s.size() > 1) s += ", ";
    s += str("\"", c, "\": ", is_text_column(c) ? "\"" + r.at(c) + "\"" : r.at(c));
  }
  return s + "}\n";
}

// One line written by json_line (a flat object, no escapes) as a row.
Row parse_row(const std::string& line) {
  Row r;
  size_t p = 0;
  while ((p = line.find('"', p)) != std::string::npos) {
    const size_t q = line.find('"', p + 1);
    if (q == std::string::npos) break;
    const std::string k = line.substr(p + 1, q - p - 1);
    size_t v = line.find(':', q) + 1;
    while (v < line.size() && line[v] == ' ') ++v;
    size_t e;
    std::string value;
    if (v < line.size() && line[v] == '"') {
      e = line.find('"', v + 1);
      value = line.substr(v + 1, e - v - 1);
      ++e;
    } else {
      e = line.find_first_of(",}", v);
      value = line.substr(v, e - v);
    }
    r[k] = value;
    p = e;
  }
  return r;
}

// The rows of a JSONL file written by json_line (flat objects, no escapes), every complete
// line; a line cut short by a kill is dropped, and the file truncated to its last newline.
std::vector<Row> read_rows(const std::string& path) {
  std::vector<Row> rows;
  std::ifstream f(path, std::ios::binary);
  if (!f) return rows;
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  size_t begin = 0, good = 0;
  while (true) {
    const size_t end = text.find('\n', begin);
    if (end == std::string::npos) break;
    const Row r = parse_row(text.substr(begin, end - begin));
    if (r.count("key") && r.count("seconds")) rows.push_back(r);
    begin = good = end + 1;
  }
  if (good < text.size()) fs::resize_file(path, good);
  return rows;
}

// Appends one line to a file under an exclusive lock, flushed to disk.
void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) throw std::runtime_error(str(path, ": cannot open for appending"));
  ::flock(fd, LOCK_EX);
  const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size()) && ::fsync(fd) == 0;
  ::flock(fd, LOCK_UN);
  ::close(fd);
  if (!ok) throw std::runtime_error(str(path, ": write failed"));
}

// Claims `name` for this process: true if nobody claimed it before.
bool claim(const std::string& dir, const std::string& name) {
  const std::string path = (fs::path(dir) / (name + ".claim")).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// Runs work(i) for every i in [0, n) over `jobs` processes (this one among them), each
// taking the next unclaimed i; waits for all. A failing child makes the whole run fail.
void in_processes(int jobs, int64_t n, const std::string& claims, const std::string& phase,
                  const std::function<void(int64_t)>& work) {
  fs::create_directories(claims);
  for (const auto& e : fs::directory_iterator(claims))
    if (e.path().filename().string().rfind(phase + ".", 0) == 0) fs::remove(e.path());
  auto loop = [&] {
    for (int64_t i = 0; i < n; ++i)
      if (claim(claims, str(phase, ".", i))) work(i);
  };
  // A forked child has none of its parent's threads: shrink crayon's pool to the calling
  // thread first (OpenBLAS handles fork itself), and let every job set its own count.
  const int threads = num_threads();
  if (jobs > 1) set_num_threads(1);
  std::vector<pid_t> children;
  for (int j = 1; j < jobs && j < n; ++j) {
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("sweep: fork failed");
    if (pid == 0) {
      int status = 0;
      try {
        loop();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "crayon sweep: %s\n", e.what());
        status = 1;
      }
      std::fflush(nullptr);
      ::_exit(status);
    }
    children.push_back(pid);
  }
  std::string failure;
  try {
    loop();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  bool child_failed = false;
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    child_failed |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  set_num_threads(threads);
  if (!failure.empty()) throw std::runtime_error(failure);
  if (child_failed) throw std::runtime_error("sweep: a job failed (its message is above)");
}

TrainConfig float_config(const SweepOptions& o, const SweepCell& c) {
  TrainConfig t;
  t.dataset = o.dataset;
  t.data_dir = o.data_dir;
  t.model = c.model;
  t.epochs = o.epochs;
  t.lr = 0.05;
  t.lr_schedule = "cosine";
  t.seed = c.seed;
  t.train_limit = o.train_limit;
  t.test_limit = o.test_limit;
  if (c.reg == "l1") t.l1 = c.lambda;
  if (c.reg == "l2") t.l2 = c.lambda;
  if (c.reg == "kure") t.kure = c.lambda;
  if (c.reg == "gradl1") t.grad_l1 = c.lambda;
  return t;
}

QatConfig cell_quantization(const SweepCell& c) {
  QatConfig q;
  q.weight.bits = c.bits;
  q.act.bits = c.scope == "wa" ? c.bits : 8;
  q.weight.rounding = q.act.rounding = c.rounding == "stochastic" ? Rounding::stochastic : Rounding::nearest_even;
  q.seed = uint64_t(c.seed);
  return q;
}

// ‖w‖₁, ‖w‖₂, max |w| and the kurtosis E[(w − μ)⁴] / σ⁴ of every conv / linear weight.
void weight_stats(const Sequential& m, Row& r) {
  std::vector<double> w;
  for (const Variable& v : prior_weights(m))
    for (float x : v.value().values()) w.push_back(x);
  double l1 = 0, l2 = 0, mx = 0, mean = 0;
  for (double x : w) l1 += std::fabs(x), l2 += x * x, mx = std::max(mx, std::fabs(x)), mean += x;
  mean /= double(w.size());
  double m2 = 0, m4 = 0;
  for (double x : w) m2 += (x - mean) * (x - mean), m4 += std::pow(x - mean, 4);
  m2 /= double(w.size()), m4 /= double(w.size());
  r["w_l1"] = real(l1);
  r["w_l2"] = real(std::sqrt(l2));
  r["w_max"] = real(mx);
  r["w_kurtosis"] = real(m2 > 0 ? m4 / (m2 * m2) : 0);
}

std::string float_path(const SweepOptions& o, const SweepCell& c) {
  return (fs::path(o.dir) / "float" / (c.float_key() + ".h5")).string();
}

// Trains (or finishes training) one float model.
void train_float(const SweepOptions& o, const SweepCell& c) {
  TrainRun run;
  run.config = float_config(o, c);
  run.out = float_path(o, c);
  run.quiet = true;
  run.threads = std::max(1, o.threads / std::max(1, o.jobs));
  if (fs::exists(run.out)) {
    if (load_train_checkpoint(run.out).state.epoch >= o.epochs) return;
    run.resume = run.out;
  }
  run_training(run);
}

Row run_cell(const SweepOptions& o, const SweepCell& c, const Dataset& train, const Dataset& test) {
  const auto t0 = std::chrono::steady_clock::now();
  const int threads = std::max(1, o.threads / std::max(1, o.jobs));
  set_num_threads(threads);
  const ChannelStats norm = dataset_stats(o.dataset);
  TrainCheckpoint fl = load_train_checkpoint(float_path(o, c));
  const double float_accuracy = evaluate(*fl.model, test, norm).accuracy;
  const QatConfig q = cell_quantization(c);
  std::shared_ptr<Sequential> model;
  if (c.method == "ptq") {
    model = fl.model;
    DataLoader loader(train, {.batch_size = 128, .shuffle = true, .seed = uint64_t(c.seed), .norm = norm});
    calibrate(*model, loader.images(), 16, q);
  } else {
    // QAT: fine-tune the float model on the grid for qat_epochs at a tenth of its rate.
    TrainRun run;
    run.config = float_config(o, c);
    run.config.init = float_path(o, c);
    run.config.epochs = o.qat_epochs;
    run.config.lr = 0.005;
    run.config.lr_schedule = "constant";
    run.config.qat = describe(q);
    run.config.grad_l1 = 0;  // float training only (apps/train_config.h): QAT fine-tunes the grad-L1 model without it
    run.out = (fs::path(o.dir) / "cells" / (c.key() + ".h5")).string();
    run.quiet = true;
    run.threads = threads;
    fs::create_directories(fs::path(run.out).parent_path());
    if (fs::exists(run.out) && load_train_checkpoint(run.out).state.epoch < o.qat_epochs) run.resume = run.out;
    if (!fs::exists(run.out) || !run.resume.empty()) run_training(run);
    model = load_train_checkpoint(run.out).model;
  }
  DataLoader loader(test, {.batch_size = 500, .shuffle = false, .norm = norm});
  const Analysis a = analyze(*model, fl.input_shape, loader.labelled(), [] {}, false);
  const Dataset bits_set = o.data_bits_limit > 0 && o.data_bits_limit < train.size() ? train.slice(0, o.data_bits_limit)
                                                                                       : train;
  Row r;
  r["key"] = c.key();
  r["model"] = c.model;
  r["reg"] = c.reg;
  r["lambda"] = real(c.lambda);
  r["seed"] = str(c.seed);
  r["bits"] = str(c.bits);
  r["scope"] = c.scope;
  r["method"] = c.method;
  r["rounding"] = c.rounding;
  r["float_accuracy"] = real(float_accuracy);
  r["quantized_accuracy"] = real(a.quantized_accuracy);
  r["drop"] = real(float_accuracy - a.quantized_accuracy);
  r["kl"] = real(a.kl.mean_kl);
  r["kl_approx"] = real(a.kl.mean_approx);
  r["mean_bound"] = real(a.tightness.back().mean_bound);
  r["mean_logit_change"] = real(a.tightness.back().mean_measured);
  r["certified"] = real(a.certified);
  r["kept"] = real(a.kept);
  r["prior_bits"] = real(prior_bits(fl.config, prior_weights(*fl.model), train.size()));
  double entropy = 0;
  for (const WeightBits& w : a.weight_bits) entropy += w.bits;
  r["entropy_bits"] = real(entropy);
  r["data_bits"] = real(evaluate(*model, bits_set, norm).loss * double(bits_set.size()) / std::log(2.0));
  weight_stats(*float_copy(*model, fl.input_shape), r);
  r["seconds"] = real(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return r;
}

// Orders regularizer labels ("none" or "no regularizer", "l1 1e-05", "l2 lambda 0.0003") the
// way a reader expects: none first, then each kind by strength.
struct ByRegularizer {
  static std::pair<std::string, double> key(const std::string& s) {
    if (s.rfind("no", 0) == 0) return {"", 0.0};
    return {s.substr(0, s.find(' ')), std::stod(s.substr(s.rfind(' ') + 1))};
  }
  bool operator()(const std::string& a, const std::string& b) const { return key(a) < key(b); }
};

// Mean and standard deviation over seeds.
std::pair<double, double> mean_std(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(s / double(v.size() - 1)) : 0.0};
}

void write_plots(const SweepOptions& o, const std::vector<Row>& rows) {
  const std::string dir = (fs::path(o.dir) / "plots").string();
  auto num = [](const Row& r, const char* c) { return std::stod(r.at(c)); };
  // Accuracy drop against bits, one line per regularizer and strength, mean +- std over seeds;
  // beside it the quantized test error on a log scale, where 8 to 3 bits are not squashed flat
  // by the 2-bit drop.
  using BySeeds = std::map<std::string, std::map<int, std::vector<double>>, ByRegularizer>;
  auto lines = [](const BySeeds& by_reg) {
    std::vector<PlotSeries> out;
    for (const auto& [reg, by_bits] : by_reg) {
      PlotSeries s{reg, {}, {}, "linespoints"};
      for (const auto& [b, v] : by_bits) {
        const auto [m, sd] = mean_std(v);
        s.points.emplace_back(b, m);
        s.errors.push_back(sd);
      }
      out.push_back(s);
    }
    return out;
  };
  std::set<std::string> panels;
  for (const Row& r : rows) panels.insert(r.at("model") + "|" + r.at("method") + "|" + r.at("scope") + "|" + r.at("rounding"));
  for (const std::string& panel : panels) {
    BySeeds drop, error;
    std::string model, method, scope, rounding;
    for (const Row& r : rows) {
      if (r.at("model") + "|" + r.at("method") + "|" + r.at("scope") + "|" + r.at("rounding") != panel) continue;
      model = r.at("model"), method = r.at("method"), scope = r.at("scope"), rounding = r.at("rounding");
      const std::string reg = r.at("reg") == "none" ? "no regularizer" : r.at("reg") + " lambda " + r.at("lambda");
      drop[reg][std::stoi(r.at("bits"))].push_back(100 * num(r, "drop"));
      error[reg][std::stoi(r.at("bits"))].push_back(100 - 100 * num(r, "quantized_accuracy"));
    }
    const std::string what = str(model, ", ", method == "ptq" ? "PTQ" : "QAT fine-tune", ", ",
                                 scope == "wa" ? "weights and activations" : "weights (activations 8-bit)",
                                 method == "qat" ? ", " + rounding + " rounding" : "");
    const std::string name = model + "-" + method + "-" + scope + (method == "qat" ? "-" + rounding : "");
    write_plot(dir, "drop-" + name, {what + ": accuracy drop (mean +- std over seeds)", "bits",
                                     "accuracy drop (points, float - quantized)", false, false, false, lines(drop)});
    write_plot(dir, "error-" + name, {what + ": test error (mean +- std over seeds)", "bits",
                                      "test error of the quantized model (%, log scale)", false, true, false,
                                      lines(error)});
  }
  Plot bound{"every cell: mean logit change against its mean certified bound", "mean certified bound at the logits",
             "mean measured logit change", true, true, true, {}};
  Plot kl{"every cell: mean exact KL against mean 1/2 Var of the logit change", "mean 1/2 Var_p[logit change] (nats)",
          "mean exact KL (nats)", true, true, true, {}};
  Plot mdl{"every cell: test accuracy against description length", "model bits (entropy of the integer weights) + "
           "data bits", "quantized test accuracy (%)", true, false, false, {}};
  Plot cert{"certified predictions by bit width (mean over cells)", "bits", "certified fraction of test images (%)",
            false, false, false, {}};
  std::map<std::string, PlotSeries> sb, sk, sm;
  std::map<std::string, std::map<int, std::vector<double>>> sc;
  for (const Row& r : rows) {
    const std::string label = r.at("model") + " " + r.at("method");
    sb.try_emplace(label, PlotSeries{label, {}, {}, "points pt 7 ps 0.8"});
    sk.try_emplace(label, PlotSeries{label, {}, {}, "points pt 7 ps 0.8"});
    sm.try_emplace(label, PlotSeries{label, {}, {}, "points pt 7 ps 0.8"});
    if (num(r, "mean_logit_change") > 0) sb[label].points.emplace_back(num(r, "mean_bound"), num(r, "mean_logit_change"));
    if (num(r, "kl") > 0 && num(r, "kl_approx") > 0) sk[label].points.emplace_back(num(r, "kl_approx"), num(r, "kl"));
    sm[label].points.emplace_back(num(r, "entropy_bits") + num(r, "data_bits"), 100 * num(r, "quantized_accuracy"));
    sc[label][std::stoi(r.at("bits"))].push_back(100 * num(r, "certified"));
  }
  for (auto& [l, s] : sb) bound.series.push_back(s);
  for (auto& [l, s] : sk) kl.series.push_back(s);
  for (auto& [l, s] : sm) mdl.series.push_back(s);
  for (auto& [l, by_bits] : sc) {
    PlotSeries s{l, {}, {}, "linespoints"};
    for (const auto& [b, v] : by_bits) s.points.emplace_back(b, mean_std(v).first);
    cert.series.push_back(s);
  }
  write_plot(dir, "bound", bound);
  write_plot(dir, "kl", kl);
  write_plot(dir, "accuracy-vs-bits-of-description", mdl);
  write_plot(dir, "certified", cert);
}

// Spearman's rank correlation of (x, y): Pearson's on the ranks (ties get their mean rank).
double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> order(v.size());
    for (size_t i = 0; i < v.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
    std::vector<double> r(v.size());
    for (size_t i = 0; i < order.size();) {
      size_t j = i;
      while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
      for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j);
      i = j + 1;
    }
    return r;
  };
  const std::vector<double> rx = ranks(x), ry = ranks(y);
  const double mx = mean_std(rx).first, my = mean_std(ry).first;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : std::nan("");  // a constant column ranks nothing
}

// A correlation for a table: "-" where there is none to compute.
std::string rho(const std::vector<double>& x, const std::vector<double>& y) {
  const double r = spearman(x, y);
  if (std::isnan(r)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", r);
  return b;
}

// DIR/tables.md: the sweep's numbers as Markdown tables, mean +- standard deviation over seeds.
void write_tables(const SweepOptions& o, const std::vector<Row>& rows) {
  auto num = [](const Row& r, const char* c) { return std::stod(r.at(c)); };
  auto reg_of = [](const Row& r) { return r.at("reg") == "none" ? std::string("none") : r.at("reg") + " " + r.at("lambda"); };
  auto pm = [](const std::vector<double>& v, int digits) {  // one value alone has no spread to show
    const auto [m, sd] = mean_std(v);
    char b[64];
    if (v.size() > 1) std::snprintf(b, sizeof b, "%.*f ± %.*f", digits, m, digits, sd);
    else std::snprintf(b, sizeof b, "%.*f", digits, m);
    return std::string(b);
  };
  std::string md = str("# Sweep results\n\n", rows.size(), " cells from `", o.dir,
                       "/results.jsonl`; each entry is the mean ± standard deviation over seeds. Written by `crayon sweep`.\n");
  std::set<int> all_bits;
  for (const Row& r : rows) all_bits.insert(std::stoi(r.at("bits")));
  // 1. The accuracy drop, per model, method, scope and rounding: regularizer x bits.
  std::map<std::string, std::map<std::string, std::map<int, std::vector<double>>, ByRegularizer>> drops;
  for (const Row& r : rows)
    drops[str(r.at("model"), ", ", r.at("method") == "ptq" ? "PTQ" : "QAT fine-tune", ", ",
              r.at("scope") == "wa" ? "weights and activations" : "weights only (activations 8-bit)",
              r.at("method") == "qat" ? ", " + r.at("rounding") + " rounding" : "")][reg_of(r)][std::stoi(r.at("bits"))]
        .push_back(100 * num(r, "drop"));
  md += "\n## Accuracy drop (points, float − quantized)\n";
  for (const auto& [panel, by_reg] : drops) {
    md += str("\n### ", panel, "\n\n| regularizer |");
    for (auto it = all_bits.rbegin(); it != all_bits.rend(); ++it) md += str(" ", *it, " bits |");
    md += "\n|---|";
    for (size_t i = 0; i < all_bits.size(); ++i) md += "---|";
    md += "\n";
    for (const auto& [reg, by_bits] : by_reg) {
      md += str("| ", reg, " |");
      for (auto it = all_bits.rbegin(); it != all_bits.rend(); ++it)
        md += by_bits.count(*it) ? str(" ", pm(by_bits.at(*it), 2), " |") : std::string(" |");
      md += "\n";
    }
  }
  // 2. The float models: accuracy and the weight statistics idea 4 is about (PTQ rows hold
  // the float weights themselves).
  std::map<std::string, std::map<std::string, std::vector<const Row*>, ByRegularizer>> floats;
  for (const Row& r : rows)
    if (r.at("method") == "ptq" && r.at("scope") == o.scopes.front() && std::stoi(r.at("bits")) == *all_bits.rbegin())
      floats[r.at("model")][reg_of(r)].push_back(&r);
  md += "\n## The float models\n\n| model | regularizer | float accuracy (%) | ‖w‖₁ | ‖w‖₂ | max \\|w\\| | kurtosis |\n"
        "|---|---|---|---|---|---|---|\n";
  for (const auto& [model, by_reg] : floats)
    for (const auto& [reg, rs] : by_reg) {
      std::vector<double> acc, l1, l2, mx, ku;
      for (const Row* r : rs) {
        acc.push_back(100 * num(*r, "float_accuracy"));
        l1.push_back(num(*r, "w_l1")), l2.push_back(num(*r, "w_l2")), mx.push_back(num(*r, "w_max"));
        ku.push_back(num(*r, "w_kurtosis"));
      }
      md += str("| ", model, " | ", reg, " | ", pm(acc, 2), " | ", pm(l1, 0), " | ", pm(l2, 2), " | ", pm(mx, 3), " | ",
                pm(ku, 1), " |\n");
    }
  // 3. The certified bound and the certified fraction, per model, method and bits (weights
  // and activations).
  std::map<std::string, std::map<int, std::vector<const Row*>>> bounds;
  for (const Row& r : rows)
    if (r.at("scope") == "wa") bounds[r.at("model") + " " + r.at("method")][std::stoi(r.at("bits"))].push_back(&r);
  if (!bounds.empty())
    md += "\n## The error bound at the logits (weights and activations quantized; over regularizers and seeds)\n\n"
          "| model, method | bits | mean "
          "bound | mean measured | measured / bound | certified (%) | kept (%) |\n|---|---|---|---|---|---|---|\n";
  for (const auto& [label, by_bits] : bounds)
    for (auto it = by_bits.rbegin(); it != by_bits.rend(); ++it) {
      std::vector<double> b, m, ratio, c, k;
      for (const Row* r : it->second) {
        b.push_back(num(*r, "mean_bound")), m.push_back(num(*r, "mean_logit_change"));
        ratio.push_back(num(*r, "mean_bound") > 0 ? num(*r, "mean_logit_change") / num(*r, "mean_bound") : 0.0);
        c.push_back(100 * num(*r, "certified")), k.push_back(100 * num(*r, "kept"));
      }
      md += str("| ", label, " | ", it->first, " | ", pm(b, 3), " | ", pm(m, 4), " | ", pm(ratio, 4), " | ", pm(c, 2),
                " | ", pm(k, 2), " |\n");
    }
  // 4. What predicts the drop: rank correlation over the cells of each model and method.
  std::map<std::string, std::vector<const Row*>> groups;
  for (const Row& r : rows) groups[r.at("model") + " " + r.at("method")].push_back(&r);
  md += "\n## What predicts the drop (Spearman rank correlation with the accuracy drop, over cells)\n\n"
        "| model, method | cells | mean bound | mean measured logit change | exact KL | ½ Var | entropy bits |\n"
        "|---|---|---|---|---|---|---|\n";
  for (const auto& [label, rs] : groups) {
    std::vector<double> drop, b, m, kl, kla, eb;
    for (const Row* r : rs) {
      drop.push_back(num(*r, "drop")), b.push_back(num(*r, "mean_bound")), m.push_back(num(*r, "mean_logit_change"));
      kl.push_back(num(*r, "kl")), kla.push_back(num(*r, "kl_approx")), eb.push_back(num(*r, "entropy_bits"));
    }
    md += str("| ", label, " | ", rs.size(), " | ", rho(b, drop), " | ", rho(m, drop), " | ", rho(kl, drop), " | ",
              rho(kla, drop), " | ", rho(eb, drop), " |\n");
  }
  // 5. At one bit width, across the float models: which of them lose more, and does the bound,
  // the KL or the weights' size (idea 4) or shape (max |w| against ||w||_2, kurtosis: what a
  // per-channel max scale sees) say so beforehand?
  std::map<std::string, std::map<int, std::vector<const Row*>>> at_bits;
  for (const Row& r : rows)
    if (r.at("method") == "ptq" && r.at("scope") == "wa") at_bits[r.at("model")][std::stoi(r.at("bits"))].push_back(&r);
  if (!at_bits.empty())
    md += "\n## At one bit width, across the float models (PTQ, weights and activations; Spearman with the drop)\n\n"
        "| model | bits | models | mean bound | exact KL | ‖w‖₂ | max \\|w\\| | max \\|w\\| / ‖w‖₂ | kurtosis |\n"
        "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& [model, by_bits] : at_bits)
    for (auto it = by_bits.rbegin(); it != by_bits.rend(); ++it) {
      std::vector<double> drop, b, kl, l2, mx, crest, ku;
      for (const Row* r : it->second) {
        drop.push_back(num(*r, "drop")), b.push_back(num(*r, "mean_bound")), kl.push_back(num(*r, "kl"));
        l2.push_back(num(*r, "w_l2")), mx.push_back(num(*r, "w_max")), ku.push_back(num(*r, "w_kurtosis"));
        crest.push_back(num(*r, "w_l2") > 0 ? num(*r, "w_max") / num(*r, "w_l2") : 0.0);
      }
      md += str("| ", model, " | ", it->first, " | ", drop.size(), " | ", rho(b, drop), " | ", rho(kl, drop), " | ",
                rho(l2, drop), " | ", rho(mx, drop), " | ", rho(crest, drop), " | ", rho(ku, drop), " |\n");
    }
  write_file_atomic((fs::path(o.dir) / "tables.md").string(), md);
}

}  // namespace

SweepOptions quick_sweep(SweepOptions o) {
  o.models = {"mlp"};
  o.regs = {"none", "l2"};
  o.l2 = {1e-3};
  o.bits = {8, 4, 2};
  o.scopes = {"wa"};
  o.methods = {"ptq", "qat"};
  o.roundings = {"nearest"};
  o.seeds = {1};
  o.epochs = 1;
  o.qat_epochs = 1;
  o.train_limit = 5000;
  o.test_limit = 1000;
  o.data_bits_limit = 5000;
  return o;
}

std::string SweepCell::float_key() const {
  return str(model, "-", reg, reg == "none" ? std::string() : "-" + real(lambda), "-seed", seed);
}

std::string SweepCell::key() const {
  return str("model=", model, " reg=", reg, " lambda=", real(lambda), " seed=", seed, " bits=", bits, " scope=", scope,
             " method=", method, " rounding=", rounding);
}

std::vector<SweepCell> sweep_cells(const SweepOptions& o) {
  std::vector<SweepCell> cells;
  for (const std::string& model : o.models)
    for (const std::string& reg : o.regs) {
      const std::vector<double> lambdas = reg == "l1"     ? o.l1
                                          : reg == "l2"   ? o.l2
                                          : reg == "kure" ? o.kure
                                          : reg == "gradl1" ? o.grad_l1
                                                          : std::vector<double>{0.0};
      for (double lambda : lambdas)
        for (int64_t seed : o.seeds)
          for (int bits : o.bits)
            for (const std::string& scope : o.scopes)
              for (const std::string& method : o.methods)
                for (const std::string& rounding : o.roundings) {
                  if (method == "ptq" && rounding != o.roundings.front()) continue;  // PTQ never rounds stochastically
                  cells.push_back({model, reg, lambda, seed, bits, scope, method, method == "ptq" ? "nearest" : rounding});
                }
    }
  return cells;
}

int64_t run_sweep(const SweepOptions& o) {
  // Under mpirun (apps/world.h) rank 0 reads and writes the results and the plots; the float
  // models are files every rank reads, so DIR must be on a file system all ranks share.
  World& w = world();
  fs::create_directories(fs::path(o.dir) / "float");
  const std::string csv = (fs::path(o.dir) / "results.csv").string();
  const std::string jsonl = (fs::path(o.dir) / "results.jsonl").string();
  const std::string claims = (fs::path(o.dir) / "claims").string();
  const std::vector<SweepCell> all = sweep_cells(o);
  std::vector<int64_t> todo_index;  // into all
  if (w.is_root()) {
    std::set<std::string> done;
    for (const Row& r : read_rows(jsonl)) done.insert(r.at("key"));
    // The CSV follows the JSONL: rebuilt from it, so a kill between the two appends loses nothing.
    const std::string tmp = csv + ".tmp";
    std::string header;
    for (const char* c : kColumns) header += header.empty() ? c : str(",", c);
    std::ofstream f(tmp);
    f << header << "\n";
    for (const Row& r : read_rows(jsonl)) f << csv_line(r);
    f.close();
    fs::rename(tmp, csv);
    for (size_t i = 0; i < all.size(); ++i)
      if (!done.count(all[i].key())) todo_index.push_back(int64_t(i));
  }
  int64_t count = int64_t(todo_index.size());
  w.broadcast({reinterpret_cast<std::byte*>(&count), sizeof count}, 0);
  todo_index.resize(size_t(count));
  w.broadcast({reinterpret_cast<std::byte*>(todo_index.data()), todo_index.size() * sizeof(int64_t)}, 0);
  std::vector<SweepCell> todo, floats;
  std::set<std::string> float_keys;
  for (int64_t i : todo_index) {
    const SweepCell& c = all[size_t(i)];
    todo.push_back(c);
    if (float_keys.insert(c.float_key()).second) floats.push_back(c);
  }
  const int workers = w.mpi() ? w.size() : o.jobs;
  const char* unit = w.mpi() ? "rank" : "job";
  if (!o.quiet && w.is_root())
    std::printf("sweep %s: %zu cells, %zu done before, %zu to run over %zu float models, %d %s%s\n", o.dir.c_str(),
                all.size(), all.size() - todo.size(), todo.size(), floats.size(), workers, unit, workers == 1 ? "" : "s");
  set_num_threads(std::max(1, o.threads / std::max(1, o.jobs)));
  // Every i in [0, n) once, over the jobs or the ranks, each taking the next one free.
  auto spread = [&](const char* phase, int64_t n, const std::function<std::string(int64_t)>& work,
                    const std::function<void(const std::string&)>& deliver) {
    if (w.mpi()) w.distribute(n, work, deliver);
    else in_processes(o.jobs, n, claims, phase, [&](int64_t i) { deliver(work(i)); });
  };
  spread("float", int64_t(floats.size()), [&](int64_t i) { train_float(o, floats[size_t(i)]); return std::string(); },
         [](const std::string&) {});
  const Dataset train_all = load_dataset(o.dataset, true, o.data_dir);
  const Dataset train = o.train_limit > 0 && o.train_limit < train_all.size() ? train_all.slice(0, o.train_limit)
                                                                              : train_all;
  Dataset test = load_dataset(o.dataset, false, o.data_dir);
  if (o.test_limit > 0 && o.test_limit < test.size()) test = test.slice(0, o.test_limit);
  spread("cell", int64_t(todo.size()), [&](int64_t i) { return json_line(run_cell(o, todo[size_t(i)], train, test)); },
         [&](const std::string& line) {
           const Row r = parse_row(line);
           append_line(jsonl, line);
           append_line(csv, csv_line(r));
           if (!o.quiet)
             std::printf("  %s: %s -> %s (%.1f s)\n", r.at("key").c_str(), r.at("float_accuracy").c_str(),
                         r.at("quantized_accuracy").c_str(), std::stod(r.at("seconds")));
           std::fflush(stdout);
         });
  if (w.is_root()) {
    const std::vector<Row> finished = read_rows(jsonl);
    if (o.plots) write_plots(o, finished);
    write_tables(o, finished);
  }
  return int64_t(todo.size());
}

}  // namespace crayon
