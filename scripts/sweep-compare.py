#!/usr/bin/env python3
"""Each regularizer's accuracy drop against no regularizer, from a crayon sweep's results.jsonl:
the difference of the means over seeds (points; negative = a smaller drop than unregularized)
and Welch's t; QAT with stochastic against nearest rounding; and the two-part description
length by bits. Used by docs/experiments.md.

    scripts/sweep-compare.py SWEEP_DIR [--scope wa|w]

With three seeds per cell a |t| below about 2 is noise; the table makes many comparisons, so
read an isolated |t| of 2 to 3 as a hint, not a finding.
"""
import argparse
import collections
import json
import math
import os
import statistics as st


def welch(a, b):
    se = math.sqrt(st.variance(a) / len(a) + st.variance(b) / len(b))
    return (st.mean(a) - st.mean(b)) / se if se > 0 else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--scope", default="wa", choices=["wa", "w"])
    a = ap.parse_args()
    path = os.path.join(a.dir, "results.jsonl")
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        raise SystemExit(f"sweep-compare.py: {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise SystemExit(f"sweep-compare.py: {path}: a line that is not JSON ({e})")
    cells = collections.defaultdict(list)
    by_seed = {}
    for r in rows:
        reg = "none" if r["reg"] == "none" else f"{r['reg']} {float(r['lambda']):g}"
        key = (r["model"], r["method"], r["scope"], r["rounding"], reg, int(r["bits"]))
        cells[key].append(100 * float(r["drop"]))
        by_seed[key + (r["seed"],)] = 100 * float(r["drop"])
    regs = sorted({k[4] for k in cells if k[4] != "none"}, key=lambda s: (s.split()[0], float(s.split()[1])))
    bits = sorted({k[5] for k in cells}, reverse=True)
    print(f"drop minus the unregularized drop, points (Welch t), scope {a.scope}, nearest rounding\n")
    print("| model, method | bits | " + " | ".join(regs) + " |")
    print("|---|---|" + "---|" * len(regs))
    for model in sorted({k[0] for k in cells}):
        for method in ("ptq", "qat"):
            for b in bits:
                base = cells.get((model, method, a.scope, "nearest", "none", b))
                if not base or len(base) < 2:
                    continue
                out = []
                for reg in regs:
                    x = cells.get((model, method, a.scope, "nearest", reg, b), [])
                    out.append(f"{st.mean(x) - st.mean(base):+.2f} ({welch(x, base):+.1f})" if len(x) > 1 else "-")
                print(f"| {model} {method} | {b} | " + " | ".join(out) + " |")
    print("\nQAT, stochastic minus nearest rounding: mean drop over every regularizer and seed, points\n")
    print("| model | bits | nearest | stochastic | cells where stochastic is worse |")
    print("|---|---|---|---|---|")
    for model in sorted({k[0] for k in cells}):
        for b in bits:
            pairs = []  # the same float model (regularizer and seed), nearest vs stochastic
            for k, v in by_seed.items():
                if k[0] == model and k[1] == "qat" and k[2] == a.scope and k[3] == "nearest" and k[5] == b:
                    s = by_seed.get(k[:3] + ("stochastic",) + k[4:])
                    if s is not None:
                        pairs.append((v, s))
            if pairs:
                n = [p[0] for p in pairs]
                s = [p[1] for p in pairs]
                worse = sum(1 for x, y in pairs if y > x)
                print(f"| {model} | {b} | {st.mean(n):.2f} | {st.mean(s):.2f} | {worse} of {len(pairs)} |")

    print("\nDescription length (bits), mean over every regularizer and seed, nearest rounding: entropy of the "
          "integer weights + the labels of the data-bits images\n")
    print("| model, method | bits | model bits | data bits | total | test accuracy (%) |")
    print("|---|---|---|---|---|---|")
    dl = collections.defaultdict(list)
    for r in rows:
        if r["scope"] == a.scope and r["rounding"] == "nearest":
            dl[(r["model"], r["method"], int(r["bits"]))].append(
                (float(r["entropy_bits"]), float(r["data_bits"]), 100 * float(r["quantized_accuracy"])))
    for (model, method, b), v in sorted(dl.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[0][2])):
        m, d, acc = (st.mean(x[i] for x in v) for i in range(3))
        print(f"| {model} {method} | {b} | {m:.0f} | {d:.0f} | {m + d:.0f} | {acc:.2f} |")


if __name__ == "__main__":
    main()
