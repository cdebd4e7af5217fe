// Winograd F(2x2, 3x3) on AVX-512F: the transforms, the 16 products and the drivers
// (conv_winograd.h gives the scheme).
#include "core/conv_winograd.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"

#ifdef CRAYON_SGEMM_X86
#include "core/simd.h"  // <immintrin.h>
#define CRAYON_TARGET_AVX512F __attribute__((target("avx512f")))
#endif

namespace crayon::conv_detail {

bool winograd_applies(const DirectGeom& g, FloatIsa isa) {
#ifdef CRAYON_SGEMM_X86
  return isa == FloatIsa::avx512 && g.KH == 3 && g.KW == 3 && g.pad_h == 1 && g.pad_w == 1 && g.OH == g.H &&
         g.OW == g.W && g.H % 2 == 0 && g.W % 8 == 0 && (g.H / 2) * (g.W / 2) % 16 == 0;
#else
  (void)g;
  (void)isa;
  return false;
#endif
}

#ifdef CRAYON_SGEMM_X86
namespace {

constexpr int kXi = 16;  // positions of a 4x4 tile
constexpr int kOB = 8;   // output channels per register block

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// U[xi][c][k] (k fastest, zero past K) = G g G^T of filter g = wk(k, c), with
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
template <class Filter>
std::vector<float> transform_weights(int64_t C, int64_t K, int64_t Kp, Filter wk) {
  std::vector<float> u(size_t(kXi * C * Kp), 0.f);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const float* g = wk(k, c);  // 3x3, row-major
      float gg[4][3];             // G g
      for (int j = 0; j < 3; ++j) {
        gg[0][j] = g[j];
        gg[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        gg[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        gg[3][j] = g[6 + j];
      }
      for (int r = 0; r < 4; ++r) {
        const float v[4] = {gg[r][0], 0.5f * (gg[r][0] + gg[r][1] + gg[r][2]), 0.5f * (gg[r][0] - gg[r][1] + gg[r][2]),
                            gg[r][2]};
        for (int s = 0; s < 4; ++s) u[size_t(((r * 4 + s) * C + c) * Kp + k)] = v[s];
      }
    }
  return u;
}

// One thread's buffers and shapes for the chunks of a group of images (their zero-bordered
// planes are passed to input_transform).
struct Block {
  int64_t C, H, W;
  const float* u;  // U[xi][c][Kp]
  int64_t K, Kp;
  float* v;    // V[xi][c][nt] for the tiles of one chunk, cv rows per xi (cv >= C; rows past C zero)
  float* m;    // forward M[xi][Kp][nt]; weight gradient: the dy tiles A dY A^T as [xi][nt][Kp]
  int64_t nt;
  int64_t cv;
};

// The 8 floats at p and the 8 at q as one vector (AVX-512F only: no 32x8 insert, which is DQ).
CRAYON_TARGET_AVX512F inline __m512 two_halves(const float* p, const float* q) {
  const __m512d lo = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(p)));
  return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_loadu_ps(q)), 1));
}

// Where the four groups of 4 tiles of the vector starting at tile t begin, in floats from the
// top-left of a plane whose rows are row_stride apart (tile rows are TW tiles, 2 rows, apart).
inline void segment_offsets(int64_t t, int64_t TW, int64_t row_stride, int64_t off[4]) {
  for (int q = 0; q < 4; ++q) off[q] = 2 * ((t + 4 * q) / TW) * row_stride + 2 * ((t + 4 * q) % TW);
}

// The lane indices of a two-source permute taking the even (odd) floats of 32.
CRAYON_TARGET_AVX512F inline __m512i even_lanes() {
  return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
CRAYON_TARGET_AVX512F inline __m512i odd_lanes() {
  return _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

// The upper 8 floats of r.
CRAYON_TARGET_AVX512F inline __m256 upper_half(__m512 r) {
  return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1));
}

// V for the 16 tiles [t, t + 16) of the image at plane xp, every channel, into column j of v:
// V = B^T d B with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Tiles 4q..4q+3 of the vector
// sit in one tile row; their 4x4 inputs span 10 columns, read as two 8-float halves.
CRAYON_TARGET_AVX512F void input_transform(const Block& b, const float* xp, int64_t t, int64_t j) {
  const int64_t Wp = b.W + 2, plane = (b.H + 2) * Wp;
  int64_t off[4];
  segment_offsets(t, b.W / 2, Wp, off);
  const __m512i even = even_lanes(), odd = odd_lanes();
  for (int64_t c = 0; c < b.C; ++c) {
    const float* base = xp + c * plane;
    __m512 e[4][4];
    for (int r = 0; r < 4; ++r) {
      const float* row = base + r * Wp;
      const __m512 a0 = two_halves(row + off[0], row + off[1]), b0 = two_halves(row + off[2], row + off[3]);
      const __m512 a2 = two_halves(row + off[0] + 2, row + off[1] + 2);
      const __m512 b2 = two_halves(row + off[2] + 2, row + off[3] + 2);
      const __m512 d0 = _mm512_permutex2var_ps(a0, even, b0), d1 = _mm512_permutex2var_ps(a0, odd, b0);
      const __m512 d2 = _mm512_permutex2var_ps(a2, even, b2), d3 = _mm512_permutex2var_ps(a2, odd, b2);
      e[r][0] = _mm512_sub_ps(d0, d2);
      e[r][1] = _mm512_add_ps(d1, d2);
      e[r][2] = _mm512_sub_ps(d2, d1);
      e[r][3] = _mm512_sub_ps(d1, d3);
    }
    float* out = b.v + c * b.nt + j;
    const int64_t xi_stride = b.cv * b.nt;
    for (int s = 0; s < 4; ++s) {
      _mm512_storeu_ps(out + (0 + s) * xi_stride, _mm512_sub_ps(e[0][s], e[2][s]));
      _mm512_storeu_ps(out + (4 + s) * xi_stride, _mm512_add_ps(e[1][s], e[2][s]));
      _mm512_storeu_ps(out + (8 + s) * xi_stride, _mm512_sub_ps(e[2][s], e[1][s]));
      _mm512_storeu_ps(out + (12 + s) * xi_stride, _mm512_sub_ps(e[1][s], e[3][s]));
    }
  }
}

// M[xi](k0..k0+8, j..j + 16*NV) = sum over c of U[xi](c, k) * V[xi](c, tile).
template <int NV>
CRAYON_TARGET_AVX512F void product_block(const Block& b, int xi, int64_t k0, int64_t j) {
  __m512 acc[kOB][NV];
  for (int o = 0; o < kOB; ++o)
    for (int n = 0; n < NV; ++n) acc[o][n] = _mm512_setzero_ps();
  const float* v = b.v + xi * b.cv * b.nt + j;
  const float* u = b.u + xi * b.C * b.Kp + k0;
  for (int64_t c = 0; c < b.C; ++c, v += b.nt, u += b.Kp) {
    __m512 x[NV];
    for (int n = 0; n < NV; ++n) x[n] = _mm512_loadu_ps(v + 16 * n);
    for (int o = 0; o < kOB; ++o) {
      const __m512 w = _mm512_set1_ps(u[o]);
      for (int n = 0; n < NV; ++n) acc[o][n] = _mm512_fmadd_ps(w, x[n], acc[o][n]);
    }
  }
  float* m = b.m + (xi * b.Kp + k0) * b.nt + j;
  for (int o = 0; o < kOB; ++o)
    for (int n = 0; n < NV; ++n) _mm512_storeu_ps(m + o * b.nt + 16 * n, acc[o][n]);
}

// Y = A^T M A with A^T = [1 1 1 0; 0 1 -1 -1] for channel k and the 16 tiles [t, t + 16) of
// the image whose output is y (K, H, W), read from column j of m; written as bias + Y, or
// added to y.
CRAYON_TARGET_AVX512F void output_transform(const Block& b, int64_t k, int64_t t, int64_t j, float bias,
                                            bool accumulate, float* y) {
  int64_t off[4];
  segment_offsets(t, b.W / 2, b.W, off);
  const float* m = b.m + k * b.nt + j;
  const int64_t xi_stride = b.Kp * b.nt;
  __m512 q[4][2];
  for (int r = 0; r < 4; ++r) {
    const __m512 m0 = _mm512_loadu_ps(m + (4 * r + 0) * xi_stride), m1 = _mm512_loadu_ps(m + (4 * r + 1) * xi_stride);
    const __m512 m2 = _mm512_loadu_ps(m + (4 * r + 2) * xi_stride), m3 = _mm512_loadu_ps(m + (4 * r + 3) * xi_stride);
    q[r][0] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
    q[r][1] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
  }
  const __m512 bv = _mm512_set1_ps(bias);
  __m512 yr[2][2];
  for (int s = 0; s < 2; ++s) {
    yr[0][s] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(q[0][s], q[1][s]), q[2][s]), bv);
    yr[1][s] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(q[1][s], q[2][s]), q[3][s]), bv);
  }
  // Interleave columns 0 and 1 of the tiles: lo holds tiles t..t+7 (lanes 0-7 of both), hi t+8..t+15.
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  float* plane = y + k * b.H * b.W;
  for (int i = 0; i < 2; ++i) {
    const __m512 lo = _mm512_permutex2var_ps(yr[i][0], lo_idx, yr[i][1]);
    const __m512 hi = _mm512_permutex2var_ps(yr[i][0], hi_idx, yr[i][1]);
    const __m256 seg[4] = {_mm512_castps512_ps256(lo), upper_half(lo), _mm512_castps512_ps256(hi), upper_half(hi)};
    for (int qd = 0; qd < 4; ++qd) {
      float* out = plane + i * b.W + off[qd];
      _mm256_storeu_ps(out, accumulate ? _mm256_add_ps(_mm256_loadu_ps(out), seg[qd]) : seg[qd]);
    }
  }
}

// ------------------------------------------------------------------ weight gradient
// dL/dU[xi](c, k) = sum over tiles of V[xi](c, tile) * (A dY A^T)[xi](k, tile), then
// dw(k, c) = G^T dL/dU G. The dy tiles are transformed 16 tiles x 16 channels at a time and
// transposed, so the product runs over tiles with 32 channels k to a register pair.

// The 16 rows r[i] (16 floats each) turned into columns: r[j] lane i = old r[i] lane j.
CRAYON_TARGET_AVX512F void transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // b[4g + m]: rows 4g..4g+3 of columns m, m+4, m+8, m+12, one 128-bit block each.
  for (int g = 0; g < 4; ++g) {
    const __m512d a0 = _mm512_castps_pd(a[4 * g]), a1 = _mm512_castps_pd(a[4 * g + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * g + 2]), a3 = _mm512_castps_pd(a[4 * g + 3]);
    b[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 s0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44), s1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
    const __m512 s2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
    const __m512 s3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
    r[m] = _mm512_shuffle_f32x4(s0, s2, 0x88);
    r[m + 4] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
    r[m + 8] = _mm512_shuffle_f32x4(s1, s3, 0x88);
    r[m + 12] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
  }
}

// A dY A^T (A^T = [1 1 1 0; 0 1 -1 -1]) of the 16 tiles [t, t + 16) of the image whose
// gradient is dy (K, H, W), every channel k < Kp (zero past K), into rows j.. of b.m as
// [xi][tile][Kp].
CRAYON_TARGET_AVX512F void grad_transform(const Block& b, const float* dy, int64_t t, int64_t j) {
  const int64_t plane = b.H * b.W;
  int64_t off[4];
  segment_offsets(t, b.W / 2, b.W, off);
  const __m512i even = even_lanes(), odd = odd_lanes();
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t k0 = 0; k0 < b.Kp; k0 += 16) {
    __m512 rows[kXi][16];  // [xi][k - k0], lanes = tiles
    for (int kk = 0; kk < 16; ++kk) {
      if (k0 + kk >= b.K) {
        for (int xi = 0; xi < kXi; ++xi) rows[xi][kk] = zero;
        continue;
      }
      __m512 y[2][2];  // y[i][s]: row i, column s of the 16 tiles
      for (int i = 0; i < 2; ++i) {
        const float* row = dy + (k0 + kk) * plane + i * b.W;
        const __m512 lo = two_halves(row + off[0], row + off[1]), hi = two_halves(row + off[2], row + off[3]);
        y[i][0] = _mm512_permutex2var_ps(lo, even, hi);
        y[i][1] = _mm512_permutex2var_ps(lo, odd, hi);
      }
      // A dY: rows dY0, dY0 + dY1, dY0 - dY1, -dY1; then each row (u, v) times A^T: u, u+v, u-v, -v.
      __m512 p[4][2];
      for (int s = 0; s < 2; ++s) {
        p[0][s] = y[0][s];
        p[1][s] = _mm512_add_ps(y[0][s], y[1][s]);
        p[2][s] = _mm512_sub_ps(y[0][s], y[1][s]);
        p[3][s] = _mm512_sub_ps(zero, y[1][s]);
      }
      for (int r = 0; r < 4; ++r) {
        rows[4 * r + 0][kk] = p[r][0];
        rows[4 * r + 1][kk] = _mm512_add_ps(p[r][0], p[r][1]);
        rows[4 * r + 2][kk] = _mm512_sub_ps(p[r][0], p[r][1]);
        rows[4 * r + 3][kk] = _mm512_sub_ps(zero, p[r][1]);
      }
    }
    for (int xi = 0; xi < kXi; ++xi) {
      transpose16(rows[xi]);  // now rows[xi][tile] over 16 channels k
      float* out = b.m + (xi * b.nt + j) * b.Kp + k0;
      for (int tl = 0; tl < 16; ++tl) _mm512_storeu_ps(out + tl * b.Kp, rows[xi][tl]);
    }
  }
}

// du[xi](c0..c0+8, k0..k0+32) += sum over the chunk's len tiles of V[xi](c, tile) * dY tile (k).
CRAYON_TARGET_AVX512F void grad_product(const Block& b, int xi, int64_t k0, int64_t c0, int64_t len, float* du) {
  __m512 acc[kOB][2];
  float* d = du + (xi * b.cv + c0) * b.Kp + k0;
  for (int o = 0; o < kOB; ++o)
    for (int n = 0; n < 2; ++n) acc[o][n] = _mm512_loadu_ps(d + o * b.Kp + 16 * n);
  const float* m = b.m + xi * b.nt * b.Kp + k0;
  const float* v = b.v + (xi * b.cv + c0) * b.nt;
  for (int64_t t = 0; t < len; ++t, m += b.Kp) {
    const __m512 m0 = _mm512_loadu_ps(m), m1 = _mm512_loadu_ps(m + 16);
    for (int o = 0; o < kOB; ++o) {
      const __m512 w = _mm512_set1_ps(v[o * b.nt + t]);
      acc[o][0] = _mm512_fmadd_ps(w, m0, acc[o][0]);
      acc[o][1] = _mm512_fmadd_ps(w, m1, acc[o][1]);
    }
  }
  for (int o = 0; o < kOB; ++o)
    for (int n = 0; n < 2; ++n) _mm512_storeu_ps(d + o * b.Kp + 16 * n, acc[o][n]);
}

// How a batch is cut up: images in groups (so a chunk holds enough tiles even for 8x8 images),
// each group's tiles in chunks of nt (smaller for many input channels, so V stays near L2 size;
// M grows with the output channels: 768 KiB for cifar conv5). Threads take groups.
struct Tiling {
  int64_t T;          // tiles per image
  int64_t nt;         // tiles per chunk, a multiple of 16
  int64_t per_group;  // images per group
  int64_t groups;
  PaddedPlane pp;     // one channel of an image, zero-bordered
  int64_t plane;      // floats of one padded image, C * Hp * Wp
};

Tiling tiling(int64_t B, int64_t C, int64_t H, int64_t W) {
  Tiling t;
  t.T = (H / 2) * (W / 2);
  t.nt = C <= 64 ? 64 : 32;
  t.per_group = std::max<int64_t>(1, t.nt / t.T);
  t.groups = (B + t.per_group - 1) / t.per_group;
  t.pp = {H + 2, W + 2};
  t.plane = C * t.pp.Hp * t.pp.Wp;
  return t;
}

// out (B, K, H, W) = bias + conv(in (B, C, H, W)), or += conv, with U already transformed.
void run(int64_t B, const float* in, int64_t C, int64_t H, int64_t W, const std::vector<float>& u, int64_t K,
         int64_t Kp, const float* bias, bool accumulate, float* out) {
  const Tiling tl = tiling(B, C, H, W);
  const int64_t T = tl.T, nt = tl.nt, per_group = tl.per_group, plane = tl.plane;
  parallel_for(tl.groups, [&](int64_t g0, int64_t g1) {
    Tensor xp = Tensor::empty({per_group * plane});
    Tensor vbuf = Tensor::empty({kXi * C * nt}), mbuf = Tensor::empty({kXi * Kp * nt});
    Block blk{C, H, W, u.data(), K, Kp, vbuf.data(), mbuf.data(), nt, C};
    for (int64_t grp = g0; grp < g1; ++grp) {
      const int64_t b0 = grp * per_group, n = std::min(per_group, B - b0);
      for (int64_t i = 0; i < n; ++i) pad_into(in + (b0 + i) * C * H * W, C, H, W, 1, 1, tl.pp, xp.data() + i * plane);
      // The group's n*T tiles, nt at a time (tile index = image * T + tile in image).
      for (int64_t c0 = 0; c0 < n * T; c0 += nt) {
        const int64_t len = std::min(nt, n * T - c0);  // a multiple of 16
        for (int64_t j = 0; j < len; j += 16)
          input_transform(blk, xp.data() + ((c0 + j) / T) * plane, (c0 + j) % T, j);
        for (int xi = 0; xi < kXi; ++xi)
          for (int64_t k0 = 0; k0 < Kp; k0 += kOB) {
            int64_t j = 0;
            for (; j + 32 <= len; j += 32) product_block<2>(blk, xi, k0, j);
            if (j < len) product_block<1>(blk, xi, k0, j);
          }
        for (int64_t j = 0; j < len; j += 16) {
          const int64_t img = b0 + (c0 + j) / T, t = (c0 + j) % T;
          float* y = out + img * K * H * W;
          for (int64_t k = 0; k < K; ++k) output_transform(blk, k, t, j, bias ? bias[k] : 0.f, accumulate, y);
        }
      }
    }
  });
}

}  // namespace

void winograd_forward(const DirectGeom& g, int64_t B, const float* x, const float* w, const float* bias, float* y) {
  const int64_t Kp = round_up(g.O, kOB);
  const std::vector<float> u =
      transform_weights(g.C, g.O, Kp, [&](int64_t k, int64_t c) { return w + (k * g.C + c) * 9; });
  run(B, x, g.C, g.H, g.W, u, g.O, Kp, bias, false, y);
}

void winograd_input_grad(const DirectGeom& g, int64_t B, const float* dy, const float* w, float* dx) {
  // dx = dy correlated, padding 1, with wt(c, o) = w(o, c) turned by 180 degrees.
  const int64_t Kp = round_up(g.C, kOB);
  std::vector<float> flipped(size_t(g.O * g.C * 9));
  for (int64_t i = 0; i < g.O * g.C; ++i)
    for (int j = 0; j < 9; ++j) flipped[size_t(i * 9 + j)] = w[i * 9 + 8 - j];
  const std::vector<float> u = transform_weights(
      g.O, g.C, Kp, [&](int64_t c, int64_t o) { return flipped.data() + (o * g.C + c) * 9; });
  run(B, dy, g.O, g.H, g.W, u, g.C, Kp, nullptr, true, dx);
}


void winograd_weight_grad(const DirectGeom& g, int64_t B, const float* x, const float* dy, float* dw) {
  const int64_t C = g.C, K = g.O, H = g.H, W = g.W;
  const int64_t Kp = round_up(K, 32), Cv = round_up(C, kOB), du_size = kXi * Cv * Kp;
  const Tiling tl = tiling(B, C, H, W);
  const int64_t T = tl.T, nt = tl.nt, per_group = tl.per_group, plane = tl.plane;
  // Each part sums its groups into its own du; the parts are added in order (a given thread
  // count always gives the same bits).
  std::vector<Tensor> parts(static_cast<size_t>(num_threads()));
  const int n_parts = parallel_parts(tl.groups, [&](int part, int64_t g0, int64_t g1) {
    Tensor xp = Tensor::empty({per_group * plane});
    Tensor vbuf = Tensor::zeros({kXi * Cv * nt}), mbuf = Tensor::empty({kXi * nt * Kp});
    parts[size_t(part)] = Tensor::zeros({du_size});
    float* du = parts[size_t(part)].data();
    Block blk{C, H, W, nullptr, K, Kp, vbuf.data(), mbuf.data(), nt, Cv};
    for (int64_t grp = g0; grp < g1; ++grp) {
      const int64_t b0 = grp * per_group, n = std::min(per_group, B - b0);
      for (int64_t i = 0; i < n; ++i) pad_into(x + (b0 + i) * C * H * W, C, H, W, 1, 1, tl.pp, xp.data() + i * plane);
      for (int64_t c0 = 0; c0 < n * T; c0 += nt) {
        const int64_t len = std::min(nt, n * T - c0);
        for (int64_t j = 0; j < len; j += 16) {
          const int64_t img = (c0 + j) / T, t = (c0 + j) % T;
          input_transform(blk, xp.data() + img * plane, t, j);
          grad_transform(blk, dy + (b0 + img) * K * H * W, t, j);
        }
        for (int xi = 0; xi < kXi; ++xi)
          for (int64_t k0 = 0; k0 < Kp; k0 += 32)
            for (int64_t cc = 0; cc < Cv; cc += kOB) grad_product(blk, xi, k0, cc, len, du);
      }
    }
  });
  std::vector<float> sum(size_t(du_size), 0.f);
  for (int part = 0; part < n_parts; ++part) {
    const float* s = parts[size_t(part)].data();
    for (int64_t i = 0; i < du_size; ++i) sum[size_t(i)] += s[i];
  }
  // dw(k, c) += G^T D G, D = dL/dU(c, k) over xi; G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      float d[4][4], e[3][4];
      for (int xi = 0; xi < kXi; ++xi) d[xi / 4][xi % 4] = sum[size_t((xi * Cv + c) * Kp + k)];
      for (int s = 0; s < 4; ++s) {
        e[0][s] = d[0][s] + 0.5f * (d[1][s] + d[2][s]);
        e[1][s] = 0.5f * (d[1][s] - d[2][s]);
        e[2][s] = 0.5f * (d[1][s] + d[2][s]) + d[3][s];
      }
      float* out = dw + (k * C + c) * 9;
      for (int r = 0; r < 3; ++r) {
        out[r * 3 + 0] += e[r][0] + 0.5f * (e[r][1] + e[r][2]);
        out[r * 3 + 1] += 0.5f * (e[r][1] - e[r][2]);
        out[r * 3 + 2] += 0.5f * (e[r][1] + e[r][2]) + e[r][3];
      }
    }
}

#else

// winograd_applies() is false without AVX-512, so these are never reached.
void winograd_forward(const DirectGeom&, int64_t, const float*, const float*, const float*, float*) {
  throw std::logic_error("winograd_forward: built without the x86 kernels");
}
void winograd_input_grad(const DirectGeom&, int64_t, const float*, const float*, float*) {
  throw std::logic_error("winograd_input_grad: built without the x86 kernels");
}
void winograd_weight_grad(const DirectGeom&, int64_t, const float*, const float*, float*) {
  throw std::logic_error("winograd_weight_grad: built without the x86 kernels");
}

#endif

}  // namespace crayon::conv_detail
