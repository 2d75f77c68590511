/**
 * @file Winograd F(2x2, 3x3) transforms as kernel-IR expressions (Lavin & Gray 2015).
 *
 * For a 4x4 input tile d and a 3x3 kernel g, the 2x2 outputs of the (cross-correlation) conv are
 * Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A. Fusion (fuse.ts) materialises U = G g Gᵀ and V = Bᵀ d B with the
 * 16 tile positions as the leading axes, multiplies them as 16 matmuls over the channels, and
 * applies Aᵀ · A in the kernel that writes the conv's output (with its epilogue). Y is linear in g,
 * so the kernel gradient is dg = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ (Bᵀ d B)] G, the same V times a transformed
 * cotangent, summed over tiles: again 16 matmuls, now contracting over the tiles.
 *
 * Each transform is a matrix applied on both sides of a 2-D tile, `out[a][b] = Σ_i Σ_j T[a][i]
 * T[b][j] in[i][j]`, where the row indices a, b are grid indices of the kernel. The matrices are
 * kept sparse (rows as (column, coefficient) lists, padded to one length): the column index and
 * coefficient of each term are `select` chains on the row index, which depend on outer grid axes
 * only, so code generators hoist them out of the inner loop and the inner loop does 4 loads per
 * element of V (not 16). Every coefficient is a dyadic rational (±1, ±1/2), so the transforms of U
 * and of the kernel gradient are exact in floating point up to the sums' own rounding.
 */
import * as E from './expr.ts';
import type { Expr } from './types.ts';

/** A matrix by rows; each row lists its nonzero (column, coefficient) terms. */
type Sparse = readonly (readonly (readonly [number, number])[])[];

/** Bᵀ (4x4): V = Bᵀ d B. Terms ordered so the first coefficient of every row is 1 (no multiply). */
export const BT: Sparse = [
  [[0, 1], [2, -1]],
  [[1, 1], [2, 1]],
  [[2, 1], [1, -1]],
  [[1, 1], [3, -1]],
];
/** G (4x3): U = G g Gᵀ. */
export const G: Sparse = [
  [[0, 1]],
  [[0, 0.5], [1, 0.5], [2, 0.5]],
  [[0, 0.5], [1, -0.5], [2, 0.5]],
  [[2, 1]],
];
/** Aᵀ (2x4): Y = Aᵀ M A. */
export const AT: Sparse = [
  [[0, 1], [1, 1], [2, 1]],
  [[1, 1], [2, -1], [3, -1]],
];
/** A (4x2) = (Aᵀ)ᵀ: the cotangent transform A dy Aᵀ of the kernel gradient. */
export const A: Sparse = [
  [[0, 1]],
  [[0, 1], [1, 1]],
  [[0, 1], [1, -1]],
  [[1, -1]],
];
/** Gᵀ (3x4): the kernel gradient Gᵀ X G. */
export const GT: Sparse = [
  [[0, 1], [1, 0.5], [2, 0.5]],
  [[1, 0.5], [2, -0.5]],
  [[1, 0.5], [2, 0.5], [3, 1]],
];

/** values[row] as an expression of `row`: a constant when all agree, else a select chain. */
function pick(values: readonly number[], row: Expr, dtype: 'i32' | 'f32'): Expr {
  const c = (v: number): Expr => (dtype === 'i32' ? E.cI(v) : E.cF(v));
  if (values.every((v) => v === values[0])) return c(values[0]);
  let acc = c(values[values.length - 1]);
  for (let r = values.length - 2; r >= 0; r--) {
    if (values[r] === values[r + 1] && acc.k === 'const') continue;
    acc = E.select(E.bin('equal', row, E.cI(r), 'bool'), c(values[r]), acc, dtype);
  }
  return acc;
}

/** Term k of every row (rows shorter than the longest get a zero term on column 0). */
function terms(T: Sparse): { col: number[]; coef: number[] }[] {
  const K = Math.max(...T.map((r) => r.length));
  return Array.from({ length: K }, (_, k) => ({ col: T.map((r) => r[k]?.[0] ?? r[0][0]), coef: T.map((r) => r[k]?.[1] ?? 0) }));
}

const fmul = (c: Expr, x: Expr): Expr => (c.k === 'const' && c.value === 1 ? x : E.bin('mul', c, x, 'f32'));
const fsum = (xs: readonly Expr[]): Expr => xs.reduce((acc, x) => E.bin('add', acc, x, 'f32'));

/**
 * out[a][b] = Σ_i Σ_j T[a][i] T[b][j] in(i, j), with `a`, `b` index expressions (usually grid
 * indices) and `at(i, j)` the tile element at row index expressions i, j.
 */
export function transform2(T: Sparse, a: Expr, b: Expr, at: (i: Expr, j: Expr) => Expr): Expr {
  const ta = terms(T);
  const tb = terms(T);
  return fsum(ta.map((k) => fmul(pick(k.coef, a, 'f32'), fsum(tb.map((l) => fmul(pick(l.coef, b, 'f32'), at(pick(k.col, a, 'i32'), pick(l.col, b, 'i32'))))))));
}
