#include "core/check.h"

namespace crayon {

void throw_check_failure(const char* cond, const char* file, int line, const std::string& msg) {
  throw std::logic_error(str(msg, " [check '", cond, "' failed at ", file, ":", line, "]"));
}

}  // namespace crayon
