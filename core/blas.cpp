#include "core/blas.h"

#include <cblas.h>

#include <strings.h>  // strcasecmp

namespace crayon {

void blas_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

std::string blas_info() {
  std::string info = openblas_get_config();
  info += " core=";
  info += openblas_get_corename();
  info += " threads=" + std::to_string(openblas_get_num_threads());
  return info;
}

bool blas_avx512_kernels() {
  const char* core = openblas_get_corename();
  for (const char* name : {"skylakex", "cooperlake", "sapphirerapids"})
    if (core != nullptr && strcasecmp(core, name) == 0) return true;
  return false;
}

}  // namespace crayon
