// ONNX Runtime's inference throughput and latency on the same images crayon's bench_infer
// uses, in ONNX Runtime's best CPU configuration (all graph optimizations, intra-op threads
// set, sequential execution, one inter-op thread). The Node.js binding (onnxruntime-node,
// installed into tests/onnx by scripts/install-deps.sh) adds its per-call overhead, which
// counts most at batch 1.
//   node bench/ort_infer.js MODEL.onnx IMAGES.f32 N C H W [--threads T] [--batch B] [--runs R]
// IMAGES.f32: N*C*H*W float32 pixels in [0, 1], NCHW. Prints one JSON line: images/s (median of
// R timed passes over all N images after one warm-up pass) and the median latency of a batch.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tests', 'onnx', 'node_modules', 'onnxruntime-node'));

async function main() {
  const args = process.argv.slice(2);
  const flag = (name, fallback) => {
    const i = args.indexOf(name);
    if (i < 0) return fallback;
    const v = Number(args[i + 1]);
    args.splice(i, 2);
    return v;
  };
  const threads = flag('--threads', 2), batch = flag('--batch', 256), runs = flag('--runs', 5);
  if (args.length !== 6) throw new Error('usage: node ort_infer.js MODEL.onnx IMAGES.f32 N C H W [--threads T] [--batch B] [--runs R]');
  const [model, imagesPath] = args;
  const [n, c, h, w] = args.slice(2).map(Number);
  const per = c * h * w;
  const raw = fs.readFileSync(imagesPath);
  if (raw.length !== n * per * 4) throw new Error(`${imagesPath}: expected ${n * per * 4} bytes, found ${raw.length}`);
  const images = new Float32Array(raw.buffer, raw.byteOffset, n * per);
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const input = session.inputNames[0];
  const tensors = [];
  for (let b = 0; b < n; b += batch) {
    const m = Math.min(batch, n - b);
    tensors.push(new ort.Tensor('float32', images.subarray(b * per, (b + m) * per), [m, c, h, w]));
  }
  const latencies = [];
  const pass = async (record) => {
    for (const t of tensors) {
      const t0 = process.hrtime.bigint();
      await session.run({ [input]: t });
      if (record) latencies.push(Number(process.hrtime.bigint() - t0) / 1e3);
    }
  };
  await pass(false);
  const rates = [];
  for (let r = 0; r < runs; ++r) {
    const t0 = process.hrtime.bigint();
    await pass(true);
    rates.push(n / (Number(process.hrtime.bigint() - t0) / 1e9));
  }
  const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
  console.log(JSON.stringify({ framework: 'onnxruntime', model: path.basename(model), threads, batch,
                               images_per_s: Math.round(median(rates)), latency_us: Math.round(median(latencies)) }));
}

main().catch((e) => { console.error(`ort_infer.js: ${e.message}`); process.exit(1); });
