/**
 * @file Elementwise kernels: loops over the grid, the innermost axis 4 lanes at a time where every
 * load that varies along it is contiguous, with a scalar tail; an innermost axis that is a flattened
 * product read through / and % (im2col) is split first when that makes it contiguous.
 */
import type { Shape } from '../../../ir/types.ts';
import { numel } from '../../../ir/types.ts';
import type { BinOp, ElementwiseKernel, Expr } from '../../kernel/types.ts';
import { Fn, I32, nest, type KernelEnv, type Ref } from './core.ts';
import { IDX_BIT, kids, Unit, withKids } from './unit.ts';

/**
 * Grid loops with the innermost axis in SIMD where the expression allows, else scalar; a scalar
 * tail covers an extent that is not a multiple of 4. When the innermost axis is a flattened
 * product (e.g. im2col's (kh, kw, c)), it is first split at the smallest divisor the index
 * arithmetic uses, if that makes the kernel vectorise (see `splitLastAxis`).
 */
export function elementwiseKernel(env: KernelEnv, k0: ElementwiseKernel, fn: Fn): Ref {
  const { m, alu } = env;
  const probe = (shape: Shape, expr: Expr) =>
    shape.length > 0 && shape[shape.length - 1] >= 4 &&
    new Unit(alu, new Fn(m), expr, { grid: shape, axisBits: shape.map((_, a) => IDX_BIT(a)), laneAxis: shape.length - 1 }, env.ctxFor(k0, () => m.i32.const(0))).ok;
  const split = probe(k0.shape, k0.expr) ? null : splitLastAxis(k0.shape, k0.expr);
  const k = split && probe(split.shape, split.expr) ? { ...k0, ...split } : k0;
  const R = k.shape.length;
  const counters = k.shape.map(() => fn.local(I32));
  const ctx = env.ctxFor(k, (a) => fn.get(counters[a]));
  const out = fn.local(I32);
  if (R === 0) {
    const u = new Unit(alu, fn, k.expr, { grid: [], axisBits: [], laneAxis: -1 }, ctx);
    return m.block(null, [...u.stmts(0), alu.storeS(k.dtype, m.i32.const(env.addr(k.output)), u.value(k.dtype))]);
  }
  const gridBits = k.shape.map((_, a) => IDX_BIT(a));
  const last = k.shape[R - 1];
  let vec: Unit | null = last >= 4 ? new Unit(alu, fn, k.expr, { grid: k.shape, axisBits: gridBits, laneAxis: R - 1 }, ctx) : null;
  if (vec && !vec.ok) vec = null;
  const vecEnd = vec ? last - (last % 4) : 0;
  const sc = vecEnd < last ? new Unit(alu, fn, k.expr, { grid: k.shape, axisBits: gridBits, laneAxis: -1 }, ctx) : null;
  const inner: Ref[] = [];
  if (vec) inner.push(fn.loop(counters[R - 1], 0, vecEnd, 4, [...vec.stmts(R), m.v128.store(0, 16, fn.get(out), vec.value(k.dtype)), fn.bump(out, 16)]));
  if (sc) inner.push(fn.loop(counters[R - 1], vecEnd, last, 1, [...sc.stmts(R), alu.storeS(k.dtype, fn.get(out), sc.value(k.dtype)), fn.bump(out, 4)]));
  const pre = (l: number) => [...(vec?.stmts(l) ?? []), ...(sc?.stmts(l) ?? [])];
  // Threaded: each thread takes a share of the rows of axis 0 (not the innermost axis, whose loops
  // are the SIMD body and tail), writing from its first row on.
  const sh = R >= 2 ? env.share(fn, k.shape[0], numel(k.shape)) : null;
  const start = m.i32.const(env.addr(k.output));
  const outInit = sh ? m.i32.add(start, m.i32.mul(fn.get(sh.share.lo), m.i32.const(numel(k.shape.slice(1)) * 4))) : start;
  return m.block(null, [...(sh?.init ?? []), fn.set(out, outInit), ...nest(fn, k.shape.slice(0, R - 1), counters, pre, [...pre(R - 1), ...inner], sh?.share ?? null)]);
}

/**
 * Split the innermost grid axis g (extent E) into (g / D, g % D) when the expression divides g by
 * constants: im2col's q = (kh, kw, c) is read through q / 192, (q / 64) % 3 and q % 64, a gather
 * along q, but along q % 64 it is contiguous. D is the smallest such divisor that is a multiple of 4
 * and divides E. Divisions of g itself are rewritten exactly (g = hi*D + lo, 0 <= lo < D); other
 * uses of g become hi*D + lo. The flattened order of the grid is unchanged, so the output layout is
 * too. Returns null when no divisor qualifies.
 */
export function splitLastAxis(shape: Shape, expr: Expr): { shape: number[]; expr: Expr } | null {
  const a = shape.length - 1;
  if (a < 0) return null;
  const E = shape[a];
  const isG = (e: Expr) => e.k === 'idx' && e.axis === a;
  const divisorOf = (e: Expr): number | null =>
    e.k === 'bin' && (e.op === 'div' || e.op === 'mod') && e.dtype === 'i32' && isG(e.a) && e.b.k === 'const' && e.b.value > 0 ? e.b.value : null;
  const cands: number[] = [];
  const seen = new Set<Expr>();
  const visit = (e: Expr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    const d = divisorOf(e);
    if (d !== null && d % 4 === 0 && d < E && E % d === 0) cands.push(d);
    kids(e).forEach(visit);
  };
  visit(expr);
  if (cands.length === 0) return null;
  const D = Math.min(...cands);
  const i = (value: number): Expr => ({ k: 'const', dtype: 'i32', value });
  const op = (o: BinOp, x: Expr, y: Expr): Expr => ({ k: 'bin', op: o, a: x, b: y, dtype: 'i32' });
  const hi: Expr = { k: 'idx', axis: a };
  const lo: Expr = { k: 'idx', axis: a + 1 };
  const g: Expr = op('add', op('mul', hi, i(D)), lo);
  const memo = new Map<Expr, Expr>();
  const rewrite = (e: Expr): Expr => {
    const hit = memo.get(e);
    if (hit) return hit;
    let out: Expr;
    const c = divisorOf(e);
    if (isG(e)) out = g;
    else if (c !== null && e.k === 'bin' && e.op === 'div' && c % D === 0) out = c === D ? hi : op('div', hi, i(c / D));
    else if (c !== null && e.k === 'bin' && e.op === 'div' && D % c === 0) out = op('add', op('mul', hi, i(D / c)), op('div', lo, i(c)));
    else if (c !== null && e.k === 'bin' && e.op === 'mod' && c % D === 0) out = c === D ? lo : op('add', op('mul', op('mod', hi, i(c / D)), i(D)), lo);
    else if (c !== null && e.k === 'bin' && e.op === 'mod' && D % c === 0) out = op('mod', lo, i(c));
    else out = withKids(e, kids(e).map(rewrite));
    memo.set(e, out);
    return out;
  };
  return { shape: [...shape.slice(0, a), E / D, D], expr: rewrite(expr) };
}
