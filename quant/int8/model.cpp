#include "quant/int8/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "core/check.h"
#include "core/limits.h"
#include "core/parallel.h"
#include "quant/int8/ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define CRAYON_LUT_X86 1
#define CRAYON_TARGET_VBMI __attribute__((target("avx512vbmi,avx512bw,avx512f")))
#endif

namespace crayon {

const char* int8_op_name(Int8Layer::Op op) {
  switch (op) {
    case Int8Layer::Op::conv2d: return "conv2d";
    case Int8Layer::Op::linear: return "linear";
    case Int8Layer::Op::maxpool2d: return "maxpool2d";
    case Int8Layer::Op::avgpool2d: return "avgpool2d";
    case Int8Layer::Op::flatten: return "flatten";
  }
  return "?";
}

namespace {

bool has_weights(const Int8Layer& l) { return l.op == Int8Layer::Op::conv2d || l.op == Int8Layer::Op::linear; }

// Scales a trained grid can have: normal floats far from underflow and overflow, so that
// every multiplier derived from them is a normal double (quant/int8/requant.h).
constexpr float kMinScale = 1e-12f, kMaxScale = 1e12f;

bool sane_scale(float s) { return s >= kMinScale && s <= kMaxScale; }  // false for NaN

void check_grid(const std::string& where, const char* what, float scale, int32_t zero_point) {
  if (!sane_scale(scale))
    throw std::invalid_argument(str(where, ": expected ", what, "_scale in [", kMinScale, ", ", kMaxScale, "], found ",
                                    scale));
  if (zero_point < -128 || zero_point > 127)
    throw std::invalid_argument(str(where, ": expected ", what, "_zero_point in [-128, 127], found ", zero_point));
}

// Output size of a window over `size` (floor); 0 if the window does not fit.
int64_t pooled(int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t span = size + 2 * pad - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

// A batch is split over threads only if each gets at least this many images.
constexpr int64_t kMinImagesPerThread = 8;

// The input table lookup with AVX-512 VBMI, 64 pixels at a time: vpermi2b looks bytes up in a
// 128-entry table (two registers) by their low 7 bits; bit 7 picks between the two halves.
// Only on the avx512vnni path (CRAYON_INT8_ISA=portable keeps every loop plain).
bool vbmi_lookup_supported() {
#ifdef CRAYON_LUT_X86
  static const bool cpu = __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512bw");
  return cpu && int8_isa() == Int8Isa::avx512vnni;
#else
  return false;
#endif
}

#ifdef CRAYON_LUT_X86
CRAYON_TARGET_VBMI void lookup_vbmi(const uint8_t* in, int64_t n, const int8_t* lut, int8_t* out) {
  const __m512i t0 = _mm512_loadu_si512(lut), t1 = _mm512_loadu_si512(lut + 64);
  const __m512i t2 = _mm512_loadu_si512(lut + 128), t3 = _mm512_loadu_si512(lut + 192);
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 valid = n - i >= 64 ? ~__mmask64(0) : (__mmask64(1) << (n - i)) - 1;
    const __m512i idx = _mm512_maskz_loadu_epi8(valid, in + i);
    const __m512i lo = _mm512_permutex2var_epi8(t0, idx, t1), hi = _mm512_permutex2var_epi8(t2, idx, t3);
    _mm512_mask_storeu_epi8(out + i, valid, _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), lo, hi));
  }
}
#endif

}  // namespace

void Int8Model::prepare() {
  if (input_shape.size() != 3)
    throw std::invalid_argument(str("int8 model: expected input_shape (C, H, W), found ", shape_str(input_shape)));
  check_grid("int8 model input", "input", input_scale, input_zero_point);
  const int64_t channels = input_shape[0];
  if (int64_t(input_lut.size()) != channels * 256)
    throw std::invalid_argument(str("int8 model: expected an input table of ", channels, " x 256 entries, found ",
                                    input_lut.size()));
  if (int64_t(input_mean.size()) != channels || int64_t(input_std.size()) != channels)
    throw std::invalid_argument(str("int8 model: expected ", channels, " input means and stds, found ", input_mean.size(),
                                    " and ", input_std.size()));
  for (int64_t c = 0; c < channels; ++c)
    if (!(std::abs(input_mean[size_t(c)]) <= 1e6) || !(input_std[size_t(c)] >= 1e-6 && input_std[size_t(c)] <= 1e6))
      throw std::invalid_argument(str("int8 model input: expected channel ", c, "'s mean in [-1e6, 1e6] and std in "
                                      "[1e-6, 1e6], found mean ", input_mean[size_t(c)], ", std ", input_std[size_t(c)]));
  if (layers.empty()) throw std::invalid_argument("int8 model: no layers");
  const Limits& lim = limits();
  if (int64_t(layers.size()) > lim.layers)
    throw std::invalid_argument(str("int8 model: ", layers.size(), " layers is too many ",
                                    limit_hint(lim.layers, "CRAYON_MAX_LAYERS")));
  int64_t weights = 0;
  // Bytes of one image's output of this shape and element size, against the activation limit.
  auto activation = [&](const std::string& where, const Shape& s, int64_t element_bytes) {
    int64_t n = element_bytes;
    for (int64_t d : s) n = mul_or_overflow(n, d);
    if (n < 0 || n > lim.activation_bytes)
      throw std::invalid_argument(str(where, ": an output of ", shape_str(s), " per image exceeds the activation limit ",
                                      "of ", lim.activation_bytes, " bytes ",
                                      limit_hint(lim.activation_bytes, "CRAYON_MAX_ACTIVATION_BYTES")));
    largest_activation = std::max(largest_activation, n);
  };
  largest_activation = 0;
  activation("int8 model input", input_shape, 1);

  // Walk the shapes and grids from the input to the logits.
  Shape shape = input_shape;  // per image
  float scale = input_scale;
  int32_t zero_point = input_zero_point;
  for (size_t i = 0; i < layers.size(); ++i) {
    Int8Layer& l = layers[i];
    char name[32];
    std::snprintf(name, sizeof name, "layers/%03zu", i);  // as in the file
    const std::string where = str(name, " (", int8_op_name(l.op), ")");
    if (i + 1 < layers.size() && l.logits)
      throw std::invalid_argument(str(where, ": only the last layer can output logits"));
    if (l.op != Int8Layer::Op::flatten && l.op != Int8Layer::Op::linear && shape.size() != 3)
      throw std::invalid_argument(str(where, ": expected a (C, H, W) input, found ", shape_str(shape)));
    // Every layer reads the grid the previous one wrote.
    if (l.op != Int8Layer::Op::flatten && l.op != Int8Layer::Op::maxpool2d &&
        (l.in_scale != scale || l.in_zero_point != zero_point))
      throw std::invalid_argument(str(where, ": its input grid (", l.in_scale, ", ", l.in_zero_point,
                                      ") is not the previous layer's output grid (", scale, ", ", zero_point, ")"));
    switch (l.op) {
      case Int8Layer::Op::flatten: shape = {shape_numel(shape)}; break;
      case Int8Layer::Op::maxpool2d:
      case Int8Layer::Op::avgpool2d: {
        const Pool2dParams& p = l.pool;
        if (p.kernel_h < 1 || p.kernel_w < 1 || p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0 || p.pad_w < 0 ||
            2 * p.pad_h > p.kernel_h || 2 * p.pad_w > p.kernel_w)
          throw std::invalid_argument(str(where, ": bad kernel/stride/padding"));
        const int64_t oh = pooled(shape[1], p.kernel_h, p.stride_h, p.pad_h),
                      ow = pooled(shape[2], p.kernel_w, p.stride_w, p.pad_w);
        if (oh < 1 || ow < 1) throw std::invalid_argument(str(where, ": the window does not fit ", shape_str(shape)));
        shape = {shape[0], oh, ow};
        activation(where, shape, l.op == Int8Layer::Op::avgpool2d ? 4 : 1);  // avgpool sums in int32
        if (l.op == Int8Layer::Op::avgpool2d) {
          check_grid(where, "output", l.out_scale, l.out_zero_point);
          if (l.act_min < -128 || l.act_min > l.act_max || l.act_max > 127)
            throw std::invalid_argument(str(where, ": expected -128 <= act_min <= act_max <= 127, found ", l.act_min,
                                            ", ", l.act_max));
          l.pool_multiplier = quantize_multiplier(double(l.in_scale) / (double(l.out_scale) * p.kernel_h * p.kernel_w));
          scale = l.out_scale;
          zero_point = l.out_zero_point;
        }
        break;
      }
      case Int8Layer::Op::conv2d:
      case Int8Layer::Op::linear: {
        check_grid(where, "input", l.in_scale, l.in_zero_point);
        const bool conv = l.op == Int8Layer::Op::conv2d;
        if (l.weight.dtype() != DType::i8 || l.weight.ndim() != (conv ? 4 : 2))
          throw std::invalid_argument(str(where, ": expected an int8 weight of rank ", conv ? 4 : 2, ", found ",
                                          dtype_name(l.weight.dtype()), " ", shape_str(l.weight.shape())));
        const int64_t out = l.weight.size(0);
        const int64_t in = conv ? l.weight.size(1) : l.weight.size(1);
        if (conv ? shape[0] != in : shape_numel(shape) != in || shape.size() != 1)
          throw std::invalid_argument(str(where, ": weight ", shape_str(l.weight.shape()), " does not take input ",
                                          shape_str(shape)));
        if (int64_t(l.weight_scale.size()) != out)
          throw std::invalid_argument(str(where, ": expected ", out, " weight scales, found ", l.weight_scale.size()));
        for (float s : l.weight_scale)
          if (!sane_scale(s))
            throw std::invalid_argument(str(where, ": expected weight scales in [", kMinScale, ", ", kMaxScale,
                                            "], found ", s));
        if (l.bias.dtype() != DType::i32 || l.bias.shape() != Shape{out})
          throw std::invalid_argument(str(where, ": expected an int32 bias of shape (", out, "), found ",
                                          dtype_name(l.bias.dtype()), " ", shape_str(l.bias.shape())));
        if (conv) {
          const Conv2dParams& p = l.conv;
          if (p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0 || p.pad_w < 0)
            throw std::invalid_argument(str(where, ": bad stride/padding"));
          const int64_t oh = pooled(shape[1], l.weight.size(2), p.stride_h, p.pad_h),
                        ow = pooled(shape[2], l.weight.size(3), p.stride_w, p.pad_w);
          if (oh < 1 || ow < 1)
            throw std::invalid_argument(str(where, ": the kernel does not fit ", shape_str(shape)));
          shape = {out, oh, ow};
        } else {
          shape = {out};
        }
        activation(where, shape, 4);  // int32 accumulators
        weights += l.weight.numel();
        if (weights > lim.parameters)
          throw std::invalid_argument(str(where, ": brings the model to ", weights, " weights ",
                                          limit_hint(lim.parameters, "CRAYON_MAX_PARAMETERS")));
        try {
          l.packed = pack_weights(l.weight);
          // The kernels fold the input zero point into the bias: it must fit in int32.
          fold_input_zero_point({l.bias.data_as<int32_t>(), size_t(out)}, l.packed, l.in_zero_point);
        } catch (const std::exception& e) {
          throw std::invalid_argument(str(where, ": ", e.what()));
        }
        if (!l.logits) {
          check_grid(where, "output", l.out_scale, l.out_zero_point);
          if (l.act_min < -128 || l.act_min > l.act_max || l.act_max > 127)
            throw std::invalid_argument(str(where, ": expected -128 <= act_min <= act_max <= 127, found ", l.act_min,
                                            ", ", l.act_max));
          l.stage = make_output_stage(l.in_scale, l.weight_scale, l.out_scale, l.out_zero_point, l.act_min, l.act_max);
          scale = l.out_scale;
          zero_point = l.out_zero_point;
        }
        break;
      }
    }
  }
  if (shape.size() != 1) throw std::invalid_argument(str("int8 model: the last layer outputs ", shape_str(shape),
                                                         " per image; expected a vector of logits"));
}

int64_t Int8Model::largest_batch() const {
  return std::max<int64_t>(1, limits().activation_bytes / std::max<int64_t>(1, largest_activation));
}

int64_t Int8Model::num_classes() const {
  for (size_t i = layers.size(); i-- > 0;)
    if (has_weights(layers[i])) return layers[i].weight.size(0);
  return 0;
}

Tensor Int8Model::quantize_images(const uint8_t* images, int64_t batch) const {
  const int64_t channels = input_shape[0], plane = input_shape[1] * input_shape[2];
  Tensor q = Tensor::empty({batch, channels, input_shape[1], input_shape[2]}, DType::i8);
  int8_t* pq = q.data_as<int8_t>();
  const bool vbmi = vbmi_lookup_supported();
  parallel_for(
      batch * channels,
      [&](int64_t begin, int64_t end) {
        for (int64_t bc = begin; bc < end; ++bc) {
          const int8_t* lut = input_lut.data() + (bc % channels) * 256;
          const int64_t at = bc * plane;
#ifdef CRAYON_LUT_X86
          if (vbmi) {
            lookup_vbmi(images + at, plane, lut, pq + at);
            continue;
          }
#endif
          for (int64_t i = 0; i < plane; ++i) pq[at + i] = lut[images[at + i]];
        }
      },
      std::max<int64_t>(1, 4096 / plane));
  return q;
}

namespace {

// The layers one after the other on a batch, each kernel threading itself.
Tensor run_layers(const Int8Model& m, Tensor x, bool reference, std::vector<Tensor>* trace) {
  const std::vector<Int8Layer>& layers = m.layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Int8Layer& l = layers[i];
    const std::span<const int32_t> bias = has_weights(l) ? std::span<const int32_t>(l.bias.data_as<int32_t>(),
                                                                                     size_t(l.bias.numel()))
                                                         : std::span<const int32_t>();
    switch (l.op) {
      case Int8Layer::Op::flatten: x = x.reshape({x.size(0), x.numel() / x.size(0)}); break;
      case Int8Layer::Op::maxpool2d: x = maxpool2d_s8(x, l.pool); break;
      case Int8Layer::Op::avgpool2d:
        x = avgpool2d_s8(x, l.in_zero_point, l.pool, l.pool_multiplier, l.out_zero_point, l.act_min, l.act_max);
        break;
      case Int8Layer::Op::conv2d:
        // A max pool right after is fused in (the same bytes, one pass less over the conv
        // output), unless the trace wants that output.
        if (!reference && !trace && i + 1 < layers.size() && layers[i + 1].op == Int8Layer::Op::maxpool2d)
          x = conv2d_maxpool_s8(x, l.in_zero_point, l.packed, bias, l.conv, l.stage, layers[++i].pool);
        else
          x = reference ? conv2d_s8_reference(x, l.in_zero_point, l.weight, bias, l.conv, l.stage)
                        : conv2d_s8(x, l.in_zero_point, l.packed, bias, l.conv, l.stage);
        break;
      case Int8Layer::Op::linear:
        if (l.logits)
          x = reference ? linear_s8_acc_reference(x, l.in_zero_point, l.weight, bias)
                        : linear_s8_acc(x, l.in_zero_point, l.packed, bias);
        else
          x = reference ? linear_s8_reference(x, l.in_zero_point, l.weight, bias, l.stage)
                        : linear_s8(x, l.in_zero_point, l.packed, bias, l.stage);
        break;
    }
    if (trace) trace->push_back(x);
  }
  return x;
}

}  // namespace

Tensor Int8Model::forward_raw(const Tensor& q, bool reference, std::vector<Tensor>* trace) const {
  const Shape want{q.ndim() == 4 ? q.size(0) : -1, input_shape[0], input_shape[1], input_shape[2]};
  if (q.dtype() != DType::i8 || q.shape() != want)
    throw std::invalid_argument(str("int8 model: expected int8 input (B, ", input_shape[0], ", ", input_shape[1], ", ",
                                    input_shape[2], "), got ", dtype_name(q.dtype()), " ", shape_str(q.shape())));
  // Threads take whole slices of the batch through the whole network: one hand-off per batch
  // instead of one per layer, and each thread's activations stay in its own cache. Every
  // image is computed alone, so the split does not change a bit. Small batches, the oracle
  // and traces go layer by layer, the kernels splitting each layer.
  const int64_t B = q.size(0);
  if (reference || trace || num_threads() < 2 || B < 2 * kMinImagesPerThread) return run_layers(*this, q, reference, trace);
  std::vector<Tensor> outs(static_cast<size_t>(num_threads()));
  const int parts = parallel_parts(B, [&](int part, int64_t begin, int64_t end) {
    outs[size_t(part)] = run_layers(*this, q.slice(begin, end), false, nullptr);
  });
  Tensor y = Tensor::empty({B, outs[0].size(1)}, outs[0].dtype());
  int64_t row = 0;
  for (int part = 0; part < parts; ++part) {
    const Tensor& o = outs[size_t(part)];
    y.slice(row, row + o.size(0)).copy_from(o);
    row += o.size(0);
  }
  return y;
}

Tensor Int8Model::forward(const Tensor& q, bool reference, std::vector<Tensor>* trace) const {
  const Tensor raw = forward_raw(q, reference, trace);
  Tensor logits = Tensor::empty(raw.shape());
  float* out = logits.data();
  const int64_t n = raw.numel(), classes = raw.size(1);
  const Int8Layer& last = layers.back();
  if (last.logits) {
    const int32_t* acc = raw.data_as<int32_t>();
    for (int64_t i = 0; i < n; ++i)
      out[i] = float(double(acc[i]) * (double(last.in_scale) * double(last.weight_scale[size_t(i % classes)])));
  } else {
    float s = input_scale;
    int32_t z = input_zero_point;
    for (const Int8Layer& l : layers)
      if (l.op == Int8Layer::Op::conv2d || l.op == Int8Layer::Op::linear || l.op == Int8Layer::Op::avgpool2d) {
        s = l.out_scale;
        z = l.out_zero_point;
      }
    const int8_t* code = raw.data_as<int8_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = float(double(s) * double(int32_t(code[i]) - z));
  }
  return logits;
}

}  // namespace crayon
