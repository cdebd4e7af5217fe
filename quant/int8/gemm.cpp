// The int8 GEMM's shared part: weight and patch packing, the choice of kernel path (ISA) and
// the dispatch to the kernel files (gemm_portable.cpp, gemm_avx2.cpp, gemm_avx512.cpp, through
// quant/int8/gemm_kernels.h), the public functions of gemm.h, and the reference.
#include "quant/int8/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "core/check.h"
#include "core/parallel.h"
#include "quant/int8/gemm_kernels.h"

namespace crayon {

using namespace gemm_detail;

namespace {

constexpr int64_t kRowTile = 64;  // rows of a per parallel task

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

// Channels [j0, j0 + nr) of bias / stage (either may be null), for sums over k products
// (k < 0: sums of any size).
void fill_epilogue(Epilogue& e, Epilogue::Kind kind, const int32_t* bias, const OutputStage* stage, int64_t j0,
                   int64_t nr, int64_t k) {
  e.kind = kind;
  e.general = false;
  const int64_t safe_bias = k < 0 ? -1 : std::numeric_limits<int32_t>::max() - 128 * 127 * k;
  for (int64_t j = 0; j < kBlock; ++j) {
    const bool real = j < nr;
    e.bias[j] = real && bias ? bias[j0 + j] : 0;
    const FixedPointMultiplier m = real && stage ? stage->multiplier[size_t(j0 + j)] : FixedPointMultiplier{};
    e.mult[j] = m.multiplier;
    e.shift[j] = m.shift;
    const int t = 31 - m.shift;  // >= 31 unless the multiplier is >= 1
    const int64_t add = t >= 31 ? (int64_t(1) << 62) + (int64_t(1) << (t - 1)) - 1 : 0;
    (j % 2 ? e.t_odd[j / 2] : e.t_even[j / 2]) = t;
    (j % 2 ? e.add_odd[j / 2] : e.add_even[j / 2]) = add;
    e.offset[j] = t >= 31 ? int32_t(uint32_t(uint64_t(1) << (62 - t))) : 0;
    if (t < 31 || std::abs(int64_t(e.bias[j])) > safe_bias)
      e.general = true;
  }
  if (stage) {
    e.zero_point = stage->zero_point;
    e.act_min = stage->act_min;
    e.act_max = stage->act_max;
    e.lo = e.act_min - e.zero_point;
    e.hi = e.act_max - e.zero_point;
  }
}

void check_stage(const char* who, const OutputStage& stage, int64_t n) {
  if (int64_t(stage.multiplier.size()) != n)
    throw std::invalid_argument(str(who, ": output stage has ", stage.multiplier.size(), " multipliers for ", n,
                                    " output channels"));
  if (stage.zero_point < -128 || stage.zero_point > 127 || stage.act_min < -128 || stage.act_max > 127 ||
      stage.act_min > stage.act_max)
    throw std::invalid_argument(str(who, ": output zero point ", stage.zero_point, ", activation range [",
                                    stage.act_min, ", ", stage.act_max, "] (expected all in [-128, 127], min <= max)"));
}

// out (rows, nr) = prepared rows of a x block blk of w, finished by e.
void run_block(Int8Isa isa, const int8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, int64_t blk,
               const Epilogue& e, const RowOut& out) {
  const int8_t* wb = w.data.data() + blk * w.groups() * kGroupBytes;
  const int64_t nr = std::min(kBlock, w.n - blk * kBlock);
  switch (isa) {
#ifdef CRAYON_INT8_X86
    case Int8Isa::avx512vnni: return rows_vnni(a, lda, rows, wb, w.row_sums.data() + blk * kBlock, e, out, nr);
    case Int8Isa::avx2: return rows_avx2(a, lda, rows, wb, e, out, nr);
#endif
    default: return rows_portable(a, lda, rows, wb, e, out, nr);
  }
}

// The row-major product behind gemm_s8, gemm_s8_acc and gemm_s8_requant.
void gemm_rows(const char* who, const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, Epilogue::Kind kind,
               const int32_t* bias, const OutputStage* stage, const RowOut& out, Int8Isa isa) {
  if (k != w.k || m < 0)
    throw std::invalid_argument(str(who, ": a (", m, ", ", k, ") against weights (", w.n, ", ", w.k, ")"));
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str(who, ": this CPU cannot run the ", int8_isa_name(isa), " path"));
  if (stage) check_stage(who, *stage, w.n);
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
        Epilogue e;
        int64_t prepared = -1;
        for (int64_t t = begin; t < end; ++t) {
          const int64_t rt = t / w.blocks(), blk = t % w.blocks(), r0 = rt * kRowTile, mr = std::min(kRowTile, m - r0);
          if (rt != prepared) prepare_rows(a + r0 * k, mr, k, lda, isa == Int8Isa::avx512vnni, rows.data());
          prepared = rt;
          fill_epilogue(e, kind, bias, stage, blk * kBlock, std::min(kBlock, w.n - blk * kBlock), k);
          run_block(isa, rows.data(), lda, mr, w, blk, e, out.at(r0, blk * kBlock));
        }
      },
      std::max<int64_t>(1, (int64_t(1) << 18) / task_macs));  // ~256k MACs per thread at least
}

// pack_patches for one group: rows r[0..3] (null: zeros), pixels [p0, ldp) -> o[p * 4 + t],
// flipped to x + 128 for the VNNI path. SSE2 (x86-64's baseline) does 16 pixels at a time as a
// 4 x 16 byte transpose: bytes of rows 0/1 and 2/3 paired, then the pairs paired.
void pack_group(const int8_t* const r[4], int64_t p0, int64_t ldp, bool flip, int8_t* o) {
#if defined(__SSE2__)
  const __m128i f = _mm_set1_epi8(flip ? int8_t(0x80) : int8_t(0));
  for (int64_t p = p0; p < ldp; p += 16) {
    __m128i v[4];
    for (int t = 0; t < 4; ++t)
      v[t] = r[t] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[t] + p)) : _mm_setzero_si128();
    const __m128i a = _mm_unpacklo_epi8(v[0], v[1]), b = _mm_unpackhi_epi8(v[0], v[1]);
    const __m128i c = _mm_unpacklo_epi8(v[2], v[3]), d = _mm_unpackhi_epi8(v[2], v[3]);
    __m128i* dst = reinterpret_cast<__m128i*>(o + p * 4);
    _mm_storeu_si128(dst + 0, _mm_xor_si128(_mm_unpacklo_epi16(a, c), f));
    _mm_storeu_si128(dst + 1, _mm_xor_si128(_mm_unpackhi_epi16(a, c), f));
    _mm_storeu_si128(dst + 2, _mm_xor_si128(_mm_unpacklo_epi16(b, d), f));
    _mm_storeu_si128(dst + 3, _mm_xor_si128(_mm_unpackhi_epi16(b, d), f));
  }
#else
  for (int64_t p = p0; p < ldp; ++p)
    for (int t = 0; t < 4; ++t) o[p * 4 + t] = int8_t((r[t] ? r[t][p] : 0) ^ (flip ? 0x80 : 0));
#endif
}

// Dispatches a tile template on its run-time channel count 1..8.
template <typename F>
void with_channels(int64_t mr, F&& f) {
  switch (mr) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    default: return f(std::integral_constant<int, 8>{});
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
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
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
  gemm_rows("gemm_s8", a, m, k, w, Epilogue::Kind::i32, nullptr, nullptr, {c, nullptr, w.n}, isa);
}

void gemm_s8_acc(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, const int32_t* bias, int32_t* c,
                 Int8Isa isa) {
  gemm_rows("gemm_s8_acc", a, m, k, w, Epilogue::Kind::i32_bias, bias, nullptr, {c, nullptr, w.n}, isa);
}

void gemm_s8_requant(const int8_t* a, int64_t m, int64_t k, const PackedWeights& w, const int32_t* bias,
                     const OutputStage& stage, int8_t* y, Int8Isa isa) {
  gemm_rows("gemm_s8_requant", a, m, k, w, Epilogue::Kind::i8, bias, &stage, {nullptr, y, w.n}, isa);
}

void pack_patches(const int8_t* const* rows, int64_t k, int64_t np, Int8Isa isa, int8_t* out) {
  const int64_t ldp = patch_stride(np), groups = (k + 3) / 4;
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* r[4];
    for (int t = 0; t < 4; ++t) r[t] = 4 * g + t < k ? rows[4 * g + t] : nullptr;
    int8_t* o = out + g * ldp * 4;
#ifdef CRAYON_INT8_X86
    if (isa == Int8Isa::avx512vnni) {
      pack_group_512(r, ldp, o);
      continue;
    }
#endif
    pack_group(r, 0, ldp, isa == Int8Isa::avx512vnni, o);
  }
}

namespace {

// The channels-x-pixels product behind gemm_s8_patches and gemm_s8_patches_pairmax; out at
// channel 0, pixel 0.
void patches_run(const char* who, const PackedWeights& w, const int8_t* x, int64_t np, Epilogue::Kind kind,
                 const int32_t* bias, const OutputStage* stage, const RowOut& out, Int8Isa isa) {
  if (stage) check_stage(who, *stage, w.n);
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str(who, ": this CPU cannot run the ", int8_isa_name(isa), " path"));
  if (np <= 0) return;
  const int64_t groups = w.groups(), ldx = 4 * patch_stride(np);
  // AVX2 has half the registers and half the lanes: 4 channels by 16 pixels.
  const int64_t ct = isa == Int8Isa::avx2 ? 4 : 8, pt = isa == Int8Isa::avx2 ? 16 : kPixelTile;
  const int64_t per_pixel = kind == Epilogue::Kind::pair_max ? 2 : 1;  // pixels per output column
  Epilogue e;
  for (int64_t blk = 0; blk < w.blocks(); ++blk) {
    const int64_t nr = std::min(kBlock, w.n - blk * kBlock);
    fill_epilogue(e, kind, bias, stage, blk * kBlock, nr, w.k);
    const int8_t* wb = w.data.data() + blk * groups * kGroupBytes;
    const int32_t* rs = w.row_sums.data() + blk * kBlock;
    for (int64_t c0 = 0; c0 < nr; c0 += ct) {
      with_channels(std::min(ct, nr - c0), [&](auto mr) {
        constexpr int MR = decltype(mr)::value;
        for (int64_t q = 0; q < np; q += pt) {
          const int64_t valid = std::min(pt, np - q);
          const RowOut o = out.at(blk * kBlock + c0, q / per_pixel);
          switch (isa) {
#ifdef CRAYON_INT8_X86
            case Int8Isa::avx512vnni:
              tile_patches_vnni<MR>(wb + 4 * c0, groups, rs, x + 4 * q, ldx, e, c0, o, valid);
              break;
            case Int8Isa::avx2:
              if constexpr (MR <= 4) tile_patches_avx2<MR>(wb + 4 * c0, groups, x + 4 * q, ldx, e, c0, o, valid);
              break;
#endif
            default:
              tile_patches_portable<MR>(wb + 4 * c0, groups, x + 4 * q, ldx, e, c0, o, valid);
          }
        }
      });
    }
  }
}

}  // namespace

void gemm_s8_patches(const PackedWeights& w, const int8_t* x, int64_t np, const int32_t* bias,
                     const OutputStage& stage, int8_t* y, int64_t ldy, Int8Isa isa) {
  patches_run("gemm_s8_patches", w, x, np, Epilogue::Kind::i8, bias, &stage, {nullptr, y, ldy}, isa);
}

void gemm_s8_patches_pairmax(const PackedWeights& w, const int8_t* x, int64_t np, int32_t* y, int64_t ldy,
                             Int8Isa isa) {
  patches_run("gemm_s8_patches_pairmax", w, x, np, Epilogue::Kind::pair_max, nullptr, nullptr, {y, nullptr, ldy}, isa);
}

void requantize_max_rows(const int32_t* acc, int64_t n, int64_t rows, int64_t len, int64_t lda, int64_t ld_row,
                         int64_t k, const int32_t* bias, const OutputStage& stage, int8_t* y, Int8Isa isa) {
  check_stage("requantize_max_rows", stage, n);
  if (!int8_isa_supported(isa))
    throw std::invalid_argument(str("requantize_max_rows: this CPU cannot run the ", int8_isa_name(isa), " path"));
  std::vector<int32_t> pooled(size_t((rows * len + 15) / 16 * 16));  // one channel's maxima, contiguous
  Epilogue e;
  for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
    fill_epilogue(e, Epilogue::Kind::i8, bias, &stage, j0, std::min(kBlock, n - j0), k);
    for (int64_t j = j0; j < std::min(n, j0 + kBlock); ++j) {
      const int32_t* a = acc + j * lda;
      int8_t* o = y + j * rows * len;
#ifdef CRAYON_INT8_X86
      if (isa == Int8Isa::avx512vnni) {
        requantize_max_rows_512(a, rows, len, ld_row, e, j - j0, pooled.data(), o);
        continue;
      }
      if (isa == Int8Isa::avx2) {
        requantize_max_rows_256(a, rows, len, ld_row, e, j - j0, pooled.data(), o);
        continue;
      }
#endif
      requantize_max_rows_portable(a, rows, len, ld_row, e, j - j0, o);
    }
  }
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
