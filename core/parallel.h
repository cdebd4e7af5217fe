#pragma once
// Threads are set in one place: set_num_threads() sets both OpenBLAS's pool (GEMM) and
// crayon's own pool for its loops (im2col, pooling). The pool's workers sleep on a
// condition variable between jobs instead of spinning, so they never steal the cores
// OpenBLAS is about to use (an OpenMP pool spinning beside OpenBLAS made conv2d 3x slower).
// Work is split statically: a given thread count gives the same numbers every run.
#include <cstdint>
#include <functional>

namespace crayon {

void set_num_threads(int n);  // n >= 1
int num_threads();

// Run f(begin, end) over [0, n) split into at most num_threads() contiguous ranges, the
// calling thread taking the first. Small loops (n < min_per_thread * 2) run inline.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& f, int64_t min_per_thread = 1);

// The same split, telling f which part it runs: f(part, begin, end), parts numbered from
// 0 in order of their ranges. Returns the number of parts (1 if run inline), so callers
// can give each part its own scratch and combine the parts in a fixed order.
int parallel_parts(int64_t n, const std::function<void(int, int64_t, int64_t)>& f, int64_t min_per_thread = 1);


// Within its scope, OpenBLAS runs each GEMM on the calling thread alone; on exit it goes
// back to num_threads(). For loops that split the work over threads themselves and call
// sgemm from every part: a LeNet convolution's small GEMMs run 2-3x faster that way than
// split across threads by OpenBLAS (bench/bench_ops).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

}  // namespace crayon
