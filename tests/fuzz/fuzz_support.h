#pragma once
// What the libFuzzer targets share (tests/fuzz/README.md): the input as a file (crayon's
// readers take paths, and the file is how a hostile input reaches them), and the rule that an
// input may be refused only by a std::exception carrying one line of text. A crash, a
// sanitizer report, a leak, an uncaught exception or a hang is a bug; libFuzzer stops on each.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace crayon::fuzz {

// A scratch folder of this process, in /dev/shm when there is one (memory, not disk).
inline const std::string& scratch() {
  static const std::string dir = [] {
    const std::filesystem::path base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    const std::filesystem::path d = base / ("crayon-fuzz-" + std::to_string(getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

inline std::string write_input(const uint8_t* data, size_t size, const std::string& name = "input") {
  const std::string path = scratch() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return path;
}

// A refusal must say what was wrong on one line: an empty message or a line break is a bug.
inline void check_message(const std::exception& e) {
  const std::string_view m = e.what();
  if (m.empty() || m.find('\n') != std::string_view::npos) {
    std::fprintf(stderr, "refused without a one-line message: '%s'\n", e.what());
    std::abort();
  }
}

// Runs f; a std::exception is a refusal (its message checked), anything else escapes.
template <typename F>
void refused_or_ok(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    check_message(e);
  }
}

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "property violated: %s\n", what);
  std::abort();
}

}  // namespace crayon::fuzz
