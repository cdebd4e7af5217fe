#pragma once
// The direct convolution's kernels, written once over a vector type V. Included only by
// conv_direct_avx2.cpp and conv_direct_avx512.cpp, after each defines CRAYON_CONV_TARGET (its
// target attribute) and its V:
//   reg, mask; lanes, regs (vector registers the ISA has)
//   zero(), set1(f), load(p), load(p, m) (lanes outside m read as 0), store(p, r),
//   store(p, r, m), fma(a, b, c) = a*b + c, first(n) (the mask of lanes 0..n-1, 1 <= n <= lanes),
//   sum(r) (the lanes added in a fixed order)
// Everything here sits in an unnamed namespace, so each file's instantiations stay its own and
// none built for one ISA can be picked by the linker for a caller on another.
#include <cstdint>

#include "core/conv_direct.h"

namespace crayon::conv_detail {
namespace {

// ------------------------------------------------------------------ forward (and input gradient)

// Channels per register block for NV vectors: the accumulators, NV input vectors and one
// broadcast weight must fit in the registers.
template <class V>
constexpr bool fwd_fits(int nv, int ob) {
  return ob * nv + nv + 1 <= V::regs;
}
constexpr int kFwdBlocks[] = {1, 2, 3, 4, 6, 8, 12, 16, 24};
constexpr int kMaxVectors = 4;  // output-column vectors per tile

// One tile: output channels [o0, o0 + OB) x row oh x columns [ow0, ow0 + NV * lanes), the
// last vector's valid lanes in `tail`.
template <class V, int NV, int OB>
CRAYON_CONV_TARGET void fwd_tile(const FwdTask& t, int64_t o0, int64_t oh, int64_t ow0, typename V::mask tail) {
  using reg = typename V::reg;
  constexpr int L = V::lanes;
  const int nob = int(t.O - o0 < OB ? t.O - o0 : OB);
  reg acc[OB][NV];
  CRAYON_SGEMM_UNROLL
  for (int ob = 0; ob < OB; ++ob) {
    CRAYON_SGEMM_UNROLL
    for (int n = 0; n < NV; ++n) {
      if (ob >= nob) {
        acc[ob][n] = V::zero();  // a padding channel past O: computed, never stored
      } else if (t.accumulate) {
        const float* yr = t.y + ((o0 + ob) * t.OH + oh) * t.OW + ow0;
        acc[ob][n] = n + 1 < NV ? V::load(yr + n * L) : V::load(yr + n * L, tail);
      } else {
        acc[ob][n] = V::set1(t.bias ? t.bias[o0 + ob] : 0.f);
      }
    }
  }
  for (int64_t c = 0; c < t.C; ++c)
    for (int kh = 0; kh < t.KH; ++kh) {
      const float* xr = t.xp + (c * t.Hp + oh + kh) * t.Wp + ow0;
      const float* wr = t.wp + (c * t.KH + kh) * t.KW * t.o_stride + o0;
      for (int kw = 0; kw < t.KW; ++kw, wr += t.o_stride) {
        reg xv[NV];
        CRAYON_SGEMM_UNROLL
        for (int n = 0; n < NV; ++n) xv[n] = V::load(xr + kw + n * L);
        CRAYON_SGEMM_UNROLL
        for (int ob = 0; ob < OB; ++ob) {
          const reg w = V::set1(wr[ob]);
          CRAYON_SGEMM_UNROLL
          for (int n = 0; n < NV; ++n) acc[ob][n] = V::fma(w, xv[n], acc[ob][n]);
        }
      }
    }
  CRAYON_SGEMM_UNROLL
  for (int ob = 0; ob < OB; ++ob) {
    if (ob >= nob) continue;
    float* yr = t.y + ((o0 + ob) * t.OH + oh) * t.OW + ow0;
    CRAYON_SGEMM_UNROLL
    for (int n = 0; n < NV; ++n) {
      if (n + 1 < NV) V::store(yr + n * L, acc[ob][n]);
      else V::store(yr + n * L, acc[ob][n], tail);
    }
  }
}

template <class V>
using FwdTile = void (*)(const FwdTask&, int64_t, int64_t, int64_t, typename V::mask);

template <class V, int NV>
FwdTile<V> fwd_tile_for(int ob) {
  FwdTile<V> f = nullptr;
  auto pick = [&]<int OB>() {
    if constexpr (fwd_fits<V>(NV, OB)) if (ob == OB) f = &fwd_tile<V, NV, OB>;
  };
  pick.template operator()<1>();
  pick.template operator()<2>();
  pick.template operator()<3>();
  pick.template operator()<4>();
  pick.template operator()<6>();
  pick.template operator()<8>();
  pick.template operator()<12>();
  pick.template operator()<16>();
  pick.template operator()<24>();
  return f;
}

template <class V>
FwdTile<V> fwd_tile_for(int nv, int ob) {
  switch (nv) {
    case 1: return fwd_tile_for<V, 1>(ob);
    case 2: return fwd_tile_for<V, 2>(ob);
    case 3: return fwd_tile_for<V, 3>(ob);
    default: return fwd_tile_for<V, 4>(ob);
  }
}

// The block that wastes least: per (c, kh, kw) step a block costs about max(OB*NV FMAs, NV + OB
// loads) at two of each per cycle; padding channels up to a multiple of OB is paid in full.
template <class V>
int forward_block(int64_t O, int64_t OW) {
  const int64_t vecs = (OW + V::lanes - 1) / V::lanes;
  const int nv = int(vecs < kMaxVectors ? vecs : kMaxVectors);
  int best = 1;
  int64_t best_cost = -1;
  for (int ob : kFwdBlocks) {
    if (!fwd_fits<V>(nv, ob)) continue;
    const int64_t blocks = (O + ob - 1) / ob;
    const int64_t per = ob * nv > nv + ob ? ob * nv : nv + ob;
    const int64_t cost = blocks * per;
    if (best_cost < 0 || cost <= best_cost) best = ob, best_cost = cost;
  }
  return best;
}

template <class V>
CRAYON_CONV_TARGET void forward(const FwdTask& t) {
  constexpr int L = V::lanes, kBlock = kMaxVectors * L;
  // Column blocks of kMaxVectors vectors, the last one shorter.
  const int64_t last_w = t.OW % kBlock == 0 ? kBlock : t.OW % kBlock;
  const int last_nv = int((last_w + L - 1) / L);
  const typename V::mask full = V::first(L), last_tail = V::first(int(last_w - (last_nv - 1) * L));
  const FwdTile<V> full_tile = fwd_tile_for<V>(kMaxVectors, t.ob), last_tile = fwd_tile_for<V>(last_nv, t.ob);
  const int64_t last_ow0 = t.OW - last_w;
  for (int64_t o0 = 0; o0 < t.O; o0 += t.ob)
    for (int64_t oh = 0; oh < t.OH; ++oh) {
      for (int64_t ow0 = 0; ow0 < last_ow0; ow0 += kBlock) full_tile(t, o0, oh, ow0, full);
      last_tile(t, o0, oh, last_ow0, last_tail);
    }
}

// ------------------------------------------------------------------ weight gradient

// Output channels per block for a kernel KW wide: OB x KW accumulators, OB dy vectors and one
// input vector in the registers, at most 8 channels.
template <class V>
constexpr int dw_max_block(int kw) {
  const int ob = (V::regs - 1) / (kw + 1);
  return ob < 8 ? ob : 8;
}

template <class V, int KW, int OB>
CRAYON_CONV_TARGET void dw_block(const DwTask& t, int64_t c, int kh, int64_t o0) {
  using reg = typename V::reg;
  constexpr int L = V::lanes;
  const int nob = int(t.O - o0 < OB ? t.O - o0 : OB);
  // Output columns in vectors, the last one's lanes past OW masked: they read as zero in
  // both factors, so they add nothing.
  const int64_t nvec = (t.OW + L - 1) / L;
  const typename V::mask full = V::first(L), tail = V::first(int(t.OW - (nvec - 1) * L));
  reg acc[OB][KW];
  CRAYON_SGEMM_UNROLL
  for (int ob = 0; ob < OB; ++ob)
    CRAYON_SGEMM_UNROLL
    for (int kw = 0; kw < KW; ++kw) acc[ob][kw] = V::zero();
  const int64_t plane = t.Hp * t.Wp, out_plane = t.OH * t.OW;
  // Channel ob's dy rows sit at a fixed offset from channel o0's (rows past O repeat o0's;
  // their sums are dropped).
  int64_t off[OB];
  CRAYON_SGEMM_UNROLL
  for (int ob = 0; ob < OB; ++ob) off[ob] = (ob < nob ? ob : 0) * out_plane;
  for (int64_t i = 0; i < t.n; ++i) {
    const float* xr = t.xp + (i * t.C + c) * plane + kh * t.Wp;
    const float* dr = t.dy + (i * t.O + o0) * out_plane;
    for (int64_t oh = 0; oh < t.OH; ++oh, xr += t.Wp, dr += t.OW)
      for (int64_t v = 0; v < nvec; ++v) {
        const typename V::mask m = v + 1 < nvec ? full : tail;
        reg d[OB];
        CRAYON_SGEMM_UNROLL
        for (int ob = 0; ob < OB; ++ob) d[ob] = V::load(dr + off[ob] + v * L, m);
        CRAYON_SGEMM_UNROLL
        for (int kw = 0; kw < KW; ++kw) {
          const reg xv = V::load(xr + v * L + kw, m);
          CRAYON_SGEMM_UNROLL
          for (int ob = 0; ob < OB; ++ob) acc[ob][kw] = V::fma(d[ob], xv, acc[ob][kw]);
        }
      }
  }
  // Constant indices only (no loop up to nob), so acc can live in registers.
  CRAYON_SGEMM_UNROLL
  for (int ob = 0; ob < OB; ++ob)
    CRAYON_SGEMM_UNROLL
    for (int kw = 0; kw < KW; ++kw)
      if (ob < nob) t.dw[(((o0 + ob) * t.C + c) * t.KH + kh) * KW + kw] += V::sum(acc[ob][kw]);
}

template <class V>
using DwBlock = void (*)(const DwTask&, int64_t, int, int64_t);

template <class V, int KW>
DwBlock<V> dw_block_for(int ob) {
  DwBlock<V> f = nullptr;
  auto pick = [&]<int OB>() {
    if constexpr (OB <= dw_max_block<V>(KW)) if (ob == OB) f = &dw_block<V, KW, OB>;
  };
  pick.template operator()<1>();
  pick.template operator()<2>();
  pick.template operator()<3>();
  pick.template operator()<4>();
  pick.template operator()<5>();
  pick.template operator()<6>();
  pick.template operator()<7>();
  pick.template operator()<8>();
  return f;
}

template <class V>
DwBlock<V> dw_block_for(int kw, int ob) {
  switch (kw) {
    case 1: return dw_block_for<V, 1>(ob);
    case 2: return dw_block_for<V, 2>(ob);
    case 3: return dw_block_for<V, 3>(ob);
    case 4: return dw_block_for<V, 4>(ob);
    case 5: return dw_block_for<V, 5>(ob);
    case 6: return dw_block_for<V, 6>(ob);
    default: return dw_block_for<V, 7>(ob);
  }
}

static_assert(kMaxDirectKernel == 7, "dw_block_for() instantiates KW = 1 .. 7");

template <class V>
void weight_grad(const DwTask& t) {
  // The channel blocks as even as the register limit allows (6 channels at most 5 per block
  // run as 3 + 3, not 5 + 1).
  const int64_t max_ob = dw_max_block<V>(t.KW), blocks = (t.O + max_ob - 1) / max_ob;
  const int ob = int((t.O + blocks - 1) / blocks);
  const DwBlock<V> block = dw_block_for<V>(t.KW, ob);
  for (int64_t c = 0; c < t.C; ++c)
    for (int kh = 0; kh < t.KH; ++kh)
      for (int64_t o0 = 0; o0 < t.O; o0 += ob) block(t, c, kh, o0);
}

}  // namespace
}  // namespace crayon::conv_detail
