#!/usr/bin/env python3
# The table of bench/ptq_methods.sh: mean +- std over seeds of each PTQ method's test accuracy (%),
# beside one-epoch QAT from a sweep's results.csv when given.
#   bench/ptq_table.py ptq.tsv [SWEEP/results.csv]
import sys, csv, statistics as st
rows = list(csv.DictReader(open(sys.argv[1]), delimiter='\t'))
qat = {}
if len(sys.argv) > 2:  # a sweep's results.csv: QAT (nearest, weights at the bits, activations 8-bit, no regularizer)
    for r in csv.DictReader(open(sys.argv[2])):
        if r['reg'] == 'none' and r['method'] == 'qat' and r['scope'] == 'w' and r['rounding'] == 'nearest':
            qat.setdefault((r['model'], r['bits']), []).append(100 * float(r['quantized_accuracy']))
cells = {}
for r in rows:
    c = cells.setdefault((r['model'], r['bits'], r['scope']), {})
    c.setdefault(r['method'], []).append(float(r['quantized']))
    if r['method'] == 'plain': c.setdefault('float', []).append(float(r['float']))
methods = [m for m in ['plain', 'bias-correction', 'data-free', 'equalize', 'equalize+bias-correction', 'adaround',
                        'adaround+bias-correction'] if any(m in c for c in cells.values())]
print('| model | weights | scope | float | ' + ' | '.join(methods) + ' | QAT (per-channel, 1 epoch) |')
print('|---|---|---|---|' + '---|' * (len(methods) + 1))
def pm(v): return f'{st.mean(v):.2f} ± {st.stdev(v):.2f}' if len(v) > 1 else f'{v[0]:.2f}'
for (m, b, s), c in sorted(cells.items(), key=lambda kv: (kv[0][0], -int(kv[0][1]), kv[0][2])):
    q = pm(qat[(m, b)]) if (m, b) in qat and s == 'per-channel' else '-'
    print(f'| {m} | W{b}A8 | {s} | {pm(c["float"])} | ' + ' | '.join(pm(c[x]) if x in c else '-' for x in methods) + f' | {q} |')
