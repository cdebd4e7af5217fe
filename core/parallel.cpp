#include "core/parallel.h"

#include <cblas.h>
#include <omp.h>

#include <stdexcept>
#include <string>

namespace crayon {

void set_num_threads(int n) {
  if (n < 1) throw std::invalid_argument("thread count must be >= 1, got " + std::to_string(n));
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace crayon
