#include "core/limits.h"

#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/check.h"
#include "core/parse.h"

namespace crayon {

namespace {

void override_from_env(const char* name, int64_t& value) {
  const char* v = std::getenv(name);
  if (!v) return;
  int64_t n = 0;
  if (!parse_number(v, n) || n < 1)
    throw std::runtime_error(str(name, ": expected a positive integer, found '", v, "'"));
  value = n;
}

std::mutex g_mu;
bool g_set = false;
Limits g_limits;

}  // namespace

const Limits& limits() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_set) {
    Limits l;
    override_from_env("CRAYON_MAX_LAYERS", l.layers);
    override_from_env("CRAYON_MAX_PARAMETERS", l.parameters);
    override_from_env("CRAYON_MAX_ACTIVATION_BYTES", l.activation_bytes);
    override_from_env("CRAYON_MAX_THREADS", l.threads);
    g_limits = l;
    g_set = true;
  }
  return g_limits;
}

void set_limits(const Limits& l) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_limits = l;
  g_set = true;
}

int64_t max_threads() {
  const int64_t t = limits().threads;
  if (t > 0) return t;
  return std::max<int64_t>(8, 4 * int64_t(std::thread::hardware_concurrency()));
}

std::string limit_hint(int64_t limit, const char* env) {
  return str("(the limit is ", limit, "; raise it with ", env, "=N)");
}

int64_t mul_or_overflow(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a) return -1;
  return a * b;
}

}  // namespace crayon
