/**
 * @file Reduce kernels (reduce_sum, reduce_max, pooling windows): the reduction loops inside each
 * output element, which runs 4 lanes at a time when its body and epilogue vectorise.
 */
import { numel } from '../../../ir/types.ts';
import type { ReduceKernel } from '../../kernel/types.ts';
import { F32, I32, nest, V128, type Fn, type KernelEnv, type Ref } from './core.ts';
import { IDX_BIT, RIDX_BIT, Unit } from './unit.ts';

/** Reductions over at most this many elements are unrolled (see `reduceKernel`). */
const REDUCE_UNROLL_MAX = 16;

/**
 * Scalar loops over the grid, the reduction loops innermost. Like elementwise kernels, the innermost
 * grid axis runs 4 lanes at a time when the body and the epilogue vectorise along it (e.g. a bias
 * gradient, summing rows of dy): each lane folds its own accumulator in the same order as the
 * scalar code, so results are identical.
 */
export function reduceKernel(env: KernelEnv, k: ReduceKernel, fn: Fn): Ref {
  const { m, alu } = env;
  const R = k.shape.length;
  const RR = k.rshape.length;
  const gc = k.shape.map(() => fn.local(I32));
  const rc = k.rshape.map(() => fn.local(I32));
  const acc = fn.local(F32);
  const accV = fn.local(V128);
  const out = fn.local(I32);
  const ctx = env.ctxFor(k, (a) => fn.get(gc[a]), { ridx: (a) => fn.get(rc[a]), acc: () => fn.get(acc), accVec: () => fn.get(accV) });
  const gridBits = k.shape.map((_, a) => IDX_BIT(a));
  const bodySpec = { grid: k.shape, rgrid: k.rshape, axisBits: [...gridBits, ...k.rshape.map((_, a) => RIDX_BIT(a))] };
  const epiSpec = { grid: k.shape, axisBits: gridBits };
  const init = k.op === 'sum' ? 0 : -Infinity;
  const last = R > 0 ? k.shape[R - 1] : 1;
  let vec: [Unit, Unit] | null = null;
  if (last >= 4) {
    const b = new Unit(alu, fn, k.body, { ...bodySpec, laneAxis: R - 1 }, ctx);
    const e = new Unit(alu, fn, k.epilogue, { ...epiSpec, laneAxis: R - 1, accVector: true }, ctx);
    if (b.ok && e.ok) vec = [b, e];
  }
  const vecEnd = vec ? last - (last % 4) : 0;
  const scl = vecEnd < last ? [new Unit(alu, fn, k.body, { ...bodySpec, laneAxis: -1 }, ctx), new Unit(alu, fn, k.epilogue, { ...epiSpec, laneAxis: -1 }, ctx)] : null;

  /** One output element (or 4 lanes): init, reduction loops, epilogue, store. */
  const element = ([body, epi]: Unit[], lanes: boolean): Ref[] => {
    const fold = () => {
      const v = body.value('f32');
      return lanes
        ? fn.set(accV, k.op === 'sum' ? m.f32x4.add(fn.get(accV), v) : m.f32x4.max(fn.get(accV), v))
        : fn.set(acc, k.op === 'sum' ? m.f32.add(fn.get(acc), v) : m.f32.max(fn.get(acc), v));
    };
    const taps = numel(k.rshape);
    let reduction: Ref[];
    if (taps === 0) reduction = [];
    else if (taps <= REDUCE_UNROLL_MAX) {
      // A small window (pooling 2x2, a 10-class row) is unrolled: the loop control would cost as
      // much as the body. Same order as the loops, so the same result to the bit.
      reduction = [];
      for (let t = 0; t < taps; t++) {
        let rest = t;
        const at = [...k.rshape].reverse().map((d) => {
          const v = rest % d;
          rest = Math.floor(rest / d);
          return v;
        }).reverse();
        at.forEach((v, a) => reduction.push(fn.set(rc[a], m.i32.const(v))));
        for (let l = 0; l <= RR; l++) reduction.push(...body.stmts(R + l));
        reduction.push(fold());
      }
    } else reduction = nest(fn, k.rshape, rc, (l) => body.stmts(R + l), [...body.stmts(R + RR), fold()]);
    return [
      lanes ? fn.set(accV, alu.constV('f32', init)) : fn.set(acc, m.f32.const(init)),
      ...reduction,
      ...epi.stmts(R),
      lanes ? m.v128.store(0, 16, fn.get(out), epi.value(k.dtype)) : alu.storeS(k.dtype, fn.get(out), epi.value(k.dtype)),
      fn.bump(out, lanes ? 16 : 4),
    ];
  };
  const units = [...(vec ?? []), ...(scl ?? [])];
  const pre = (l: number) => units.flatMap((u) => u.stmts(l));
  const work = numel(k.shape) * Math.max(numel(k.rshape), 1);
  const start = m.i32.const(env.addr(k.output));
  if (R === 1 && vec) {
    // One output axis (a bias gradient: channels, each summed over a long reduction): threads share
    // its 4-lane groups; the last thread also does the scalar tail.
    const sh = env.share(fn, vecEnd / 4, work);
    if (sh) {
      const grp = fn.local(I32);
      const tail = scl ? [m.if(m.i32.eq(fn.get(sh.share.hi), m.i32.const(vecEnd / 4)), fn.loop(gc[0], vecEnd, last, 1, element(scl, false)))] : [];
      return m.block(null, [
        ...sh.init,
        fn.set(out, m.i32.add(start, m.i32.mul(fn.get(sh.share.lo), m.i32.const(16)))),
        ...pre(0),
        fn.loopShare(grp, sh.share, [fn.set(gc[0], m.i32.shl(fn.get(grp), m.i32.const(2))), ...element(vec, true)]),
        ...tail,
      ]);
    }
  }
  let inner: Ref[];
  if (R === 0) inner = element(scl!, false);
  else {
    inner = [...pre(R - 1)];
    if (vec) inner.push(fn.loop(gc[R - 1], 0, vecEnd, 4, element(vec, true)));
    if (scl) inner.push(fn.loop(gc[R - 1], vecEnd, last, 1, element(scl, false)));
  }
  // Threaded: a share of the rows of axis 0 per thread (each output element is still folded by one
  // thread in the same order, so results do not change).
  const sh = R >= 2 ? env.share(fn, k.shape[0], work) : null;
  const outInit = sh ? m.i32.add(start, m.i32.mul(fn.get(sh.share.lo), m.i32.const(numel(k.shape.slice(1)) * 4))) : start;
  return m.block(null, [...(sh?.init ?? []), fn.set(out, outInit), ...nest(fn, k.shape.slice(0, Math.max(R - 1, 0)), gc, pre, inner, sh?.share ?? null)]);
}
