#pragma once
// Shared command-line plumbing: every subcommand parses with Boost.Program_options, and a
// bad flag or value becomes a UsageError: one line naming the flag, then the usage, exit 2.
#include <boost/program_options.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/parse.h"

namespace crayon {

namespace po = boost::program_options;

// Its message is made one line (core/check.h one_line): it often quotes what the user typed.
struct UsageError : std::runtime_error {
  explicit UsageError(const std::string& message) : std::runtime_error(one_line(message)) {}
};

// A real-valued flag whose --help shows its default as the shortest text that reads back
// ("0.9", not boost's "0.90000000000000002").
po::typed_value<double>* real_value(double* target);

// Parse argv for one subcommand (bare arguments go to `positional`'s options); --help prints
// usage and `shown` (default: opts; a positional's own option may be left out) and returns
// false (exit 0). Throws UsageError for unknown flags, missing values, bad values or extra
// arguments.
bool parse_command_line(int argc, char** argv, const po::options_description& opts, po::variables_map& vm,
                        const std::string& usage, const po::positional_options_description& positional = {},
                        const po::options_description* shown = nullptr);

// The value checks every command needs, throwing UsageError naming the flag.
void require_positive(const po::variables_map& vm, const char* flag);
void require_non_negative(const po::variables_map& vm, const char* flag);
void require_one_of(const po::variables_map& vm, const char* flag, std::initializer_list<const char*> allowed);
// 1 <= the flag <= max_threads() (core/limits.h): --threads, and --jobs (a process each).
void require_threads(const po::variables_map& vm, const char* flag = "threads");
// A file path flag, if given, is not empty.
void require_path(const po::variables_map& vm, const char* flag);

// A list flag's comma-separated items ("8,4,2"), and the same read as numbers.
std::vector<std::string> split_list(const std::string& s);
template <typename T>
std::vector<T> number_list(const char* flag, const std::string& s) {
  std::vector<T> out;
  for (const std::string& item : split_list(s)) {
    T v{};
    if (!parse_number(item, v)) throw UsageError(str("--", flag, ": expected comma-separated numbers, got '", s, "'"));
    out.push_back(v);
  }
  return out;
}
// Numbers for people: fixed(v, d) is "%.*f", sci(v) is "%.3g".
std::string fixed(double v, int digits);
std::string sci(double v);

// Bit widths 2..8, as --bits and --sensitivity-bits take them.
std::vector<int> bit_width_list(const char* flag, const std::string& s);

int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_fetch(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_analyze(int argc, char** argv);
int cmd_sweep(int argc, char** argv);
int cmd_plot(int argc, char** argv);
int cmd_summary(int argc, char** argv);
int cmd_demo(int argc, char** argv);

}  // namespace crayon
