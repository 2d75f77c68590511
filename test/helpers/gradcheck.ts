/**
 * @file Test helper: evaluate one op with the f64 reference interpreter, and check its VJP rule
 * against central finite differences through the inner-product identity
 * `<c, J v> = <J^T c, v>`.
 *
 * Everything here is deterministic: inputs, directions and cotangents come from a seeded PRNG
 * (mulberry32), so a failing case reproduces exactly. The op is always built with `apply`, so its
 * type rule runs, and evaluated with `interpret`, so the check covers the op table entry end to end.
 */
import { makeFunc } from '../../ir/graph.ts';
import { interpret } from '../../ir/interp.ts';
import type { Cotangents, Tensor64 } from '../../ir/opdef.ts';
import { OP_TABLE } from '../../ir/optable.ts';
import { apply, input } from '../../ir/node.ts';
import type { DType, InputNode, Node, Op, OpParams, Shape } from '../../ir/types.ts';
import { numel } from '../../ir/types.ts';

export type Rng = () => number;

/** mulberry32: a tiny, well-mixed 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a hash of a string: a stable per-case seed. */
export function seedOf(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * How to draw an input's values:
 * - `uniform`: U(-1, 1), for smooth ops;
 * - `positive`: U(0.5, 2), for log / sqrt / recip / pow bases / divisors;
 * - `{ distinct: k }`: a shuffled grid with spacing 0.05 shifted by k grid steps plus a jitter in
 *   [0, 0.005): values are pairwise at least 0.045 apart (no ties for max-like ops), and two inputs
 *   drawn with offsets 0 and 0.5 are at least 0.02 apart elementwise. Both gaps dwarf the FD step.
 * - a literal array (bool conditions, integer operands).
 */
export type Gen = 'uniform' | 'positive' | { readonly distinct: number } | readonly number[];

export interface ArgSpec {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly gen?: Gen;
}

export function draw(spec: ArgSpec, rng: Rng): Float64Array {
  const n = numel(spec.shape);
  const gen = spec.gen ?? 'uniform';
  if (Array.isArray(gen)) {
    if (gen.length !== n) throw new Error(`literal input has ${gen.length} values, shape needs ${n}`);
    return Float64Array.from(gen);
  }
  const out = new Float64Array(n);
  if (gen === 'uniform') for (let i = 0; i < n; i++) out[i] = 2 * rng() - 1;
  else if (gen === 'positive') for (let i = 0; i < n; i++) out[i] = 0.5 + 1.5 * rng();
  else {
    const { distinct } = gen as { readonly distinct: number };
    const perm = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [perm[i], perm[j]] = [perm[j], perm[i]];
    }
    for (let i = 0; i < n; i++) out[i] = (perm[i] - n / 2 + distinct) * 0.05 + 0.005 * rng();
  }
  return out;
}

/** A graph of one op over fresh inputs (one per arg). */
export function opGraph<O extends Op>(op: O, args: readonly ArgSpec[], params: OpParams[O]): { inputs: InputNode[]; node: Node } {
  const inputs = args.map((a, i) => input(`x${i}`, a.dtype, a.shape) as InputNode);
  return { inputs, node: apply(op, inputs, params) };
}

/** Evaluate `op(args)` with the reference interpreter. */
export function evalOp<O extends Op>(op: O, args: readonly ArgSpec[], params: OpParams[O], values: readonly Float64Array[]): Tensor64 {
  const { inputs, node } = opGraph(op, args, params);
  return interpret(makeFunc(op, inputs, [node]), values)[0];
}

/** Call the op's VJP rule on a fresh node; returns the node, the cotangent input and the rule's answer. */
export function vjpOf<O extends Op>(op: O, args: readonly ArgSpec[], params: OpParams[O]): { inputs: InputNode[]; node: Node; ct: InputNode; cts: Cotangents } {
  const { inputs, node } = opGraph(op, args, params);
  const ct = input('ct', node.dtype, node.shape) as InputNode;
  const rule = OP_TABLE[op].vjp as unknown as (ct: Node, n: Node) => Cotangents;
  return { inputs, node, ct, cts: rule(ct, node) };
}

const dotp = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
};

export interface InputCheck {
  /** Which input. */
  readonly index: number;
  /** `<c, (f(x + eps v_i) - f(x - eps v_i)) / 2 eps>`: the directional derivative along input i. */
  readonly fd: number;
  /** `<vjp_i(c), v_i>`, or 0 where the rule returned null. */
  readonly vjp: number;
  /** Whether the rule returned null for this input. */
  readonly isNull: boolean;
}

/**
 * Check the VJP of `op` at random inputs, one f32 input at a time (so a wrong rule is pinned to
 * the input it gets wrong). Non-f32 inputs (bool conditions) are held fixed.
 */
export function vjpCheck<O extends Op>(op: O, args: readonly ArgSpec[], params: OpParams[O], seed: number, eps = 1e-6): {
  checks: InputCheck[];
  shapeErrors: string[];
} {
  const rng = mulberry32(seed);
  const x = args.map((a) => draw(a, rng));
  const { inputs, node, ct, cts } = vjpOf(op, args, params);
  const c = Float64Array.from({ length: numel(node.shape) }, () => 2 * rng() - 1);

  const shapeErrors: string[] = [];
  if (cts.length !== args.length) shapeErrors.push(`vjp returned ${cts.length} cotangents for ${args.length} inputs`);
  cts.forEach((g, i) => {
    if (!g || i >= args.length) return;
    const want = `${args[i].dtype}[${args[i].shape.join(',')}]`;
    const got = `${g.dtype}[${g.shape.join(',')}]`;
    if (want !== got) shapeErrors.push(`cotangent ${i} is ${got}, input is ${want}`);
  });

  // Evaluate all non-null cotangents in one graph over (inputs..., ct).
  const live = cts.map((g, i) => (g ? i : -1)).filter((i) => i >= 0);
  const gradFn = makeFunc(`${op}_vjp`, [...inputs, ct], live.map((i) => cts[i]!));
  const gradVals = live.length ? interpret(gradFn, [...x, c]) : [];
  const fwd = makeFunc(op, inputs, [node]);
  const f = (vals: readonly Float64Array[]) => interpret(fwd, vals)[0].data;

  const checks: InputCheck[] = [];
  args.forEach((a, i) => {
    if (a.dtype !== 'f32') return;
    const v = Float64Array.from({ length: x[i].length }, () => 2 * rng() - 1);
    const plus = x.map((xi, k) => (k === i ? xi.map((t, j) => t + eps * v[j]) : xi));
    const minus = x.map((xi, k) => (k === i ? xi.map((t, j) => t - eps * v[j]) : xi));
    const fp = f(plus);
    const fm = f(minus);
    const diff = fp.map((t, j) => (t - fm[j]) / (2 * eps));
    const at = live.indexOf(i);
    checks.push({ index: i, fd: dotp(c, diff), vjp: at < 0 ? 0 : dotp(gradVals[at].data, v), isNull: at < 0 });
  });
  return { checks, shapeErrors };
}

/** The VJP rule's cotangents for given inputs `xs` and result cotangent `c` (null where the rule says none). */
export function vjpValues<O extends Op>(
  op: O,
  args: readonly ArgSpec[],
  params: OpParams[O],
  xs: readonly (readonly number[])[],
  c: readonly number[],
): (number[] | null)[] {
  const { inputs, ct, cts } = vjpOf(op, args, params);
  const live = cts.flatMap((g, i) => (g ? [i] : []));
  const vals = live.length
    ? interpret(
        makeFunc(`${op}_vjp`, [...inputs, ct], live.map((i) => cts[i]!)),
        [...xs, c],
      )
    : [];
  return cts.map((g, i) => (g ? Array.from(vals[live.indexOf(i)].data) : null));
}
