/**
 * @file Wasm runtime: instantiate a program module emitted by the compiler and run it.
 *
 * The module contract (see compiler/codegen/wasm.ts; this file imports nothing from compiler/): it
 * imports nothing, exports its fixed-size `memory`, one `run()` that executes the whole program and
 * each kernel as `k<i>()` (called one by one, and timed, only while a dispatch trace is on).
 * Buffers live at byte offsets given by the program's memory plan; every element is 4 bytes (f32,
 * i32, or bool as i32 0/1). Views returned by `f32`/`i32` alias the module's memory: writes before
 * `run()` are inputs, reads after it are outputs. The memory never grows, so views stay valid.
 *
 * A module built for several threads (compiler/codegen/wasm/threads.ts) instead imports a shared
 * `env.memory` (and exports it too) plus `setup`, `abort` and `barrier`. Given `threads`, this file
 * makes that memory, instantiates the module here as thread 0 and in threads − 1 workers (Node's
 * worker_threads or a page's Worker, one source for both), and each `run()` wakes the workers and
 * runs the step on all of them; a worker's failure becomes an exception here, never a hang, and the
 * program refuses to run again. Idle workers do not keep a Node process alive; `dispose()` ends them.
 *
 * `detectRelaxedSimd` answers whether the engine accepts relaxed-SIMD instructions; in Node it first
 * turns on V8's `--experimental-wasm-relaxed-simd` (Node 20 ships V8 11.3, where the proposal is
 * behind that flag); in a browser it only validates. `node:v8` is loaded once at module evaluation,
 * through an import() whose specifier bundlers do not follow, so this file also loads in a page.
 */

import type { ByteCopy, ScheduleLoop } from './schedule.ts';
import { byteCopyAt, walkSchedule } from './schedule.ts';
import type { DispatchSink } from './trace.ts';
import { dispatchTrace } from './trace.ts';

export interface WasmProgram {
  readonly instance: WebAssembly.Instance;
  readonly memory: WebAssembly.Memory;
  /** Threads that run each step (1: this one alone). */
  readonly threads: number;
  /**
   * Run every kernel of the program, in order, in one call (with its worker threads, if any). Throws
   * if a worker failed; the program is then unusable (dispose it).
   */
  run(): void;
  /** Stop the worker threads (nothing to do for one thread). Idempotent. */
  dispose(): void;
  /** f32 view of `count` elements at byte `offset`. */
  f32(offset: number, count: number): Float32Array;
  /** i32 view (also for bool buffers, which hold 0/1) of `count` elements at byte `offset`. */
  i32(offset: number, count: number): Int32Array;
}

export interface ProgramInfo {
  /** Names the program in traces and errors. */
  readonly label?: string;
  /** Kernel names in schedule order, for traces (default `k<i>`). */
  readonly kernels?: readonly string[];
  /**
   * The program's loops (the module's `run` has them built in): a traced run calls the kernels one by
   * one and must repeat them and make the loop's copies itself.
   */
  readonly loops?: readonly ScheduleLoop<ByteCopy>[];
  /**
   * For a module built for several threads (it imports a shared `env.memory`): how many, and the
   * bytes of that memory. The runtime starts threads − 1 workers that run each step with this one.
   */
  readonly threads?: { readonly count: number; readonly memoryBytes: number };
}

export async function instantiateProgram(bytes: Uint8Array, info: ProgramInfo = {}): Promise<WasmProgram> {
  // (A Uint8Array may in principle sit on a SharedArrayBuffer; compile accepts the ones emitWasm makes.)
  const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  const nThreads = info.threads?.count ?? 1;
  let shared: WebAssembly.Memory | null = null;
  if (nThreads > 1) {
    const pages = info.threads!.memoryBytes / 65536;
    shared = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  }
  const instance = await WebAssembly.instantiate(module, shared ? { env: { memory: shared } } : {});
  const pool = shared ? await startPool(module, shared, nThreads, info.label ?? 'wasm', () => (instance.exports.abort as () => void)()) : null;
  if (pool) {
    (instance.exports.setup as (t: number, n: number, w: number) => void)(0, nThreads, CAN_WAIT_HERE ? 1 : 0);
  }
  const memory = instance.exports.memory;
  const run = instance.exports.run;
  if (!(memory instanceof WebAssembly.Memory) || typeof run !== 'function') {
    throw new Error('wasm runtime: module must export `memory` and `run` (is this a dlc program module?)');
  }
  const check = (offset: number, count: number) => {
    if (offset % 4 !== 0 || offset < 0 || count < 0 || offset + count * 4 > memory.buffer.byteLength) {
      throw new Error(`wasm runtime: view [${offset}, +${count * 4}) is outside the module's ${memory.buffer.byteLength}-byte memory`);
    }
  };
  const kernels: (() => void)[] = [];
  for (let i = 0; typeof instance.exports[`k${i}`] === 'function'; i++) kernels.push(instance.exports[`k${i}`] as () => void);
  const label = info.label ?? 'wasm';
  let runs = 0;
  const traced = (trace: DispatchSink) => {
    const n = runs++;
    walkSchedule(kernels.length, info.loops ?? [], (e) => {
      if (e.k === 'copy') {
        const c = byteCopyAt(e.copy, e.step);
        new Uint8Array(memory.buffer).copyWithin(c.dst, c.src, c.src + c.bytes);
        return;
      }
      const i = e.index;
      const t0 = performance.now();
      // Threaded, every thread runs the kernel and meets at the barrier, so the time is the split kernel's.
      if (pool) pool.kernel(i, kernels[i], instance.exports.barrier as () => void);
      else kernels[i]();
      trace({ backend: 'wasm', program: label, run: n, index: i, kernel: info.kernels?.[i] ?? `k${i}`, start: t0, ms: performance.now() - t0 });
    });
  };
  return {
    instance,
    memory,
    threads: nThreads,
    run() {
      const trace = dispatchTrace();
      // A module without kernel exports (older than tracing) still runs, untraced.
      if (trace && kernels.length) traced(trace);
      else {
        runs++;
        if (pool) pool.run(run as () => void);
        else (run as () => void)();
      }
    },
    dispose() {
      pool?.close();
    },
    f32(offset, count) {
      check(offset, count);
      return new Float32Array(memory.buffer, offset, count);
    },
    i32(offset, count) {
      check(offset, count);
      return new Int32Array(memory.buffer, offset, count);
    },
  };
}

/** Whether this thread may block in Atomics.wait: not a browser's main thread. */
const CAN_WAIT_HERE = !(typeof (globalThis as { document?: unknown }).document === 'object');

/**
 * The worker's program, the same text in Node (worker_threads, evaluated as a script) and in a page
 * (a Worker from a Blob). It instantiates the module over the shared memory as thread `tid`, says
 * it is ready, then for each step waits for the go word to change and calls `run()`. If `run` throws
 * (a trap) it calls the module's `abort()`, so the threads waiting at the barrier trap too and the
 * main thread's `run()` throws instead of hanging, and it reports the error. Word 1 of the control
 * block asks it to quit; word 2 (tests only) asks it to fail at its next step, and `failStart` in its
 * start data (tests only) to fail before instantiating.
 */
const WORKER_SOURCE = `
const start = async (d, post) => {
  let inst = null;
  try {
    if (d.failStart) throw new Error('failed on purpose (test hook)');
    inst = (await WebAssembly.instantiate(d.module, { env: { memory: d.memory } }));
    inst = inst.exports ? inst : inst.instance;
    inst.exports.setup(d.tid, d.nth, 1);
  } catch (e) {
    post({ error: 'thread ' + d.tid + ' could not start: ' + (e && e.message || e) });
    return;
  }
  post({ ready: true });
  const c = new Int32Array(d.ctrl);
  let gen = 0;
  for (;;) {
    Atomics.wait(c, 0, gen);
    gen = Atomics.load(c, 0);
    if (Atomics.load(c, 1)) return;
    try {
      if (Atomics.load(c, 2) === d.tid) throw new Error('failed on purpose (test hook)');
      const k = Atomics.load(c, 4);
      if (k < 0) inst.exports.run();
      else {
        inst.exports['k' + k]();
        inst.exports.barrier();
      }
    } catch (e) {
      Atomics.store(c, 3, 1);
      inst.exports.abort();
      post({ error: 'thread ' + d.tid + ' failed in the step: ' + (e && e.message || e) });
      return;
    }
  }
};
if (typeof process === 'object' && process.versions && process.versions.node) {
  import('node:worker_threads').then(({ parentPort, workerData }) => start(workerData, (m) => parentPort.postMessage(m)));
} else {
  self.onmessage = (e) => start(e.data, (m) => self.postMessage(m));
}
`;

interface AnyWorker {
  terminate(): unknown;
}

interface Pool {
  run(run: () => void): void;
  /** Kernel `i` alone on every thread, then the barrier (traced runs). */
  kernel(i: number, k: () => void, barrier: () => void): void;
  close(): void;
}

/** Control words: go generation, quit, fail-on-purpose thread (tests), failed, kernel to run alone (-1: the whole step). */
const GO = 0;
const QUIT = 1;
const FAIL_TID = 2;
const FAILED = 3;
const KERNEL = 4;

let failNext = -1;
/** Test hook: in the next step any threaded program runs, its thread `tid` fails (0: this thread, the others then wait for it at a barrier). */
export function failNextWorkerStepForTest(tid: number): void {
  failNext = tid;
}
let failStart = false;
/** Test hook: the workers of the next threaded program to start fail to start. */
export function failNextWorkerStartForTest(): void {
  failStart = true;
}

/**
 * Start threads 1..n-1 of a threaded program. `abort` is thread 0's `abort()`: when this thread's
 * part of a step throws, the workers waiting for it at a barrier must stop too (they trap).
 */
async function startPool(module: WebAssembly.Module, memory: WebAssembly.Memory, n: number, label: string, abort: () => void): Promise<Pool> {
  const ctrl = new Int32Array(new SharedArrayBuffer(32));
  ctrl[FAIL_TID] = -1;
  ctrl[KERNEL] = -1;
  const workers: AnyWorker[] = [];
  let failure: string | null = null;
  let closed = false;
  const spawn = async (tid: number): Promise<void> => {
    const data = { module, memory, tid, nth: n, ctrl: ctrl.buffer, failStart };
    await new Promise<void>((resolve, reject) => {
      let ready = () => {};
      const onMessage = (m: { ready?: boolean; error?: string }) => {
        if (m.ready) {
          ready();
          resolve();
        }
        else if (m.error) {
          failure ??= m.error;
          reject(new Error(`wasm threads (${label}): ${m.error}`));
        }
      };
      const onError = (e: unknown) => {
        failure ??= `thread ${tid} died: ${e instanceof Error ? e.message : String(e)}`;
        reject(new Error(`wasm threads (${label}): ${failure}`));
      };
      if (workerThreads) {
        const w = new workerThreads.Worker(WORKER_SOURCE, { eval: true, workerData: data });
        w.on('message', onMessage);
        w.on('error', onError);
        // Once started, an idle pool must not keep Node alive: the user's work is done when the main
        // thread's is (until then the pending start keeps the process waiting for it).
        ready = () => w.unref();
        workers.push(w);
      } else {
        const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: 'text/javascript' }));
        const w = new Worker(url);
        URL.revokeObjectURL(url);
        w.onmessage = (e: MessageEvent) => onMessage(e.data as { ready?: boolean; error?: string });
        w.onerror = (e: ErrorEvent) => onError(new Error(e.message));
        w.postMessage(data);
        workers.push(w);
      }
    });
  };
  const close = () => {
    if (closed) return;
    closed = true;
    Atomics.store(ctrl, QUIT, 1);
    Atomics.add(ctrl, GO, 1);
    Atomics.notify(ctrl, GO);
    for (const w of workers) void w.terminate();
  };
  const starting = Array.from({ length: n - 1 }, (_, i) => spawn(i + 1));
  failStart = false;
  try {
    await Promise.all(starting);
  } catch (e) {
    close();
    throw e;
  }
  const go = (kernel: number, body: () => void) => {
    if (closed) throw new Error(`wasm threads (${label}): the program was disposed`);
    if (Atomics.load(ctrl, FAILED)) throw new Error(`wasm threads (${label}): a worker failed in an earlier step (${failure ?? 'see above'}); this program cannot run again`);
    const failHere = failNext === 0;
    if (failNext > 0) Atomics.store(ctrl, FAIL_TID, failNext);
    failNext = -1;
    Atomics.store(ctrl, KERNEL, kernel);
    Atomics.add(ctrl, GO, 1);
    Atomics.notify(ctrl, GO);
    try {
      if (failHere) throw new Error('failed on purpose (test hook)');
      body();
    } catch (e) {
      // Either a worker called abort() and the barrier trapped here (its own message arrives later),
      // or this thread trapped: then the workers still wait for it, so abort them too.
      const byWorker = Atomics.load(ctrl, FAILED) === 1;
      Atomics.store(ctrl, FAILED, 1);
      if (!byWorker) abort();
      const why = byWorker ? `a worker failed in the middle of the step${failure ? ` (${failure})` : ''}` : `thread 0 failed in the middle of the step: ${e instanceof Error ? e.message : String(e)}`;
      throw new Error(`wasm threads (${label}): ${why}; this program cannot run again`, { cause: e });
    }
  };
  return {
    run: (run) => go(-1, run),
    kernel: (i, k, barrier) =>
      go(i, () => {
        k();
        barrier();
      }),
    close,
  };
}

interface WorkerThreads {
  Worker: new (src: string, o: { eval: boolean; workerData: unknown }) => AnyWorker & { on(ev: string, f: (x: never) => void): void; unref(): void };
}

/**
 * A Node built-in module in Node, else null. Loaded once at module evaluation through an import()
 * whose specifier bundlers do not follow, so this file also loads in a page.
 */
async function nodeBuiltin<T>(name: string): Promise<T | null> {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (!proc?.versions?.node) return null;
  try {
    return (await import(/* @vite-ignore */ ['node', name].join(':'))) as T;
  } catch {
    return null;
  }
}

/** node:worker_threads in Node, else null (a page uses `Worker`). */
const workerThreads = await nodeBuiltin<WorkerThreads>('worker_threads');

interface V8Flags {
  setFlagsFromString(flags: string): void;
}

/** node:v8 when running in Node, else null. */
const v8 = await nodeBuiltin<V8Flags>('v8');

/**
 * (module (func (param v128 v128 v128) (result v128) local.get 0 local.get 1 local.get 2
 * f32x4.relaxed_madd)): validates only where relaxed SIMD is on.
 */
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // type: (v128 v128 v128) -> v128
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x85, 0x02, 0x0b, // code
]);

let relaxed: boolean | null = null;

/** Whether relaxed-SIMD modules can be compiled here (enabling V8's flag first when in Node). */
export function detectRelaxedSimd(): boolean {
  if (relaxed !== null) return relaxed;
  if (v8) {
    try {
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
    } catch {
      // an engine without the flag just validates below
    }
  }
  try {
    relaxed = WebAssembly.validate(RELAXED_PROBE);
  } catch {
    relaxed = false;
  }
  return relaxed;
}
