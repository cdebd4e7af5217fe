// crayon demo [NAME]: the demonstrations of apps/demo.h; without NAME, the list.
#include <cstdio>
#include <string>

#include "apps/cli.h"
#include "apps/demo.h"
#include "core/check.h"
#include "core/parallel.h"

namespace crayon {

int cmd_demo(int argc, char** argv) {
  DemoOptions o;
  std::string name, plot_dir;
  int64_t seed = 1;
  bool json = false;
  po::options_description opts("crayon demo options");
  // clang-format off
  opts.add_options()
    ("help,h", "show this help")
    ("model", po::value(&o.model), "a float MNIST checkpoint to use instead of the small network trained on the fly")
    ("data-dir", po::value(&o.data_dir), "MNIST's folder")
    ("seed", po::value(&seed)->default_value(seed), "seed of every random draw (and of the network trained on the fly)")
    ("threads", po::value(&o.threads)->default_value(o.threads), "threads")
    ("plot", po::value(&plot_dir), "also write the demo's PNG (gnuplot) into this folder")
    ("json", po::bool_switch(&json), "print the demo's key numbers as one JSON object instead of the tables");
  // clang-format on
  po::positional_options_description positional;
  positional.add("name", 1);
  po::options_description all;
  all.add(opts).add_options()("name", po::value(&name), "the demo");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, all, vm, "usage: crayon demo [NAME] [--plot DIR] [--json] [--model F.h5]",
                          positional, &opts))
    return 0;
  require_threads(vm);
  require_non_negative(vm, "seed");
  for (const char* f : {"model", "data-dir", "plot"}) require_path(vm, f);
  if (name.empty()) {
    std::printf("crayon demo NAME: one demonstration per idea of DESIGN.md, each a few seconds\n\n");
    for (const DemoInfo& d : demos()) std::printf("  %-11s idea %-22s %s\n", d.name, d.idea, d.summary);
    return 0;
  }
  const DemoInfo* info = nullptr;
  try {
    info = &find_demo(name);
  } catch (const std::invalid_argument& e) {
    throw UsageError(str("NAME: ", e.what()));
  }
  if (vm.count("model") && !info->uses_model)
    throw UsageError(str("--model: the ", name, " demo trains its own networks (--model is for mdl, rounding and kl)"));
  o.seed = uint64_t(seed);
  set_num_threads(o.threads);
  const Demo d = info->run(o);
  if (!plot_dir.empty())
    for (const auto& [file, plot] : d.plots) write_plot(plot_dir, file, plot);
  if (json) {
    std::printf("%s\n", demo_json(d).c_str());
  } else {
    std::printf("%s", format_demo(d).c_str());
    if (!plot_dir.empty())
      for (const auto& [file, plot] : d.plots) std::printf("wrote %s/%s.png\n", plot_dir.c_str(), file.c_str());
  }
  return 0;
}

}  // namespace crayon
