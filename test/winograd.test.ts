/**
 * @file Winograd F(2x2, 3x3) convolutions (ir/winograd.ts's rule, compiler/kernel/winograd.ts's
 * transforms, their lowering in compiler/kernel/fuse.ts).
 *
 * - The rule: which of the reference model's convs, and which of their gradients, take Winograd
 *   (conv2 forward and kernel gradient; nothing of conv1 or conv3; every input gradient stays col2im).
 * - Fusion is exact: the fused program, run by the f64 kernel interpreter, matches the f64 graph
 *   interpreter at 1e-12 relative for forward, input gradient and kernel gradient over odd and even
 *   sizes, 'valid', 'same' and asymmetric padding, channel counts that are not multiples of 4, and a
 *   fused bias + relu epilogue. In exact arithmetic Winograd is the same bilinear form as the direct
 *   conv, so only rounding differs (measured ~1e-14).
 * - Wasm and WebGPU (f32) against the f64 interpreter at 2e-5 relative to max(|want|, rms(want)).
 *   Why that: a direct (im2col) conv's f32 error is a K-term dot product's, about sqrt(K) * 6e-8 *
 *   rms (K = 9C <= 288 here: ~1e-6). Winograd adds the transforms: V = Bᵀ d B sums 4 inputs with
 *   ±1, U = G g Gᵀ has entries up to 2.25 |g|, and Aᵀ M A sums 9 of the 16 channel sums, which
 *   partly cancel, so intermediates are a few times the direct products and the error can grow by
 *   that factor (the bound is the transforms' norms, 2 * 1.5 * 3 per axis). Measured on these
 *   cases: worst 1.5e-6 (Wasm and WebGPU show the same worst errors: both accumulate each dot product in
 *   order), against 1.55e-6 for the same graphs with the rule turned off, so F(2x2, 3x3) costs no
 *   visible accuracy at these sizes. 2e-5 is ~13x the measured worst case, room for the growth
 *   factor on other data, and far below what a wrong tile, offset or coefficient gives (order 1).
 *   WINOGRAD_ERRS=1 prints the measured errors.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import model from '../examples/mnist-cnn.ts';
import { emitWasm, loadBinaryen } from '../compiler/codegen/wasm.ts';
import { emitWgsl } from '../compiler/codegen/wgsl.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { runProgram } from '../compiler/kernel/interp.ts';
import { planMemory } from '../compiler/kernel/plan.ts';
import { byteLoops } from '../compiler/kernel/schedule.ts';
import type { Program } from '../compiler/kernel/types.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import { grad } from '../ir/autodiff.ts';
import * as b from '../ir/builders.ts';
import { makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import { uniformAt } from '../ir/random.ts';
import type { Func, InputNode, Padding2 } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { winogradFits, winogradMacs, winogradPays, WINOGRAD_MAX_RATIO } from '../ir/winograd.ts';
import { instantiateProgram } from '../runtime/wasm.ts';
import { createProgram, kernelLimits } from '../runtime/webgpu.ts';
import { needWebGpu } from './helpers/requirements.ts';

// emitWasm needs binaryen, which is loaded on demand (compiler/codegen/wasm/binaryen.ts).
beforeAll(loadBinaryen);

const device = await needWebGpu('test/winograd.test.ts: Winograd convolutions on WebGPU');

const inp = (name: string, shape: number[]) => input(name, 'f32', shape) as InputNode;
/** Deterministic values in [-1, 1), exact in f32. */
const rnd = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.fround(2 * uniformAt(seed, 5, i) - 1));

interface Case {
  readonly name: string;
  readonly x: [number, number, number, number];
  readonly o: number;
  readonly padding: Padding2;
  /** Adds a bias and relu after the conv (the fused epilogue of the output transform). */
  readonly epilogue?: boolean;
}

const CASES: readonly Case[] = [
  { name: "valid, odd output (the reference model's conv2 shape, small batch)", x: [2, 13, 13, 32], o: 64, padding: [[0, 0], [0, 0]] },
  { name: "'same', even output, bias + relu epilogue", x: [2, 8, 8, 16], o: 20, padding: [[1, 1], [1, 1]], epilogue: true },
  { name: 'asymmetric padding, non-square, channels not a multiple of 4', x: [1, 9, 12, 18], o: 17, padding: [[2, 0], [1, 2]] },
  { name: "'same' on an odd size (input gradient by Winograd too)", x: [2, 11, 11, 16], o: 16, padding: [[1, 1], [1, 1]] },
];

/**
 * sum(y * ct) for y = conv(x, w) (+ bias, relu): outputs y and the gradients with respect to x and
 * w, i.e. the forward conv, its input gradient and its kernel gradient.
 */
function convGraph(c: Case): Func {
  const x = inp('x', c.x);
  const w = inp('w', [3, 3, c.x[3], c.o]);
  const bias = inp('bias', [c.o]);
  let y = b.conv(x, w, { strides: [1, 1], padding: c.padding, lhsDilation: [1, 1], rhsDilation: [1, 1] });
  if (c.epilogue) {
    y = b.add(y, b.broadcastTo(bias, y.shape));
    y = b.max(y, b.scalarLike(0, y));
  }
  const ct = inp('ct', [...y.shape]);
  const [dx, dw] = grad(b.reduceSum(b.mul(y, ct), [0, 1, 2, 3]), [x, w]);
  return makeFunc('f', [x, w, bias, ct], [y, dx, dw], ['y', 'dx', 'dw']);
}

const argsOf = (f: Func) => f.inputs.map((n, i) => rnd(numel(n.shape), 11 + i));

/** Each case's graph, arguments and f64 results, computed once (the f64 interpreter is the slow part). */
const prepared = new Map<Case, { f: Func; args: Float32Array[]; want: Float64Array[] }>();
function prepare(c: Case): { f: Func; args: Float32Array[]; want: Float64Array[] } {
  let r = prepared.get(c);
  if (!r) {
    const f = convGraph(c);
    const args = argsOf(f);
    r = { f, args, want: interpret(f, args).map((t) => t.data) };
    prepared.set(c, r);
  }
  return r;
}

/** Which parts of a case's program run by Winograd. */
function winogradParts(p: Program): { forward: boolean; kernelGrad: boolean } {
  const names = p.kernels.map((k) => k.name);
  return { forward: names.some((n) => n.includes('_winograd') && n.startsWith('m_') && !n.includes('kernel_grad')), kernelGrad: names.some((n) => n.includes('kernel_grad_winograd')) };
}

/** max |got - want| / max(|want|, rms(want)) over all elements; throws past `rel`. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string): number {
  expect(got.length, `${what}: length`).toBe(want.length);
  let s = 0;
  for (let i = 0; i < want.length; i++) s += want[i] * want[i];
  const rms = Math.sqrt(s / Math.max(1, want.length));
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), rms, 1e-30);
    if (!(e <= rel)) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]} (relative error ${e.toExponential(2)} > ${rel})`);
    worst = Math.max(worst, e);
  }
  return worst;
}

async function runWasm(p: Program, args: readonly Float32Array[]): Promise<Float32Array[]> {
  const plan = planMemory(p);
  const inst = await instantiateProgram(emitWasm(p, plan, { relaxedSimd: false }));
  p.inputs.forEach((id, i) => inst.f32(plan.offsets[id], numel(p.buffers[id].shape)).set(args[i]));
  inst.run();
  return p.outputs.map((id) => inst.f32(plan.offsets[id], numel(p.buffers[id].shape)).slice());
}

async function runGpu(p: Program, args: readonly Float32Array[]): Promise<Float32Array[]> {
  const plan = planMemory(p);
  const { kernels } = emitWgsl(p, plan, kernelLimits(device!), {});
  const prog = await createProgram(device!, kernels, plan.totalBytes, p.name, byteLoops(p, plan));
  try {
    p.inputs.forEach((id, i) => prog.write(plan.offsets[id], args[i]));
    prog.run();
    const out = await prog.readMany(p.outputs.map((id) => ({ offset: plan.offsets[id], count: numel(p.buffers[id].shape), dtype: 'f32' as const })));
    return out.map((a) => Float32Array.from(a));
  } finally {
    prog.destroy();
  }
}

describe('the cost rule', () => {
  it('takes 3x3 unit-stride undilated convs only', () => {
    const g = { kernel: [3, 3], strides: [1, 1], lhsDilation: [1, 1], rhsDilation: [1, 1] };
    expect(winogradFits(g)).toBe(true);
    expect(winogradFits({ ...g, kernel: [5, 5] })).toBe(false);
    expect(winogradFits({ ...g, strides: [2, 1] })).toBe(false);
    expect(winogradFits({ ...g, lhsDilation: [1, 2] })).toBe(false);
    expect(winogradFits({ ...g, rhsDilation: [2, 2] })).toBe(false);
  });
  it('on the reference model: conv2 yes (ratio 0.53), conv1 no (one channel), conv3 no (ratio 0.79), input gradients no', () => {
    // conv2: 13x13x32 -> 11x11x64; 6x6 tiles of 16 positions against 11x11 pixels of 9 taps.
    expect(winogradMacs(1, 11, 11, 32, 64) / (9 * 121 * 32 * 64)).toBeCloseTo(576 / 1089, 10);
    expect(winogradPays(32, 11, 11, 32, 64)).toBe(true);
    expect(winogradPays(32, 26, 26, 1, 32)).toBe(false);
    expect(winogradPays(32, 3, 3, 64, 128)).toBe(false);
    // conv2's input gradient as a full conv (13x13 output from 64 channels) against col2im's 9 * 11*11 taps: 0.72.
    expect(winogradMacs(1, 13, 13, 64, 32) / (9 * 121 * 64 * 32)).toBeGreaterThan(WINOGRAD_MAX_RATIO);
    expect(winogradPays(32, 13, 13, 64, 32, 9 * 32 * 121 * 64 * 32)).toBe(false);
  });
  it('predict and train step of the reference model use it exactly for conv2 and its kernel gradient', () => {
    const pred = fuse(simplify(model.stepFunction('predict', 2).func));
    expect(pred.kernels.filter((k) => k.ops.includes('conv') || k.ops.includes('conv_winograd')).map((k) => k.ops.filter((o) => o.startsWith('conv')))).toEqual([
      ['conv'],
      ['conv_winograd'],
      ['conv'],
    ]);
    const train = fuse(simplify(model.stepFunction('train', 2).func));
    const names = train.kernels.map((k) => k.name);
    expect(names.filter((n) => n.includes('winograd_input'))).toEqual(['E_4_4_2_6_6_32_winograd_input']); // one transform, shared by forward and kernel gradient
    expect(names.filter((n) => n.includes('kernel_grad_winograd'))).toEqual(['m_16_32_64_72_conv_kernel_grad_winograd']);
    expect(names.filter((n) => n.includes('conv_kernel_grad') && !n.includes('winograd')).length).toBe(2);
    // Both input gradients (conv2's and conv3's) stay col2im.
    expect(train.kernels.filter((k) => k.name.includes('pad_add')).map((k) => k.shape)).toEqual([
      [2, 5, 5, 64],
      [2, 13, 13, 32],
    ]);
  });
});

describe('fusion computes the conv exactly (f64 kernel interpreter against the graph)', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const { f, args, want } = prepare(c);
      const p = fuse(simplify(f));
      expect(winogradParts(p)).toEqual({ forward: true, kernelGrad: true });
      const got = runProgram(p, args);
      want.forEach((w, i) => {
        for (let j = 0; j < w.length; j++) {
          const tol = 1e-12 * Math.max(1, Math.abs(w[j]));
          if (!(Math.abs(w[j] - got[i][j]) <= tol)) throw new Error(`${f.outputNames[i]}[${j}]: graph ${w[j]}, fused ${got[i][j]}`);
        }
      });
    });
  }
  it("the input gradient of a 'same' conv is a Winograd full conv; of a 'valid' conv it stays col2im", () => {
    const winogradMatmuls = (c: Case) => fuse(simplify(convGraph(c))).kernels.filter((k) => k.kind === 'matmul' && k.name.includes('_winograd') && !k.name.includes('kernel_grad')).length;
    expect(winogradMatmuls(CASES[3])).toBe(2); // forward + input gradient
    expect(winogradMatmuls(CASES[0])).toBe(1); // forward only: 16*7*7 vs col2im's 9*11*11 (0.72)
  });
});

describe('Wasm (f32) against the f64 interpreter', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { f, args, want } = prepare(c);
      const got = await runWasm(fuse(simplify(f)), args);
      const errs = want.map((w, i) => relErr(got[i], w, 2e-5, `wasm ${f.outputNames[i]}`));
      if (process.env.WINOGRAD_ERRS) console.log('wasm', c.name, errs.map((e) => e.toExponential(2)).join(' '));
    });
  }
});

describe.skipIf(!device)('WebGPU (f32) against the f64 interpreter', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      const { f, args, want } = prepare(c);
      const got = await runGpu(fuse(simplify(f)), args);
      const errs = want.map((w, i) => relErr(got[i], w, 2e-5, `webgpu ${f.outputNames[i]}`));
      if (process.env.WINOGRAD_ERRS) console.log('webgpu', c.name, errs.map((e) => e.toExponential(2)).join(' '));
    });
  }
});
