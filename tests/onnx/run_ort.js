// Runs an ONNX model in ONNX Runtime (onnxruntime-node) on raw float32 images and writes the
// raw float32 outputs: what crayon's tests compare against crayon's own engines.
//   node run_ort.js MODEL.onnx IMAGES.f32 N C H W OUT.f32 [--threads T] [--batch B]
// IMAGES.f32: N*C*H*W little-endian float32 (NCHW); OUT.f32: N*classes float32. Prints one
// line of JSON: {"classes": K, "seconds": S}.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const args = process.argv.slice(2);
  const flag = (name, fallback) => {
    const i = args.indexOf(name);
    if (i < 0) return fallback;
    const v = Number(args[i + 1]);
    args.splice(i, 2);
    return v;
  };
  const threads = flag('--threads', 1), batch = flag('--batch', 256);
  if (args.length !== 7) throw new Error('usage: node run_ort.js MODEL.onnx IMAGES.f32 N C H W OUT.f32 [--threads T] [--batch B]');
  const [model, imagesPath, nS, cS, hS, wS, out] = args;
  const [n, c, h, w] = [nS, cS, hS, wS].map(Number);
  const per = c * h * w;
  const raw = fs.readFileSync(imagesPath);
  if (raw.length !== n * per * 4) throw new Error(`${imagesPath}: expected ${n * per * 4} bytes, found ${raw.length}`);
  const images = new Float32Array(raw.buffer, raw.byteOffset, n * per);
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  let logits = null, classes = 0;
  const t0 = process.hrtime.bigint();
  for (let b = 0; b < n; b += batch) {
    const m = Math.min(batch, n - b);
    const x = new ort.Tensor('float32', images.subarray(b * per, (b + m) * per), [m, c, h, w]);
    const y = (await session.run({ [session.inputNames[0]]: x }))[session.outputNames[0]];
    if (!logits) { classes = y.dims[1]; logits = new Float32Array(n * classes); }
    logits.set(y.data, b * classes);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.writeFileSync(out, Buffer.from(logits.buffer));
  console.log(JSON.stringify({ classes, seconds }));
}

main().catch((e) => { console.error(`run_ort.js: ${e.message}`); process.exit(1); });
