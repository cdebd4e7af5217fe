#include "core/ops_matmul.h"

#include <stdexcept>

#include "core/sgemm.h"
#include "core/check.h"

namespace crayon {

Variable matmul(const Variable& a, const Variable& b, bool trans_a, bool trans_b) {
  if (a.ndim() != 2 || b.ndim() != 2)
    throw std::invalid_argument(str("matmul: expected 2-D operands, got ", shape_str(a.shape()), " and ",
                                    shape_str(b.shape())));
  const int64_t M = trans_a ? a.size(1) : a.size(0), K = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0), N = trans_b ? b.size(0) : b.size(1);
  if (K != Kb)
    throw std::invalid_argument(str("matmul: inner dimensions differ: ", shape_str(a.shape()),
                                    trans_a ? "^T" : "", " x ", shape_str(b.shape()), trans_b ? "^T" : ""));
  const int lda = int(a.size(1)), ldb = int(b.size(1));
  Tensor y = Tensor::empty({M, N});
  const FloatIsa isa = matmul_isa();
  sgemm(trans_a, trans_b, int(M), int(N), int(K), 1.f, a.value().data(), lda, b.value().data(), ldb, 0.f,
        y.data(), int(N), isa);
  return make_result(std::move(y), {a, b}, [=](const Tensor& dy, std::vector<Variable>& in) {
    const float* pdy = dy.data();
    const float* pa = in[0].value().data();
    const float* pb = in[1].value().data();
    float beta;
    // C = op(A) op(B). dop(A) = dC op(B)^T, dop(B) = op(A)^T dC; if A itself was
    // transposed, dA = (dop(A))^T = op(B) dC^T, and likewise for B.
    if (in[0].requires_grad()) {
      float* da = in[0].grad_for_gemm(&beta).data();
      if (!trans_a) sgemm(false, !trans_b, int(M), int(K), int(N), 1.f, pdy, int(N), pb, ldb, beta, da, lda, isa);
      else sgemm(trans_b, true, int(K), int(M), int(N), 1.f, pb, ldb, pdy, int(N), beta, da, lda, isa);
    }
    if (in[1].requires_grad()) {
      float* db = in[1].grad_for_gemm(&beta).data();
      if (!trans_b) sgemm(!trans_a, false, int(K), int(N), int(M), 1.f, pa, lda, pdy, int(N), beta, db, ldb, isa);
      else sgemm(true, trans_a, int(N), int(K), int(M), 1.f, pdy, int(N), pa, lda, beta, db, ldb, isa);
    }
  }, "matmul");
}

}  // namespace crayon
