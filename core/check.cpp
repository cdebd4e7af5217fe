#include "core/check.h"

namespace crayon {

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (u < 0x20 || u == 0x7f) {
      const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

void throw_check_failure(const char* cond, const char* file, int line, const std::string& msg) {
  throw std::logic_error(str(msg, " [check '", cond, "' failed at ", file, ":", line, "]"));
}

}  // namespace crayon
