/**
 * @file Reductions: `reduce_sum` and `reduce_max` over a set of axes, which are removed from the shape.
 *
 * Keeping no size-1 axes keeps one canonical form; `sumKeep`/`maxKeep` in builders add them back with
 * a reshape where a caller wants them. The gradient of `reduce_max` is split evenly between ties.
 */
import * as b from '../builders.ts';
import type { OpDef, Tensor64 } from '../opdef.ts';
import { checkAxes, expectDType } from '../opdef.ts';
import type { Node } from '../types.ts';
import { numel, stridesOf } from '../types.ts';

function reduceInterp(x: Tensor64, axes: readonly number[], init: number, f: (acc: number, v: number) => number): Float64Array {
  const outShape = x.shape.filter((_, i) => !axes.includes(i));
  const out = new Float64Array(numel(outShape)).fill(init);
  const outStrides = stridesOf(outShape);
  // Map each input axis to its stride in the output (0 for reduced axes).
  const map: number[] = [];
  let k = 0;
  for (let i = 0; i < x.shape.length; i++) map.push(axes.includes(i) ? 0 : outStrides[k++]);
  const idx = new Array<number>(x.shape.length).fill(0);
  let o = 0;
  for (let i = 0; i < x.data.length; i++) {
    out[o] = f(out[o], x.data[i]);
    // increment the multi-index and the output offset together
    for (let d = x.shape.length - 1; d >= 0; d--) {
      idx[d]++;
      o += map[d];
      if (idx[d] < x.shape[d]) break;
      o -= map[d] * idx[d];
      idx[d] = 0;
    }
  }
  return out;
}

/** Broadcast a reduced tensor back to the input's shape. */
function unreduce(r: Node, x: Node, axes: readonly number[]): Node {
  const kept = x.shape.map((_, i) => i).filter((i) => !axes.includes(i));
  return b.broadcast(r, x.shape, kept);
}

const reduceType = (x: { dtype: 'f32' | 'i32' | 'bool'; shape: readonly number[] }, axes: readonly number[]) => {
  expectDType(x, ['f32', 'i32'], 'operand');
  checkAxes(axes, x.shape.length, 'axes');
  return { dtype: x.dtype, shape: x.shape.filter((_, i) => !axes.includes(i)) };
};

export const reduceOps: { readonly [O in 'reduce_sum' | 'reduce_max']: OpDef<O> } = {
  reduce_sum: {
    arity: 1,
    type: ([x], p) => reduceType(x, p.axes),
    interp: ([x], p, out) => {
      const r = reduceInterp(x, p.axes, 0, (a, v) => a + v);
      if (out.dtype === 'i32') for (let i = 0; i < r.length; i++) r[i] |= 0;
      return r;
    },
    vjp: (ct, n) => [unreduce(ct, n.inputs[0], n.params.axes)],
  },
  reduce_max: {
    arity: 1,
    type: ([x], p) => reduceType(x, p.axes),
    interp: ([x], p) => reduceInterp(x, p.axes, -Infinity, (a, v) => (v > a || Number.isNaN(v) ? v : a)),
    vjp: (ct, n) => {
      const x = n.inputs[0];
      const mask = b.equal(x, unreduce(n as Node, x, n.params.axes));
      const count = b.reduceSum(b.cast(mask, 'f32'), n.params.axes);
      const share = unreduce(b.div(ct, count), x, n.params.axes);
      return [b.select(mask, share, b.scalarLike(0, share))];
    },
  },
};
