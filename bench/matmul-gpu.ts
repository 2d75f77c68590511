/**
 * @file `npm run bench:matmul-gpu [-- --sizes 1024,2048,4096 --runs N]`: GFLOP/s of the f32 matmul
 * kernel dlc generates for WebGPU, at square sizes (4096² by default, what the WebGPU issue asks
 * to record on a real GPU), plus the adapter it ran on. The program is built the way any model's is
 * (graph IR `dot` → fusion → memory plan → WGSL for this device's limits → runtime), so the number
 * is the generated kernel's, not a hand-written one.
 *
 * Protocol: one warm-up run, then `runs` runs submitted back to back and timed to the queue's
 * completion (`onSubmittedWorkDone`), so per-submit overhead is included; FLOPs are 2·n³. A spot
 * check compares a few output entries against f64 dot products of the same inputs, so a fast
 * wrong kernel cannot report a number. On a machine without a GPU this runs on the CPU driver and
 * says so; use small sizes there (`--sizes 256,512`).
 */
import { emitWgsl } from '../compiler/codegen/wgsl.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { planMemory } from '../compiler/kernel/plan.ts';
import * as b from '../ir/builders.ts';
import { makeFunc } from '../ir/graph.ts';
import { input } from '../ir/node.ts';
import { createProgram, kernelLimits, requestGpuDevice } from '../runtime/webgpu.ts';
import { values } from './lcg.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}


async function measure(n: number, runs: number): Promise<string> {
  const a = input('a', 'f32', [n, n]);
  const w = input('w', 'f32', [n, n]);
  const p = fuse(makeFunc(`matmul_${n}`, [a, w], [b.dot(a, w)]));
  const plan = planMemory(p);
  const device = await requestGpuDevice({ arenaBytes: plan.totalBytes });
  const { kernels } = emitWgsl(p, plan, kernelLimits(device));
  const prog = await createProgram(device, kernels, plan.totalBytes, `matmul_${n}`);
  try {
    const av = values(n * n, 1);
    const wv = values(n * n, 2);
    prog.write(plan.offsets[p.inputs[0]], av);
    prog.write(plan.offsets[p.inputs[1]], wv);
    prog.run();
    await prog.finish();
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) prog.run();
    await prog.finish();
    const ms = (performance.now() - t0) / runs;
    // Spot check: 8 entries spread over the output, against f64 sums.
    const picks = Array.from({ length: 8 }, (_, i) => [Math.floor((i * 7919) % n), Math.floor((i * 104729 + 3) % n)] as const);
    const out = await prog.readMany(picks.map(([r, c]) => ({ offset: plan.offsets[p.outputs[0]] + (r * n + c) * 4, count: 1 })));
    let worst = 0;
    picks.forEach(([r, c], i) => {
      let ref = 0;
      let mag = 0;
      for (let k = 0; k < n; k++) {
        ref += av[r * n + k] * wv[k * n + c];
        mag += Math.abs(av[r * n + k] * wv[k * n + c]);
      }
      worst = Math.max(worst, Math.abs(out[i][0] - ref) / mag);
    });
    // f32 accumulation over n terms: error grows like sqrt(n)·2^-24 of the magnitude sum; 1e-5 is loose.
    if (!(worst < 1e-5)) throw new Error(`matmul ${n}: wrong result (worst error ${worst.toExponential(2)} of the magnitude sum)`);
    // The second header line says how the kernel is tiled (e.g. `matmul tile 64x64x8, ...`).
    const how = (kernels[0].code.split('\n')[1] ?? '').replace(/^\/\/ /, '').replace(/; inputs .*$/, '');
    return `| ${n} | ${ms.toFixed(2)} | ${((2 * n ** 3) / ms / 1e6).toFixed(1)} | ${worst.toExponential(1)} | ${how} |`;
  } finally {
    prog.destroy();
    device.destroy();
  }
}

const sizes = (arg('--sizes') ?? '4096').split(',').map(Number);
const runs = Number(arg('--runs') ?? 10);
const device = await requestGpuDevice();
const info = device.adapterInfo;
const adapter = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' / ') || 'unknown adapter';
device.destroy();
console.log(`adapter: ${adapter}${/llvmpipe|lavapipe|swiftshader/i.test(adapter) ? ' (a CPU driver: these numbers say nothing about GPUs)' : ''}`);
console.log('| n | ms (mean of runs) | GFLOP/s | spot-check error | kernel |');
console.log('| ---: | ---: | ---: | ---: | --- |');
for (const n of sizes) console.log(await measure(n, runs));
process.exit(0);
