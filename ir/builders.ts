/**
 * @file Small builder functions over `apply`, one per op plus a few shape helpers.
 *
 * VJP rules, the model frontend and tests build graphs with these. They do no implicit broadcasting:
 * binary ops want equal shapes, and `broadcastTo`/`scalarLike` make the broadcast explicit in the IR
 * (fusion turns it into index arithmetic later).
 */
import { makeFunc, topoOrder } from './graph.ts';
import { apply, input } from './node.ts';
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

// ---- graph rewriting and loops ----

/**
 * Rebuild the graph under `roots` with some nodes replaced (`replace`, by node id): every node whose
 * operands changed is made again through `apply`; untouched subgraphs are shared, not copied.
 */
export function substitute(roots: readonly Node[], replace: ReadonlyMap<number, Node>): Node[] {
  const out = new Map<number, Node>(replace);
  for (const n of topoOrder(roots)) {
    if (out.has(n.id)) continue;
    const ins = n.inputs.map((i) => out.get(i.id) ?? i);
    out.set(n.id, ins.every((x, k) => x === n.inputs[k]) ? n : apply(n.op, ins, n.params as never));
  }
  return roots.map((r) => out.get(r.id)!);
}

export interface ScanOptions {
  /** Run the steps from the last slice to the first; ys are still stacked in slice order. */
  readonly reverse?: boolean;
  /** Name of the body function in dumps. */
  readonly name?: string;
  /** Names of the body's carry and xs inputs in dumps (defaults c0.., x0..). */
  readonly carryNames?: readonly string[];
  readonly xsNames?: readonly string[];
}

export interface ScanValues {
  /** The final carries. */
  readonly carry: Node[];
  /** Each per-step output stacked along a new leading axis. */
  readonly ys: Node[];
}

/**
 * `lax.scan` as a builder: `step(carry, x)` is traced once on fresh input nodes (one slice of each
 * `xs`) and returns the next carries and this step's ys. Values from outside that `step` captures (a
 * layer's weights, anything computed from them) become the scan's const operands, so the body is a
 * closed function; values that depend on no input at all (constants, iota) stay inside it.
 */
export function scan(
  step: (carry: readonly Node[], x: readonly Node[]) => { readonly carry: readonly Node[]; readonly ys: readonly Node[] },
  init: readonly Node[],
  xs: readonly Node[],
  opts: ScanOptions = {},
): ScanValues {
  const length = xs.length ? xs[0].shape[0] : 0;
  if (!xs.length) throw new Error('scan: at least one xs sequence is needed (it sets the length)');
  for (const x of xs) if (x.shape[0] !== length) throw new Error(`scan: xs have leading axes ${xs.map((v) => v.shape[0]).join(', ')}; they must agree`);
  const cIn = init.map((c, i) => input(opts.carryNames?.[i] ?? `c${i}`, c.dtype, c.shape));
  const xIn = xs.map((x, i) => input(opts.xsNames?.[i] ?? `x${i}`, x.dtype, x.shape.slice(1)));
  const r = step(cIn, xIn);
  if (r.carry.length !== init.length) throw new Error(`scan: step returned ${r.carry.length} carries for ${init.length} initial ones`);
  const outs = [...r.carry, ...r.ys];
  // Which body nodes depend on the step's own inputs, and which reach an outside value.
  const local = new Set<number>([...cIn, ...xIn].map((n) => n.id));
  const outer = new Set<number>();
  const order = topoOrder(outs);
  for (const n of order) {
    if (local.has(n.id)) continue;
    if (n.inputs.some((i) => local.has(i.id))) local.add(n.id);
    else if (n.op === 'input' || n.inputs.some((i) => outer.has(i.id))) outer.add(n.id);
  }
  // Lift the outermost captured values: those a local node uses, or that are returned directly.
  const consts: Node[] = [];
  const seen = new Set<number>();
  const lift = (n: Node) => {
    if (outer.has(n.id) && !seen.has(n.id)) {
      seen.add(n.id);
      consts.push(n);
    }
  };
  for (const n of order) if (local.has(n.id)) n.inputs.forEach(lift);
  outs.forEach(lift);
  const kIn = consts.map((k, i) => input(`k${i}`, k.dtype, k.shape));
  const body = makeFunc(opts.name ?? 'scan_body', [...cIn, ...xIn, ...kIn], substitute(outs, new Map(consts.map((k, i) => [k.id, kIn[i]]))), [
    ...cIn.map((c) => `${c.params.name}.next`),
    ...r.ys.map((_, i) => `y${i}`),
  ]);
  const s = apply('scan', [...init, ...xs, ...consts], { body, length, reverse: opts.reverse ?? false, carries: init.length, xs: xs.length });
  const results = outs.map((_, i) => apply('scan_result', [s], { index: i }));
  return { carry: results.slice(0, init.length), ys: results.slice(init.length) };
}
