#include "apps/cli.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "core/check.h"
#include "core/limits.h"

namespace crayon {

po::typed_value<double>* real_value(double* target) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *target);
  return po::value(target)->default_value(*target, std::string(buf, ec == std::errc() ? end : buf));
}

bool parse_command_line(int argc, char** argv, const po::options_description& opts, po::variables_map& vm,
                        const std::string& usage, const po::positional_options_description& positional,
                        const po::options_description* shown) {
  // Boost.Program_options 1.74 fills the %placeholders% of its messages in a loop that never
  // ends when the text it puts in holds that placeholder again ('--%option%' or a value
  // '%value%' hangs the parse): refuse such an argument before Boost sees it.
  for (int i = 1; i < argc; ++i)
    for (const char* p : {"%canonical_option%", "%original_token%", "%option%", "%value%", "%prefix%"})
      if (std::strstr(argv[i], p))
        throw UsageError(str("argument '", argv[i], "': expected no '", p, "' in it (the option parser reserves it)"));
  try {
    po::store(po::command_line_parser(argc, argv).options(opts).positional(positional).run(), vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  if (vm.count("help")) {
    std::cout << usage << "\n\n" << (shown ? *shown : opts) << "\n";
    return false;
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

namespace {
double numeric(const po::variables_map& vm, const char* flag) {
  const auto& v = vm[flag].value();
  if (auto p = boost::any_cast<int64_t>(&v)) return double(*p);
  if (auto p = boost::any_cast<int>(&v)) return double(*p);
  if (auto p = boost::any_cast<double>(&v)) return *p;
  if (auto p = boost::any_cast<float>(&v)) return double(*p);
  throw std::logic_error(str("flag --", flag, " is not numeric"));
}
}  // namespace

void require_positive(const po::variables_map& vm, const char* flag) {
  if (!vm.count(flag)) return;
  const double v = numeric(vm, flag);
  if (!(v > 0) || !std::isfinite(v)) throw UsageError(str("--", flag, ": expected a positive number, got ", v));
}

void require_non_negative(const po::variables_map& vm, const char* flag) {
  if (!vm.count(flag)) return;
  const double v = numeric(vm, flag);
  if (!(v >= 0) || !std::isfinite(v)) throw UsageError(str("--", flag, ": expected a number >= 0, got ", v));
}

void require_one_of(const po::variables_map& vm, const char* flag, std::initializer_list<const char*> allowed) {
  if (!vm.count(flag)) return;
  const std::string v = vm[flag].as<std::string>();
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return;
    list += list.empty() ? a : str(", ", a);
  }
  throw UsageError(str("--", flag, ": expected one of ", list, ", got '", v, "'"));
}

void require_threads(const po::variables_map& vm, const char* flag) {
  require_positive(vm, flag);
  if (!vm.count(flag)) return;
  const double v = numeric(vm, flag);
  if (v > double(max_threads()))
    throw UsageError(str("--", flag, ": expected at most ", max_threads(), " (4 x this machine's cores), got ", v,
                         " ", limit_hint(max_threads(), "CRAYON_MAX_THREADS")));
}

void require_path(const po::variables_map& vm, const char* flag) {
  if (vm.count(flag) && vm[flag].as<std::string>().empty())
    throw UsageError(str("--", flag, ": expected a file path, got ''"));
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (true) {
    const size_t end = s.find(',', begin);
    out.push_back(s.substr(begin, end - begin));
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

std::vector<int> bit_width_list(const char* flag, const std::string& s) {
  const std::vector<int> bits = number_list<int>(flag, s);
  for (int b : bits)
    if (b < 2 || b > 8) throw UsageError(str("--", flag, ": expected widths in 2..8, got ", b));
  return bits;
}

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string sci(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.3g", v);
  return b;
}

}  // namespace crayon
