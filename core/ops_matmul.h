#pragma once
#include "core/variable.h"

namespace crayon {

// a: (M, K) [or (K, M) if trans_a], b: (K, N) [or (N, K) if trans_b] -> (M, N).
// One cblas_sgemm forward; backward is two more, with the transposes as flags and the
// gradients accumulated in place (beta = 1), never copied.
Variable matmul(const Variable& a, const Variable& b, bool trans_a = false, bool trans_b = false);

}  // namespace crayon
