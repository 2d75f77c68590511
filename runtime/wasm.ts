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
  /** Run every kernel of the program, in order, in one call. */
  run(): void;
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
}

export async function instantiateProgram(bytes: Uint8Array, info: ProgramInfo = {}): Promise<WasmProgram> {
  // (A Uint8Array may in principle sit on a SharedArrayBuffer; compile accepts the ones emitWasm makes.)
  const module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  const instance = await WebAssembly.instantiate(module, {});
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
      kernels[i]();
      trace({ backend: 'wasm', program: label, run: n, index: i, kernel: info.kernels?.[i] ?? `k${i}`, start: t0, ms: performance.now() - t0 });
    });
  };
  return {
    instance,
    memory,
    run() {
      const trace = dispatchTrace();
      // A module without kernel exports (older than tracing) still runs, untraced.
      if (trace && kernels.length) traced(trace);
      else {
        runs++;
        (run as () => void)();
      }
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

interface V8Flags {
  setFlagsFromString(flags: string): void;
}

/** node:v8 when running in Node, else null. Loaded with a computed specifier so bundlers leave it alone. */
const v8: V8Flags | null = await (async () => {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (!proc?.versions?.node) return null;
  const spec = ['node', 'v8'].join(':');
  try {
    return (await import(/* @vite-ignore */ spec)) as V8Flags;
  } catch {
    return null;
  }
})();

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
