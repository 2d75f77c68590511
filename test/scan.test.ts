/**
 * @file `scan` in the graph IR: the builder's closure conversion, the reference interpreter against
 * the same loop unrolled by hand, the text format (nested body, round trip), the verifier, and the
 * VJP (a reverse scan) against central finite differences in f64 on scans with several carries,
 * several xs and ys, reverse order, a scan inside a scan, and a scan in a larger model. Finite
 * differences use step 1e-6 in f64; the check is the inner-product identity <c, J v> = <Jᵀc, v> at a
 * relative 1e-6 (the FD truncation error on these smooth tanh/sigmoid graphs is ~1e-9).
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../ir/autodiff.ts';
import * as b from '../ir/builders.ts';
import { funcNodes, makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import { parseFunc } from '../ir/parse.ts';
import { printFunc } from '../ir/print.ts';
import type { Func, InputNode, Node } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { verifyFunc } from '../ir/verify.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import { mulberry32 } from './helpers/gradcheck.ts';

const sigmoid = (x: Node) => b.recip(b.add(b.constant(1, x.shape), b.exp(b.neg(x))));

/** An RNN cell in IR: h' = tanh(x W + h U + bias), with the weights captured from outside. */
function rnnCell(W: Node, U: Node, bias: Node) {
  return (c: readonly Node[], x: readonly Node[]) => {
    const [h] = c;
    const pre = b.add(b.add(b.dot(x[0], W), b.dot(h, U)), b.broadcastTo(bias, h.shape));
    const h2 = b.tanh(pre);
    return { carry: [h2], ys: [h2] };
  };
}

function values(f: Func, seed: number): Float64Array[] {
  const r = mulberry32(seed);
  return f.inputs.map((i) => Float64Array.from({ length: numel(i.shape) }, () => r() * 2 - 1));
}

const close = (a: ArrayLike<number>, e: ArrayLike<number>, tol = 1e-12) => {
  expect(a.length).toBe(e.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - e[i])).toBeLessThanOrEqual(tol * (1 + Math.abs(e[i])));
};

/** A small RNN over xs [T, B, F] as a scan, and the same loop unrolled by hand. */
function rnnPair(T: number, reverse: boolean) {
  const [B, F, H] = [2, 3, 4];
  const mk = (): InputNode[] => [input('xs', 'f32', [T, B, F]), input('h0', 'f32', [B, H]), input('W', 'f32', [F, H]), input('U', 'f32', [H, H]), input('bias', 'f32', [H])];
  const [xs, h0, W, U, bias] = mk();
  const r = b.scan(rnnCell(W, U, bias), [h0], [xs], { reverse, name: 'rnn_cell' });
  const scanned = makeFunc('scanned', [xs, h0, W, U, bias], [r.carry[0], r.ys[0]], ['h', 'seq']);
  const [xs2, h02, W2, U2, bias2] = mk();
  let h: Node = h02;
  const steps: Node[] = new Array<Node>(T);
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    const xt = b.reshape(b.slice(xs2, [t, 0, 0], [t + 1, B, F]), [B, F]);
    h = rnnCell(W2, U2, bias2)([h], [xt]).carry[0];
    steps[t] = b.reshape(h, [1, B, H]);
  }
  const unrolled = makeFunc('unrolled', [xs2, h02, W2, U2, bias2], [h, b.concat(steps, 0)], ['h', 'seq']);
  return { scanned, unrolled };
}

describe('scan: builder and interpreter', () => {
  for (const reverse of [false, true]) {
    it(`matches the loop unrolled by hand (reverse=${reverse})`, () => {
      const { scanned, unrolled } = rnnPair(5, reverse);
      verifyFunc(scanned);
      const args = values(scanned, 7);
      const a = interpret(scanned, args);
      const e = interpret(unrolled, args);
      a.forEach((t, i) => close(t.data, e[i].data));
    });
  }

  it('lifts captured values into consts and keeps pure constants inside the body', () => {
    const { scanned } = rnnPair(3, false);
    const s = funcNodes(scanned).find((n) => n.op === 'scan')!;
    if (s.op !== 'scan') throw new Error('no scan');
    // operands: h0, xs, then W, U and the bias broadcast (computed outside: it is loop-invariant)
    expect(s.inputs.map((n) => (n.op === 'input' ? n.params.name : n.op))).toEqual(['h0', 'xs', 'W', 'U', 'broadcast']);
    expect(s.params.body.inputs.map((n) => n.params.name)).toEqual(['c0', 'x0', 'k0', 'k1', 'k2']);
  });

  it('refuses body types that do not fit the operands, naming the input', () => {
    const { scanned } = rnnPair(3, false);
    const s = funcNodes(scanned).find((n) => n.op === 'scan')!;
    if (s.op !== 'scan') throw new Error('no scan');
    const wrongX = input('xs', 'f32', [4, 2, 3]);
    expect(() => b.substitute([s], new Map([[s.inputs[1].id, wrongX]]))).toThrow(/xs operand 0 f32\[4,2,3\] does not have leading axis 3/);
  });
});

describe('scan: text format', () => {
  it('prints the body nested and round-trips byte for byte', () => {
    const { scanned } = rnnPair(4, true);
    const text = printFunc(scanned);
    expect(text).toContain('  %6: f32[2,4] = scan[carries=1,length=4,reverse=true,xs=1] %1, %0, %2, %3, %5 {\n');
    expect(text).toContain('\n    func @rnn_cell(%0 c0: f32[2,4], %1 x0: f32[2,3], %2 k0: f32[3,4], %3 k1: f32[4,4], %4 k2: f32[2,4]) -> (c0.next: f32[2,4], y0: f32[2,4]) {\n');
    expect(text).toContain('      return %9, %9\n    }\n  }\n  %7: f32[2,4] = scan_result[index=0] %6\n');
    const again = parseFunc(text);
    verifyFunc(again);
    expect(printFunc(again)).toBe(text);
    const args = values(scanned, 3);
    interpret(again, args).forEach((t, i) => close(t.data, interpret(scanned, args)[i].data, 0));
  });

  it('reports a missing body and a body of the wrong type with the line', () => {
    const { scanned } = rnnPair(4, false);
    const text = printFunc(scanned);
    // The scan line without its ` {` and the nested lines down to the scan's closing `  }`.
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.includes('= scan['));
    const close = lines.indexOf('  }', at);
    const noBody = [...lines.slice(0, at), lines[at].slice(0, -2), ...lines.slice(close + 1)].join('\n');
    expect(() => parseFunc(noBody)).toThrow(/expected '\{' and the scan's body function/);
    // The outer xs no longer fits the body's x0 slice.
    const badBody = text.replace('%0 xs: f32[4,2,3]', '%0 xs: f32[4,2,5]');
    expect(() => parseFunc(badBody)).toThrow(/line 3, %6: scan\(.*\): body input 1 \(xs 0 \(one step\)\) is f32\[2,3\], expected f32\[2,5\]/);
  });
});

/** <c, J v> by central differences against <Jᵀ c, v> from the VJP, for the scalar <c, f(x)>. */
function fdCheck(f: Func, wrtIdx: readonly number[], seed: number) {
  const r = mulberry32(seed);
  const args = values(f, seed + 1);
  const cts = f.outputs.map((o) => Float64Array.from({ length: numel(o.shape) }, () => r() * 2 - 1));
  // loss = Σ_k <c_k, out_k> as graph IR, so grad() sees a scalar.
  const ctIn = f.outputs.map((o, k) => input(`ct${k}`, 'f32', o.shape));
  const terms = f.outputs.map((o, k) => b.reduceSum(b.mul(o, ctIn[k]), o.shape.map((_, a) => a)));
  const loss = terms.reduce((acc, t) => b.add(acc, t));
  const wrt = wrtIdx.map((i) => f.inputs[i]);
  const g = grad(loss, wrt);
  const gf = simplify(makeFunc('g', [...f.inputs, ...ctIn], g));
  verifyFunc(gf);
  const grads = interpret(gf, [...args, ...cts]);
  const lossF = makeFunc('l', [...f.inputs, ...ctIn], [loss]);
  const L = (a: readonly Float64Array[]) => interpret(lossF, [...a, ...cts])[0].data[0];
  const eps = 1e-6;
  wrtIdx.forEach((ai, q) => {
    const v = Float64Array.from({ length: args[ai].length }, () => r() * 2 - 1);
    const plus = args.map((a, i) => (i === ai ? a.map((x, j) => x + eps * v[j]) : a));
    const minus = args.map((a, i) => (i === ai ? a.map((x, j) => x - eps * v[j]) : a));
    const fd = (L(plus) - L(minus)) / (2 * eps);
    const an = grads[q].data.reduce((s, x, j) => s + x * v[j], 0);
    expect(Math.abs(fd - an)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(an)));
  });
  return gf;
}

describe('scan: VJP against finite differences', () => {
  for (const reverse of [false, true]) {
    it(`an RNN over xs, initial carry and weights (reverse=${reverse})`, () => {
      const { scanned } = rnnPair(4, reverse);
      fdCheck(scanned, [0, 1, 2, 3, 4], 11);
    });
  }

  it('an LSTM-like cell: two carries, two xs, two ys, one y unused', () => {
    const [T, B, F, H] = [3, 2, 2, 3];
    const xs = input('xs', 'f32', [T, B, F]);
    const gate = input('gate', 'f32', [T, B, H]);
    const h0 = input('h0', 'f32', [B, H]);
    const c0 = input('c0', 'f32', [B, H]);
    const W = input('W', 'f32', [F, 4 * H]);
    const U = input('U', 'f32', [H, 4 * H]);
    const r = b.scan(
      ([h, c], [x, g]) => {
        const z = b.add(b.dot(x, W), b.dot(h, U));
        const part = (k: number) => b.slice(z, [0, k * H], [B, (k + 1) * H]);
        const c2 = b.add(b.mul(sigmoid(part(1)), c), b.mul(sigmoid(part(0)), b.tanh(part(2))));
        const h2 = b.mul(b.mul(sigmoid(part(3)), b.tanh(c2)), g);
        return { carry: [h2, c2], ys: [h2, b.mul(c2, c2)] };
      },
      [h0, c0],
      [xs, gate],
    );
    const f = makeFunc('lstm', [xs, gate, h0, c0, W, U], [r.carry[0], r.carry[1], r.ys[0]], ['h', 'c', 'seq']);
    fdCheck(f, [0, 1, 2, 3, 4, 5], 21);
  });

  it('a scan inside a scan body', () => {
    const [T, S, B] = [3, 2, 2];
    const xs = input('xs', 'f32', [T, S, B]);
    const w = input('w', 'f32', [B]);
    const h0 = input('h0', 'f32', [B]);
    const outer = b.scan(
      ([h], [x]) => {
        const inner = b.scan(([g], [xi]) => ({ carry: [b.tanh(b.add(b.mul(g, w), xi))], ys: [] }), [h], [x]);
        return { carry: [inner.carry[0]], ys: [b.mul(inner.carry[0], h)] };
      },
      [h0],
      [xs],
    );
    const f = makeFunc('nested', [xs, w, h0], [outer.carry[0], outer.ys[0]], ['h', 'ys']);
    const gf = fdCheck(f, [0, 1, 2], 31);
    expect(printFunc(gf)).toMatch(/scan\[carries=\d+,length=2,reverse=true/);
  });

  it('the train graph runs one forward scan: the saving copy is merged into it', () => {
    const { scanned } = rnnPair(4, false);
    const gf = fdCheck(scanned, [2, 3, 4], 41);
    const scans = funcNodes(gf).filter((n) => n.op === 'scan');
    // one forward scan (returning the saved carries too) and one backward scan
    expect(scans.map((s) => (s.op === 'scan' ? s.params.reverse : null)).sort()).toEqual([false, true]);
  });
});

describe('scan: fusion and the memory plan', () => {
  it('the fused program (f64 kernel interpreter) matches the graph interpreter, forward and gradients', async () => {
    const { fuse } = await import('../compiler/kernel/fuse.ts');
    const { runProgram } = await import('../compiler/kernel/interp.ts');
    for (const reverse of [false, true]) {
      const { scanned } = rnnPair(5, reverse);
      const [xs, h0, W, U, bias] = scanned.inputs;
      const loss = b.reduceSum(b.mul(scanned.outputs[1], scanned.outputs[1]), [0, 1, 2]);
      const g = grad(loss, [xs, h0, W, U, bias]);
      const f = simplify(makeFunc('train', scanned.inputs, [...scanned.outputs, loss, ...g]));
      const p = fuse(f);
      expect(p.loops.length).toBe(2);
      const args = values(f, 5);
      const want = interpret(f, args);
      runProgram(p, args).forEach((got, i) => close(got, want[i].data, 1e-12));
    }
  });
});
