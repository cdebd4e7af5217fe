#pragma once
// Keeps a test's thread count to its scope: saves num_threads(), optionally sets n, and
// restores the saved count at the end, so one test's setting never leaks into the next.
#include "core/parallel.h"

namespace crayon {

struct ThreadCount {
  ThreadCount() = default;
  explicit ThreadCount(int n) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;
  int saved = num_threads();
};

}  // namespace crayon
