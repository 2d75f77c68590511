/**
 * @file Smart constructors for kernel expressions, with the index simplifier built in.
 *
 * Fusion turns movement ops into index arithmetic, and naive arithmetic piles up: a reshape followed
 * by its inverse becomes (a*c + b) / c and % c chains. The constructors fold constants and use value
 * ranges of the index variables (known from the grid) to cancel such chains, so the generated loops
 * compute the index the way a person would write it. All folds are exact for i32 when the ranges
 * they rely on are non-negative.
 */
import type { DType, Shape } from '../../ir/types.ts';
import type { BinOp, Expr, UnOp } from './types.ts';

/** Sizes of the grid and reduction axes, which bound `idx` and `ridx`. */
export interface IndexSpace {
  readonly grid: Shape;
  readonly rgrid: Shape;
}

export const cI = (value: number): Expr => ({ k: 'const', dtype: 'i32', value });
export const cF = (value: number): Expr => ({ k: 'const', dtype: 'f32', value });
export const cB = (value: boolean): Expr => ({ k: 'const', dtype: 'bool', value: value ? 1 : 0 });
export const idx = (axis: number): Expr => ({ k: 'idx', axis });
export const ridx = (axis: number): Expr => ({ k: 'ridx', axis });

export function dtypeOf(e: Expr): DType {
  switch (e.k) {
    case 'idx':
    case 'ridx':
      return 'i32';
    case 'acc':
      return 'f32';
    default:
      return e.dtype;
  }
}

const isConst = (e: Expr, v?: number): e is Expr & { k: 'const' } => e.k === 'const' && (v === undefined || e.value === v);

/** Inclusive [lo, hi] bounds of an i32 expression, or null when unknown. */
export function range(e: Expr, s: IndexSpace): [number, number] | null {
  switch (e.k) {
    case 'const':
      return [e.value, e.value];
    case 'idx':
      return [0, s.grid[e.axis] - 1];
    case 'ridx':
      return [0, s.rgrid[e.axis] - 1];
    case 'bin': {
      if (e.dtype !== 'i32') return null;
      const a = range(e.a, s);
      const b = range(e.b, s);
      if (!a || !b) return null;
      switch (e.op) {
        case 'add':
          return [a[0] + b[0], a[1] + b[1]];
        case 'sub':
          return [a[0] - b[1], a[1] - b[0]];
        case 'mul': {
          const p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]];
          return [Math.min(...p), Math.max(...p)];
        }
        case 'div':
          return a[0] >= 0 && b[0] > 0 && b[0] === b[1] ? [Math.floor(a[0] / b[0]), Math.floor(a[1] / b[0])] : null;
        case 'mod':
          return a[0] >= 0 && b[0] > 0 && b[0] === b[1] ? [0, Math.min(a[1], b[0] - 1)] : null;
        default:
          return null;
      }
    }
    case 'select': {
      if (e.dtype !== 'i32') return null;
      const a = refine(range(e.a, s), e.a, e.c);
      const b = range(e.b, s);
      return a && b ? [Math.min(a[0], b[0]), Math.max(a[1], b[1])] : null;
    }
    default:
      return null;
  }
}

/** Structural equality of two expressions (they are small trees). */
function sameExpr(a: Expr, b: Expr): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Narrow `r`, the range of `x`, by what condition `c` says of `x` where it holds: conjuncts `x < K`
 * (x <= K-1) and `!(x < L)` (x >= L), the forms `inBounds` builds. This is what lets a clamped
 * index `select(0 <= x < n, x, 0)` (pad, concat) be known to lie in [0, n-1], so reshapes of it
 * still cancel into plain strides.
 */
function refine(r: [number, number] | null, x: Expr, c: Expr): [number, number] | null {
  if (!r) return r;
  let [lo, hi] = r;
  const visit = (t: Expr): void => {
    if (t.k === 'bin' && t.op === 'and') {
      visit(t.a);
      visit(t.b);
    } else if (t.k === 'bin' && t.op === 'less' && t.b.k === 'const' && sameExpr(t.a, x)) {
      hi = Math.min(hi, t.b.value - 1);
    } else if (t.k === 'un' && t.op === 'not' && t.a.k === 'bin' && t.a.op === 'less' && t.a.b.k === 'const' && sameExpr(t.a.a, x)) {
      lo = Math.max(lo, t.a.b.value);
    }
  };
  visit(c);
  return lo <= hi ? [lo, hi] : r;
}

const within = (e: Expr, lo: number, hi: number, s: IndexSpace) => {
  const r = range(e, s);
  return r !== null && r[0] >= lo && r[1] <= hi;
};

/** Integer arithmetic with simplification. */
export function iadd(a: Expr, b: Expr): Expr {
  if (isConst(a) && isConst(b)) return cI((a.value + b.value) | 0);
  if (isConst(a, 0)) return b;
  if (isConst(b, 0)) return a;
  // keep constants on the right so (x + 1) + 2 folds
  if (isConst(a)) return iadd(b, a);
  if (isConst(b) && a.k === 'bin' && a.op === 'add' && isConst(a.b)) return iadd(a.a, cI(a.b.value + b.value));
  return { k: 'bin', op: 'add', a, b, dtype: 'i32' };
}

export function isub(a: Expr, b: Expr): Expr {
  if (isConst(b)) return iadd(a, cI(-b.value));
  return { k: 'bin', op: 'sub', a, b, dtype: 'i32' };
}

export function imul(a: Expr, b: Expr): Expr {
  if (isConst(a) && isConst(b)) return cI(Math.imul(a.value, b.value));
  if (isConst(a)) return imul(b, a);
  if (isConst(b, 0)) return cI(0);
  if (isConst(b, 1)) return a;
  if (isConst(b) && a.k === 'bin' && a.op === 'mul' && isConst(a.b)) return imul(a.a, cI(a.b.value * b.value));
  return { k: 'bin', op: 'mul', a, b, dtype: 'i32' };
}

/** Split a sum into (terms that are multiples of c, divided by c) and the rest. */
function splitMultiples(e: Expr, c: number): { q: Expr[]; r: Expr[] } {
  if (e.k === 'bin' && e.op === 'add') {
    const x = splitMultiples(e.a, c);
    const y = splitMultiples(e.b, c);
    return { q: [...x.q, ...y.q], r: [...x.r, ...y.r] };
  }
  if (e.k === 'bin' && e.op === 'mul' && isConst(e.b) && e.b.value % c === 0) return { q: [imul(e.a, cI(e.b.value / c))], r: [] };
  if (isConst(e) && e.value % c === 0) return { q: [cI(e.value / c)], r: [] };
  return { q: [], r: [e] };
}

const sum = (xs: readonly Expr[]) => xs.reduce<Expr>((acc, x) => iadd(acc, x), cI(0));

/** a / c for a non-negative a and a constant c > 0 (floor division). */
export function idiv(a: Expr, c: number, s: IndexSpace): Expr {
  if (c === 1) return a;
  if (isConst(a)) return cI(Math.floor(a.value / c));
  if (within(a, 0, c - 1, s)) return cI(0);
  if (a.k === 'bin' && a.op === 'div' && isConst(a.b) && within(a.a, 0, Infinity, s)) return idiv(a.a, a.b.value * c, s);
  const { q, r } = splitMultiples(a, c);
  const rest = sum(r);
  if (q.length && within(rest, 0, c - 1, s) && q.every((t) => within(t, 0, Infinity, s))) return sum(q);
  return { k: 'bin', op: 'div', a, b: cI(c), dtype: 'i32' };
}

/** a % c for a non-negative a and a constant c > 0. */
export function imod(a: Expr, c: number, s: IndexSpace): Expr {
  if (c === 1) return cI(0);
  if (isConst(a)) return cI(a.value % c);
  if (within(a, 0, c - 1, s)) return a;
  const { q, r } = splitMultiples(a, c);
  if (q.length && q.every((t) => within(t, 0, Infinity, s)) && r.every((t) => within(t, 0, Infinity, s))) return imod(sum(r), c, s);
  return { k: 'bin', op: 'mod', a, b: cI(c), dtype: 'i32' };
}

/** Generic ALU node with constant folding for the cases fusion produces often. */
export function bin(op: BinOp, a: Expr, b: Expr, dtype: DType): Expr {
  if (dtype === 'i32' && (op === 'add' || op === 'mul' || op === 'sub')) {
    return op === 'add' ? iadd(a, b) : op === 'mul' ? imul(a, b) : isub(a, b);
  }
  if (op === 'and') {
    if (isConst(a)) return a.value ? b : a;
    if (isConst(b)) return b.value ? a : b;
  }
  if (op === 'less' && isConst(a) && isConst(b)) return cB(a.value < b.value);
  return { k: 'bin', op, a, b, dtype };
}

export function un(op: UnOp, a: Expr, dtype: DType): Expr {
  return { k: 'un', op, a, dtype };
}

export function select(c: Expr, a: Expr, b: Expr, dtype: DType): Expr {
  if (isConst(c)) return c.value ? a : b;
  return { k: 'select', c, a, b, dtype };
}

/** i32 comparisons lo <= e < hi as a bool expression, folded where the range decides it. */
export function inBounds(e: Expr, lo: number, hi: number, s: IndexSpace): Expr {
  if (within(e, lo, hi - 1, s)) return cB(true);
  const r = range(e, s);
  const geLo = r && r[0] >= lo ? cB(true) : un('not', bin('less', e, cI(lo), 'bool'), 'bool');
  const ltHi = r && r[1] < hi ? cB(true) : bin('less', e, cI(hi), 'bool');
  return bin('and', geLo, ltHi, 'bool');
}

/** Row-major linear index of a multi-index into `shape`. */
export function linear(ix: readonly Expr[], shape: Shape): Expr {
  let acc: Expr = cI(0);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    acc = iadd(imul(ix[d], cI(stride)), acc);
    stride *= shape[d];
  }
  return acc;
}

/** Multi-index of a row-major linear index into `shape`. */
export function unlinear(lin: Expr, shape: Shape, s: IndexSpace): Expr[] {
  const out: Expr[] = new Array(shape.length);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = d === 0 ? idiv(lin, stride, s) : imod(idiv(lin, stride, s), shape[d], s);
    stride *= shape[d];
  }
  return out;
}
