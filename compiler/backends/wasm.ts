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
import { batchWeight, registerBackend, StepCache } from '../backend.ts';
import { emitWasm } from '../codegen/wasm.ts';
import { byteLoops } from '../kernel/schedule.ts';
import type { GraphModel as Model, StepFunction, StepKind } from '../frontend/model.ts';
import type { Compiled } from '../pipeline.ts';
import { compileStep } from '../pipeline.ts';
import { numel } from '../../ir/types.ts';
import type { WasmProgram } from '../../runtime/wasm.ts';
import { detectRelaxedSimd, instantiateProgram } from '../../runtime/wasm.ts';

interface Module {
  readonly kind: StepKind;
  readonly step: StepFunction;
  readonly compiled: Compiled;
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

  constructor(private readonly model: Model, readonly batch: number, private readonly relaxed: boolean) {
    this.steps = new StepCache(model, batch);
  }

  private async module(kind: StepKind): Promise<Module> {
    let m = this.modules.get(kind);
    if (m) return m;
    const step = this.steps.get(kind);
    const compiled = compileStep(this.model, kind, this.batch);
    const bytes = emitWasm(compiled.program, compiled.plan, { relaxedSimd: this.relaxed });
    const inst = await instantiateProgram(bytes, { label: `${this.model.name}.${kind}`, kernels: compiled.program.kernels.map((k) => k.name), loops: byteLoops(compiled.program, compiled.plan) });
    const at = (id: number) => ({ offset: compiled.plan.offsets[id], count: numel(compiled.program.buffers[id].shape) });
    m = { kind, step, compiled, inst, inputAt: compiled.program.inputs.map(at), outputAt: compiled.program.outputs.map(at) };
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

  async train(batch: Batch): Promise<Record<string, number>> {
    const m = await this.module('train');
    this.sync(m);
    this.write(m, batch);
    m.inst.run();
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
    m.inst.run();
    return this.scalars(m);
  }

  async predict(xs: readonly Float32Array[]): Promise<Float32Array[]> {
    const m = await this.module('predict');
    this.sync(m);
    this.write(m, { xs });
    m.inst.run();
    return m.step.predictions.map((i) => this.view(m, m.outputAt[i], false).slice() as Float32Array);
  }

  dispose(): void {
    this.modules.clear();
  }
}

let relaxed: boolean | null = null;
registerBackend('wasm', async (model, batch) => {
  relaxed ??= detectRelaxedSimd();
  return new WasmSession(model, batch, relaxed);
});
