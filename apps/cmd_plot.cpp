// crayon plot: a training log (crayon train --log F.csv or F.jsonl) as PNGs: loss and
// accuracy per epoch, train against test (and validation when the run held some out).
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <tuple>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/plot.h"
#include "core/check.h"
#include "core/parse.h"

namespace crayon {

namespace {

// The log's rows as column -> value; throws naming the file and line for anything else.
std::vector<std::map<std::string, double>> read_log(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(str(path, ": cannot open the training log"));
  const bool jsonl = path.ends_with(".jsonl") || path.ends_with(".json");
  std::vector<std::map<std::string, double>> rows;
  std::vector<std::string> header;
  std::string line;
  for (int64_t n = 1; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    std::map<std::string, double> row;
    auto value = [&](const std::string& key, std::string v) {
      if (v.empty() || v == "null") return;  // no validation split
      double d = 0;
      if (!parse_number(v, d)) throw std::runtime_error(str(path, ": line ", n, ": ", key, " = '", v, "' is not a number"));
      row[key] = d;
    };
    if (jsonl) {
      size_t p = 0;
      while ((p = line.find('"', p)) != std::string::npos) {
        const size_t q = line.find('"', p + 1), c = line.find(':', q);
        if (q == std::string::npos || c == std::string::npos) break;
        size_t v = c + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        const size_t e = line.find_first_of(",}", v);
        value(line.substr(p + 1, q - p - 1), line.substr(v, e - v));
        p = e;
      }
    } else {
      std::vector<std::string> cells;
      size_t b = 0;
      while (true) {
        const size_t e = line.find(',', b);
        cells.push_back(line.substr(b, e == std::string::npos ? std::string::npos : e - b));
        if (e == std::string::npos) break;
        b = e + 1;
      }
      if (header.empty()) {
        header = cells;
        continue;
      }
      if (cells.size() != header.size())
        throw std::runtime_error(str(path, ": line ", n, ": expected ", header.size(), " columns, found ", cells.size()));
      for (size_t i = 0; i < cells.size(); ++i) value(header[i], cells[i]);
    }
    if (!row.count("epoch")) throw std::runtime_error(str(path, ": line ", n, ": expected a training log row with an epoch"));
    rows.push_back(row);
  }
  if (rows.empty()) throw std::runtime_error(str(path, ": expected at least one epoch, found none"));
  return rows;
}

}  // namespace

int cmd_plot(int argc, char** argv) {
  std::string log, out;
  po::options_description opts("crayon plot options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("log", po::value(&log)->required(), "training log: FILE.csv or FILE.jsonl (crayon train --log)")
    ("out", po::value(&out), "folder for the PNGs (default: the log's folder)");
  // clang-format on
  po::positional_options_description pos;
  pos.add("log", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, opts, vm, "usage: crayon plot run.csv [--out DIR]", pos)) return 0;
  require_path(vm, "log");
  const auto rows = read_log(log);
  const std::filesystem::path p(log);
  if (out.empty()) out = p.has_parent_path() ? p.parent_path().string() : ".";
  const std::string stem = p.stem().string();
  for (const auto& [what, unit, scale] : {std::tuple{"loss", "cross-entropy (nats)", 1.0},
                                          std::tuple{"acc", "accuracy (%)", 100.0}}) {
    Plot plot{str(log, ": ", what == std::string("loss") ? "loss" : "accuracy", " per epoch"), "epoch", unit, false,
              false, false, {}};
    for (const char* split : {"train", "val", "test"}) {
      PlotSeries s{split, {}, {}, "linespoints"};
      for (const auto& r : rows) {
        const auto it = r.find(str(split, "_", what));
        if (it != r.end()) s.points.emplace_back(r.at("epoch"), it->second * scale);
      }
      if (!s.points.empty()) plot.series.push_back(s);
    }
    write_plot(out, str(stem, what == std::string("loss") ? "-loss" : "-accuracy"), plot);
  }
  std::printf("%s -> %s/%s-loss.png, %s-accuracy.png (%zu epochs)\n", log.c_str(), out.c_str(), stem.c_str(),
              stem.c_str(), rows.size());
  return 0;
}

}  // namespace crayon
