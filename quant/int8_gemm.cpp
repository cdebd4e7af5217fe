#include "quant/int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/check.h"
#include "core/parallel.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define CRAYON_INT8_X86 1
#define CRAYON_TARGET_VNNI __attribute__((target("avx512vnni,avx512bw,avx512f")))
#define CRAYON_TARGET_AVX2 __attribute__((target("avx2")))
#endif

namespace crayon {

namespace {

constexpr int64_t kBlock = 32;              // output channels per packed block
constexpr int64_t kGroupBytes = kBlock * 4;  // one group of 4 k for the whole block
constexpr int64_t kRowTile = 64;            // rows of a per parallel task

// a's rows as the kernels read them: copied to a buffer with row stride 4 * groups, zero-padded
// to whole groups (the padded weights are 0, so the padding adds nothing), and for the VNNI
// path flipped to a + 128 = a ^ 0x80 once here instead of once per broadcast.
void prepare_rows(const int8_t* a, int64_t rows, int64_t k, int64_t lda, bool flip, int8_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    int8_t* o = out + r * lda;
    std::memcpy(o, a + r * k, size_t(k));
    std::memset(o + k, 0, size_t(lda - k));
    if (flip)
      for (int64_t i = 0; i < lda; ++i) o[i] = int8_t(o[i] ^ 0x80);
  }
}

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Each tile kernel multiplies MR prepared rows of a (row stride lda = 4 * groups) by one packed
// block (32 channels) and stores the first nr (<= 32) channels of each row into c (stride ldc).

template <int MR>
void tile_portable(const int8_t* a, int64_t lda, const int8_t* w, int32_t* c, int64_t ldc, int64_t nr) {
  int32_t acc[MR][kBlock] = {};
  for (int64_t g = 0; g < lda / 4; ++g, w += kGroupBytes)
    for (int r = 0; r < MR; ++r) {
      const int8_t* a4 = a + r * lda + 4 * g;
      for (int64_t ch = 0; ch < kBlock; ++ch)
        for (int t = 0; t < 4; ++t) acc[r][ch] += int32_t(a4[t]) * int32_t(w[ch * 4 + t]);
    }
  for (int r = 0; r < MR; ++r) std::memcpy(c + r * ldc, acc[r], size_t(nr) * sizeof(int32_t));
}

void rows_portable(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, int32_t* c, int64_t ldc, int64_t nr) {
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) tile_portable<4>(a + i * lda, lda, w, c + i * ldc, ldc, nr);
  for (; i < rows; ++i) tile_portable<1>(a + i * lda, lda, w, c + i * ldc, ldc, nr);
}

#ifdef CRAYON_INT8_X86

// vpdpbusd: lane j += sum_t u8(a4[t]) * s8(w[j][t]), a already flipped to a + 128; 128 *
// rowsum(w[j]) comes off at the end, and the wrap-around of the intermediate sums cancels.
template <int MR>
CRAYON_TARGET_VNNI void tile_vnni(const int8_t* a, int64_t lda, const int8_t* w, const int32_t* row_sums, int32_t* c,
                                  int64_t ldc, int64_t nr) {
  __m512i acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < lda / 4; ++g, w += kGroupBytes) {
    const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
    for (int r = 0; r < MR; ++r) {
      const __m512i au = _mm512_set1_epi32(load4(a + r * lda + 4 * g));
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], au, w0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], au, w1);
    }
  }
  alignas(64) int32_t corr[kBlock];  // 128 * rowsum: |.| <= 128 * 127 * kMaxGemmK < 2^31
  for (int64_t j = 0; j < kBlock; ++j) corr[j] = 128 * row_sums[j];
  const __m512i corr0 = _mm512_load_si512(corr), corr1 = _mm512_load_si512(corr + 16);
  const __mmask16 m0 = nr >= 16 ? 0xFFFF : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : __mmask16((1u << (nr - 16)) - 1);
  for (int r = 0; r < MR; ++r) {
    _mm512_mask_storeu_epi32(c + r * ldc, m0, _mm512_sub_epi32(acc[r][0], corr0));
    _mm512_mask_storeu_epi32(c + r * ldc + 16, m1, _mm512_sub_epi32(acc[r][1], corr1));
  }
}

// vpmaddubsw(|a|, w * sign(a)): u8 x s8 pairs summed in int16, at most 2 * 128 * 127 = 32512,
// so never saturating; vpmaddwd by 1 then sums the pairs into int32 lanes.
template <int MR>
CRAYON_TARGET_AVX2 void tile_avx2(const int8_t* a, int64_t lda, const int8_t* w, int32_t* c, int64_t ldc, int64_t nr) {
  __m256i acc[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t g = 0; g < lda / 4; ++g, w += kGroupBytes) {
    __m256i wv[4];
    for (int v = 0; v < 4; ++v) wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 32 * v));
    for (int r = 0; r < MR; ++r) {
      const __m256i av = _mm256_set1_epi32(load4(a + r * lda + 4 * g));
      const __m256i abs_a = _mm256_sign_epi8(av, av);  // -128 -> 0x80, read as unsigned 128
      for (int v = 0; v < 4; ++v) {
        const __m256i pairs = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(wv[v], av));
        acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(pairs, ones));
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    alignas(32) int32_t out[kBlock];
    for (int v = 0; v < 4; ++v) _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8 * v), acc[r][v]);
    std::memcpy(c + r * ldc, out, size_t(nr) * sizeof(int32_t));
  }
}

// Rows in tiles of MR, then the leftover rows one smaller tile.
CRAYON_TARGET_VNNI void rows_vnni(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, const int32_t* rs,
                                  int32_t* c, int64_t ldc, int64_t nr) {
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) tile_vnni<4>(a + i * lda, lda, w, rs, c + i * ldc, ldc, nr);
  const int64_t left = rows - i;
  if (left == 3) tile_vnni<3>(a + i * lda, lda, w, rs, c + i * ldc, ldc, nr);
  if (left == 2) tile_vnni<2>(a + i * lda, lda, w, rs, c + i * ldc, ldc, nr);
  if (left == 1) tile_vnni<1>(a + i * lda, lda, w, rs, c + i * ldc, ldc, nr);
}

CRAYON_TARGET_AVX2 void rows_avx2(const int8_t* a, int64_t lda, int64_t rows, const int8_t* w, int32_t* c,
                                  int64_t ldc, int64_t nr) {
  int64_t i = 0;
  for (; i + 2 <= rows; i += 2) tile_avx2<2>(a + i * lda, lda, w, c + i * ldc, ldc, nr);
  if (i < rows) tile_avx2<1>(a + i * lda, lda, w, c + i * ldc, ldc, nr);
}

#endif  // CRAYON_INT8_X86

// c (rows, nr) = prepared rows of a x block blk of w.
void run_block(Int8Isa isa, const int8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, int64_t blk,
               int32_t* c, int64_t ldc) {
  const int8_t* wb = w.data.data() + blk * w.groups() * kGroupBytes;
  const int64_t nr = std::min(kBlock, w.n - blk * kBlock);
  switch (isa) {
#ifdef CRAYON_INT8_X86
    case Int8Isa::avx512vnni: return rows_vnni(a, lda, rows, wb, w.row_sums.data() + blk * kBlock, c, ldc, nr);
    case Int8Isa::avx2: return rows_avx2(a, lda, rows, wb, c, ldc, nr);
#endif
    default: return rows_portable(a, lda, rows, wb, c, ldc, nr);
  }
}

Int8Isa initial_isa() {
  const char* env = std::getenv("CRAYON_INT8_ISA");
  if (env == nullptr || *env == '\0') return best_int8_isa();
  Int8Isa isa;
  try {
    isa = parse_int8_isa(env);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(str("CRAYON_INT8_ISA: ", e.what()));
  }
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("CRAYON_INT8_ISA=", env, ": this CPU does not support it (best: ",
                                    int8_isa_name(best_int8_isa()), ")"));
  return isa;
}

std::atomic<Int8Isa>& current_isa() {
  static std::atomic<Int8Isa> isa{initial_isa()};
  return isa;
}

}  // namespace

const char* int8_isa_name(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::portable: return "portable";
    case Int8Isa::avx2: return "avx2";
    case Int8Isa::avx512vnni: return "avx512vnni";
  }
  return "?";
}

Int8Isa parse_int8_isa(const std::string& name) {
  for (Int8Isa isa : {Int8Isa::portable, Int8Isa::avx2, Int8Isa::avx512vnni})
    if (name == int8_isa_name(isa)) return isa;
  throw std::invalid_argument(str("unknown int8 kernel path '", name, "' (expected portable, avx2 or avx512vnni)"));
}

bool int8_isa_supported(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::portable: return true;
#ifdef CRAYON_INT8_X86
    case Int8Isa::avx2: return __builtin_cpu_supports("avx2");
    case Int8Isa::avx512vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
#endif
    default: return false;
  }
}

Int8Isa best_int8_isa() {
  for (Int8Isa isa : {Int8Isa::avx512vnni, Int8Isa::avx2})
    if (int8_isa_supported(isa)) return isa;
  return Int8Isa::portable;
}

Int8Isa int8_isa() { return current_isa().load(); }

void set_int8_isa(Int8Isa isa) {
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("set_int8_isa: this CPU cannot run the ", int8_isa_name(isa), " path (best: ",
                                    int8_isa_name(best_int8_isa()), ")"));
  current_isa().store(isa);
}

PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k) {
  if (n < 1 || k < 1 || k > kMaxGemmK)
    throw std::invalid_argument(str("pack_weights: weight (", n, ", ", k, ") (expected n >= 1 and 1 <= k <= ",
                                    kMaxGemmK, ")"));
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.shape = {n, k};
  p.data.assign(size_t(p.blocks() * p.groups() * kGroupBytes), 0);
  p.row_sums.assign(size_t(p.blocks() * kBlock), 0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t kk = 0; kk < k; ++kk) {
      const int8_t v = w[j * k + kk];
      if (v == -128)
        throw std::invalid_argument(str("pack_weights: weight [", j, ", ", kk,
                                        "] is -128; int8 weights must lie in [-127, 127] (narrow range)"));
      p.data[size_t((((j / kBlock) * p.groups() + kk / 4) * kBlock + j % kBlock) * 4 + kk % 4)] = v;
      p.row_sums[size_t(j)] += v;
    }
  return p;
}

PackedWeights pack_weights(const Tensor& w) {
  if (w.dtype() != DType::i8 || w.ndim() < 2)
    throw std::invalid_argument(str("pack_weights: expected an int8 tensor of rank >= 2, got ", dtype_name(w.dtype()),
                                    " ", shape_str(w.shape())));
  PackedWeights p = pack_weights(w.data_as<int8_t>(), w.size(0), w.numel() / std::max<int64_t>(1, w.size(0)));
  p.shape = w.shape();
  return p;
}

void gemm_s8(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, int32_t* c) {
  gemm_s8(a, m, k, w, c, int8_isa());
}

void gemm_s8(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, int32_t* c, Int8Isa isa) {
  if (k != w.k || m < 0)
    throw std::invalid_argument(str("gemm_s8: a (", m, ", ", k, ") against weights (", w.n, ", ", w.k, ")"));
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("gemm_s8: this CPU cannot run the ", int8_isa_name(isa), " path"));
  if (m == 0) return;
  // Tasks: (row tile, channel block) pairs, row-major, so a thread prepares each tile of a
  // once and runs it past the weight blocks (32 x k bytes each, L1-sized for k up to ~1000,
  // reused by every MR rows of the tile).
  const int64_t lda = 4 * w.groups(), row_tiles = (m + kRowTile - 1) / kRowTile, tasks = row_tiles * w.blocks();
  const int64_t task_macs = std::min(m, kRowTile) * kBlock * k;
  parallel_for(
      tasks,
      [&](int64_t begin, int64_t end) {
        std::vector<int8_t> rows(size_t(std::min(m, kRowTile) * lda));
        int64_t prepared = -1;
        for (int64_t t = begin; t < end; ++t) {
          const int64_t rt = t / w.blocks(), blk = t % w.blocks(), r0 = rt * kRowTile, mr = std::min(kRowTile, m - r0);
          if (rt != prepared) prepare_rows(a + r0 * k, mr, k, lda, isa == Int8Isa::avx512vnni, rows.data());
          prepared = rt;
          run_block(isa, rows.data(), lda, mr, w, blk, c + r0 * w.n + blk * kBlock, w.n);
        }
      },
      std::max<int64_t>(1, (int64_t(1) << 18) / task_macs));  // ~256k MACs per thread at least
}

void gemm_s8_reference(const int8_t* a, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* c) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int32_t s = 0;
      for (int64_t kk = 0; kk < k; ++kk) s += int32_t(a[i * k + kk]) * int32_t(w[j * k + kk]);
      c[i * n + j] = s;
    }
}

}  // namespace crayon
