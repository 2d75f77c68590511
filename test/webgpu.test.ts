/**
 * @file WebGPU code generator, runtime and backend, run on whatever adapter this host has (in CI: Dawn
 * over Mesa's lavapipe, on the CPU).
 *
 * Without an adapter the suite is skipped with a banner naming what is missing and how to get it, or
 * fails when DLC_TEST_REQUIRE names webgpu (as in CI): see test/helpers/requirements.ts. Then only
 * the backend factory's error is checked. What it checks with an adapter:
 *  - every kernel kind and code path (elementwise, short and tree reductions, matmul tiles with edge
 *    tiles, batches and transposed views, conv through im2col, pooling gradients with padding and
 *    ties, a dispatch wider than 65535 workgroups) on programs that `fuse` makes from small graphs,
 *    against the kernel interpreter `runProgram`; together the graphs use every op of the op table
 *    (asserted);
 *  - the reference model's predict and train steps at batch 4 through the `webgpu` backend session,
 *    against the f64 graph interpreter;
 *  - errors: a shader that does not compile is reported with its kernel name and WGSL line; an arena
 *    over the device's limits names the limit and both numbers.
 * Tolerances. f32 results: |got - want| <= 1e-5 (|want| + rms(want)). One f32 rounding is 6e-8
 * relative; the Vulkan precision rules lavapipe follows allow exp 3 + 2|x| ulp (|x| <= 20 here: 43
 * ulp = 2.6e-6), log and pow an absolute 2^-21 near 1 and tanh (computed through exp) a cancellation
 * error near 0, which the rms term (1e-5 of the output's scale) absorbs; sums over up to 1000 terms
 * in a different order add about sqrt(n) ulp of the summed magnitudes. Integer, bool and random
 * outputs must match exactly. Model steps: 1e-4 relative (see that block).
 * A last test checks a generated 1024^3 matmul against the product (its speed is `npm run bench:matmul-gpu`'s).
 */
import { afterAll, describe, expect, it } from 'vitest';
import model from '../examples/mnist-cnn.ts';
import { backendFactory, stepArgs } from '../compiler/backend.ts';
import { WebGpuSession } from '../compiler/backends/webgpu.ts';
import type { WgslOptions } from '../compiler/codegen/wgsl.ts';
import { chooseTile, emitWgsl, MATMUL_TILES } from '../compiler/codegen/wgsl.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { runProgram } from '../compiler/kernel/interp.ts';
import { planMemory } from '../compiler/kernel/plan.ts';
import { byteLoops } from '../compiler/kernel/schedule.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import type { Program } from '../compiler/kernel/types.ts';
import * as b from '../ir/builders.ts';
import { funcNodes, makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import { ALL_OPS } from '../ir/optable.ts';
import { uniformAt } from '../ir/random.ts';
import type { DType, Func, InputNode, Op } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { createProgram, kernelLimits } from '../runtime/webgpu.ts';
import { needWebGpu } from './helpers/requirements.ts';
import { rnnTrainGraph } from './helpers/scan-graph.ts';

// ---------------------------------------------------------------- the adapter, or a loud skip

const device = await needWebGpu('test/webgpu.test.ts: WGSL kernels, the WebGPU runtime and backend, the reference model on WebGPU');

if (!device) {
  describe('webgpu without an adapter', () => {
    it('the webgpu backend factory says clearly that there is no adapter', async () => {
      await expect(backendFactory('webgpu')!(model, 4)).rejects.toThrow(/backend 'webgpu' is not available: .*no WebGPU adapter/);
    });
  });
}

// ---------------------------------------------------------------- helpers

const inp = (name: string, shape: number[], dtype: DType = 'f32') => input(name, dtype, shape) as InputNode;

/** Deterministic values in [lo, hi), exact in f32. */
function rnd(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(lo + (hi - lo) * uniformAt(seed, 3, i)));
}

type Arr = Float32Array | Int32Array;

/** Fuse-free path: run a kernel program on the GPU (plan, codegen, runtime) and read every output. */
async function runGpu(p: Program, args: readonly Arr[], opts: WgslOptions = {}): Promise<Arr[]> {
  const plan = planMemory(p);
  const { kernels } = emitWgsl(p, plan, kernelLimits(device!), opts);
  const prog = await createProgram(device!, kernels, plan.totalBytes, p.name, byteLoops(p, plan));
  try {
    p.inputs.forEach((id, i) => prog.write(plan.offsets[id], p.buffers[id].dtype === 'f32' ? Float32Array.from(args[i]) : Int32Array.from(args[i])));
    prog.run();
    return await prog.readMany(p.outputs.map((id) => ({ offset: plan.offsets[id], count: numel(p.buffers[id].shape), dtype: p.buffers[id].dtype === 'f32' ? ('f32' as const) : ('i32' as const) })));
  } finally {
    prog.destroy();
  }
}

const rms = (w: ArrayLike<number>) => {
  let s = 0;
  let n = 0;
  for (let i = 0; i < w.length; i++) if (Number.isFinite(w[i])) (s += w[i] * w[i]), n++;
  return n ? Math.sqrt(s / n) : 0;
};

/** f32 within `rel` (|want| + rms(want)); NaN matches NaN, infinities exactly. Integers: exact. Returns the worst error ratio. */
function compare(got: ArrayLike<number>, want: ArrayLike<number>, dtype: DType, rel: number, what: string, abs = 0): number {
  expect(got.length, `${what}: length`).toBe(want.length);
  const scale = rms(want);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (dtype !== 'f32' || !Number.isFinite(w)) {
      const ok = Number.isNaN(w) ? Number.isNaN(g) : g === w;
      if (!ok) throw new Error(`${what}[${i}]: got ${g}, want ${w} (exact)`);
      continue;
    }
    const tol = rel * (Math.abs(w) + scale) + abs;
    const err = Math.abs(g - w);
    if (!(err <= tol)) throw new Error(`${what}[${i}]: got ${g}, want ${w} (error ${err.toExponential(2)} > tolerance ${tol.toExponential(2)})`);
    if (tol > 0) worst = Math.max(worst, err / tol);
  }
  return worst;
}

const covered = new Set<string>();
const kinds = new Set<string>();
const F32_REL = 1e-5;

/** Fuse `f`, run it on the GPU and in the kernel interpreter, compare every output. */
async function check(f: Func, args: readonly Arr[], opts: { exact?: boolean } = {}): Promise<Program> {
  for (const n of funcNodes(f)) covered.add(n.op);
  const p = fuse(f);
  for (const k of p.kernels) kinds.add(k.kind === 'reduce' ? `reduce/${numel(k.rshape) > 64 ? 'tree' : 'serial'}` : k.kind);
  const want = runProgram(p, args);
  const got = await runGpu(p, args);
  p.outputs.forEach((id, i) => {
    const dt = p.buffers[id].dtype;
    compare(got[i], want[i], opts.exact ? 'i32' : dt, F32_REL, `${f.name}.${p.outputNames[i]}`);
  });
  return p;
}

// ---------------------------------------------------------------- kernels against the kernel interpreter

describe.runIf(device)('wgsl kernels match the kernel interpreter', () => {
  it('unary ops (exp, log, sqrt, recip, tanh with large |x|, neg, abs) and a fused chain with broadcasts', async () => {
    const x = inp('x', [3, 50]);
    const e = inp('e', [3, 50]);
    const t = inp('t', [3, 50]);
    const bias = inp('bias', [50]);
    const chain = b.tanh(b.mul(b.add(x, b.broadcastTo(bias, x.shape)), b.scalarLike(2, x)));
    const f = makeFunc('unary', [x, e, t, bias], [b.neg(x), b.abs(e), b.exp(e), b.log(x), b.sqrt(x), b.recip(x), b.tanh(t), chain]);
    const p = await check(f, [rnd(150, 1, 0.1, 3), rnd(150, 2, -20, 20), rnd(150, 3, -40, 40), rnd(50, 4)]);
    expect(p.kernels.filter((k) => k.ops.includes('tanh')).length).toBe(2);
  });

  it('binary ops, comparisons, select and casts (f32)', async () => {
    const sh = [4, 33];
    const n = numel(sh);
    const a = inp('a', sh);
    const bb = inp('b', sh);
    const c = inp('c', sh);
    const base = inp('base', sh);
    const ex = inp('ex', sh);
    const nb = inp('nb', sh);
    const ie = inp('ie', sh);
    const outs = [
      b.add(a, bb), b.sub(a, bb), b.mul(a, bb), b.div(a, bb), b.max(a, bb), b.min(a, bb),
      b.pow(base, ex), b.pow(nb, ie), b.less(a, bb), b.equal(a, c), b.select(b.less(a, bb), a, c),
      b.cast(b.mul(a, b.scalarLike(100, a)), 'i32'), b.cast(b.less(a, c), 'f32'), b.cast(c, 'bool'), b.cast(b.cast(c, 'bool'), 'i32'),
    ];
    const f = makeFunc('binary', [a, bb, c, base, ex, nb, ie], outs);
    const av = rnd(n, 5, -2, 2);
    // b: |b| in [0.5, 2] with either sign; c: equal to a on every third element, zero on every fifth.
    const bv = rnd(n, 6, 0.5, 2).map((v, i) => (i % 2 ? -v : v));
    const cv = av.map((v, i) => (i % 3 === 0 ? v : i % 5 === 0 ? 0 : -v));
    const iev = Float32Array.from({ length: n }, (_, i) => (i % 7) - 3);
    await check(f, [av, bv, cv, rnd(n, 7, 0.2, 3), rnd(n, 8, -3, 3), rnd(n, 9, -3, -0.5), iev]);
  });

  it('i32 arithmetic wraps; i32 division by zero gives 0; max/min/less/equal/abs on i32', async () => {
    const sh = [70];
    const a = inp('a', sh, 'i32');
    const c = inp('c', sh, 'i32');
    const f = makeFunc('int', [a, c], [b.add(a, c), b.sub(a, c), b.mul(a, c), b.div(a, c), b.max(a, c), b.min(a, c), b.less(a, c), b.equal(a, c), b.neg(a), b.abs(a), b.cast(a, 'f32')]);
    const av = Int32Array.from({ length: 70 }, (_, i) => (i % 10 === 0 ? 2147483000 + i : (i * 7919) % 201 - 100));
    const cv = Int32Array.from({ length: 70 }, (_, i) => (i % 4 === 0 ? 0 : i % 10 === 0 ? 2147483000 : (i * 104729) % 23 - 11));
    await check(f, [av, cv]);
  });

  it('f32 -> i32 casts saturate and map NaN to 0 (against the graph interpreter)', async () => {
    // The kernel interpreter wraps out-of-range casts (`Math.trunc(a) | 0`); the graph interpreter
    // and Wasm saturate. This compares with the graph interpreter.
    const x = inp('x', [9]);
    const f = makeFunc('cast_sat', [x], [b.cast(x, 'i32'), b.cast(x, 'bool')]);
    const xv = Float32Array.from([NaN, Infinity, -Infinity, 3e9, -3e9, 2.7, -2.7, 0, -0.5]);
    for (const n of funcNodes(f)) covered.add(n.op);
    const got = await runGpu(fuse(f), [xv]);
    const want = interpret(f, [xv]);
    compare(got[0], want[0].data, 'i32', 0, 'cast i32');
    compare(got[1], want[1].data, 'i32', 0, 'cast bool');
  });

  it('movement ops become index arithmetic (transpose, slice, pad, reverse, concat, reshape, broadcast)', async () => {
    const x = inp('x', [3, 4, 5]);
    const v = inp('v', [5]);
    const t = b.transpose(x, [2, 0, 1]);
    const s = b.slice(t, [1, 0, 1], [5, 3, 4]);
    const p = b.pad(s, [1, 0, 2], [0, 2, 1], 0.5);
    const r = b.reverse(p, [0, 2]);
    const r2 = b.reverse(b.pad(b.slice(t, [0, 0, 0], [4, 3, 3]), [1, 0, 3], [0, 0, 0], -1), [1]);
    const cc = b.concat([r, b.exp(r2)], 1);
    const y = b.reshape(cc, [numel(cc.shape)]);
    const bc = b.add(b.broadcast(v, [3, 4, 5], [2]), x);
    const f = makeFunc('movement', [x, v], [y, bc]);
    const prog = await check(f, [rnd(60, 10), rnd(5, 11)]);
    expect(prog.kernels.length).toBe(2);
  });

  it('leaves: constant, iota (i32 and f32) and random_uniform reproduce ir/random.ts exactly', async () => {
    const key = inp('key', [], 'i32');
    const r = b.randomUniform(key, [7, 300], 5);
    const io = b.iota([7, 300], 1, 'i32');
    const iof = b.iota([7, 300], 0, 'f32');
    const f = makeFunc('leaves', [key], [r, b.add(io, b.constant(3, [7, 300], 'i32')), b.mul(iof, b.constant(0.25, [7, 300])), b.randomUniform(b.constant(-7, [], 'i32'), [1000], 123456789)]);
    await check(f, [Int32Array.from([42])], { exact: true });
  });

  it('reductions: short (one thread per output) and long (workgroup tree), sum and max, with epilogues', async () => {
    const x = inp('x', [6, 10]);
    const y = inp('y', [3, 1000]);
    const z = inp('z', [4, 5, 6]);
    const w = inp('w', [20, 40, 3]);
    const lse = (v: InputNode, axes: number[]) => b.log(b.reduceSum(b.exp(v), axes));
    const f = makeFunc('reduce', [x, y, z, w], [
      b.reduceSum(x, [1]), b.reduceMax(x, [1]), b.reduceSum(y, [1]), b.reduceMax(y, [1]),
      lse(z, [0, 2]), lse(w, [0, 1]), b.mul(b.reduceMax(w, [0, 1]), b.constant(2, [3])), b.reduceSum(y, [0, 1]),
    ]);
    await check(f, [rnd(60, 12), rnd(3000, 13), rnd(120, 14), rnd(2400, 15)]);
    expect(kinds.has('reduce/serial') && kinds.has('reduce/tree')).toBe(true);
  });

  it('matmul: edge tiles, batches, transposed operands, epilogues; small and 64x64 tiles', async () => {
    const a = inp('a', [2, 33, 70]);
    const wt = inp('wt', [2, 45, 70]);
    const x = inp('x', [130, 200]);
    const w = inp('w', [200, 150]);
    const bias = inp('bias', [150]);
    const s = inp('s', [4, 10]);
    const sw = inp('sw', [3, 10]);
    const big = b.dot(x, w);
    const f = makeFunc('matmul', [a, wt, x, w, bias, s, sw], [
      b.dot(a, b.transpose(wt, [0, 2, 1])),
      b.max(b.add(big, b.broadcastTo(bias, big.shape)), b.scalarLike(0, big)),
      b.dot(b.transpose(x, [1, 0]), b.slice(big, [0, 0], [130, 150])),
      b.dot(s, b.transpose(sw, [1, 0])),
    ]);
    const p = await check(f, [rnd(2 * 33 * 70, 16), rnd(2 * 45 * 70, 17), rnd(130 * 200, 18), rnd(200 * 150, 19), rnd(150, 20), rnd(40, 21), rnd(30, 22)]);
    expect(p.kernels.filter((k) => k.kind === 'matmul').length).toBeGreaterThanOrEqual(4);
  });

  it('matmul: every tile of the tile table is correct on edge tiles, batches and transposed views', async () => {
    const a = inp('a', [3, 37, 29]);
    const w = inp('w', [3, 19, 29]);
    const f = makeFunc('tiles', [a, w], [b.exp(b.mul(b.dot(a, b.transpose(w, [0, 2, 1])), b.constant(0.1, [3, 37, 19])))]);
    const p = fuse(f);
    const args = [rnd(3 * 37 * 29, 32), rnd(3 * 19 * 29, 33)];
    const want = runProgram(p, args);
    for (const tile of MATMUL_TILES) {
      const got = await runGpu(p, args, { matmulTile: tile });
      compare(got[0], want[0], 'f32', F32_REL, `tile ${JSON.stringify(tile)}`);
    }
    // The chooser: big outputs get the big tile, small ones more workgroups, limits are respected.
    const lim = kernelLimits(device!);
    expect(chooseTile(1024, 1024, 1, lim)).toEqual(MATMUL_TILES[0]);
    expect(chooseTile(36, 128, 1, { maxWorkgroupSize: 256, maxWorkgroupStorage: 16384 }).bm).toBeLessThan(64);
    const tiny = chooseTile(1024, 1024, 1, { maxWorkgroupSize: 64, maxWorkgroupStorage: 4096 });
    expect((tiny.bm / tiny.tm) * (tiny.bn / tiny.tn)).toBeLessThanOrEqual(64);
  });

  it('conv (im2col + matmul) with stride, padding and dilations; conv + bias + relu as one kernel', async () => {
    const x = inp('x', [2, 7, 6, 3]);
    const w = inp('w', [3, 2, 3, 4]);
    const x2 = inp('x2', [2, 9, 9, 2]);
    const w2 = inp('w2', [3, 3, 2, 5]);
    const bias = inp('bias', [5]);
    const y = b.conv(x, w, { strides: [2, 1], padding: [[1, 2], [0, 1]], lhsDilation: [1, 2], rhsDilation: [2, 1] });
    const c2 = b.conv(x2, w2, { strides: [1, 1], padding: [[1, 1], [1, 1]], lhsDilation: [1, 1], rhsDilation: [1, 1] });
    const relu = b.max(b.add(c2, b.broadcastTo(bias, c2.shape)), b.scalarLike(0, c2));
    const f = makeFunc('conv', [x, w, x2, w2, bias], [y, relu]);
    const p = await check(f, [rnd(2 * 7 * 6 * 3, 23), rnd(3 * 2 * 3 * 4, 24), rnd(2 * 81 * 2, 25), rnd(90, 26), rnd(5, 27)]);
    expect(p.kernels.some((k) => k.kind === 'matmul' && k.ops.join() === 'conv,add,max')).toBe(true);
  });

  it('pooling and its gradient (max with ties and padding, sum)', async () => {
    const x = inp('x', [2, 5, 5, 3]);
    const p = { op: 'max' as const, window: [2, 3], strides: [2, 2], padding: [[0, 1], [1, 1]] as const };
    const yv = b.reduceWindow(x, p);
    const dy = inp('dy', [...yv.shape]);
    const x2 = inp('x2', [2, 6, 6, 4]);
    const p2 = { op: 'max' as const, window: [2, 2], strides: [2, 2], padding: [[0, 0], [0, 0]] as const };
    const dy2 = inp('dy2', [2, 3, 3, 4]);
    const f = makeFunc('pool', [x, dy, x2, dy2], [
      yv, b.reduceWindowGrad(x, dy, p), b.reduceWindow(x, { ...p, op: 'sum' }), b.reduceWindowGrad(x, dy, { ...p, op: 'sum' }),
      b.reduceWindow(x2, p2), b.reduceWindowGrad(x2, dy2, p2),
    ]);
    // Values on a coarse grid make ties in windows: the gradient goes to the first maximum only.
    const xv = rnd(150, 28).map((v) => Math.round(v * 2) / 2);
    await check(f, [xv, rnd(numel(yv.shape), 29), rnd(288, 30).map((v) => Math.round(v * 2) / 2), rnd(72, 31)]);
    expect(kinds.has('pool_grad')).toBe(true);
  });

  it('a recurrent loop and its gradient (scan, reverse scan), both directions', async () => {
    for (const reverse of [false, true]) {
      const f = simplify(rnnTrainGraph(6, reverse));
      const p = await check(f, [rnd(36, 40), rnd(8, 41), rnd(12, 42), rnd(16, 43)]);
      expect(p.loops.length).toBe(2);
    }
  });

  it('an elementwise kernel with more than 65535 workgroups uses a 2-D dispatch', async () => {
    const shape = [65537, 256];
    const f = makeFunc('wide', [], [b.add(b.iota(shape, 0, 'f32'), b.mul(b.iota(shape, 1, 'f32'), b.constant(1 / 64, shape)))]);
    for (const n of funcNodes(f)) covered.add(n.op);
    const p = fuse(f);
    const plan = planMemory(p);
    const { kernels } = emitWgsl(p, plan, kernelLimits(device!));
    expect(kernels[0].workgroups[1]).toBeGreaterThan(1);
    const got = (await runGpu(p, []))[0];
    for (let i = 0; i < got.length; i += 997) {
      const want = Math.floor(i / 256) + (i % 256) / 64;
      if (got[i] !== want) throw new Error(`wide[${i}]: got ${got[i]}, want ${want}`);
    }
    expect(got[got.length - 1]).toBe(65536 + 255 / 64);
  });

  it('every op of the op table appeared in some graph; every kernel kind ran', () => {
    const missing = ALL_OPS.filter((o: Op) => o !== 'input' && !covered.has(o));
    expect(missing).toEqual([]);
    expect([...kinds].sort()).toEqual(['elementwise', 'matmul', 'pool_grad', 'reduce/serial', 'reduce/tree']);
  });
});

// ---------------------------------------------------------------- generated code and errors

describe.runIf(device)('wgsl text and runtime errors', () => {
  it('each shader starts with a comment naming the kernel and its fused ops', () => {
    const x = inp('x', [8, 8]);
    const f = makeFunc('f', [x], [b.exp(b.add(x, x))]);
    const p = fuse(f);
    const { kernels } = emitWgsl(p, planMemory(p), kernelLimits(device!));
    expect(kernels[0].code.split('\n')[0]).toBe(`// kernel ${p.kernels[0].name}: ${p.kernels[0].ops.join(', ')}`);
    expect(kernels[0].code).toContain('@group(0) @binding(0) var<storage, read_write> mem: array<f32>;');
  });

  it('a shader that fails to compile is reported with the kernel name, line and message', async () => {
    const code = '@group(0) @binding(0) var<storage, read_write> mem: array<f32>;\n@compute @workgroup_size(1)\nfn main() {\n  let x: i32 = 1.5;\n}\n';
    const err = await createProgram(device!, [{ name: 'broken_kernel', code, workgroups: [1, 1, 1] }], 64).then(
      () => null,
      (e: Error) => e,
    );
    expect(err).not.toBeNull();
    expect(err!.message).toMatch(/kernel 'broken_kernel' failed to compile/);
    expect(err!.message).toMatch(/line 4:\d+: .*i32/);
    expect(err!.message).toContain('let x: i32 = 1.5;');
  });

  it('an arena larger than the device allows names the limit and both sizes', async () => {
    const lim = device!.limits.maxStorageBufferBindingSize;
    await expect(createProgram(device!, [], lim + 16)).rejects.toThrow(new RegExp(`arena is ${lim + 16} bytes but the device's maxStorageBufferBindingSize is ${lim}`));
  });

  it('in-arena copies (state updates) work although WebGPU forbids same-buffer copies', async () => {
    const prog = await createProgram(device!, [], 256);
    prog.write(0, Float32Array.from({ length: 16 }, (_, i) => i));
    prog.copyWithin([{ src: 0, dst: 128, bytes: 64 }, { src: 16, dst: 192, bytes: 16 }]);
    const [a, c] = await prog.readMany([{ offset: 128, count: 16 }, { offset: 192, count: 4 }]);
    expect(Array.from(a)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    expect(Array.from(c)).toEqual([4, 5, 6, 7]);
    prog.destroy();
  });
});

// ---------------------------------------------------------------- the reference model on the backend

describe.runIf(device)('the reference model on WebGPU against the f64 graph interpreter', () => {
  // f32 everywhere: the longest dot products have K = 1152 (dense) and 576 (third conv), and the
  // train step chains forward, backward and Adam. 1e-4 relative (on top of the output's rms, as
  // above) leaves margin over the measured errors (loss and outputs about 1e-7, gradients and Adam
  // slots a few 1e-6) without hiding a wrong kernel, which shows up as errors of order 1.
  // Updated weights get an extra absolute 1e-3 * lr: Adam's first step is lr * g / (|g| + 1e-7), so
  // where |g| is near 1e-7 (biases, whose gradients are sums with cancellation) the f32 rounding of g
  // is amplified up to ~1/(4 eps) times; measured: 1.3e-7 = 1.3e-4 lr on dense.bias.
  const REL = 1e-4;
  const LR = 1e-3; // Adam's default, which examples/mnist-cnn.ts uses
  const batch = 4;
  const x = rnd(batch * 28 * 28, 40, 0, 1);
  const y = Int32Array.from({ length: batch }, (_, i) => (i * 7) % 10);
  const mask = new Float32Array(batch).fill(1);
  const sessions: WebGpuSession[] = [];
  afterAll(() => sessions.forEach((s) => s.dispose()));

  async function session(): Promise<WebGpuSession> {
    const s = (await backendFactory('webgpu')!(model, batch)) as WebGpuSession;
    sessions.push(s);
    s.load(model.state);
    return s;
  }

  it('predict at batch 4', async () => {
    const s = await session();
    const [got] = await s.predict([x]);
    const st = model.stepFunction('predict', batch);
    const want = interpret(st.func, stepArgs(st, { xs: [x] }, model.state))[0].data;
    const worst = compare(got, want, 'f32', REL, 'predict');
    console.log(`predict: worst error ${worst.toFixed(4)} of its tolerance`);
  }, 600_000);

  it('train step at batch 4: loss, metrics and every updated state buffer; then eval sees the new weights', async () => {
    const s = await session();
    const st = model.stepFunction('train', batch);
    const want = interpret(st.func, stepArgs(st, { xs: [x], ys: [y], mask }, model.state));
    const r = await s.train({ xs: [x], ys: [y], mask });
    for (const [name, i] of st.results) compare([r[name]], [want[i].data[0]], 'f32', REL, name);
    expect(() => s.store(new Map())).toThrow(/flush/);
    await s.flush();
    const after = new Map<string, Float32Array | Int32Array>();
    s.store(after);
    let worst = 0;
    for (const u of st.updates) {
      const name = st.func.inputs[u.input].params.name;
      const got = after.get(name)!;
      const isWeight = /\.(kernel|bias)$/.test(name) && !name.startsWith('adam.');
      worst = Math.max(worst, compare(got, want[u.output].data, got instanceof Int32Array ? 'i32' : 'f32', REL, `${name}.next`, isWeight ? 1e-3 * LR : 0));
    }
    console.log(`train step: loss ${r.loss} (f64: ${want[st.results.get('loss')!].data[0]}), worst state error ${worst.toFixed(3)} of its tolerance`);
    // Eval after the train step runs on the updated weights (copied GPU to GPU).
    const ev = model.stepFunction('eval', batch);
    const next = new Map(model.state);
    for (const u of st.updates) next.set(st.func.inputs[u.input].params.name, after.get(st.func.inputs[u.input].params.name)!);
    const wantEval = interpret(ev.func, stepArgs(ev, { xs: [x], ys: [y], mask }, next));
    const re = await s.evaluate({ xs: [x], ys: [y], mask });
    for (const [name, i] of ev.results) compare([re[name]], [wantEval[i].data[0]], 'f32', REL, `eval ${name}`);
  }, 600_000);
});

// ---------------------------------------------------------------- a large matmul (speed: npm run bench:matmul-gpu)

describe.runIf(device)('a large matmul', () => {
  it('a generated 1024x1024x1024 matmul kernel computes the product', async () => {
    const n = 1024;
    const a = inp('a', [n, n]);
    const w = inp('w', [n, n]);
    const p = fuse(makeFunc('mm', [a, w], [b.dot(a, w)]));
    const plan = planMemory(p);
    const { kernels } = emitWgsl(p, plan, kernelLimits(device!));
    const prog = await createProgram(device!, kernels, plan.totalBytes);
    prog.write(plan.offsets[p.inputs[0]], rnd(n * n, 50));
    prog.write(plan.offsets[p.inputs[1]], rnd(n * n, 51));
    prog.run();
    await prog.finish();
    // a spot check that it computed the product
    const [out] = await prog.readMany([{ offset: plan.offsets[p.outputs[0]], count: 3 }]);
    const av = rnd(n * n, 50);
    const wv = rnd(n * n, 51);
    let ref = 0;
    for (let k = 0; k < n; k++) ref += av[k] * wv[k * n + 1];
    expect(Math.abs(out[1] - ref)).toBeLessThan(1e-3 * (1 + Math.abs(ref)));
    prog.destroy();
  });
});
