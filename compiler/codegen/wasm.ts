/**
 * @file WebAssembly code generation: one module per `Program`, built with binaryen. This file
 * assembles the module; the parts live in `wasm/`, one file per concern:
 *  - binaryen.ts: loads binaryen on demand (`loadBinaryen()`; emitWasm/emitWat throw before it resolved);
 *  - core.ts: binaryen aliases, `Fn` (a function under construction), `KernelEnv`;
 *  - alu.ts: the code of each kernel-IR op, scalar and 4-lane (a new elementwise op goes here);
 *  - helpers.ts: helper functions inside the module (transcendentals, guarded integer ops, rng);
 *  - unit.ts: expression trees in loop nests (hoisting, CSE, vectorisability);
 *  - elementwise.ts, reduce.ts, matmul.ts, pool-grad.ts: one emitter per kernel kind.
 *
 * The module defines and exports its memory (`memory`, fixed size: the plan's arena plus scratch) and
 * exports one function, `run()`, which calls every kernel of the program in order; each kernel is an
 * internal function with its buffers' byte addresses baked in as constants, so a whole step is one
 * call with no JS between kernels. Nothing is imported: transcendentals, guarded integer ops and
 * `rand` are Wasm helper functions (wasm/helpers.ts).
 *
 * Memory layout: every element is 4 bytes. f32 is f32, i32 is i32, and bool is an i32 holding 0 or
 * 1 (4 bytes rather than 1 so that every dtype shares one addressing scheme and one SIMD lane width).
 * Scratch for matmul packing lives after `plan.totalBytes`, which the plan must not overlap.
 *
 * Kernels:
 *  - elementwise: loops over the grid, innermost axis last. The innermost loop runs 4 lanes at a time
 *    in SIMD128 when every load whose index varies along that axis is contiguous (index = base +
 *    idx_last); loads that do not vary are scalar and broadcast; any other load (a gather) makes the
 *    whole kernel scalar. A scalar tail handles an extent that is not a multiple of 4. An innermost
 *    axis that is a flattened product read through / and % (im2col) is split first when that makes
 *    it contiguous.
 *  - reduce: the same, with the reduction loops inside the (possibly 4-lane) element; accumulator 0
 *    (sum) or -Infinity (max) in f32, then the epilogue.
 *  - matmul: a 4x8 register-tiled micro-kernel (8 v128 accumulators) over A and B packed into
 *    panels in scratch; the epilogue runs on the accumulators (SIMD when it vectorises along n).
 *  - pool_grad: a scatter into the zeroed output, 4 channels at a time when C % 4 == 0.
 *
 * Expression emission does loop-invariant hoisting, common-subexpression caching and reassociation
 * of index sums (a `Unit` plans which nodes live in locals at which loop level). A load inside a
 * `select` arm whose index is not provably in range (padding, concat) is only evaluated when chosen
 * (an `if`) and never hoisted. Codegen is deterministic: the same program and options give
 * byte-identical wasm.
 */
import { binaryen, requireBinaryen } from './wasm/binaryen.ts';
import { numel } from '../../ir/types.ts';
import type { MemoryPlan } from '../kernel/plan.ts';
import type { Kernel, Loop, LoopCopy, Program } from '../kernel/types.ts';
import { Alu } from './wasm/alu.ts';
import { Fn, I32, NONE, type KernelEnv, type Mod, type Ref, type Share, type WasmOptions } from './wasm/core.ts';
import { elementwiseKernel } from './wasm/elementwise.ts';
import { Helpers } from './wasm/helpers.ts';
import { matmulKernel, planScratch, type Scratch } from './wasm/matmul.ts';
import { poolGradKernel } from './wasm/pool-grad.ts';
import { reduceKernel } from './wasm/reduce.ts';
import { addThreadSupport, BARRIER_FN, onMain, SCRATCH_OFF, shareInit, SPLIT_MIN_WORK, threadLayout, type ThreadLayout } from './wasm/threads.ts';
import type { Ctx } from './wasm/unit.ts';

export type { WasmOptions } from './wasm/core.ts';
export { loadBinaryen } from './wasm/binaryen.ts';

class ModuleBuilder implements KernelEnv {
  readonly m: Mod;
  readonly alu: Alu;
  readonly scratch: Scratch;
  /** Set when the module is built for more than one thread (see wasm/threads.ts). */
  readonly threads: ThreadLayout | null;

  constructor(
    readonly p: Program,
    readonly plan: MemoryPlan,
    readonly opts: WasmOptions,
  ) {
    this.scratch = planScratch(p, plan);
    const n = opts.threads ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new Error(`wasm codegen: threads must be an integer >= 1, got ${String(n)}`);
    this.threads = n > 1 ? threadLayout(this.scratch.tile, this.scratch.end, n) : null;
    const bytes = this.threads ? this.threads.end : this.scratch.end;
    const pages = Math.max(1, Math.ceil(bytes / 65536));
    if (pages > 65536) throw new Error(`wasm codegen: ${p.name} needs ${bytes} bytes of memory, over Wasm32's 4 GiB`);
    this.m = new binaryen.Module();
    const F = binaryen.Features;
    this.m.setFeatures(F.SIMD128 | F.NontrappingFPToInt | F.BulkMemory | F.BulkMemoryOpt | F.SignExt | F.MutableGlobals | (opts.relaxedSimd ? F.RelaxedSIMD : 0) | (this.threads ? F.Atomics : 0));
    this.alu = new Alu(this.m, new Helpers(this.m));
    // The memory must exist before any load or store is built (binaryen binds them to it). A threaded
    // module imports it, shared, from `env.memory` (every thread's instance gets the same one) and
    // exports it too, so the runtime finds it where it finds a single-threaded module's.
    if (this.threads) {
      this.m.setMemory(pages, pages, 'memory', [], true);
      this.m.addMemoryImport('0', 'env', 'memory', true);
      addThreadSupport(this.m, this.threads);
    } else this.m.setMemory(pages, pages, 'memory');
  }

  scratchAt(a: number): Ref {
    return this.threads ? this.m.i32.add(this.m.i32.const(a), this.m.global.get(SCRATCH_OFF, I32)) : this.m.i32.const(a);
  }

  share(fn: Fn, extent: number, work: number): { share: Share; init: Ref[] } | null {
    if (!this.threads || extent < 2 || work < SPLIT_MIN_WORK) return null;
    const share = { lo: fn.local(I32), hi: fn.local(I32) };
    fn.parallel = true;
    return { share, init: shareInit(this.m, share.lo, share.hi, extent) };
  }

  fnName(i: number): string {
    return `k${i}_${this.p.kernels[i].name}`;
  }

  addKernel(i: number): void {
    const k = this.p.kernels[i];
    const fn = new Fn(this.m);
    const body = numel(k.shape) === 0 ? this.m.nop() : this.kernelBody(k, fn);
    // In a threaded module a kernel that did not split itself runs on thread 0 alone.
    this.m.addFunction(this.fnName(i), NONE, NONE, fn.vars, this.threads && !fn.parallel ? onMain(this.m, body) : body);
  }

  /** `run()`: calls to `kernels` in order, or the whole program with its loops when `loops` is set. */
  finish(kernels: readonly number[], loops = false): void {
    const m = this.m;
    const vars: number[] = [];
    const body = loops && this.p.loops.length ? this.runLoops(vars) : kernels.flatMap((i) => this.callKernel(i));
    m.addFunction('run', NONE, NONE, vars, m.block(null, body));
    m.addFunctionExport('run', 'run');
    // Kernel i is also exported as `k<i>`: a runtime trace (runtime/trace.ts) calls and times them one
    // by one. Kernels stay separate functions anyway (see buildModule), so this costs ~2% of bytes.
    for (const i of kernels) m.addFunctionExport(this.fnName(i), `k${i}`);
  }

  /** A kernel call in `run`; in a threaded module followed by the barrier, so the next kernel sees its output. */
  private callKernel(i: number): Ref[] {
    const call = this.m.call(this.fnName(i), [], NONE);
    return this.threads ? [call, this.m.call(BARRIER_FN, [], NONE)] : [call];
  }

  /** A loop's copies; in a threaded module made by thread 0 while the others wait at the barrier. */
  private copies(cs: Ref[]): Ref[] {
    if (!this.threads || cs.length === 0) return cs;
    return [onMain(this.m, this.m.block(null, cs)), this.m.call(BARRIER_FN, [], NONE)];
  }

  /**
   * The program's kernel calls with its loops as Wasm loops: per loop a counter local s and the slice
   * index t (s, or length-1-s when reversed); copies are `memory.copy` at t * slice bytes.
   */
  private runLoops(vars: number[]): Ref[] {
    const m = this.m;
    const p = this.p;
    const copy = (c: LoopCopy, t: number | null): Ref => {
      const bytes = c.elements * 4;
      const at = (base: number, step: boolean) => (step && t !== null ? m.i32.add(m.i32.const(base), m.i32.mul(m.local.get(t, binaryen.i32), m.i32.const(bytes))) : m.i32.const(base));
      return m.memory.copy(at(this.addr(c.to), c.toStep), at(this.addr(c.from), c.fromStep), m.i32.const(bytes));
    };
    const range = (from: number, to: number): Ref[] => {
      const out: Ref[] = [];
      let i = from;
      while (i < to) {
        const L = p.loops.find((l) => l.start === i && l.end <= to && !inside.has(l));
        if (!L) {
          out.push(...this.callKernel(i++));
          continue;
        }
        inside.add(L);
        const s = vars.push(binaryen.i32) - 1;
        const t = vars.push(binaryen.i32) - 1;
        const label = `loop${s}`;
        out.push(...this.copies(L.init.map((c) => copy(c, null))), m.local.set(s, m.i32.const(0)));
        out.push(
          m.loop(label, m.block(null, [
            m.local.set(t, L.reverse ? m.i32.sub(m.i32.const(L.length - 1), m.local.get(s, binaryen.i32)) : m.local.get(s, binaryen.i32)),
            ...this.copies(L.enter.map((c) => copy(c, t))),
            ...range(L.start, L.end),
            ...this.copies(L.exit.map((c) => copy(c, t))),
            m.local.set(s, m.i32.add(m.local.get(s, binaryen.i32), m.i32.const(1))),
            m.br(label, m.i32.lt_u(m.local.get(s, binaryen.i32), m.i32.const(L.length))),
          ])),
        );
        i = L.end;
      }
      return out;
    };
    // Loops already opened: an inner loop that starts where its outer one does is found once inside it.
    const inside = new Set<Loop>();
    return range(0, p.kernels.length);
  }

  addr(b: number): number {
    return this.plan.offsets[b];
  }

  private kernelBody(k: Kernel, fn: Fn): Ref {
    switch (k.kind) {
      case 'elementwise':
        return elementwiseKernel(this, k, fn);
      case 'reduce':
        return reduceKernel(this, k, fn);
      case 'matmul':
        return matmulKernel(this, k, fn);
      case 'pool_grad':
        return poolGradKernel(this, k, fn);
      default:
        return k satisfies never;
    }
  }

  ctxFor(k: Kernel, idx: (a: number) => Ref, extra: Partial<Ctx> = {}): Ctx {
    const unavailable = (what: string) => () => {
      throw new Error(`wasm codegen: ${what} used outside its kernel part in ${k.name}`);
    };
    return {
      inputAddr: k.inputs.map((b) => this.addr(b)),
      inputLen: k.inputs.map((b) => numel(this.p.buffers[b].shape)),
      idx,
      ridx: extra.ridx ?? unavailable('ridx'),
      acc: extra.acc ?? unavailable('acc'),
      accVec: extra.accVec ?? unavailable('acc'),
    };
  }
}

/** Add kernel `i`, naming it in any error raised while generating it. */
function addKernelNamed(b: ModuleBuilder, i: number): void {
  try {
    b.addKernel(i);
  } catch (e) {
    throw new Error(`wasm codegen: kernel ${b.p.kernels[i].name} of ${b.p.name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Whether kernel `i` alone validates (used to name the culprit after a failed validation). */
function kernelValidates(p: Program, plan: MemoryPlan, opts: WasmOptions, i: number): boolean {
  const one = new ModuleBuilder(p, plan, opts);
  try {
    one.addKernel(i);
    one.finish([i]);
    return Boolean(one.m.validate());
  } finally {
    one.m.dispose();
  }
}

/** Build, validate (naming the first invalid kernel) and optimise the module. Caller disposes it. */
function buildModule(p: Program, plan: MemoryPlan, opts: WasmOptions): Mod {
  const b = new ModuleBuilder(p, plan, opts);
  try {
    const all = p.kernels.map((_, i) => i);
    all.forEach((i) => addKernelNamed(b, i));
    b.finish(all, true);
    if (!b.m.validate()) {
      // Rebuild one kernel at a time to name the culprit (only on this failure path).
      const bad = all.find((i) => !kernelValidates(p, plan, opts, i));
      throw new Error(bad === undefined ? `wasm codegen: invalid Wasm module for ${p.name}` : `wasm codegen: invalid Wasm for kernel ${p.kernels[bad].name} of ${p.name}`);
    }
    // Kernels stay separate functions (binaryen would inline each into `run`, its only caller): one
    // giant function compiles slower in the engine and hides kernels from profilers. binaryen's
    // settings are process-global, so they are restored.
    const saved = [binaryen.getOptimizeLevel(), binaryen.getShrinkLevel(), binaryen.getOneCallerInlineMaxSize()] as const;
    binaryen.setOptimizeLevel(2);
    binaryen.setShrinkLevel(0);
    binaryen.setOneCallerInlineMaxSize(0);
    try {
      b.m.optimize();
    } finally {
      binaryen.setOptimizeLevel(saved[0]);
      binaryen.setShrinkLevel(saved[1]);
      binaryen.setOneCallerInlineMaxSize(saved[2]);
    }
    return b.m;
  } catch (e) {
    b.m.dispose();
    throw e;
  }
}

/**
 * One Wasm module running the whole program: exports `memory`, `run()` and each kernel as `k<i>()`;
 * has a name section. Needs binaryen: await `loadBinaryen()` first (throws otherwise).
 */
export function emitWasm(p: Program, plan: MemoryPlan, opts: WasmOptions): Uint8Array {
  requireBinaryen('emitWasm');
  // Debug info keeps binaryen's function names through optimisation and emits a name section, so
  // profilers, stack traces and WAT dumps show `k<i>_<kernel name>`. Global setting: restored.
  const debug = binaryen.getDebugInfo();
  binaryen.setDebugInfo(true);
  try {
    const m = buildModule(p, plan, opts);
    try {
      return m.emitBinary();
    } finally {
      m.dispose();
    }
  } finally {
    binaryen.setDebugInfo(debug);
  }
}

/** The same module as binaryen's text (codegen tests; dumps use wabt, see codegen/wat.ts). Needs `loadBinaryen()` first. */
export function emitWat(p: Program, plan: MemoryPlan, opts: WasmOptions): string {
  requireBinaryen('emitWat');
  const m = buildModule(p, plan, opts);
  try {
    return m.emitText();
  } finally {
    m.dispose();
  }
}

/**
 * Bytes of memory the module defines for `p` under `plan` (arena plus matmul scratch, page-rounded;
 * for a threaded module, one scratch per thread and the barrier words: the size of its shared memory).
 * Plain arithmetic on the plan: works without binaryen loaded.
 */
export function wasmMemoryBytes(p: Program, plan: MemoryPlan, threads = 1): number {
  const s = planScratch(p, plan);
  const end = threads > 1 ? threadLayout(s.tile, s.end, threads).end : s.end;
  return Math.max(1, Math.ceil(end / 65536)) * 65536;
}
