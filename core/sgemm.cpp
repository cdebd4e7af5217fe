#include "core/sgemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "core/blas.h"
#include "core/check.h"
#include "core/parallel.h"
#include "core/sgemm_kernels.h"

namespace crayon {

using namespace sgemm_detail;

const char* float_isa_name(FloatIsa isa) {
  switch (isa) {
    case FloatIsa::blas: return "blas";
    case FloatIsa::avx2: return "avx2";
    case FloatIsa::avx512: return "avx512";
  }
  return "?";
}

FloatIsa parse_float_isa(const std::string& name) {
  for (FloatIsa isa : {FloatIsa::blas, FloatIsa::avx2, FloatIsa::avx512})
    if (name == float_isa_name(isa)) return isa;
  throw std::invalid_argument(str("unknown float kernel path '", name, "' (expected blas, avx2 or avx512)"));
}

bool float_isa_supported(FloatIsa isa) {
  switch (isa) {
    case FloatIsa::blas: return true;
#ifdef CRAYON_SGEMM_X86
    case FloatIsa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FloatIsa::avx512: return __builtin_cpu_supports("avx512f");
#endif
    default: return false;
  }
}

FloatIsa best_float_isa() {
  for (FloatIsa isa : {FloatIsa::avx512, FloatIsa::avx2})
    if (float_isa_supported(isa)) return isa;
  return FloatIsa::blas;
}

namespace {

FloatIsa initial_isa() {
  const char* env = std::getenv("CRAYON_FLOAT_ISA");
  if (env == nullptr || *env == '\0') return best_float_isa();
  FloatIsa isa;
  try {
    isa = parse_float_isa(env);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(str("CRAYON_FLOAT_ISA: ", e.what()));
  }
  if (!float_isa_supported(isa))
    throw std::invalid_argument(str("CRAYON_FLOAT_ISA=", env, ": this CPU does not support it (best: ",
                                    float_isa_name(best_float_isa()), ")"));
  return isa;
}

std::atomic<FloatIsa>& current_isa() {
  static std::atomic<FloatIsa> isa{initial_isa()};
  return isa;
}

// Blocking (BLIS's names): kc steps of k per packed panel pair, mc rows of A packed at a time
// (an L2-sized block), nc columns of B (an L3-sized block, 256 KiB at kc = 256).
constexpr int kKc = 256, kMc = 144, kNc = 1024;
constexpr int kDirectK = 64;  // B unpacked for k-blocks up to this long

struct Problem {
  bool ta, tb;
  int m, n, k;
  float alpha;
  const float* a;
  int lda;
  const float* b;
  int ldb;
  float beta;
  float* c;
  int ldc;
  float a_at(int64_t i, int64_t p) const { return ta ? a[p * lda + i] : a[i * lda + p]; }
};

// op(A) rows [i0, i0 + mc), steps [p0, p0 + kc) into panels of MR rows (zero past the edge).
void pack_a(const Problem& q, int i0, int mc, int p0, int kc, int MR, float* out) {
  for (int ip = 0; ip < mc; ip += MR) {
    const int rows = std::min(MR, mc - ip);
    float* panel = out + int64_t(ip / MR) * kc * MR;
    if (q.ta) {  // op(A)(i, p) = a[p * lda + i]: rows of a run along i
      for (int p = 0; p < kc; ++p) {
        const float* src = q.a + int64_t(p0 + p) * q.lda + i0 + ip;
        float* dst = panel + int64_t(p) * MR;
        for (int r = 0; r < rows; ++r) dst[r] = src[r];
        for (int r = rows; r < MR; ++r) dst[r] = 0.f;
      }
    } else {
      for (int r = 0; r < MR; ++r) {
        if (r >= rows) {
          for (int p = 0; p < kc; ++p) panel[int64_t(p) * MR + r] = 0.f;
          continue;
        }
        const float* src = q.a + int64_t(i0 + ip + r) * q.lda + p0;
        for (int p = 0; p < kc; ++p) panel[int64_t(p) * MR + r] = src[p];
      }
    }
  }
}

// op(B) steps [p0, p0 + kc), columns [j0, j0 + nc) into panels of NR columns.
void pack_b(const Problem& q, int p0, int kc, int j0, int nc, int NR, float* out) {
  for (int jp = 0; jp < nc; jp += NR) {
    const int cols = std::min(NR, nc - jp);
    float* panel = out + int64_t(jp / NR) * kc * NR;
    if (!q.tb) {  // op(B)(p, j) = b[p * ldb + j]: rows of b run along j
      for (int p = 0; p < kc; ++p) {
        const float* src = q.b + int64_t(p0 + p) * q.ldb + j0 + jp;
        float* dst = panel + int64_t(p) * NR;
        for (int j = 0; j < cols; ++j) dst[j] = src[j];
        for (int j = cols; j < NR; ++j) dst[j] = 0.f;
      }
    } else {
      for (int j = 0; j < NR; ++j) {
        if (j >= cols) {
          for (int p = 0; p < kc; ++p) panel[int64_t(p) * NR + j] = 0.f;
          continue;
        }
        const float* src = q.b + int64_t(j0 + jp + j) * q.ldb + p0;
        for (int p = 0; p < kc; ++p) panel[int64_t(p) * NR + j] = src[p];
      }
    }
  }
}

// The dot-product path (sgemm_kernels.h) for A B^T with a small side and a long k.
bool use_dot(bool ta, bool tb, int m, int n, int k) { return !ta && tb && std::min(m, n) <= 64 && k >= 256; }

void run_dot(const Problem& q, DotKernel kernel) {
  for (int i = 0; i < q.m; i += kDotTile)
    for (int j = 0; j < q.n; j += kDotTile)
      kernel(q.k, q.a + int64_t(i) * q.lda, q.lda, q.b + int64_t(j) * q.ldb, q.ldb, std::min(kDotTile, q.m - i),
             std::min(kDotTile, q.n - j), q.alpha, q.beta, q.c + int64_t(i) * q.ldc + j, q.ldc);
}

// Packing buffers, one pair per thread, grown to the largest block seen and then reused.
std::vector<float>& buffer(int which) {
  thread_local std::vector<float> buffers[2];
  return buffers[which];
}

// The whole of q on the calling thread.
void run_blocked(const Problem& q, TileShape t, TileKernel kernel) {
  const int mc_max = std::max(t.mr, kMc / t.mr * t.mr), nc_max = kNc / t.nr * t.nr;
  std::vector<float>& abuf = buffer(0);
  std::vector<float>& bbuf = buffer(1);
  for (int j0 = 0; j0 < q.n; j0 += nc_max) {
    const int nc = std::min(nc_max, q.n - j0);
    const int nc_padded = (nc + t.nr - 1) / t.nr * t.nr;
    for (int p0 = 0; p0 < q.k; p0 += kKc) {
      const int kc = std::min(kKc, q.k - p0);
      // B as stored when its rows already hold the panels and the block is short (a long one
      // would walk kc rows far apart in memory per tile); only a partial last panel is packed.
      const bool direct = !q.tb && kc <= kDirectK;
      const int packed_from = direct ? nc / t.nr * t.nr : 0;
      if (bbuf.size() < size_t(kc) * nc_padded) bbuf.resize(size_t(kc) * nc_padded);
      if (packed_from < nc) pack_b(q, p0, kc, j0 + packed_from, nc - packed_from, t.nr, bbuf.data());
      const float beta = p0 == 0 ? q.beta : 1.f;
      for (int i0 = 0; i0 < q.m; i0 += mc_max) {
        const int mc = std::min(mc_max, q.m - i0);
        const int mc_padded = (mc + t.mr - 1) / t.mr * t.mr;
        if (abuf.size() < size_t(kc) * mc_padded) abuf.resize(size_t(kc) * mc_padded);
        pack_a(q, i0, mc, p0, kc, t.mr, abuf.data());
        for (int jp = 0; jp < nc; jp += t.nr) {
          const float* bp = jp < packed_from ? q.b + int64_t(p0) * q.ldb + j0 + jp
                                             : bbuf.data() + int64_t((jp - packed_from) / t.nr) * kc * t.nr;
          const int64_t ldbp = jp < packed_from ? q.ldb : t.nr;
          for (int ip = 0; ip < mc; ip += t.mr)
            kernel(kc, abuf.data() + int64_t(ip / t.mr) * kc * t.mr, bp, ldbp, std::min(t.mr, mc - ip),
                   std::min(t.nr, nc - jp), q.alpha, beta, q.c + int64_t(i0 + ip) * q.ldc + j0 + jp, q.ldc);
        }
      }
    }
  }
}

// C = beta C (k == 0 or alpha == 0: nothing to multiply; beta == 0 writes zeros, as BLAS).
void scale_c(const Problem& q) {
  for (int i = 0; i < q.m; ++i) {
    float* row = q.c + int64_t(i) * q.ldc;
    for (int j = 0; j < q.n; ++j) row[j] = q.beta == 0.f ? 0.f : q.beta * row[j];
  }
}

// Below this many multiply-adds a GEMM runs on one thread (a split costs ~10 us).
constexpr int64_t kMinParallelWork = int64_t(1) << 18;

}  // namespace

FloatIsa float_isa() { return current_isa().load(); }

void set_float_isa(FloatIsa isa) {
  if (!float_isa_supported(isa))
    throw std::invalid_argument(str("set_float_isa: this CPU cannot run the ", float_isa_name(isa), " path (best: ",
                                    float_isa_name(best_float_isa()), ")"));
  current_isa().store(isa);
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
           int ldb, float beta, float* c, int ldc, FloatIsa isa) {
  if (m <= 0 || n <= 0) return;
  TileShape t{};
  TileKernel kernel = nullptr;
  DotKernel dot = nullptr;
  switch (isa) {
#ifdef CRAYON_SGEMM_X86
    case FloatIsa::avx2: t = kAvx2Tile, kernel = tile_avx2, dot = dot_avx2; break;
    case FloatIsa::avx512: t = kAvx512Tile, kernel = tile_avx512, dot = dot_avx512; break;
#endif
    default: return blas_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  const Problem q{trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
  if (k <= 0 || alpha == 0.f) return scale_c(q);
  if (use_dot(trans_a, trans_b, m, n, k)) t = {kDotTile, kDotTile};
  // Threads take blocks of whole tiles along the longer side of C.
  const int64_t work = int64_t(m) * n * k;
  const bool by_columns = n / t.nr >= m / t.mr;
  const int64_t tiles = by_columns ? (n + t.nr - 1) / t.nr : (m + t.mr - 1) / t.mr;
  const int64_t per_thread = std::max<int64_t>(1, tiles * kMinParallelWork / std::max<int64_t>(work, 1));
  parallel_for(tiles, [&](int64_t t0, int64_t t1) {
    Problem part = q;
    if (by_columns) {
      const int j0 = int(t0 * t.nr), j1 = int(std::min<int64_t>(n, t1 * t.nr));
      part.n = j1 - j0;
      part.b = trans_b ? b + int64_t(j0) * ldb : b + j0;
      part.c = c + j0;
    } else {
      const int i0 = int(t0 * t.mr), i1 = int(std::min<int64_t>(m, t1 * t.mr));
      part.m = i1 - i0;
      part.a = trans_a ? a + i0 : a + int64_t(i0) * lda;
      part.c = c + int64_t(i0) * ldc;
    }
    if (use_dot(trans_a, trans_b, m, n, k)) run_dot(part, dot);
    else run_blocked(part, t, kernel);
  }, per_thread);
}

}  // namespace crayon
