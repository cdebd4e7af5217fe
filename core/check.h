#pragma once
// Error helpers. Bad input from a user (shapes, files, flags) throws a std exception whose
// message names what was expected and what was found; CRAYON_CHECK is for internal
// invariants and adds the source file and line.
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace crayon {

// Concatenate anything streamable into one string: str("expected ", a, ", got ", b).
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

// text with every control character written as an escape (\n, \t, \r, \xNN), so a message
// that quotes user input stays on one line whatever the input holds.
std::string one_line(std::string_view text);

[[noreturn]] void throw_check_failure(const char* cond, const char* file, int line,
                                      const std::string& msg);

}  // namespace crayon

#define CRAYON_CHECK(cond, ...)                                                        \
  do {                                                                                  \
    if (!(cond)) ::crayon::throw_check_failure(#cond, __FILE__, __LINE__,               \
                                               ::crayon::str(__VA_ARGS__));             \
  } while (0)
