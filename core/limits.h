#pragma once
// Bounds on what a model file, a spec or a flag may make crayon allocate or start, so that a
// hostile or mistyped input is refused with one line naming it, before anything is allocated,
// instead of exhausting memory or hanging. Every bound is a setting: an environment variable
// raises it for one run, set_limits() for a program using the libraries.
//
//   CRAYON_MAX_LAYERS            layers in one model                          default 1,000
//   CRAYON_MAX_PARAMETERS        weights and biases in one model              default 2^28 (1 GiB of float32)
//   CRAYON_MAX_ACTIVATION_BYTES  one layer's output for one batch             default 2^32 (4 GiB)
//   CRAYON_MAX_THREADS           --threads                                    default 4 x the machine's cores
#include <cstdint>
#include <string>

namespace crayon {

struct Limits {
  int64_t layers = 1000;
  int64_t parameters = int64_t(1) << 28;
  int64_t activation_bytes = int64_t(1) << 32;
  int64_t threads = 0;  // 0: 4 x std::thread::hardware_concurrency() (at least 8)
};

// The limits in force: the defaults, overridden by the environment variables above (read
// once; a value that is not a positive integer throws std::runtime_error naming it).
const Limits& limits();
void set_limits(const Limits& l);

int64_t max_threads();  // limits().threads resolved

// "(the limit is N; raise it with NAME=M)": the tail of every limit error.
std::string limit_hint(int64_t limit, const char* env);

// a * b, or -1 if it exceeds INT64_MAX (a, b >= 0): sizes from files are multiplied this way.
int64_t mul_or_overflow(int64_t a, int64_t b);

}  // namespace crayon
