/**
 * @file Fusion and simplification: the fused kernel program computes exactly what the graph does
 * (both evaluated in f64, so the comparison is exact up to summation order: tolerance 1e-12
 * relative), kernel counts are pinned, and the fusion rules hold (conv + bias + relu is one kernel in
 * predict; elementwise chains are one kernel; movement ops produce no kernels).
 */
import { describe, expect, it } from 'vitest';
import model from '../examples/mnist-cnn.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { runProgram } from '../compiler/kernel/interp.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import * as b from '../ir/builders.ts';
import { grad } from '../ir/autodiff.ts';
import { funcNodes, makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import { uniformAt } from '../ir/random.ts';
import type { Func, InputNode } from '../ir/types.ts';
import { numel } from '../ir/types.ts';

function argsFor(f: Func, seed = 1): (Float32Array | Int32Array)[] {
  return f.inputs.map((inp, i) => {
    const n = numel(inp.shape);
    if (inp.params.name === 'y') return new Int32Array(n).map((_, j) => (j * 7) % 10);
    if (inp.params.name === 'mask') return new Float32Array(n).fill(1);
    if (inp.dtype === 'i32') return new Int32Array(n).map((_, j) => j % 3);
    const s = model.state.get(inp.params.name);
    return s ? Float32Array.from(s) : new Float32Array(n).map((_, j) => uniformAt(seed, i, j) * 2 - 1);
  });
}

function expectSame(f: Func): void {
  const args = argsFor(f);
  const ref = interpret(f, args);
  const got = runProgram(fuse(f), args);
  ref.forEach((r, i) => {
    for (let j = 0; j < r.data.length; j++) {
      const tol = 1e-12 * Math.max(1, Math.abs(r.data[j]));
      if (!(Math.abs(r.data[j] - got[i][j]) <= tol)) throw new Error(`output ${f.outputNames[i]}[${j}]: graph ${r.data[j]}, fused ${got[i][j]}`);
    }
  });
}

const inp = (name: string, shape: number[]) => input(name, 'f32', shape) as InputNode;

describe('fusion preserves meaning', () => {
  it('elementwise chain with broadcasts is one kernel', () => {
    const x = inp('x', [4, 6]);
    const bias = inp('bias', [6]);
    const y = b.tanh(b.mul(b.add(x, b.broadcastTo(bias, x.shape)), b.scalarLike(2, x)));
    const f = makeFunc('f', [x, bias], [y]);
    expect(fuse(f).kernels.length).toBe(1);
    expectSame(f);
  });
  it('movement ops become index arithmetic (transpose, slice, pad, reverse, concat, reshape)', () => {
    const x = inp('x', [3, 4, 5]);
    const t = b.transpose(x, [2, 0, 1]);
    const s = b.slice(t, [1, 0, 1], [5, 3, 4]);
    const p = b.pad(s, [1, 0, 2], [0, 2, 1], 0.5);
    const r = b.reverse(p, [0, 2]);
    // A second piece built separately: a value used twice would rightly be materialized.
    const r2 = b.reverse(b.pad(b.slice(t, [0, 0, 0], [4, 3, 3]), [1, 0, 3], [0, 0, 0], -1), [1]);
    const c = b.concat([r, b.exp(r2)], 1);
    const y = b.reshape(c, [numel(c.shape)]);
    const f = makeFunc('f', [x], [y]);
    expect(fuse(f).kernels.length).toBe(1);
    expectSame(f);
  });
  it('reduction with epilogue and a dot with transposed operands', () => {
    const x = inp('x', [2, 3, 5]);
    const w = inp('w', [2, 4, 5]);
    const d = b.dot(x, b.transpose(w, [0, 2, 1]));
    const y = b.max(d, b.scalarLike(0, d));
    const s = b.reduceSum(b.exp(y), [2]);
    const f = makeFunc('f', [x, w], [b.log(s)]);
    const p = fuse(f);
    expect(p.kernels.map((k) => k.kind)).toEqual(['matmul', 'reduce']);
    expectSame(f);
  });
  it('conv with stride, padding and dilations, and its gradients', () => {
    const x = inp('x', [2, 7, 6, 3]);
    const w = inp('w', [3, 2, 3, 4]);
    const y = b.conv(x, w, { strides: [2, 1], padding: [[1, 2], [0, 1]], lhsDilation: [1, 2], rhsDilation: [2, 1] });
    const ct = inp('ct', [...y.shape]);
    // sum(y * ct): its gradients are the conv's vector-Jacobian products with cotangent ct.
    const loss = b.reduceSum(b.mul(y, ct), [0, 1, 2, 3]);
    const [gx, gw] = grad(loss, [x, w]);
    const f = makeFunc('f', [x, w, ct], [y, gx, gw], ['y', 'dx', 'dw']);
    // Each output is its own computation (the gradients are convs and sums, not copies of y).
    expect(fuse(f).kernels.length).toBeGreaterThanOrEqual(3);
    expectSame(f);
  });
  it('conv kernel gradients (strided, padded, dilated) take the patches^T @ dy path', async () => {
    const { grad } = await import('../ir/autodiff.ts');
    for (const p of [
      { strides: [2, 1], padding: [[1, 2], [0, 1]] as [number, number][], lhsDilation: [1, 1], rhsDilation: [1, 2] },
      { strides: [1, 1], padding: [[0, 0], [0, 0]] as [number, number][], lhsDilation: [1, 1], rhsDilation: [1, 1] },
    ]) {
      const x = inp('x', [2, 7, 6, 3]);
      const w = inp('w', [3, 2, 3, 4]);
      const y = b.conv(x, w, p);
      const ct = inp('ct', [...y.shape]);
      const loss = b.reduceSum(b.mul(y, ct), [0, 1, 2, 3]);
      const [gw] = grad(loss, [w]);
      const f = makeFunc('f', [x, w, ct], [gw]);
      const prog = fuse(simplify(f));
      expect(prog.kernels.some((k) => k.ops.includes('conv_kernel_grad'))).toBe(true);
      expectSame(simplify(f));
    }
  });
  it('pooling and its gradient', () => {
    const x = inp('x', [2, 5, 5, 3]);
    const p = { op: 'max' as const, window: [2, 3], strides: [2, 2], padding: [[0, 1], [1, 1]] as const };
    const y = b.reduceWindow(x, p);
    const dy = inp('dy', [...y.shape]);
    const f = makeFunc('f', [x, dy], [y, b.reduceWindowGrad(x, dy, p), b.reduceWindow(x, { ...p, op: 'sum' })]);
    expectSame(f);
  });
});

describe('the reference model', () => {
  it('predict: conv + bias + relu fuse into one kernel each; pinned kernel count', () => {
    const st = model.stepFunction('predict', 2);
    const p = fuse(simplify(st.func));
    // conv2 is Winograd (test/winograd.test.ts): its output transform carries the bias and relu.
    const convs = p.kernels.filter((k) => k.ops.includes('conv') || k.ops.includes('conv_winograd'));
    expect(convs.map((k) => k.ops)).toEqual([
      ['conv', 'add', 'max'],
      ['conv_winograd', 'add', 'max'],
      ['conv', 'add', 'max'],
    ]);
    expect(p.kernels.length).toBe(16);
    expectSame(simplify(st.func));
  });
  it('train step: far fewer kernels than nodes; fused program matches the graph', () => {
    const st = model.stepFunction('train', 2);
    const g = simplify(st.func);
    const p = fuse(g);
    expect(funcNodes(st.func).length).toBeGreaterThan(3 * p.kernels.length);
    expect(p.kernels.length).toBe(96);
    // Conv input gradients are col2im: a dy @ Wᵀ matmul, then one kernel summing the taps (no
    // im2col of the zero-padded cotangent, which would spend 1.4-2.8x the FLOPs on the padding).
    expect(p.kernels.filter((k) => k.name.includes('pad_add')).map((k) => k.shape)).toEqual([
      [2, 5, 5, 64],
      [2, 13, 13, 32],
    ]);
    expectSame(g);
    expectSame(st.func);
  });
  it('simplify removes duplicated work but not meaning', () => {
    const st = model.stepFunction('train', 2);
    const g = simplify(st.func);
    expect(funcNodes(g).length).toBeLessThan(funcNodes(st.func).length);
    const args = argsFor(st.func);
    const a = interpret(st.func, args);
    const c = interpret(g, args);
    a.forEach((r, i) => expect(Array.from(c[i].data)).toEqual(Array.from(r.data)));
  });
});
