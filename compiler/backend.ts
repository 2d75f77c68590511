/**
 * @file The contract between the training loop and an execution backend, and the reference backend.
 *
 * A `Session` runs the step functions of one model at one batch size on one backend. It owns a copy
 * of the model's persistent state (weights, optimizer slots, step counter): `load` copies the host
 * state in, `store` copies it back. Train steps update that copy in place, so a backend keeps weights
 * on its device between steps and hands them back only when asked.
 *
 * The `interp` backend runs every step in the f64 reference interpreter. It is slow and exact: the
 * definition the compiled backends are tested against, and usable for small models anywhere.
 */
import { interpret } from '../ir/interp.ts';
import type { GraphModel as Model, StepFunction, StepKind } from './frontend/model.ts';

export type BackendName = 'interp' | 'wasm' | 'webgpu';

/** One batch of data: a buffer per model input, per output's labels (train/eval), and the sample mask. */
export interface Batch {
  readonly xs: readonly Float32Array[];
  readonly ys?: readonly (Float32Array | Int32Array)[];
  readonly mask?: Float32Array;
  /** Per-sample loss weights (Keras's sample_weight); ones when absent. */
  readonly weight?: Float32Array;
}

/** The batch's sample weights, ones when it has none. */
export function batchWeight(batch: Batch, size: number): Float32Array {
  return batch.weight ?? new Float32Array(size).fill(1);
}

export interface Session {
  readonly backend: BackendName;
  readonly batch: number;
  load(state: ReadonlyMap<string, Float32Array | Int32Array>): void;
  /** Copy the state out. May throw if the newest state is on a device and `flush` was not awaited. */
  store(state: Map<string, Float32Array | Int32Array>): void;
  /** Bring the newest state within reach of `store` (a device read-back; a no-op for host memory). */
  flush(): Promise<void>;
  /** One optimizer step; returns the batch's loss and metrics. */
  train(batch: Batch): Promise<Record<string, number>>;
  evaluate(batch: Batch): Promise<Record<string, number>>;
  /** One output buffer per model output, for one buffer per model input. */
  predict(xs: readonly Float32Array[]): Promise<Float32Array[]>;
  dispose(): void;
}

export type SessionFactory = (model: Model, batch: number) => Promise<Session>;

/** Step functions built on first use and kept for the session's life. */
export class StepCache {
  private readonly steps = new Map<StepKind, StepFunction>();
  constructor(readonly model: Model, readonly batch: number) {}
  get(kind: StepKind): StepFunction {
    let s = this.steps.get(kind);
    if (!s) {
      s = this.model.stepFunction(kind, this.batch);
      this.steps.set(kind, s);
    }
    return s;
  }
}

/** Arguments for a step function in input order: batch data, then state by name. */
export function stepArgs(step: StepFunction, batch: Batch, state: ReadonlyMap<string, Float32Array | Int32Array>): (Float32Array | Int32Array)[] {
  const args = new Array<Float32Array | Int32Array>(step.func.inputs.length);
  step.xs.forEach((at, i) => (args[at] = batch.xs[i]));
  step.ys.forEach((at, i) => (args[at] = batch.ys![i]));
  if (step.mask !== null) args[step.mask] = batch.mask!;
  if (step.weight !== null) args[step.weight] = batchWeight(batch, step.batch);
  for (const [name, i] of step.state) args[i] = state.get(name)!;
  return args;
}

class InterpSession implements Session {
  readonly backend = 'interp' as const;
  private readonly state = new Map<string, Float32Array | Int32Array>();
  private readonly steps: StepCache;
  constructor(model: Model, readonly batch: number) {
    this.steps = new StepCache(model, batch);
  }
  load(state: ReadonlyMap<string, Float32Array | Int32Array>): void {
    this.state.clear();
    for (const [k, v] of state) this.state.set(k, v.slice());
  }
  store(state: Map<string, Float32Array | Int32Array>): void {
    for (const [k, v] of this.state) state.set(k, v.slice());
  }
  async flush(): Promise<void> {}
  private scalars(step: StepFunction, outs: { data: Float64Array }[]): Record<string, number> {
    const r: Record<string, number> = {};
    for (const [name, i] of step.results) r[name] = outs[i].data[0];
    return r;
  }
  async train(batch: Batch): Promise<Record<string, number>> {
    const step = this.steps.get('train');
    const outs = interpret(step.func, stepArgs(step, batch, this.state));
    for (const u of step.updates) {
      const name = step.func.inputs[u.input].params.name;
      const prev = this.state.get(name)!;
      this.state.set(name, prev instanceof Int32Array ? Int32Array.from(outs[u.output].data) : Float32Array.from(outs[u.output].data));
    }
    return this.scalars(step, outs);
  }
  async evaluate(batch: Batch): Promise<Record<string, number>> {
    const step = this.steps.get('eval');
    return this.scalars(step, interpret(step.func, stepArgs(step, batch, this.state)));
  }
  async predict(xs: readonly Float32Array[]): Promise<Float32Array[]> {
    const step = this.steps.get('predict');
    const outs = interpret(step.func, stepArgs(step, { xs }, this.state));
    return step.predictions.map((i) => Float32Array.from(outs[i].data));
  }
  dispose(): void {
    this.state.clear();
  }
}

const factories = new Map<BackendName, SessionFactory>([['interp', async (m, b) => new InterpSession(m, b)]]);

/** Backends register here (the Wasm and WebGPU backends add themselves when imported). */
export function registerBackend(name: BackendName, f: SessionFactory): void {
  factories.set(name, f);
}

export function backendFactory(name: BackendName): SessionFactory | undefined {
  return factories.get(name);
}

export function availableBackends(): BackendName[] {
  return [...factories.keys()];
}
