#pragma once
// PNG plots through gnuplot (Debian's gnuplot-nox): the data and the script go beside the
// PNG (NAME.dat, NAME.gp), so a reader can restyle a figure without crayon. Used by
// `crayon analyze --plot`, `crayon sweep` and `crayon plot`.
#include <string>
#include <utility>
#include <vector>

namespace crayon {

struct PlotSeries {
  std::string title;
  std::vector<std::pair<double, double>> points;  // (x, y)
  std::vector<double> errors;                     // optional ± y error per point
  std::string style = "linespoints";              // gnuplot "with": points, lines, linespoints
};

struct Plot {
  std::string title, xlabel, ylabel;
  bool logx = false, logy = false;
  bool diagonal = false;  // draw y = x (measured against bound, KL against its approximation)
  std::vector<PlotSeries> series;
  double xtics = 0;  // > 0: a tick every xtics on x (e.g. 1 for layer numbers)
};

// Writes DIR/NAME.png (and .dat, .gp); throws std::runtime_error naming the file if gnuplot
// is missing or fails.
void write_plot(const std::string& dir, const std::string& name, const Plot& plot);

}  // namespace crayon
