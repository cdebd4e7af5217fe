#pragma once
// Error helpers. Bad input from a user (shapes, files, flags) throws a std exception whose
// message names what was expected and what was found; CRAYON_CHECK is for internal
// invariants and adds the source file and line.
#include <sstream>
#include <stdexcept>
#include <string>

namespace crayon {

// Concatenate anything streamable into one string: str("expected ", a, ", got ", b).
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] void throw_check_failure(const char* cond, const char* file, int line,
                                      const std::string& msg);

}  // namespace crayon

#define CRAYON_CHECK(cond, ...)                                                        \
  do {                                                                                  \
    if (!(cond)) ::crayon::throw_check_failure(#cond, __FILE__, __LINE__,               \
                                               ::crayon::str(__VA_ARGS__));             \
  } while (0)
