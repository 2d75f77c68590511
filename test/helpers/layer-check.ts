/**
 * @file Test helpers shared by the layer-family suites (merge, reshaping, pooling): tiny f64 arrays
 * for plain-JS references, seeded inputs, `expectModel` (interp against a reference, then wasm
 * against interp), `gradCheck` (finite differences of the f64 forward pass against `grad`) and
 * `expectTrains` (one SGD step moves the first weight, equal on interp and wasm). Tolerances are
 * stated where the suites use them.
 */
import { expect } from 'vitest';
import type { LayersModel, Tensor } from '../../compiler/index.ts';
import { tensor } from '../../compiler/index.ts';
import { grad } from '../../ir/autodiff.ts';
import * as b from '../../ir/builders.ts';
import { makeFunc } from '../../ir/graph.ts';
import { interpret } from '../../ir/interp.ts';
import { input } from '../../ir/node.ts';
import type { InputNode, Node } from '../../ir/types.ts';
import { mulberry32 } from './gradcheck.ts';

export const interp = { backend: 'interp' as const };
export const wasm = { backend: 'wasm' as const };

// ---------------------------------------------------------------- plain-JS references

export interface Arr {
  readonly data: Float64Array;
  readonly shape: readonly number[];
}

export const numel = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);

export function offset(shape: readonly number[], idx: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < shape.length; i++) o = o * shape[i] + idx[i];
  return o;
}

/** An array of `shape` whose element at each multi-index is `f(index)`. */
export function fromFn(shape: readonly number[], f: (idx: number[]) => number): Arr {
  const data = new Float64Array(numel(shape));
  const idx = shape.map(() => 0);
  for (let k = 0; k < data.length; k++) {
    data[k] = f(idx);
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  return { data, shape };
}

export const at = (a: Arr, idx: readonly number[]) => a.data[offset(a.shape, idx)];
export const asArr = (t: Tensor): Arr => ({ data: Float64Array.from(t.data as Float32Array), shape: t.shape });


export function uniform(shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor {
  const r = mulberry32(seed);
  return tensor(Float32Array.from({ length: numel(shape) }, () => lo + (hi - lo) * r()), [...shape]);
}

/** |a - b| <= rtol * max(|a|, |b|) + atol elementwise, naming the first bad index. */
export function expectAllClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(got.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = rtol * Math.max(Math.abs(got[i]), Math.abs(want[i])) + atol;
    if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]} (tolerance ${tol})`);
  }
}

/** Predict on interp against the references, then on wasm against interp. */
export async function expectModel(m: LayersModel, xs: readonly Tensor[], want: readonly Arr[], what: string): Promise<void> {
  const got = await m.predictMany([...xs], interp);
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => {
    expect(g.shape, `${what} output ${i} shape`).toEqual(want[i].shape);
    expectAllClose(g.data, want[i].data, 1e-6, 1e-12, `${what} interp output ${i}`);
  });
  const w = await m.predictMany([...xs], wasm);
  w.forEach((g, i) => {
    expect(g.shape).toEqual(got[i].shape);
    expectAllClose(g.data, got[i].data, 1e-5, 1e-6, `${what} wasm vs interp output ${i}`);
  });
}

/**
 * Finite differences of the f64 forward pass against `grad`: loss = sum_k <out_k, c_k> for random
 * c; the directional derivative along a random v for every model input and weight, and the partial
 * derivative for the first element of the first weight.
 */
export function gradCheck(m: LayersModel, batch: number, seed: number): void {
  const rng = mulberry32(seed);
  const rand = (n: number) => Float64Array.from({ length: n }, () => 2 * rng() - 1);
  const xs = m.inputs.map((t, i) => input(`x${i}`, 'f32', [batch, ...t.shape]) as InputNode);
  const ws = m.weightInfo.map((w, i) => input(`w${i}`, 'f32', w.shape) as InputNode);
  const fwd = m.forward(xs, ws, { training: false, key: b.constant(0, [], 'i32') });
  const cs = fwd.outputs.map((o, i) => input(`c${i}`, 'f32', o.out.shape) as InputNode);
  const terms = fwd.outputs.map((o, i) => b.reduceSum(b.mul(o.out, cs[i]), o.out.shape.map((_, k) => k)));
  const loss = terms.reduce((a, t) => b.add(a, t));
  const wrt: Node[] = [...xs, ...ws];
  const ins = [...xs, ...ws, ...cs];
  const lossF = makeFunc('loss', ins, [loss]);
  const gradF = makeFunc('grad', ins, grad(loss, wrt));
  const vals: Float64Array[] = [
    ...xs.map((x) => rand(numel(x.shape))),
    ...m.getWeights().map((t) => Float64Array.from(t.data as Float32Array)),
    ...cs.map((c) => rand(numel(c.shape))),
  ];
  const g = interpret(gradF, vals);
  const f = (v: Float64Array[]) => interpret(lossF, v)[0].data[0];
  const eps = 1e-6;
  const check = (k: number, dir: Float64Array, what: string) => {
    const plus = vals.map((v, i) => (i === k ? v.map((t, j) => t + eps * dir[j]) : v));
    const minus = vals.map((v, i) => (i === k ? v.map((t, j) => t - eps * dir[j]) : v));
    const fd = (f(plus) - f(minus)) / (2 * eps);
    const an = g[k].data.reduce((a, t, j) => a + t * dir[j], 0);
    expect(Math.abs(an), `${what}: gradient is zero`).toBeGreaterThan(1e-6);
    if (!(Math.abs(fd - an) <= 1e-6 * Math.max(Math.abs(fd), Math.abs(an)) + 1e-8)) expect.fail(`${what}: finite difference ${fd}, grad ${an}`);
  };
  wrt.forEach((n, k) => check(k, rand(numel(n.shape)), `d loss / d ${k < xs.length ? `input ${k}` : m.weightInfo[k - xs.length].name} along a random direction`));
  if (ws.length) {
    const e = new Float64Array(numel(ws[0].shape));
    e[0] = 1;
    check(xs.length, e, `d loss / d ${m.weightInfo[0].name}[0]`);
  }
}

/**
 * One SGD step with mse on interp changes the first weight (a Dense kernel before the layer under
 * test); the same step from the same initial weights on wasm agrees with it.
 */
export async function expectTrains(make: () => LayersModel, xs: readonly Tensor[], seed: number): Promise<void> {
  const m = make();
  m.compile({ optimizer: 'sgd', loss: 'mse' });
  const y = uniform([xs[0].shape[0], ...m.outputShape], seed);
  const before = Array.from(m.getWeights()[0].data);
  await m.trainOnBatch([...xs], y, interp);
  const after = Array.from(m.getWeights()[0].data);
  expect(after.some((v, i) => Math.abs(v - before[i]) > 1e-7), 'the Dense kernel moved').toBe(true);
  const mw = make();
  mw.compile({ optimizer: 'sgd', loss: 'mse' });
  expect(Array.from(mw.getWeights()[0].data)).toEqual(before);
  await mw.trainOnBatch([...xs], y, wasm);
  mw.getWeights().forEach((t, i) => expectAllClose(t.data, m.getWeights()[i].data, 1e-5, 1e-6, `wasm vs interp ${mw.weightInfo[i].name} after a step`));
}

// ---------------------------------------------------------------- elementwise merges
