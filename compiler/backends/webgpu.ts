/**
 * @file The WebGPU backend: compiles each step function of a model (train, eval, predict) at one
 * batch size into WGSL kernels over one arena buffer and runs them through runtime/webgpu.ts.
 *
 * Mirrors the Wasm backend (compiler/backends/wasm.ts): one program per step kind, each with its own
 * arena laid out by the memory plan. A step writes the batch into the input buffers, submits every
 * kernel in one command buffer and reads back only the scalars it returns (one staging copy). The
 * persistent state lives on the GPU: after a train step the `X.next` outputs are copied onto the `X`
 * inputs inside the arena, encoded in the same command buffer as the kernels. Eval and predict
 * programs get the newest weights by a GPU-to-GPU copy from the train program's arena when they are
 * behind; nothing goes through the host.
 *
 * Reading GPU memory is asynchronous, while `Session.store` is synchronous: the session keeps a host
 * mirror of the state that `flush()` (async) refreshes from the GPU. `store` returns the mirror when
 * it is current (after `load`, or after `flush` with no train step since) and throws a DlcError
 * otherwise, rather than hand back stale weights.
 *
 * All sessions share one device, requested once per process with the adapter's largest buffer
 * limits; a program whose arena exceeds them fails with the limit and both sizes named.
 */
import type { Batch, Session } from '../backend.ts';
import { batchWeight, registerBackend, StepCache } from '../backend.ts';
import { emitWgsl } from '../codegen/wgsl.ts';
import { DlcError } from '../frontend/errors.ts';
import type { GraphModel as Model, StepFunction, StepKind } from '../frontend/model.ts';
import { compileStep } from '../pipeline.ts';
import { numel } from '../../ir/types.ts';
import type { ArenaCopy, GpuProgram } from '../../runtime/webgpu.ts';
import { byteLoops } from '../kernel/schedule.ts';
import { copyBetween, createProgram, getGpu, GpuUnavailableError, kernelLimits, requestGpuDevice } from '../../runtime/webgpu.ts';

interface Slot {
  readonly offset: number;
  readonly count: number;
  readonly i32: boolean;
}

/** A built step: what running needs, not the compile-time records (graphs, kernel program, plan). */
interface Module {
  readonly kind: StepKind;
  readonly step: StepFunction;
  readonly prog: GpuProgram;
  /** Byte offset, element count and dtype of each input / output buffer, by index. */
  readonly inputAt: readonly Slot[];
  readonly outputAt: readonly Slot[];
  /** Train only: the `X.next` -> `X` copies that end every step. */
  readonly updates: readonly ArenaCopy[];
}

type HostState = Map<string, Float32Array | Int32Array>;

export class WebGpuSession implements Session {
  readonly backend = 'webgpu' as const;
  private readonly modules = new Map<StepKind, Promise<Module>>();
  private readonly steps: StepCache;
  /** Host copy of the state: authoritative until the first train step, then a mirror `flush` refreshes. */
  private host: HostState = new Map();
  /** Whether the train program's arena holds the newest state. */
  private trainOwns = false;
  /** Whether `host` equals the newest state. */
  private hostFresh = true;
  /** Bumped whenever the weights change; eval/predict programs recopy them when behind. */
  private version = 0;
  private readonly synced = new Map<StepKind, number>();
  private disposed = false;

  constructor(private readonly model: Model, readonly batch: number, private readonly device: GPUDevice) {
    this.steps = new StepCache(model, batch);
  }

  private module(kind: StepKind): Promise<Module> {
    // After dispose nothing new is built (a step in flight must not leave a program behind).
    if (this.disposed) return Promise.reject(new DlcError('webgpu session: used after dispose()'));
    let m = this.modules.get(kind);
    if (!m) {
      m = this.build(kind);
      this.modules.set(kind, m);
      m.catch(() => this.modules.delete(kind));
    }
    return m;
  }

  private async build(kind: StepKind): Promise<Module> {
    const step = this.steps.get(kind);
    const compiled = compileStep(this.model, kind, this.batch);
    const { program, plan } = compiled;
    const { kernels } = emitWgsl(program, plan, kernelLimits(this.device));
    let prog: GpuProgram;
    try {
      prog = await createProgram(this.device, kernels, plan.totalBytes, `${this.model.name}.${kind}`, byteLoops(program, plan));
    } catch (e) {
      if (e instanceof GpuUnavailableError) throw new DlcError(`webgpu backend, ${kind} step at batch ${this.batch}: ${e.message}`);
      throw e;
    }
    const at = (id: number): Slot => ({ offset: plan.offsets[id], count: numel(program.buffers[id].shape), i32: program.buffers[id].dtype !== 'f32' });
    const inputAt = program.inputs.map(at);
    const outputAt = program.outputs.map(at);
    const updates = step.updates.map((u) => ({ src: outputAt[u.output].offset, dst: inputAt[u.input].offset, bytes: outputAt[u.output].count * 4 })).filter((c) => c.src !== c.dst);
    return { kind, step, prog, inputAt, outputAt, updates };
  }

  private stateSlot(m: Module, name: string): Slot {
    const i = m.step.state.get(name);
    if (i === undefined) throw new Error(`webgpu session: the ${m.kind} step has no state '${name}'`);
    return m.inputAt[i];
  }

  private write(m: Module, slot: Slot, data: Float32Array | Int32Array | undefined, what: string): void {
    if (!data) throw new DlcError(`webgpu session: the ${m.kind} step needs '${what}' but the batch has none`);
    if (data.length !== slot.count) throw new DlcError(`webgpu session: '${what}' has ${data.length} values, the ${m.kind} step at batch ${this.batch} expects ${slot.count}`);
    // Raw bytes go to the GPU: convert when the array's type is not the buffer's.
    const typed = slot.i32 ? (data instanceof Int32Array ? data : Int32Array.from(data)) : data instanceof Float32Array ? data : Float32Array.from(data);
    m.prog.write(slot.offset, typed);
  }

  /** Copy the newest state (or just the weights, for eval/predict) into module `m` if it is behind. */
  private async sync(m: Module): Promise<void> {
    if (m.kind === 'train' ? this.trainOwns : this.synced.get(m.kind) === this.version) return;
    if (this.trainOwns && m.kind !== 'train') {
      const t = await this.module('train');
      const copies = [...m.step.state.keys()].map((name) => {
        const s = this.stateSlot(t, name);
        return { src: s.offset, dst: this.stateSlot(m, name).offset, bytes: s.count * 4 };
      });
      copyBetween(t.prog, m.prog, copies);
    } else {
      for (const name of m.step.state.keys()) {
        const v = this.host.get(name);
        if (!v) throw new DlcError(`webgpu session: no value loaded for state '${name}' (call load() first)`);
        this.write(m, this.stateSlot(m, name), v, name);
      }
    }
    if (m.kind === 'train') this.trainOwns = true;
    else this.synced.set(m.kind, this.version);
  }

  load(state: ReadonlyMap<string, Float32Array | Int32Array>): void {
    this.host = new Map([...state].map(([k, v]) => [k, v.slice()]));
    this.trainOwns = false;
    this.hostFresh = true;
    this.version++;
  }

  /**
   * The newest state as of the last `load` or `flush`. Throws if a train step ran since: the state is
   * on the GPU and only `await flush()` can read it (WebGPU reads are asynchronous).
   */
  store(state: Map<string, Float32Array | Int32Array>): void {
    if (!this.hostFresh) {
      throw new DlcError('webgpu session: the newest weights are on the GPU; call `await session.flush()` before store() (GPU reads are asynchronous)');
    }
    for (const [name, v] of this.host) state.set(name, v.slice());
  }

  /** Read the state back from the GPU into the host mirror (one staging copy), so `store` can hand it out. */
  async flush(): Promise<void> {
    if (this.hostFresh || !this.trainOwns) return;
    const t = await this.module('train');
    const names = [...this.host.keys()];
    const slots = names.map((n) => this.stateSlot(t, n));
    const data = await t.prog.readMany(slots.map((s) => ({ offset: s.offset, count: s.count, dtype: s.i32 ? 'i32' : 'f32' })));
    names.forEach((n, i) => this.host.set(n, data[i]));
    this.hostFresh = true;
  }

  private writeBatch(m: Module, batch: Batch): void {
    const s = m.step;
    s.xs.forEach((at, i) => this.write(m, m.inputAt[at], batch.xs[i], 'x'));
    s.ys.forEach((at, i) => this.write(m, m.inputAt[at], batch.ys?.[i], 'y'));
    if (s.mask !== null) this.write(m, m.inputAt[s.mask], batch.mask, 'mask');
    if (s.weight !== null) this.write(m, m.inputAt[s.weight], batchWeight(batch, s.batch), 'sample_weight');
  }

  private async scalars(m: Module): Promise<Record<string, number>> {
    const entries = [...m.step.results];
    const slots = entries.map(([, i]) => m.outputAt[i]);
    const vals = await m.prog.readMany(slots.map((s) => ({ offset: s.offset, count: 1, dtype: s.i32 ? 'i32' : 'f32' })));
    const r: Record<string, number> = {};
    entries.forEach(([name], i) => (r[name] = vals[i][0]));
    return r;
  }

  private live(): void {
    if (this.disposed) throw new DlcError('webgpu session: used after dispose()');
  }

  async train(batch: Batch): Promise<Record<string, number>> {
    this.live();
    const m = await this.module('train');
    await this.sync(m);
    this.writeBatch(m, batch);
    m.prog.run(m.updates);
    this.version++;
    this.hostFresh = false;
    return this.scalars(m);
  }

  async evaluate(batch: Batch): Promise<Record<string, number>> {
    this.live();
    const m = await this.module('eval');
    await this.sync(m);
    this.writeBatch(m, batch);
    m.prog.run();
    return this.scalars(m);
  }

  async predict(xs: readonly Float32Array[]): Promise<Float32Array[]> {
    this.live();
    const m = await this.module('predict');
    await this.sync(m);
    m.step.xs.forEach((at, i) => this.write(m, m.inputAt[at], xs[i], 'x'));
    m.prog.run();
    const slots = m.step.predictions.map((i) => m.outputAt[i]);
    return (await m.prog.readMany(slots.map((o) => ({ offset: o.offset, count: o.count, dtype: 'f32' as const })))) as Float32Array[];
  }

  /** Destroy every program's GPU buffers and drop its error listener (programs still building, once built). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const m of this.modules.values()) m.then((x) => x.prog.destroy(), () => undefined);
    this.modules.clear();
  }
}

let devicePromise: Promise<GPUDevice> | null = null;

/** The process-wide device (the adapter's largest buffer limits), or a DlcError naming why there is none. */
export function webgpuDevice(): Promise<GPUDevice> {
  devicePromise ??= requestGpuDevice().then(
    (d) => {
      // A lost device is not coming back: the next session asks for a new one.
      void d.lost.then(() => {
        devicePromise = null;
      });
      return d;
    },
    (e: unknown) => {
      devicePromise = null;
      const msg = e instanceof Error ? e.message : String(e);
      throw new DlcError(
        `backend 'webgpu' is not available: ${msg}. In Node, WebGPU comes from the 'webgpu' npm package (Dawn) and needs a Vulkan, Metal or D3D12 driver (on Linux without a GPU, Mesa's lavapipe); in a browser, WebGPU must be enabled. Use --backend wasm otherwise.`,
      );
    },
  );
  return devicePromise;
}

registerBackend('webgpu', async (model, batch) => new WebGpuSession(model, batch, await webgpuDevice()));

/**
 * A one-line description of this host's WebGPU adapter (e.g. `llvmpipe: Mesa 25.0.7`), or null when
 * there is none. The CLI uses it to fall back to Wasm with a notice instead of failing.
 */
export async function webgpuAdapterInfo(): Promise<string | null> {
  try {
    const gpu = await getGpu();
    const adapter = await gpu?.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return null;
    const info = adapter.info as { vendor?: string; architecture?: string; description?: string } | undefined;
    return [info?.description, info?.vendor, info?.architecture].find((s) => s && s.length) ?? 'WebGPU adapter';
  } catch {
    return null;
  }
}
