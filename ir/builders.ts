/**
 * @file Small builder functions over `apply`, one per op plus a few shape helpers.
 *
 * VJP rules, the model frontend and tests build graphs with these. They do no implicit broadcasting:
 * binary ops want equal shapes, and `broadcastTo`/`scalarLike` make the broadcast explicit in the IR
 * (fusion turns it into index arithmetic later).
 */
import { apply } from './node.ts';
import type { DType, Node, Padding2, Shape, WindowOp } from './types.ts';
import { shapeEq } from './types.ts';

const none = {} as Record<string, never>;

export const constant = (value: number, shape: Shape, dtype: DType = 'f32'): Node =>
  apply('constant', [], { value, dtype, shape });
export const iota = (shape: Shape, axis: number, dtype: DType = 'i32'): Node => apply('iota', [], { axis, dtype, shape });
/** Uniform [0,1) f32 numbers from a counter-based generator keyed by an i32 scalar `key` and `seed`. */
export const randomUniform = (key: Node, shape: Shape, seed: number): Node =>
  apply('random_uniform', [key], { seed, shape });

export const neg = (x: Node) => apply('neg', [x], none);
export const abs = (x: Node) => apply('abs', [x], none);
export const exp = (x: Node) => apply('exp', [x], none);
export const log = (x: Node) => apply('log', [x], none);
export const sqrt = (x: Node) => apply('sqrt', [x], none);
export const recip = (x: Node) => apply('recip', [x], none);
export const tanh = (x: Node) => apply('tanh', [x], none);
export const add = (a: Node, b: Node) => apply('add', [a, b], none);
export const sub = (a: Node, b: Node) => apply('sub', [a, b], none);
export const mul = (a: Node, b: Node) => apply('mul', [a, b], none);
export const div = (a: Node, b: Node) => apply('div', [a, b], none);
export const max = (a: Node, b: Node) => apply('max', [a, b], none);
export const min = (a: Node, b: Node) => apply('min', [a, b], none);
export const pow = (a: Node, b: Node) => apply('pow', [a, b], none);
export const less = (a: Node, b: Node) => apply('less', [a, b], none);
export const equal = (a: Node, b: Node) => apply('equal', [a, b], none);
export const select = (c: Node, a: Node, b: Node) => apply('select', [c, a, b], none);
export const cast = (x: Node, to: DType) => (x.dtype === to ? x : apply('cast', [x], { to }));

export const reduceSum = (x: Node, axes: readonly number[]) =>
  axes.length === 0 ? x : apply('reduce_sum', [x], { axes: [...axes].sort((a, b) => a - b) });
export const reduceMax = (x: Node, axes: readonly number[]) =>
  axes.length === 0 ? x : apply('reduce_max', [x], { axes: [...axes].sort((a, b) => a - b) });

export const reshape = (x: Node, shape: Shape) => (shapeEq(x.shape, shape) ? x : apply('reshape', [x], { shape }));
export const transpose = (x: Node, perm: readonly number[]) =>
  perm.every((p, i) => p === i) ? x : apply('transpose', [x], { perm });
export const broadcast = (x: Node, shape: Shape, axes: readonly number[]) =>
  shapeEq(x.shape, shape) && axes.every((a, i) => a === i) ? x : apply('broadcast', [x], { shape, axes });
export const slice = (x: Node, start: readonly number[], limit: readonly number[]) =>
  apply('slice', [x], { start, limit });
export const pad = (x: Node, lo: readonly number[], hi: readonly number[], value = 0) =>
  apply('pad', [x], { lo, hi, value });
export const concat = (xs: readonly Node[], axis: number) => (xs.length === 1 ? xs[0] : apply('concat', xs, { axis }));
export const reverse = (x: Node, axes: readonly number[]) => (axes.length === 0 ? x : apply('reverse', [x], { axes }));
export const dot = (a: Node, b: Node) => apply('dot', [a, b], none);
export const conv = (
  x: Node,
  w: Node,
  p: { strides: readonly number[]; padding: Padding2; lhsDilation: readonly number[]; rhsDilation: readonly number[] },
) => apply('conv', [x, w], p);
export const reduceWindow = (
  x: Node,
  p: { op: WindowOp; window: readonly number[]; strides: readonly number[]; padding: Padding2 },
) => apply('reduce_window', [x], p);
export const reduceWindowGrad = (
  x: Node,
  dy: Node,
  p: { op: WindowOp; window: readonly number[]; strides: readonly number[]; padding: Padding2 },
) => apply('reduce_window_grad', [x, dy], p);

// ---- composite helpers (not ops) ----

/** Broadcast `x` to `shape` numpy-style: trailing axes align, size-1 axes stretch. */
export function broadcastTo(x: Node, shape: Shape): Node {
  if (shapeEq(x.shape, shape)) return x;
  const off = shape.length - x.shape.length;
  if (off < 0) throw new Error(`broadcastTo: cannot broadcast [${x.shape}] to [${shape}]`);
  const axes = x.shape.map((_, i) => i + off);
  return broadcast(x, shape, axes);
}

/** A scalar constant broadcast to the shape and dtype of `like`. */
export const scalarLike = (value: number, like: Node): Node => constant(value, like.shape, like.dtype);

/** Sum over `axes`, keeping them as size-1 dims. */
export function sumKeep(x: Node, axes: readonly number[]): Node {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return reshape(reduceSum(x, axes), kept);
}

export function maxKeep(x: Node, axes: readonly number[]): Node {
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return reshape(reduceMax(x, axes), kept);
}

/** Swap the last two axes. */
export function mT(x: Node): Node {
  const r = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  perm[r - 2] = r - 1;
  perm[r - 1] = r - 2;
  return transpose(x, perm);
}

export function inversePerm(perm: readonly number[]): number[] {
  const inv = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}
