/**
 * @file The Wasm backend: compiles each step function of a model (train, eval, predict) at one batch
 * size into its own Wasm module and runs it through the runtime.
 *
 * Each module owns a linear memory laid out by the memory plan; the host writes a batch into the
 * input buffers, calls `run` once (every kernel runs inside that call) and reads the scalars it needs.
 * The persistent state lives in module memory: after a train step the `X.next` outputs are copied onto
 * the `X` inputs inside that memory (no trip through JS arrays). The session tracks which module holds
 * the newest state and copies it across only when another module runs next.
 */
import type { Batch, Session } from '../backend.ts';
import { DlcError, fail } from '../frontend/errors.ts';
import { batchWeight, registerBackend, StepCache } from '../backend.ts';
import { emitWasm, loadBinaryen, wasmMemoryBytes } from '../codegen/wasm.ts';
import { byteLoops } from '../kernel/schedule.ts';
import type { GraphModel as Model, StepFunction, StepKind } from '../frontend/model.ts';
import type { Program } from '../kernel/types.ts';
import { compileStep } from '../pipeline.ts';
import { numel } from '../../ir/types.ts';
import type { WasmProgram } from '../../runtime/wasm.ts';
import { detectRelaxedSimd, instantiateProgram } from '../../runtime/wasm.ts';

/**
 * A built step. It keeps what running needs (the instance, the step's I/O layout, the input and
 * output offsets), not the compile-time records (graphs, kernel program, plan: about 1 MiB for the
 * reference train step), which are garbage once the module is instantiated.
 */
interface Module {
  readonly kind: StepKind;
  readonly step: StepFunction;
  readonly inst: WasmProgram;
  /** Byte offset and element count of each input buffer, by input index. */
  readonly inputAt: readonly { offset: number; count: number }[];
  readonly outputAt: readonly { offset: number; count: number }[];
}

export class WasmSession implements Session {
  readonly backend = 'wasm' as const;
  private readonly modules = new Map<StepKind, Module>();
  private readonly steps: StepCache;
  /** The state as last loaded from the host; authoritative until the first train step. */
  private host = new Map<string, Float32Array | Int32Array>();
  /** Whether the train module's memory holds the newest state (weights and optimizer state). */
  private trainOwns = false;
  /** Bumped whenever the weights change; eval/predict modules recopy them when behind. */
  private version = 0;
  private readonly synced = new Map<StepKind, number>();
  /** The train state as it was before the running step (threads only; see `run`). */
  private shadow: Map<string, Float32Array | Int32Array> | null = null;

  constructor(private readonly model: Model, readonly batch: number, private readonly relaxed: boolean, readonly threads: number) {
    this.steps = new StepCache(model, batch);
  }

  private async module(kind: StepKind): Promise<Module> {
    let m = this.modules.get(kind);
    if (m) return m;
    const step = this.steps.get(kind);
    const compiled = compileStep(this.model, kind, this.batch);
    const threads = stepWork(compiled.program) < SMALL_STEP_WORK ? 1 : this.threads;
    await loadBinaryen(); // on the first Wasm step only (codegen/wasm/binaryen.ts)
    const bytes = emitWasm(compiled.program, compiled.plan, { relaxedSimd: this.relaxed, threads });
    const inst = await instantiateProgram(bytes, {
      label: `${this.model.name}.${kind}`,
      kernels: compiled.program.kernels.map((k) => k.name),
      loops: byteLoops(compiled.program, compiled.plan),
      threads: threads > 1 ? { count: threads, memoryBytes: wasmMemoryBytes(compiled.program, compiled.plan, threads) } : undefined,
    });
    const at = (id: number) => ({ offset: compiled.plan.offsets[id], count: numel(compiled.program.buffers[id].shape) });
    m = { kind, step, inst, inputAt: compiled.program.inputs.map(at), outputAt: compiled.program.outputs.map(at) };
    this.modules.set(kind, m);
    return m;
  }

  private view(m: Module, at: { offset: number; count: number }, i32: boolean): Float32Array | Int32Array {
    const buf = m.inst.memory.buffer;
    return i32 ? new Int32Array(buf, at.offset, at.count) : new Float32Array(buf, at.offset, at.count);
  }

  private stateView(m: Module, name: string): Float32Array | Int32Array {
    const i = m.step.state.get(name);
    if (i === undefined) throw new Error(`wasm session: the ${m.kind} step has no state '${name}'`);
    return this.view(m, m.inputAt[i], m.step.func.inputs[i].dtype !== 'f32');
  }

  /** Newest value of a state buffer, wherever it lives. */
  private current(name: string): Float32Array | Int32Array {
    return this.trainOwns ? this.stateView(this.modules.get('train')!, name) : this.host.get(name)!;
  }

  /** Copy the newest state (or just the weights, for eval/predict) into module `m` if it is behind. */
  private sync(m: Module): void {
    if (m.kind === 'train' ? this.trainOwns : this.synced.get(m.kind) === this.version) return;
    for (const name of m.step.state.keys()) this.stateView(m, name).set(this.current(name));
    if (m.kind === 'train') this.trainOwns = true;
    else this.synced.set(m.kind, this.version);
  }

  load(state: ReadonlyMap<string, Float32Array | Int32Array>): void {
    this.host = new Map([...state].map(([k, v]) => [k, v.slice()]));
    this.trainOwns = false;
    this.version++;
  }

  async flush(): Promise<void> {}

  store(state: Map<string, Float32Array | Int32Array>): void {
    for (const name of this.host.keys()) state.set(name, this.current(name).slice());
  }

  private write(m: Module, batch: Batch): void {
    const s = m.step;
    s.xs.forEach((at, i) => this.view(m, m.inputAt[at], false).set(batch.xs[i]));
    s.ys.forEach((at, i) => this.view(m, m.inputAt[at], s.func.inputs[at].dtype === 'i32').set(batch.ys![i]));
    if (s.mask !== null) this.view(m, m.inputAt[s.mask], false).set(batch.mask!);
    if (s.weight !== null) this.view(m, m.inputAt[s.weight], false).set(batchWeight(batch, s.batch));
  }

  private scalars(m: Module): Record<string, number> {
    const r: Record<string, number> = {};
    for (const [name, i] of m.step.results) r[name] = this.view(m, m.outputAt[i], false)[0];
    return r;
  }

  /**
   * Run module `m`. With threads a worker can fail mid-step, after some state was updated in place:
   * the state is copied aside first and, on failure, becomes the session's state again (the dead
   * module is dropped; the next step builds a new one and starts its own workers).
   */
  private run(m: Module): void {
    // Only a module that really runs on threads (a small step is built for one) can fail half-way.
    if (m.inst.threads === 1) {
      m.inst.run();
      return;
    }
    let before: Map<string, Float32Array | Int32Array> | null = null;
    if (m.kind === 'train') {
      // Into buffers kept between steps: allocating fresh copies every step cost several ms.
      before = this.shadow ??= new Map([...m.step.state.keys()].map((name) => [name, this.stateView(m, name).slice()]));
      for (const [name, v] of before) v.set(this.stateView(m, name));
    }
    try {
      m.inst.run();
    } catch (e) {
      m.inst.dispose();
      this.modules.delete(m.kind);
      this.synced.delete(m.kind);
      if (before) {
        this.host = before;
        this.shadow = null;
        this.trainOwns = false;
        this.version++;
      }
      throw new DlcError(`wasm session: the ${m.kind} step failed and was undone (the model's state is as before it): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
  }

  async train(batch: Batch): Promise<Record<string, number>> {
    const m = await this.module('train');
    this.sync(m);
    this.write(m, batch);
    this.run(m);
    // The next state becomes the current state inside module memory.
    const mem = new Uint8Array(m.inst.memory.buffer);
    for (const u of m.step.updates) {
      const src = m.outputAt[u.output];
      const dst = m.inputAt[u.input].offset;
      if (dst !== src.offset) mem.copyWithin(dst, src.offset, src.offset + src.count * 4);
    }
    this.version++;
    return this.scalars(m);
  }

  async evaluate(batch: Batch): Promise<Record<string, number>> {
    const m = await this.module('eval');
    this.sync(m);
    this.write(m, batch);
    this.run(m);
    return this.scalars(m);
  }

  async predict(xs: readonly Float32Array[]): Promise<Float32Array[]> {
    const m = await this.module('predict');
    this.sync(m);
    this.write(m, { xs });
    this.run(m);
    return m.step.predictions.map((i) => this.view(m, m.outputAt[i], false).slice() as Float32Array);
  }

  dispose(): void {
    for (const m of this.modules.values()) m.inst.dispose();
    this.modules.clear();
  }
}

/**
 * Below this much work (multiply-adds plus elements written) a step runs on one thread even when
 * threads are asked for: the barriers after its kernels cost more than splitting saves. The reference
 * CNN's predict at batch 1 (3.3M) took 0.23 ms on one thread and 0.27 ms on two here; at batch 32
 * two threads were 1.6x faster.
 */
export const SMALL_STEP_WORK = 4_000_000;

/** Multiply-adds of the matmuls plus elements written by every kernel, a loop's kernels once per step. */
export function stepWork(p: Program): number {
  return p.kernels.reduce((w, k, i) => {
    const times = p.loops.filter((l) => l.start <= i && i < l.end).reduce((t, l) => t * l.length, 1);
    return w + numel(k.shape) * (k.kind === 'matmul' ? k.k : 1) * times;
  }, 0);
}

let threadCount: number | null = null;

/**
 * Threads the Wasm backend runs each step on, for sessions made from now on: `n` >= 1, or null for
 * the default (the `DLC_THREADS` environment variable, else 1).
 */
export function setWasmThreads(n: number | null): void {
  if (n !== null && !(Number.isInteger(n) && n >= 1 && n <= 64)) fail(`setWasmThreads: expected an integer from 1 to 64 (or null for the default), got ${String(n)}`);
  threadCount = n;
}

export function wasmThreads(): number {
  if (threadCount !== null) return threadCount;
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.DLC_THREADS;
  if (env === undefined || env === '') return 1;
  const n = Number(env);
  if (!(Number.isInteger(n) && n >= 1 && n <= 64)) fail(`DLC_THREADS must be an integer from 1 to 64, got '${env}'`);
  return n;
}

let relaxed: boolean | null = null;
registerBackend('wasm', async (model, batch) => {
  relaxed ??= detectRelaxedSimd();
  return new WasmSession(model, batch, relaxed, wasmThreads());
});
