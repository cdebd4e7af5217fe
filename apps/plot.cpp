#include "apps/plot.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/check.h"

namespace crayon {

namespace {
// gnuplot strings are in single quotes, where only '' needs escaping.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}
// For the shell: '...' with each ' written as '\''.
std::string shell_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

void write_plot(const std::string& dir, const std::string& name, const Plot& plot) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(str(dir, ": cannot create the plot folder: ", ec.message()));
  const std::string base = (fs::path(dir) / name).string();
  {
    std::ofstream dat(base + ".dat");
    for (const PlotSeries& s : plot.series) {
      dat << "# " << s.title << "\n";
      for (size_t i = 0; i < s.points.size(); ++i) {
        dat << s.points[i].first << ' ' << s.points[i].second;
        if (!s.errors.empty()) dat << ' ' << s.errors[i];
        dat << '\n';
      }
      dat << "\n\n";  // one gnuplot index per series
    }
    if (!dat) throw std::runtime_error(str(base, ".dat: write failed"));
  }
  {
    std::ofstream gp(base + ".gp");
    gp << "set terminal pngcairo size 900,600 noenhanced font 'sans,11'\n"
       << "set output " << quoted(base + ".png") << "\n"
       << "set title " << quoted(plot.title) << "\n"
       << "set xlabel " << quoted(plot.xlabel) << "\nset ylabel " << quoted(plot.ylabel) << "\n"
       << "set grid\nset key outside right top\n";
    if (plot.logx) gp << "set logscale x\n";
    if (plot.xtics > 0) gp << "set xtics " << plot.xtics << "\n";
    if (plot.logy) gp << "set logscale y\n";
    gp << "plot ";
    for (size_t i = 0; i < plot.series.size(); ++i) {
      const PlotSeries& s = plot.series[i];
      if (i) gp << ", \\\n     ";
      if (!s.errors.empty())
        gp << quoted(base + ".dat") << " index " << i << " using 1:2:3 with yerrorlines title " << quoted(s.title);
      else
        gp << quoted(base + ".dat") << " index " << i << " using 1:2 with " << s.style << " title " << quoted(s.title);
    }
    if (plot.diagonal) gp << ", \\\n     x with lines dashtype 2 lc rgb 'gray40' title 'y = x'";
    gp << "\n";
    if (!gp) throw std::runtime_error(str(base, ".gp: write failed"));
  }
  const std::string cmd = "gnuplot " + shell_quoted(base + ".gp") + " 2> " + shell_quoted(base + ".log");
  const int status = std::system(cmd.c_str());
  if (status != 0) {
    std::ifstream log(base + ".log");
    std::string first;
    std::getline(log, first);
    throw std::runtime_error(str(base, ".png: gnuplot failed (", first.empty() ? "is gnuplot installed? Debian's "
                                 "gnuplot-nox, which scripts/install-deps.sh installs" : first, ")"));
  }
  fs::remove(base + ".log", ec);
}

}  // namespace crayon
