/**
 * @file Movement ops: reshape, transpose, broadcast, slice, pad, concat, reverse.
 *
 * None of them computes anything; each maps an output index to at most one input index. The
 * reference implementations share one gather loop over that map, and fusion later turns the same
 * maps into index arithmetic inside kernels. `broadcast` is broadcast_in_dim: `axes[i]` is the output
 * axis of input axis i, and input axes of size 1 may stretch.
 */
import * as b from '../builders.ts';
import type { OpDef, Tensor64 } from '../opdef.ts';
import { checkAxes, checkShapeDims, checkValue, fail } from '../opdef.ts';
import type { Shape } from '../types.ts';
import { fmtShape, numel, stridesOf } from '../types.ts';

/** Fill an output of `shape` from `x`: `src(idx)` returns the flat input offset, or -1 for `fillValue`. */
function gather(shape: Shape, x: Tensor64, src: (idx: readonly number[]) => number, fillValue = 0): Float64Array {
  const out = new Float64Array(numel(shape));
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < out.length; i++) {
    const s = src(idx);
    out[i] = s < 0 ? fillValue : x.data[s];
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

const offset = (idx: readonly number[], strides: readonly number[]) => {
  let o = 0;
  for (let d = 0; d < idx.length; d++) o += idx[d] * strides[d];
  return o;
};

function checkPerDim(v: readonly number[], rank: number, what: string): void {
  if (!Array.isArray(v) || v.length !== rank || !v.every(Number.isInteger)) fail(`${what} must list ${rank} integers, got (${String(v)})`);
}

export const movementOps: {
  readonly [O in 'reshape' | 'transpose' | 'broadcast' | 'slice' | 'pad' | 'concat' | 'reverse']: OpDef<O>;
} = {
  reshape: {
    arity: 1,
    type: ([x], p) => {
      if (!p.shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`bad shape ${fmtShape(p.shape)}`);
      if (numel(p.shape) !== numel(x.shape)) fail(`cannot reshape ${fmtShape(x.shape)} (${numel(x.shape)} elements) to ${fmtShape(p.shape)} (${numel(p.shape)})`);
      return { dtype: x.dtype, shape: p.shape };
    },
    interp: ([x]) => Float64Array.from(x.data),
    vjp: (ct, n) => [b.reshape(ct, n.inputs[0].shape)],
  },
  transpose: {
    arity: 1,
    type: ([x], p) => {
      if (p.perm.length !== x.shape.length) fail(`perm (${p.perm}) has ${p.perm.length} axes, operand has rank ${x.shape.length}`);
      checkAxes(p.perm, x.shape.length, 'perm');
      return { dtype: x.dtype, shape: p.perm.map((a) => x.shape[a]) };
    },
    interp: ([x], p, out) => {
      const xs = stridesOf(x.shape);
      const st = p.perm.map((a) => xs[a]);
      return gather(out.shape, x, (idx) => offset(idx, st));
    },
    vjp: (ct, n) => [b.transpose(ct, b.inversePerm(n.params.perm))],
  },
  broadcast: {
    arity: 1,
    type: ([x], p) => {
      checkShapeDims(p.shape, 'shape');
      if (p.axes.length !== x.shape.length) fail(`axes (${p.axes}) must map each of the ${x.shape.length} operand axes`);
      checkAxes(p.axes, p.shape.length, 'axes');
      for (let i = 1; i < p.axes.length; i++) if (p.axes[i] <= p.axes[i - 1]) fail(`axes (${p.axes}) must increase`);
      x.shape.forEach((d, i) => {
        if (d !== 1 && d !== p.shape[p.axes[i]]) fail(`operand axis ${i} has size ${d}, cannot broadcast to ${p.shape[p.axes[i]]}`);
      });
      return { dtype: x.dtype, shape: p.shape };
    },
    interp: ([x], p, out) => {
      const xs = stridesOf(x.shape);
      const st = new Array<number>(out.shape.length).fill(0);
      p.axes.forEach((a, i) => (st[a] = x.shape[i] === 1 ? 0 : xs[i]));
      return gather(out.shape, x, (idx) => offset(idx, st));
    },
    vjp: (ct, n) => {
      const x = n.inputs[0];
      const { axes, shape } = n.params;
      const summed = shape.map((_, i) => i).filter((i) => !axes.includes(i) || (x.shape[axes.indexOf(i)] === 1 && shape[i] !== 1));
      return [b.reshape(b.reduceSum(ct, summed), x.shape)];
    },
  },
  slice: {
    arity: 1,
    type: ([x], p) => {
      checkPerDim(p.start, x.shape.length, 'start');
      checkPerDim(p.limit, x.shape.length, 'limit');
      x.shape.forEach((d, i) => {
        if (p.start[i] < 0 || p.start[i] > p.limit[i] || p.limit[i] > d) fail(`axis ${i}: [${p.start[i]}, ${p.limit[i]}) not within [0, ${d}]`);
      });
      return { dtype: x.dtype, shape: x.shape.map((_, i) => p.limit[i] - p.start[i]) };
    },
    interp: ([x], p, out) => {
      const xs = stridesOf(x.shape);
      const base = offset(p.start, xs);
      return gather(out.shape, x, (idx) => base + offset(idx, xs));
    },
    vjp: (ct, n) => {
      const x = n.inputs[0];
      return [b.pad(ct, n.params.start, x.shape.map((d, i) => d - n.params.limit[i]), 0)];
    },
  },
  pad: {
    arity: 1,
    type: ([x], p) => {
      checkPerDim(p.lo, x.shape.length, 'lo');
      checkPerDim(p.hi, x.shape.length, 'hi');
      if (p.lo.some((v) => v < 0) || p.hi.some((v) => v < 0)) fail(`padding must be non-negative (slice to crop)`);
      checkValue(p.value, x.dtype, 'value');
      return { dtype: x.dtype, shape: x.shape.map((d, i) => d + p.lo[i] + p.hi[i]) };
    },
    interp: ([x], p, out) => {
      const xs = stridesOf(x.shape);
      return gather(
        out.shape,
        x,
        (idx) => {
          let o = 0;
          for (let d = 0; d < idx.length; d++) {
            const j = idx[d] - p.lo[d];
            if (j < 0 || j >= x.shape[d]) return -1;
            o += j * xs[d];
          }
          return o;
        },
        p.value,
      );
    },
    vjp: (ct, n) => {
      const x = n.inputs[0];
      return [b.slice(ct, n.params.lo, x.shape.map((d, i) => d + n.params.lo[i]))];
    },
  },
  concat: {
    arity: 'variadic',
    type: (xs, p) => {
      const x0 = xs[0];
      if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= x0.shape.length) fail(`axis ${p.axis} out of range for rank ${x0.shape.length}`);
      let total = 0;
      xs.forEach((x, k) => {
        if (x.dtype !== x0.dtype) fail(`operand ${k} is ${x.dtype}, operand 0 is ${x0.dtype}`);
        const same = x.shape.length === x0.shape.length && x.shape.every((d, i) => i === p.axis || d === x0.shape[i]);
        if (!same) fail(`operand ${k} shape ${fmtShape(x.shape)} does not match ${fmtShape(x0.shape)} off axis ${p.axis}`);
        total += x.shape[p.axis];
      });
      return { dtype: x0.dtype, shape: x0.shape.map((d, i) => (i === p.axis ? total : d)) };
    },
    interp: (xs, p, out) => {
      const r = new Float64Array(numel(out.shape));
      const outer = numel(out.shape.slice(0, p.axis));
      const inner = numel(out.shape.slice(p.axis + 1));
      let o = 0;
      for (let i = 0; i < outer; i++) {
        for (const x of xs) {
          const chunk = x.shape[p.axis] * inner;
          r.set(x.data.subarray(i * chunk, (i + 1) * chunk), o);
          o += chunk;
        }
      }
      return r;
    },
    vjp: (ct, n) => {
      let at = 0;
      return n.inputs.map((x) => {
        const start = x.shape.map((_, i) => (i === n.params.axis ? at : 0));
        at += x.shape[n.params.axis];
        const limit = x.shape.map((d, i) => (i === n.params.axis ? at : d));
        return b.slice(ct, start, limit);
      });
    },
  },
  reverse: {
    arity: 1,
    type: ([x], p) => (checkAxes(p.axes, x.shape.length, 'axes'), { dtype: x.dtype, shape: x.shape }),
    interp: ([x], p, out) => {
      const xs = stridesOf(x.shape);
      return gather(out.shape, x, (idx) => {
        let o = 0;
        for (let d = 0; d < idx.length; d++) o += (p.axes.includes(d) ? x.shape[d] - 1 - idx[d] : idx[d]) * xs[d];
        return o;
      });
    },
    vjp: (ct, n) => [b.reverse(ct, n.params.axes)],
  },
};
