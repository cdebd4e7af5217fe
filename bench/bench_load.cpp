// Time to load and validate the 60000-image MNIST training set from data/mnist (gzipped
// IDX), median of 5 loads. Usage: bench_load [dataset]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "data/dataset.h"

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "mnist";
  std::vector<double> t;
  int64_t n = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    n = crayon::load_dataset(name, true).size();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("%s: %lld training images loaded and validated in %.3f s (median of 5)\n", name.c_str(), (long long)n,
              t[2]);
  return 0;
}
