/**
 * @file A direct evaluator of kernel IR in f64: runs a `Program` kernel by kernel, element by
 * element. It exists to test fusion on its own (fused program against the graph interpreter) and to
 * be the oracle that code generators are compared with; it is not meant to be fast.
 */
import { uniformAt } from '../../ir/random.ts';
import { numel } from '../../ir/types.ts';
import { walkSchedule } from '../../runtime/schedule.ts';
import type { BinOp, Expr, Kernel, Program, UnOp } from './types.ts';

/** Each unary ALU op on an f64 value; `int` when the result is i32 (which wraps). */
const UNARY: { readonly [O in UnOp]: (a: number, int: boolean) => number } = {
  neg: (a, int) => (int ? -a | 0 : -a),
  abs: (a, int) => (int ? Math.abs(a) | 0 : Math.abs(a)),
  exp: (a) => Math.exp(a),
  log: (a) => Math.log(a),
  sqrt: (a) => Math.sqrt(a),
  recip: (a) => 1 / a,
  tanh: (a) => Math.tanh(a),
  not: (a) => (a ? 0 : 1),
};

/** Each binary ALU op on f64 values; `int` when the result is i32 (which wraps; division by zero gives 0). */
const BINARY: { readonly [O in BinOp]: (a: number, b: number, int: boolean) => number } = {
  add: (a, b, int) => (int ? (a + b) | 0 : a + b),
  sub: (a, b, int) => (int ? (a - b) | 0 : a - b),
  mul: (a, b, int) => (int ? Math.imul(a, b) : a * b),
  div: (a, b, int) => (int ? (b === 0 ? 0 : Math.trunc(a / b) | 0) : a / b),
  mod: (a, b, int) => (int ? (b === 0 ? 0 : a % b | 0) : a % b),
  max: (a, b) => Math.max(a, b),
  min: (a, b) => Math.min(a, b),
  pow: (a, b) => Math.pow(a, b),
  less: (a, b) => (a < b ? 1 : 0),
  equal: (a, b) => (a === b ? 1 : 0),
  and: (a, b) => (a && b ? 1 : 0),
};

type Env = { g: number[]; r: number[]; acc: number; ins: Float64Array[] };

function ev(e: Expr, env: Env): number {
  switch (e.k) {
    case 'const':
      return e.value;
    case 'idx':
      return env.g[e.axis];
    case 'ridx':
      return env.r[e.axis];
    case 'acc':
      return env.acc;
    case 'load': {
      const i = ev(e.index, env);
      const buf = env.ins[e.input];
      if (!(i >= 0 && i < buf.length)) throw new Error(`kernel interp: load out of bounds: ${i} of ${buf.length}`);
      return buf[i];
    }
    case 'un':
      return UNARY[e.op](ev(e.a, env), e.dtype === 'i32');
    case 'bin':
      return BINARY[e.op](ev(e.a, env), ev(e.b, env), e.dtype === 'i32');
    case 'select':
      return ev(e.c, env) ? ev(e.a, env) : ev(e.b, env);
    case 'cast': {
      const a = ev(e.a, env);
      // f32 -> i32 saturates and maps NaN to 0, as the graph reference does.
      return e.dtype === 'bool' ? (a !== 0 ? 1 : 0) : e.dtype === 'i32' ? (Number.isNaN(a) ? 0 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(a)))) : a;
    }
    case 'rand':
      return uniformAt(e.seed, ev(e.key, env) | 0, ev(e.index, env));
    default:
      return e satisfies never;
  }
}

function forEachIndex(shape: readonly number[], f: (ix: number[], flat: number) => void): void {
  const n = numel(shape);
  const ix = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    f(ix, flat);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++ix[d] < shape[d]) break;
      ix[d] = 0;
    }
  }
}

function runKernel(k: Kernel, ins: Float64Array[], out: Float64Array): void {
  switch (k.kind) {
    case 'elementwise':
      forEachIndex(k.shape, (g, flat) => (out[flat] = ev(k.expr, { g, r: [], acc: 0, ins })));
      return;
    case 'reduce':
      forEachIndex(k.shape, (g, flat) => {
        let acc = k.op === 'sum' ? 0 : -Infinity;
        forEachIndex(k.rshape, (r) => {
          const v = ev(k.body, { g, r, acc: 0, ins });
          acc = k.op === 'sum' ? acc + v : Math.max(acc, v);
        });
        out[flat] = ev(k.epilogue, { g, r: [], acc, ins });
      });
      return;
    case 'matmul': {
      const A = ins[k.a.input];
      const B = ins[k.b.input];
      forEachIndex(k.shape, (g, flat) => {
        const [b, m, n] = g;
        let acc = 0;
        for (let q = 0; q < k.k; q++) {
          acc += A[k.a.offset + b * k.a.strides[0] + m * k.a.strides[1] + q * k.a.strides[2]] * B[k.b.offset + b * k.b.strides[0] + q * k.b.strides[1] + n * k.b.strides[2]];
        }
        out[flat] = ev(k.epilogue, { g, r: [], acc, ins });
      });
      return;
    }
    case 'pool_grad': {
      const [x, dy] = ins;
      const [N, H, W, C] = k.shape;
      const [, OH, OW] = k.dyShape;
      out.fill(0);
      for (let n = 0; n < N; n++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++)
            for (let c = 0; c < C; c++) {
              const d = dy[((n * OH + oh) * OW + ow) * C + c];
              let best = -1;
              for (let kh = 0; kh < k.window[0]; kh++) {
                const ih = oh * k.strides[0] + kh - k.padding[0][0];
                if (ih < 0 || ih >= H) continue;
                for (let kw = 0; kw < k.window[1]; kw++) {
                  const iw = ow * k.strides[1] + kw - k.padding[1][0];
                  if (iw < 0 || iw >= W) continue;
                  const i = ((n * H + ih) * W + iw) * C + c;
                  if (k.op === 'sum') out[i] += d;
                  else if (best < 0 || x[i] > x[best]) best = i;
                }
              }
              if (k.op === 'max' && best >= 0) out[best] += d;
            }
      return;
    }
    default:
      return k satisfies never;
  }
}

/** Run `p` on `args` (one per program input); returns one array per program output. */
export function runProgram(p: Program, args: readonly ArrayLike<number>[]): Float64Array[] {
  const bufs = p.buffers.map((b) => new Float64Array(numel(b.shape)));
  p.inputs.forEach((id, i) => bufs[id].set(args[i]));
  walkSchedule(p.kernels.length, p.loops, (e) => {
    if (e.k === 'kernel') {
      const k = p.kernels[e.index];
      runKernel(k, k.inputs.map((id) => bufs[id]), bufs[k.output]);
    } else {
      const c = e.copy;
      const n = c.elements;
      const from = bufs[c.from].subarray(c.fromStep ? e.step * n : 0, (c.fromStep ? e.step * n : 0) + n);
      bufs[c.to].set(from, c.toStep ? e.step * n : 0);
    }
  });
  return p.outputs.map((id) => bufs[id]);
}
