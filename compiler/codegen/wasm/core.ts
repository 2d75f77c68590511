/**
 * @file What every part of the Wasm code generator shares: binaryen type aliases and value types
 * (re-exported from wasm/binaryen.ts, which loads binaryen on demand), the options, a function under
 * construction (`Fn`: locals, labels, counted loops) and `KernelEnv`, the module builder as the
 * kernel emitters (elementwise.ts, reduce.ts, matmul.ts, pool-grad.ts) see it.
 */
import type Binaryen from 'binaryen';
import { F32, I32 } from './binaryen.ts';
import type { DType } from '../../../ir/types.ts';
import type { Kernel } from '../../kernel/types.ts';
import type { Alu } from './alu.ts';
import type { Scratch } from './matmul.ts';
import type { Ctx } from './unit.ts';

export interface WasmOptions {
  /** Use f32x4.relaxed_madd in the matmul micro-kernel (needs engine support; see runtime/wasm.ts). */
  readonly relaxedSimd: boolean;
  /**
   * Threads the module is built for (default 1). Above 1 the module imports a shared memory, splits
   * large kernels across threads and waits at a barrier after every kernel (see wasm/threads.ts).
   */
  readonly threads?: number;
}

/** A thread's share [lo, hi) of an axis, in two i32 locals (see `KernelEnv.share`). */
export interface Share {
  readonly lo: number;
  readonly hi: number;
}

export type Ref = Binaryen.ExpressionRef;
export type Ty = Binaryen.Type;
export type Mod = Binaryen.Module;

// Live bindings, set when binaryen loads (wasm/binaryen.ts): read them in functions, never at module scope.
export { F32, F64, I32, I64, NONE, V128 } from './binaryen.ts';

export const scalarTy = (dt: DType): Ty => (dt === 'f32' ? F32 : I32);

export function v128Bytes(lanes: ArrayLike<number>, dt: DType): number[] {
  const buf = new ArrayBuffer(16);
  if (dt === 'f32') new Float32Array(buf).set(lanes);
  else new Int32Array(buf).set(lanes);
  return Array.from(new Uint8Array(buf));
}

/** Locals and labels of one function under construction (functions here take no parameters). */
export class Fn {
  readonly vars: Ty[] = [];
  private nLabels = 0;
  constructor(readonly m: Mod) {}
  local(t: Ty): number {
    return this.vars.push(t) - 1;
  }
  get(i: number): Ref {
    return this.m.local.get(i, this.vars[i]);
  }
  set(i: number, v: Ref): Ref {
    return this.m.local.set(i, v);
  }
  /** local[i] += c (i32). */
  bump(i: number, c: number): Ref {
    return this.set(i, this.m.i32.add(this.get(i), this.m.i32.const(c)));
  }
  /** Set by an emitter that split its kernel across threads (`KernelEnv.share`); others run on thread 0 only. */
  parallel = false;
  /** for (counter = lo; counter < hi; counter += 1) body over a thread's share; nothing when it is empty. */
  loopShare(counter: number, share: Share, body: readonly Ref[]): Ref {
    const m = this.m;
    const l = `L${this.nLabels++}`;
    return m.if(
      m.i32.lt_s(this.get(share.lo), this.get(share.hi)),
      m.block(null, [
        this.set(counter, this.get(share.lo)),
        m.loop(l, m.block(null, [...body, this.bump(counter, 1), m.br(l, m.i32.lt_s(this.get(counter), this.get(share.hi)))])),
      ]),
    );
  }
  /** for (counter = from; counter < to; counter += step) body, as a do-while: callers guarantee from < to. */
  loop(counter: number, from: number | Ref, to: number, step: number, body: readonly Ref[]): Ref {
    const m = this.m;
    const l = `L${this.nLabels++}`;
    const init = typeof from === 'number' ? m.i32.const(from) : from;
    return m.block(null, [
      this.set(counter, init),
      m.loop(l, m.block(null, [...body, this.bump(counter, step), m.br(l, m.i32.lt_s(this.get(counter), m.i32.const(to)))])),
    ]);
  }
}

/**
 * Loop nest over `extents` with `counters`; `pre(l)` runs at the top of level l (l = 0: before all
 * loops). With `share`, the outermost loop runs over this thread's share of axis 0 only.
 */
export function nest(fn: Fn, extents: readonly number[], counters: readonly number[], pre: (l: number) => Ref[], inner: Ref[], share: Share | null = null): Ref[] {
  let body = inner;
  for (let a = extents.length - 1; a >= 0; a--) body = [...pre(a), a === 0 && share ? fn.loopShare(counters[a], share, body) : fn.loop(counters[a], 0, extents[a], 1, body)];
  return body;
}

/** The module under construction, as one kernel's emitter sees it. */
export interface KernelEnv {
  readonly m: Mod;
  readonly alu: Alu;
  readonly opts: WasmOptions;
  /** Matmul scratch after the plan's arena (see matmul.ts). */
  readonly scratch: Scratch;
  /** Byte address of buffer `b` in the memory plan. */
  addr(b: number): number;
  /** Byte address `a` of matmul scratch, in this thread's copy of it. */
  scratchAt(a: number): Ref;
  /**
   * This thread's share of an axis of `extent` (rows, tiles), in locals set by the returned
   * statements, when the module is threaded and `work` (multiply-adds or elements) is worth
   * splitting; null otherwise. A kernel that takes a share sets `fn.parallel`.
   */
  share(fn: Fn, extent: number, work: number): { share: Share; init: Ref[] } | null;
  /** What a unit of kernel `k` reads: its inputs, grid index `idx`, and the parts in `extra` (others throw). */
  ctxFor(k: Kernel, idx: (a: number) => Ref, extra?: Partial<Ctx>): Ctx;
}
