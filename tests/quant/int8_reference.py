#!/usr/bin/python3
"""Runs a crayon int8 model file with nothing but numpy and h5py, exactly as the README's
"int8 model file" section documents it, and checks the result against crayon's own engine.

  int8_reference.py MODEL.int8.h5 ENGINE_OUTPUT.h5 MNIST_DIR

ENGINE_OUTPUT.h5 (written by crayon's test) holds `begin` and `count` (attributes: which
MNIST test images), `raw` (what crayon's last layer produced: int32 accumulators for a
logits layer, else int8 codes) and `logits` (float32). Exit 0 when every value agrees bit
for bit, 1 (with the first difference printed) otherwise.
"""
import gzip
import math
import os
import sys

import h5py
import numpy as np

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def load_idx_images(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


# --- TFLite's fixed-point multiplier, applied with one rounding, on int64 arrays ------------

def quantize_multiplier(real):
    """TFLite QuantizeMultiplier: real = q * 2^shift, q in [0.5, 1), multiplier = round(q * 2^31)."""
    q, shift = math.frexp(real)
    fixed = int(math.floor(q * 2147483648.0 + 0.5))  # q > 0: round half away from zero
    if fixed == 2 ** 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """round_half_even(x * multiplier / 2^(31 - shift)): the exact product, rounded once.

    x * multiplier is exact in int64 (|x| < 2^31, multiplier < 2^31); the result saturates to
    int32 (only a multiplier >= 1 can get there)."""
    x = np.asarray(x, dtype=np.int64)
    t = np.broadcast_to(31 - np.asarray(shift, dtype=np.int64), x.shape)
    p = x * np.asarray(multiplier, dtype=np.int64)
    q = p >> t  # floor
    rem = p - (q << t)  # in [0, 2^t)
    half = np.left_shift(np.int64(1), np.maximum(t - 1, 0))  # t = 0: rem is 0, no rounding
    up = (rem > half) | ((rem == half) & (t > 0) & (q % 2 == 1))
    return np.clip(q + up, INT32_MIN, INT32_MAX)


def pad(x, ph, pw, value):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def windows(x, kh, kw, sh, sw):
    """x: (B, C, H, W) -> (B, C, OH, OW, KH*KW) views of every window."""
    b, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((b, c, oh, ow, kh * kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[..., i * kw + j] = x[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
    return out


def accumulate(x, z_in, layer, op):
    """int32 acc = sum (q_x - z_in) * q_w + bias, exactly (int64 arithmetic, checked)."""
    w = layer["weight"][()].astype(np.int64)
    bias = layer["bias"][()].astype(np.int64)
    if op == "linear":
        acc = (x.astype(np.int64) - z_in) @ w.T
    else:
        sh, sw = (int(v) for v in layer.attrs["stride"])
        ph, pw = (int(v) for v in layer.attrs["padding"])
        o, c, kh, kw = w.shape
        xp = pad(x.astype(np.int64) - z_in, ph, pw, 0)  # padding is real 0, i.e. the zero point
        cols = windows(xp, kh, kw, sh, sw)  # (B, C, OH, OW, KH*KW)
        b, _, oh, ow, _ = cols.shape
        cols = cols.transpose(0, 2, 3, 1, 4).reshape(b, oh, ow, c * kh * kw)
        acc = (cols @ w.reshape(o, -1).T).transpose(0, 3, 1, 2)  # (B, O, OH, OW)
    assert np.abs(acc).max(initial=0) <= INT32_MAX, "accumulator overflow"
    bshape = (1, -1) if op == "linear" else (1, -1, 1, 1)
    return np.clip(acc + bias.reshape(bshape), INT32_MIN, INT32_MAX), bshape


def run(model, pixels):
    """pixels: (B, C, H, W) uint8 -> (raw output of the last layer, float32 logits)."""
    lut = model["input/lut"][()]
    x = np.stack([lut[c][pixels[:, c]] for c in range(pixels.shape[1])], axis=1).astype(np.int64)
    scale = float(model["input"].attrs["scale"])
    zp = int(model["input"].attrs["zero_point"])
    count = int(model["layers"].attrs["count"])
    for i in range(count):
        layer = model[f"layers/{i:03d}"]
        op = layer.attrs["op"]
        op = op.decode() if isinstance(op, bytes) else op
        if op == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif op == "maxpool2d":
            kh, kw = (int(v) for v in layer.attrs["kernel"])
            sh, sw = (int(v) for v in layer.attrs["stride"])
            ph, pw = (int(v) for v in layer.attrs["padding"])
            x = windows(pad(x, ph, pw, -129), kh, kw, sh, sw).max(axis=-1)
        elif op == "avgpool2d":
            kh, kw = (int(v) for v in layer.attrs["kernel"])
            sh, sw = (int(v) for v in layer.attrs["stride"])
            ph, pw = (int(v) for v in layer.attrs["padding"])
            z_in, z_out = int(layer.attrs["input_zero_point"]), int(layer.attrs["output_zero_point"])
            real = float(layer.attrs["input_scale"]) / (float(layer.attrs["output_scale"]) * kh * kw)
            mult, shift = quantize_multiplier(real)
            total = windows(pad(x - z_in, ph, pw, 0), kh, kw, sh, sw).sum(axis=-1)
            lo, hi = int(layer.attrs.get("act_min", -128)), int(layer.attrs.get("act_max", 127))  # v1: none
            x = np.clip(z_out + multiply_by_quantized_multiplier(total, mult, shift), lo, hi)
            scale, zp = float(layer.attrs["output_scale"]), z_out
        else:  # conv2d, linear
            assert float(layer.attrs["input_scale"]) == scale and int(layer.attrs["input_zero_point"]) == zp
            acc, bshape = accumulate(x, zp, layer, op)
            w_scale = layer["weight_scale"][()].astype(np.float64)
            if int(layer.attrs["logits"]):
                logits = (acc.astype(np.float64) * (scale * w_scale).reshape(bshape)).astype(np.float32)
                return acc.astype(np.int32), logits
            s_out, z_out = float(layer.attrs["output_scale"]), int(layer.attrs["output_zero_point"])
            mults = [quantize_multiplier((scale * float(s)) / s_out) for s in w_scale]
            mult = np.array([m for m, _ in mults], dtype=np.int64).reshape(bshape)
            shift = np.array([s for _, s in mults], dtype=np.int64).reshape(bshape)
            y = z_out + multiply_by_quantized_multiplier(acc, mult, shift)
            x = np.clip(y, int(layer.attrs["act_min"]), int(layer.attrs["act_max"]))
            scale, zp = s_out, z_out
    raw = x.astype(np.int8)
    return raw, (scale * (x.astype(np.float64) - zp)).astype(np.float32)


def main():
    model_path, engine_path, mnist_dir = sys.argv[1:4]
    with h5py.File(model_path, "r") as model, h5py.File(engine_path, "r") as engine:
        assert model.attrs["format"] in ("crayon-int8", b"crayon-int8") and int(model.attrs["format_version"]) in (1, 2, 3)
        begin, count = int(engine.attrs["begin"]), int(engine.attrs["count"])
        images = load_idx_images(os.path.join(mnist_dir, "t10k-images-idx3-ubyte.gz"))[begin:begin + count]
        raw, logits = run(model, images[:, None, :, :])
        want_raw, want_logits = engine["raw"][()], engine["logits"][()]
    for name, got, want in (("raw", raw, want_raw), ("logits", logits, want_logits)):
        if got.dtype != want.dtype or got.shape != want.shape:
            print(f"{name}: numpy gives {got.dtype} {got.shape}, crayon {want.dtype} {want.shape}")
            return 1
        bits = (lambda a: a.view(np.uint32)) if got.dtype == np.float32 else (lambda a: a)
        diff = np.flatnonzero(bits(got) != bits(want))
        if diff.size:
            i = np.unravel_index(diff[0], got.shape)
            print(f"{name}: {diff.size} values differ; first at {i}: numpy {got[i]}, crayon {want[i]}")
            return 1
    print(f"{count} MNIST test images: numpy/h5py and crayon's engine agree bit for bit "
          f"({raw.dtype} {raw.shape}, float32 logits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
