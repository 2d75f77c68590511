/**
 * @file pool_grad kernels: the gradient of max/sum pooling as a scatter into the zeroed output, 4
 * channels at a time when C % 4 == 0 (then, in a threaded module, split by samples).
 */
import { numel } from '../../../ir/types.ts';
import type { PoolGradKernel } from '../../kernel/types.ts';
import { F32, I32, nest, V128, type Fn, type KernelEnv, type Ref, type Share } from './core.ts';

/** Gradient of max/sum pooling over NHWC: scatter each dy element to its window (max: the first arg-max). */
export function poolGradKernel(env: KernelEnv, k: PoolGradKernel, fn: Fn): Ref {
  const { m } = env;
  const [N, H, W, C] = k.shape;
  const [, OH, OW] = k.dyShape;
  const [wh, ww] = k.window;
  const [sh, sw] = k.strides;
  const [ph, pw] = [k.padding[0][0], k.padding[1][0]];
  const xAddr = env.addr(k.inputs[0]);
  const dyAddr = env.addr(k.inputs[1]);
  const outAddr = env.addr(k.output);
  const s: Ref[] = [m.memory.fill(m.i32.const(outAddr), m.i32.const(0), m.i32.const(numel(k.shape) * 4))];
  if (numel(k.dyShape) === 0 || wh === 0 || ww === 0) return m.block(null, s);
  const [n, oh, ow, c, kh, kw, ih, iw, i, best, pdy] = Array.from({ length: 11 }, () => fn.local(I32));
  const [d, bestv] = [fn.local(F32), fn.local(F32)];
  const g = (l: number) => fn.get(l);
  const c32 = (v: number) => m.i32.const(v);
  const outAt = (ix: Ref) => m.i32.add(c32(outAddr), m.i32.shl(ix, c32(2)));
  const addTo = (ix: () => Ref) => m.f32.store(0, 4, outAt(ix()), m.f32.add(m.f32.load(0, 4, outAt(ix())), g(d)));
  const xAt = () => m.f32.load(xAddr, 4, m.i32.shl(g(i), c32(2)));
  const visit =
    k.op === 'sum'
      ? addTo(() => g(i))
      : m.if(m.i32.or(m.i32.lt_s(g(best), c32(0)), m.f32.gt(xAt(), g(bestv))), m.block(null, [fn.set(best, g(i)), fn.set(bestv, xAt())]));
  const window = fn.loop(kh, 0, wh, 1, [
    fn.set(ih, m.i32.sub(m.i32.add(m.i32.mul(g(oh), c32(sh)), g(kh)), c32(ph))),
    m.if(m.i32.lt_u(g(ih), c32(H)), fn.loop(kw, 0, ww, 1, [
      fn.set(iw, m.i32.sub(m.i32.add(m.i32.mul(g(ow), c32(sw)), g(kw)), c32(pw))),
      m.if(m.i32.lt_u(g(iw), c32(W)), m.block(null, [
        fn.set(i, m.i32.add(m.i32.mul(m.i32.add(m.i32.mul(m.i32.add(m.i32.mul(g(n), c32(H)), g(ih)), c32(W)), g(iw)), c32(C)), g(c))),
        visit,
      ])),
    ])),
  ]);
  const element = [
    fn.set(d, m.f32.load(0, 4, g(pdy))),
    fn.bump(pdy, 4),
    fn.set(best, c32(-1)),
    window,
    ...(k.op === 'max' ? [m.if(m.i32.ge_s(g(best), c32(0)), addTo(() => g(best)))] : []),
  ];
  if (C % 4 === 0 && wh * ww <= 64) {
    // Threaded: a share of the samples per thread, each zeroing and scattering into its own samples
    // (a window never leaves its sample).
    const sh = env.share(fn, N, numel(k.dyShape) * wh * ww);
    if (!sh) return m.block(null, [...s, ...poolGradLanes(env, k, fn, null)]);
    const per = H * W * C * 4;
    const fill = m.memory.fill(
      m.i32.add(m.i32.const(outAddr), m.i32.mul(fn.get(sh.share.lo), m.i32.const(per))),
      m.i32.const(0),
      m.i32.mul(m.i32.sub(fn.get(sh.share.hi), fn.get(sh.share.lo)), m.i32.const(per)),
    );
    return m.block(null, [...sh.init, m.if(m.i32.lt_s(fn.get(sh.share.lo), fn.get(sh.share.hi)), fill), ...poolGradLanes(env, k, fn, sh.share)]);
  }
  s.push(fn.set(pdy, c32(dyAddr)), ...nest(fn, [N, OH, OW, C], [n, oh, ow, c], () => [], element));
  return m.block(null, s);
}

/**
 * pool_grad with 4 channels per step (NHWC keeps channels contiguous in x, dy and the output). The
 * window is unrolled; a window row or column is bounds-checked only when padding can put it
 * outside. max: each lane tracks the window position of its first maximum (strict >, as the
 * reference), then every in-bounds position adds dy where it won and 0 elsewhere, which leaves
 * the other cells unchanged (the output starts at +0, so it never holds -0).
 */
function poolGradLanes(env: KernelEnv, k: PoolGradKernel, fn: Fn, share: Share | null): Ref[] {
  const { m, alu } = env;
  const [N, H, W, C] = k.shape;
  const [, OH, OW] = k.dyShape;
  const [wh, ww] = k.window;
  const [sh, sw] = k.strides;
  const [ph, pw] = [k.padding[0][0], k.padding[1][0]];
  const [n, oh, ow, c, base, pdy] = Array.from({ length: 6 }, () => fn.local(I32));
  const vh = Array.from({ length: wh }, () => fn.local(I32));
  const vw = Array.from({ length: ww }, () => fn.local(I32));
  const [d, best, bestv, xv, take] = Array.from({ length: 5 }, () => fn.local(V128));
  const g = (l: number) => fn.get(l);
  const c32 = (v: number) => m.i32.const(v);
  // statically in bounds for every output position?
  const alwaysH = (kh: number) => kh - ph >= 0 && (OH - 1) * sh + kh - ph < H;
  const alwaysW = (kw: number) => kw - pw >= 0 && (OW - 1) * sw + kw - pw < W;
  const positions: { p: number; kh: number; kw: number }[] = [];
  for (let kh = 0; kh < wh; kh++) for (let kw = 0; kw < ww; kw++) positions.push({ p: positions.length, kh, kw });
  const guard = (q: { kh: number; kw: number }, body: Ref): Ref => {
    const conds = [...(alwaysH(q.kh) ? [] : [g(vh[q.kh])]), ...(alwaysW(q.kw) ? [] : [g(vw[q.kw])])];
    return conds.length === 0 ? body : m.if(conds.length === 1 ? conds[0] : m.i32.and(conds[0], conds[1]), body);
  };
  /** Byte address of channel c at window position q, from `base` (element index of (ih, iw) = (oh*sh - ph, ow*sw - pw), c = 0). */
  const at = (q: { kh: number; kw: number }) => m.i32.shl(m.i32.add(g(base), m.i32.add(g(c), c32((q.kh * W + q.kw) * C))), c32(2));
  const addrOut = env.addr(k.output);
  const addrX = env.addr(k.inputs[0]);
  const rmw = (q: { kh: number; kw: number }, v: Ref) => m.v128.store(addrOut, 4, at(q), m.f32x4.add(m.v128.load(addrOut, 4, at(q)), v));
  const step: Ref[] = [fn.set(d, m.v128.load(env.addr(k.inputs[1]), 16, g(pdy))), fn.bump(pdy, 16)];
  if (k.op === 'sum') step.push(...positions.map((q) => guard(q, rmw(q, g(d)))));
  else {
    step.push(fn.set(best, alu.constV('i32', -1)));
    for (const q of positions)
      step.push(guard(q, m.block(null, [
        fn.set(xv, m.v128.load(addrX, 4, at(q))),
        fn.set(take, m.v128.or(m.i32x4.lt_s(g(best), alu.constV('i32', 0)), m.f32x4.gt(g(xv), g(bestv)))),
        fn.set(bestv, m.v128.bitselect(g(xv), g(bestv), g(take))),
        fn.set(best, m.v128.bitselect(alu.constV('i32', q.p), g(best), g(take))),
      ])));
    for (const q of positions) step.push(guard(q, rmw(q, m.v128.and(g(d), m.i32x4.eq(g(best), alu.constV('i32', q.p))))));
  }
  const pre = (l: number): Ref[] => {
    if (l === 2) return vh.map((v, kh) => fn.set(v, m.i32.lt_u(m.i32.add(m.i32.mul(g(oh), c32(sh)), c32(kh - ph)), c32(H))));
    return [];
  };
  const element: Ref[] = [
    ...vw.map((v, kw) => fn.set(v, m.i32.lt_u(m.i32.add(m.i32.mul(g(ow), c32(sw)), c32(kw - pw)), c32(W)))),
    fn.set(base, m.i32.mul(m.i32.add(m.i32.mul(m.i32.add(m.i32.mul(g(n), c32(H)), m.i32.add(m.i32.mul(g(oh), c32(sh)), c32(-ph))), c32(W)), m.i32.add(m.i32.mul(g(ow), c32(sw)), c32(-pw))), c32(C))),
    fn.loop(c, 0, C, 4, step),
  ];
  const start = share ? m.i32.mul(g(share.lo), c32(OH * OW * C * 4)) : c32(0);
  return [fn.set(pdy, start), ...nest(fn, [N, OH, OW], [n, oh, ow], pre, element, share)];
}
