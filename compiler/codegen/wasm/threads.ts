/**
 * @file What a threaded Wasm module has beyond a single-threaded one: per-instance globals saying
 * which thread it is, a `setup` export that sets them, the barrier every thread passes after each
 * kernel, and the memory layout of the per-thread scratch and the barrier words.
 *
 * Every thread instantiates the same module over one shared memory and calls the same `run()`. A
 * kernel split across threads (elementwise and reductions by rows of their outermost axis, matmuls
 * by tiles of their outer operand) gives each thread a contiguous share of its output and computes
 * every output element exactly as one thread would (same loop order, same summation order), so
 * results are bit-identical to the single-threaded module. Kernels too small to split run on thread
 * 0 alone. The barrier after each kernel is a counter and a generation word: the last thread to
 * arrive resets the counter and bumps the generation; the others spin on the generation, then, where
 * the thread may block (`can_wait`; never a browser's main thread), wait on it with a timeout. A third
 * word is the abort flag a dying worker sets (runtime/wasm.ts); a thread that sees it traps, so a
 * failed worker turns into an exception on the main thread instead of a hang. Matmul packing scratch
 * is per thread: thread t's copy is at `scratch_off` = t × stride bytes past the single-thread layout.
 */
import { binaryen } from './binaryen.ts';
import { I32, NONE, type Mod, type Ref } from './core.ts';

/** Elements (or multiply-adds) below which a kernel is not split: the split and barrier cost more. */
export const SPLIT_MIN_WORK = 8192;
/** Barrier spins before a thread that may block waits instead. */
const SPIN = 20000;
/** The wait's timeout (ns): a waiting thread wakes to check the abort flag even if a notify is lost. */
const WAIT_NS = 1_000_000;

export interface ThreadLayout {
  /** Bytes between one thread's matmul scratch and the next's. */
  readonly scratchStride: number;
  /** Byte address of the barrier words: counter (+0), generation (+4), abort flag (+8). */
  readonly barrier: number;
  /** Bytes of memory in all. */
  readonly end: number;
}

/** Scratch [from, to) of one thread repeated for `threads` threads, then the barrier words. */
export function threadLayout(from: number, to: number, threads: number): ThreadLayout {
  const scratchStride = Math.ceil((to - from) / 64) * 64;
  const barrier = from + threads * scratchStride;
  return { scratchStride, barrier, end: barrier + 64 };
}

/** Names of the per-instance globals. */
export const TID = 'tid';
export const NTH = 'nth';
export const SCRATCH_OFF = 'scratch_off';
const CAN_WAIT = 'can_wait';
export const BARRIER_FN = 'barrier';

/**
 * Add the globals, the exports `setup(tid, nth, can_wait)` (scratch_off follows from tid),
 * `abort()` and `barrier()` to a threaded module.
 */
export function addThreadSupport(m: Mod, layout: ThreadLayout): void {
  for (const [name, init] of [[TID, 0], [NTH, 1], [SCRATCH_OFF, 0], [CAN_WAIT, 1]] as const) m.addGlobal(name, I32, true, m.i32.const(init));
  const p = (i: number) => m.local.get(i, I32);
  m.addFunction('setup', binaryen.createType([I32, I32, I32]), NONE, [], m.block(null, [
    m.global.set(TID, p(0)),
    m.global.set(NTH, p(1)),
    m.global.set(SCRATCH_OFF, m.i32.mul(p(0), m.i32.const(layout.scratchStride))),
    m.global.set(CAN_WAIT, p(2)),
  ]));
  m.addFunctionExport('setup', 'setup');

  const at = (off: number) => m.i32.const(layout.barrier + off);
  const gen = 0;
  const spins = 1;
  const nth = () => m.global.get(NTH, I32);
  const last = m.block(null, [
    m.i32.atomic.store(0, at(0), m.i32.const(0)),
    m.drop(m.i32.atomic.rmw.add(0, at(4), m.i32.const(1))),
    m.drop(m.memory.atomic.notify(at(4), nth())),
  ]);
  const waitLoop = m.block(null, [
    m.local.set(spins, m.i32.const(0)),
    m.loop('spin', m.block(null, [
      m.if(m.i32.ne(m.i32.atomic.load(0, at(8)), m.i32.const(0)), m.unreachable()),
      m.if(m.i32.eq(m.i32.atomic.load(0, at(4)), m.local.get(gen, I32)), m.block(null, [
        m.local.set(spins, m.i32.add(m.local.get(spins, I32), m.i32.const(1))),
        m.if(
          m.i32.and(m.i32.gt_u(m.local.get(spins, I32), m.i32.const(SPIN)), m.global.get(CAN_WAIT, I32)),
          // binaryen.js types i64.const as (low, high) numbers, but this build takes one bigint.
          m.drop(m.memory.atomic.wait32(at(4), m.local.get(gen, I32), m.i64.const(BigInt(WAIT_NS) as never))),
        ),
        m.br('spin'),
      ])),
    ])),
  ]);
  // `abort()`: a thread that failed sets the flag and wakes the waiters, which then trap.
  m.addFunction('abort', NONE, NONE, [], m.block(null, [
    m.i32.atomic.store(0, at(8), m.i32.const(1)),
    m.drop(m.memory.atomic.notify(at(4), m.i32.const(-1))),
  ]));
  m.addFunctionExport('abort', 'abort');
  m.addFunction(BARRIER_FN, NONE, NONE, [I32, I32], m.block(null, [
    m.local.set(gen, m.i32.atomic.load(0, at(4))),
    m.if(m.i32.eq(m.i32.atomic.rmw.add(0, at(0), m.i32.const(1)), m.i32.sub(nth(), m.i32.const(1))), last, waitLoop),
  ]));
  // Exported for traced runs, which call the kernels one by one on every thread (runtime/wasm.ts).
  m.addFunctionExport(BARRIER_FN, BARRIER_FN);
}

/** `body` on thread 0 only. */
export const onMain = (m: Mod, body: Ref): Ref => m.if(m.i32.eqz(m.global.get(TID, I32)), body);

/** Statements setting locals lo, hi to this thread's share [lo, hi) of `extent`: ⌊extent·t/n⌋ to ⌊extent·(t+1)/n⌋. */
export function shareInit(m: Mod, lo: number, hi: number, extent: number): Ref[] {
  // Fresh nodes for each use: binaryen expressions are a tree, and the optimiser rewrites them in place.
  const t = () => m.global.get(TID, I32);
  const n = () => m.global.get(NTH, I32);
  const e = () => m.i32.const(extent);
  return [m.local.set(lo, m.i32.div_u(m.i32.mul(e(), t()), n())), m.local.set(hi, m.i32.div_u(m.i32.mul(e(), m.i32.add(t(), m.i32.const(1))), n()))];
}
