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

// Whether the path was chosen on purpose (CRAYON_FLOAT_ISA or set_float_isa), not by the CPU.
std::atomic<bool>& isa_chosen() {
  static std::atomic<bool> chosen{std::getenv("CRAYON_FLOAT_ISA") != nullptr && *std::getenv("CRAYON_FLOAT_ISA")};
  return chosen;
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
};

// Packs `count` lanes (rows of op(A), or columns of op(B)) from lane `first`, steps [p0, p0 +
// kc), into panels of `width` lanes: panel[p * width + l], zero past the edge. The lanes lie
// along the stored rows (x(lane, step) = x[step * ld + lane]: A transposed, B not) or across
// them (x[lane * ld + step]).
void pack_panels(const float* x, int ld, bool lanes_along_rows, int first, int count, int p0, int kc, int width,
                 float* out) {
  for (int l0 = 0; l0 < count; l0 += width) {
    const int lanes = std::min(width, count - l0);
    float* panel = out + int64_t(l0 / width) * kc * width;
    if (lanes_along_rows) {
      for (int p = 0; p < kc; ++p) {
        const float* src = x + int64_t(p0 + p) * ld + first + l0;
        float* dst = panel + int64_t(p) * width;
        for (int l = 0; l < lanes; ++l) dst[l] = src[l];
        for (int l = lanes; l < width; ++l) dst[l] = 0.f;
      }
    } else {
      for (int l = 0; l < width; ++l) {
        if (l >= lanes) {
          for (int p = 0; p < kc; ++p) panel[int64_t(p) * width + l] = 0.f;
          continue;
        }
        const float* src = x + int64_t(first + l0 + l) * ld + p0;
        for (int p = 0; p < kc; ++p) panel[int64_t(p) * width + l] = src[p];
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
      if (packed_from < nc) pack_panels(q.b, q.ldb, !q.tb, j0 + packed_from, nc - packed_from, p0, kc, t.nr, bbuf.data());
      const float beta = p0 == 0 ? q.beta : 1.f;
      for (int i0 = 0; i0 < q.m; i0 += mc_max) {
        const int mc = std::min(mc_max, q.m - i0);
        const int mc_padded = (mc + t.mr - 1) / t.mr * t.mr;
        if (abuf.size() < size_t(kc) * mc_padded) abuf.resize(size_t(kc) * mc_padded);
        pack_panels(q.a, q.lda, q.ta, i0, mc, p0, kc, t.mr, abuf.data());
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

FloatIsa matmul_isa() {
  static const bool blas_avx512 = blas_avx512_kernels();
  const FloatIsa isa = float_isa();
  return isa == FloatIsa::avx512 && blas_avx512 && !isa_chosen().load() ? FloatIsa::blas : isa;
}

void set_float_isa(FloatIsa isa) {
  if (!float_isa_supported(isa))
    throw std::invalid_argument(str("set_float_isa: this CPU cannot run the ", float_isa_name(isa), " path (best: ",
                                    float_isa_name(best_float_isa()), ")"));
  current_isa().store(isa);
  isa_chosen().store(true);
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
