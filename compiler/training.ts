/**
 * @file `Sequential` and the Keras training API on top of a backend: `fit`, `evaluate`, `predict`
 * and `trainOnBatch`, and weights in and out as safetensors (`saveWeights`, `loadWeights`).
 *
 * Data is checked in full before the first step (data.ts). Batches are cut from the (optionally
 * shuffled, seeded) data; a final batch smaller than the compiled size is padded with zeros and
 * masked out of the loss and metrics, so every sample counts exactly once and none is dropped.
 * Sessions are cached per backend and batch size; the model's host state is the source of truth
 * between calls, and exactly one session at a time may hold a newer copy (`owner`).
 */
import type { Batch, BackendName, Session } from './backend.ts';
import { backendFactory, availableBackends } from './backend.ts';
import { checkInputs, checkLabels } from './data.ts';
import { DlcError, fail } from './frontend/errors.ts';
import type { Layer } from './frontend/layers.ts';
import type { ModelOptions } from './frontend/model.ts';
import { Model } from './frontend/model.ts';
import type { Tensor } from './frontend/tensor.ts';
import { tensor } from './frontend/tensor.ts';
import { uniformAt } from '../ir/random.ts';
import { numel } from '../ir/types.ts';
import { ProgressBar } from './progress.ts';
import { weightsFromSafetensors, weightsToSafetensors } from './weights.ts';

export interface RunOptions {
  /** Which backend runs the steps (default: `setDefaultBackend`, initially 'wasm'). */
  backend?: BackendName;
  batchSize?: number;
}

export interface FitOptions extends RunOptions {
  epochs?: number;
  validationData?: readonly [unknown, unknown];
  shuffle?: boolean;
  /** 0 silent, 1 progress bar, 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
  /** Seed of the per-epoch shuffle. */
  seed?: number;
  onBatchEnd?: (batch: number, logs: Record<string, number>) => void;
  onEpochEnd?: (epoch: number, logs: Record<string, number>) => void;
}

export interface History {
  readonly epoch: number[];
  readonly history: Record<string, number[]>;
}

let defaultBackend: BackendName = 'wasm';
export function setDefaultBackend(b: BackendName): void {
  if (!backendFactory(b)) fail(`setDefaultBackend: backend '${b}' is not available; available: ${availableBackends().join(', ')}`);
  defaultBackend = b;
}
export function getDefaultBackend(): BackendName {
  return defaultBackend;
}

export class SequentialModel extends Model {
  private readonly sessions = new Map<string, { session: Session; version: number }>();
  private owner: Session | null = null;

  private async session(backend: BackendName | undefined, batch: number): Promise<Session> {
    const name = backend ?? defaultBackend;
    const make = backendFactory(name);
    if (!make) fail(`backend '${name}' is not available; available: ${availableBackends().join(', ')}`);
    const key = `${name}:${batch}`;
    let entry = this.sessions.get(key);
    if (entry && entry.version !== this.version) {
      // compile() or setWeights() changed the state layout or values; rebuild.
      if (this.owner === entry.session) this.owner = null;
      entry.session.dispose();
      entry = undefined;
    }
    if (!entry) {
      await this.owner?.flush();
      this.syncFromOwner();
      entry = { session: await make(this, batch), version: this.version };
      this.sessions.set(key, entry);
      entry.session.load(this.state);
      this.owner = entry.session;
      return entry.session;
    }
    if (this.owner !== entry.session) {
      await this.owner?.flush();
      this.syncFromOwner();
      entry.session.load(this.state);
      this.owner = entry.session;
    }
    return entry.session;
  }

  private syncFromOwner(): void {
    if (this.owner) this.owner.store(this.state);
  }

  /**
   * Make the newest weights readable by `getWeights`/`readState`. `fit` does this when it ends; after
   * `trainOnBatch` on a device backend (WebGPU, whose reads are asynchronous) call it yourself.
   */
  async sync(): Promise<void> {
    await this.owner?.flush();
  }

  override getWeights(): Tensor[] {
    this.syncFromOwner();
    return super.getWeights();
  }

  override setWeights(ws: readonly (Tensor | Float32Array)[]): void {
    this.syncFromOwner();
    this.owner = null;
    super.setWeights(ws);
  }

  override compile(cfg: Parameters<Model['compile']>[0]): void {
    this.syncFromOwner();
    this.owner = null;
    super.compile(cfg);
  }

  /**
   * The current weights as safetensors bytes, tensors named `<layer>.<weight>` (write them to a
   * `.safetensors` file; `loadWeights`, `dlc train --weights` and artifacts read them back).
   */
  async saveWeights(): Promise<Uint8Array> {
    await this.sync();
    return weightsToSafetensors(this.weightInfo, this.getWeights().map((t) => t.data as Float32Array));
  }

  /**
   * Replace the weights with those in safetensors `bytes`, matched by name (extra tensors ignored);
   * `source` names the file in errors. Optimizer state is left as it is.
   */
  loadWeights(bytes: Uint8Array, source = 'weights'): void {
    if (!(bytes instanceof Uint8Array)) fail(`loadWeights: expected the bytes of a safetensors file (Uint8Array), got ${typeof bytes}`);
    this.setWeights(weightsFromSafetensors(this.weightInfo, bytes, source));
  }

  /** Copy out the persistent state (weights and optimizer state) by name. */
  readState(): Map<string, Float32Array | Int32Array> {
    this.syncFromOwner();
    return new Map([...this.state].map(([k, v]) => [k, v.slice()]));
  }

  async fit(x: unknown, y: unknown, opts: FitOptions = {}): Promise<History> {
    const c = this.compiled ?? fail('fit: call model.compile({optimizer, loss}) first');
    const epochs = opts.epochs ?? 1;
    const batchSize = opts.batchSize ?? 32;
    if (!Number.isInteger(epochs) || epochs < 1) fail(`fit: epochs must be a positive integer, got ${String(epochs)}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) fail(`fit: batchSize must be a positive integer, got ${String(batchSize)}`);
    const xs = checkInputs(x, this.inputShape, 'x');
    const ys = checkLabels(y, c.loss, this.outputShape, xs.n, 'y');
    if (xs.n === 0) fail('fit: x has no samples');
    let val: { x: Float32Array; y: Float32Array | Int32Array; n: number } | null = null;
    if (opts.validationData) {
      const vx = checkInputs(opts.validationData[0], this.inputShape, 'validationData[0]');
      val = { x: vx.data, y: checkLabels(opts.validationData[1], c.loss, this.outputShape, vx.n, 'validationData[1]'), n: vx.n };
    }
    const session = await this.session(opts.backend, batchSize);
    const verbose = opts.verbose ?? 1;
    const history: History = { epoch: [], history: {} };
    const steps = Math.ceil(xs.n / batchSize);
    for (let e = 0; e < epochs; e++) {
      if (verbose) process.stdout.write(`Epoch ${e + 1}/${epochs}\n`);
      const order = opts.shuffle === false ? identity(xs.n) : permutation(xs.n, opts.seed ?? 0, e);
      const bar = verbose === 1 ? new ProgressBar(steps) : null;
      const sums: Record<string, number> = {};
      let seen = 0;
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) {
        const idx = order.subarray(s * batchSize, Math.min((s + 1) * batchSize, xs.n));
        const r = await session.train(gatherBatch(xs.data, ys, idx, batchSize, this.inputShape, this.outputShape, ys instanceof Int32Array));
        for (const [k, v] of Object.entries(r)) sums[k] = (sums[k] ?? 0) + v * idx.length;
        seen += idx.length;
        const logs = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / seen]));
        opts.onBatchEnd?.(s, logs);
        bar?.update(s + 1, seen, logs, s + 1 === steps);
      }
      const logs: Record<string, number> = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / seen]));
      if (val) {
        const vr = await this.evaluateArrays(val.x, val.y, val.n, batchSize, opts.backend);
        for (const [k, v] of Object.entries(vr)) logs[`val_${k}`] = v;
      }
      history.epoch.push(e);
      for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
      opts.onEpochEnd?.(e, logs);
      if (verbose) {
        const secs = (performance.now() - t0) / 1000;
        const parts = Object.entries(logs).map(([k, v]) => `${k}: ${v.toFixed(4)}`).join(' - ');
        if (verbose === 2 || val) process.stdout.write(`epoch ${e + 1}: ${secs.toFixed(1)}s - ${(seen / secs).toFixed(0)} samples/s - ${parts}\n`);
      }
    }
    await session.flush();
    return history;
  }

  async trainOnBatch(x: unknown, y: unknown, opts: RunOptions = {}): Promise<Record<string, number>> {
    const c = this.compiled ?? fail('trainOnBatch: call model.compile({optimizer, loss}) first');
    const xs = checkInputs(x, this.inputShape, 'x');
    const ys = checkLabels(y, c.loss, this.outputShape, xs.n, 'y');
    const bs = opts.batchSize ?? xs.n;
    if (xs.n > bs || xs.n === 0) fail(`trainOnBatch: got ${xs.n} samples for batch size ${bs}`);
    const session = await this.session(opts.backend, bs);
    return session.train(gatherBatch(xs.data, ys, identity(xs.n), bs, this.inputShape, this.outputShape, ys instanceof Int32Array));
  }

  async evaluate(x: unknown, y: unknown, opts: RunOptions = {}): Promise<Record<string, number>> {
    const c = this.compiled ?? fail('evaluate: call model.compile({optimizer, loss}) first');
    const xs = checkInputs(x, this.inputShape, 'x');
    const ys = checkLabels(y, c.loss, this.outputShape, xs.n, 'y');
    if (xs.n === 0) fail('evaluate: x has no samples');
    return this.evaluateArrays(xs.data, ys, xs.n, opts.batchSize ?? 32, opts.backend);
  }

  private async evaluateArrays(x: Float32Array, y: Float32Array | Int32Array, n: number, batchSize: number, backend?: BackendName): Promise<Record<string, number>> {
    const session = await this.session(backend, batchSize);
    const sums: Record<string, number> = {};
    const all = identity(n);
    for (let s = 0; s < n; s += batchSize) {
      const idx = all.subarray(s, Math.min(s + batchSize, n));
      const r = await session.evaluate(gatherBatch(x, y, idx, batchSize, this.inputShape, this.outputShape, y instanceof Int32Array));
      for (const [k, v] of Object.entries(r)) sums[k] = (sums[k] ?? 0) + v * idx.length;
    }
    return Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / n]));
  }

  /** Outputs for every sample of `x`, as one tensor [N, ...outputShape]. */
  async predict(x: unknown, opts: RunOptions = {}): Promise<Tensor> {
    const xs = checkInputs(x, this.inputShape, 'x');
    const bs = opts.batchSize ?? 32;
    const session = await this.session(opts.backend, bs);
    const per = numel(this.outputShape);
    const out = new Float32Array(xs.n * per);
    const inPer = numel(this.inputShape);
    const buf = new Float32Array(bs * inPer);
    for (let s = 0; s < xs.n; s += bs) {
      const m = Math.min(bs, xs.n - s);
      buf.fill(0);
      buf.set(xs.data.subarray(s * inPer, (s + m) * inPer));
      const r = await session.predict(buf);
      out.set(r.subarray(0, m * per), s * per);
    }
    return tensor(out, [xs.n, ...this.outputShape], 'f32');
  }
}

function identity(n: number): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
}

/** A seeded Fisher-Yates shuffle; epoch `e` gets its own order (fit's, and `dlc train` on an artifact's). */
export function permutation(n: number, seed: number, e: number): Uint32Array {
  const a = identity(n);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniformAt(seed ^ 0x5bd1e995, e, i) * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** Copy samples `idx` into a full batch of `size`; rows past idx.length stay zero with mask 0. */
function gatherBatch(
  x: Float32Array,
  y: Float32Array | Int32Array,
  idx: Uint32Array,
  size: number,
  inShape: readonly number[],
  outShape: readonly number[],
  sparse: boolean,
): Batch {
  const inPer = numel(inShape);
  const yPer = sparse ? 1 : numel(outShape);
  const bx = new Float32Array(size * inPer);
  const by = sparse ? new Int32Array(size) : new Float32Array(size * yPer);
  const mask = new Float32Array(size);
  idx.forEach((src, i) => {
    bx.set(x.subarray(src * inPer, (src + 1) * inPer), i * inPer);
    by.set(y.subarray(src * yPer, (src + 1) * yPer), i * yPer);
    mask[i] = 1;
  });
  return { x: bx, y: by, mask };
}

/** Build a Sequential model from a list of layers (Keras: `keras.Sequential([...])`). */
export function Sequential(layers: readonly Layer[], opts?: ModelOptions): SequentialModel {
  if (!Array.isArray(layers)) throw new DlcError('Sequential: expected an array of layers');
  return new SequentialModel(layers, opts);
}
