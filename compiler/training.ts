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
import type { Callback } from './callbacks.ts';
import { backendFactory, availableBackends } from './backend.ts';
import { checkInputs, checkLabels, checkSampleWeight, classWeights } from './data.ts';
import { DlcError, fail } from './frontend/errors.ts';
import type { Layer } from './frontend/layers.ts';
import type { Compiled, ModelConfig, ModelOptions } from './frontend/model.ts';
import { EmbeddingLayer } from './frontend/layers/recurrent.ts';
import { chain, GraphModel } from './frontend/model.ts';
import type { Optimizer } from './frontend/optimizers.ts';
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

/** Keras's per-sample weighting of the loss (fit, trainOnBatch, evaluate). */
export interface WeightOptions {
  /**
   * One weight >= 0 per sample (Keras's sample_weight), applied to every output's loss:
   * loss = Σ loss·w / (number of samples), and to `weightedMetrics` (Σ v·w / Σ w).
   */
  sampleWeight?: unknown;
}

/** Per-class weights (Keras's class_weight): a sample weighs its class's weight, 1 if unlisted. */
export interface ClassWeightOptions {
  classWeight?: Readonly<Record<number, number>>;
}

export interface FitOptions extends RunOptions, WeightOptions, ClassWeightOptions {
  epochs?: number;
  /** [x, y] or [x, y, sampleWeight], evaluated after every epoch. */
  validationData?: readonly [unknown, unknown] | readonly [unknown, unknown, unknown];
  shuffle?: boolean;
  /** 0 silent, 1 progress bar, 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
  /** Seed of the per-epoch shuffle. */
  seed?: number;
  onBatchEnd?: (batch: number, logs: Record<string, number>) => void;
  onEpochEnd?: (epoch: number, logs: Record<string, number>) => void;
  /** Keras callbacks (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, ...; compiler/callbacks.ts). */
  callbacks?: readonly Callback[];
  /** Hold out the last fraction of the samples (before shuffling) for validation, as Keras does. */
  validationSplit?: number;
  /** The epoch to start from (for resuming): epochs run from initialEpoch to epochs − 1. */
  initialEpoch?: number;
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

/** Per-input data checked and converted: sample count and one f32 array per model input. */
interface Inputs {
  readonly n: number;
  readonly data: readonly Float32Array[];
}

const isTensorLike = (v: unknown): boolean => !!v && typeof v === 'object' && 'data' in v && 'shape' in v;

/**
 * The arrays of `v` in the order of `names` (the model's inputs, or its outputs for labels): one
 * tensor when there is one name, a list in that order, or an object keyed by name.
 */
function byName(v: unknown, names: readonly string[], what: string, kind: 'input' | 'output'): unknown[] {
  const arrays = kind === 'input' ? 'input arrays' : 'label arrays';
  if (isTensorLike(v)) {
    if (names.length !== 1) fail(`${what}: the model has ${names.length} ${kind}s (${names.join(', ')}); pass a list in that order or an object keyed by ${kind} name`);
    return [v];
  }
  if (Array.isArray(v) && v.every(isTensorLike)) {
    if (v.length !== names.length) fail(`${what}: expected ${names.length} ${arrays} (${names.join(', ')}), got ${v.length}`);
    return v;
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!names.includes(k)) fail(`${what}: no model ${kind} is named '${k}'; the ${kind}s are ${names.join(', ')}`);
    return names.map((n) => (n in o ? o[n] : fail(`${what}: missing ${kind === 'input' ? 'input' : 'labels for output'} '${n}' (the ${kind}s are ${names.join(', ')})`)));
  }
  return fail(`${what}: expected a tensor {data, shape}${names.length > 1 ? `, a list of them or an object keyed by ${kind} name` : ''}, got ${v === null ? 'null' : typeof v}`);
}

export class LayersModel extends GraphModel {
  private readonly sessions = new Map<string, { session: Session; version: number }>();
  private owner: Session | null = null;

  /** State values set on the host since the last step (the learning rate), applied before the next one. */
  private readonly pendingState = new Map<string, Float32Array>();

  /**
   * The compiled optimizer: its settings, and its learning rate, which `model.optimizer.learningRate
   * = x` changes between steps without recompiling (it is state of the train step, as in Keras). A
   * learning-rate schedule is part of the compiled step: compile again to change it.
   */
  get optimizer(): { readonly config: Optimizer; learningRate: number } {
    const c = this.compiled;
    if (!c) fail('model.optimizer: call model.compile({optimizer, loss}) first');
    const o = c.optimizer;
    const name = `${o.kind}.learning_rate`;
    const model = this;
    return {
      config: o,
      get learningRate(): number {
        if (typeof o.learningRate !== 'number') fail(`model.optimizer.learningRate: the optimizer follows a ${o.learningRate.kind} schedule, whose rate depends on the step`);
        return (model.pendingState.get(name) ?? (model.readState().get(name) as Float32Array))[0];
      },
      set learningRate(v: number) {
        if (typeof o.learningRate !== 'number') fail(`model.optimizer.learningRate: the optimizer follows a ${o.learningRate.kind} schedule; compile again with a number or another schedule to change it`);
        if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) fail(`model.optimizer.learningRate: must be a non-negative number, got ${String(v)}`);
        model.pendingState.set(name, Float32Array.of(v));
      },
    };
  }

  private async session(backend: BackendName | undefined, batch: number): Promise<Session> {
    if (this.pendingState.size) {
      // Host-set state: bring the newest state home, change it, and have every session reload it.
      await this.owner?.flush();
      this.syncFromOwner();
      for (const [k, v] of this.pendingState) this.state.set(k, v);
      this.pendingState.clear();
      this.owner = null;
    }
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

  /**
   * Release every backend session of this model (Wasm memory, WebGPU buffers, pipelines and
   * listeners) after bringing the newest state back to the host. The model stays usable: its next
   * call builds a session again.
   */
  async dispose(): Promise<void> {
    await this.sync();
    this.syncFromOwner();
    this.owner = null;
    for (const e of this.sessions.values()) e.session.dispose();
    this.sessions.clear();
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

  override compile(cfg: Parameters<GraphModel['compile']>[0]): void {
    this.syncFromOwner();
    this.owner = null;
    super.compile(cfg);
  }

  /**
   * The current weights (trainable and not) as safetensors bytes, tensors named `<layer>.<weight>`
   * (write them to a `.safetensors` file; `loadWeights`, `dlc train --weights` and artifacts read them back).
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

  /**
   * Model inputs: one tensor for a one-input model, else a list in `inputs` order or an object keyed
   * by input name; every input must hold the same number of samples.
   */
  private checkX(x: unknown, what: string): Inputs {
    const names = this.inputNames;
    const parts = byName(x, names, what, 'input');
    const label = (i: number) => (names.length === 1 ? what : `${what} input '${names[i]}'`);
    const checked = parts.map((p, i) => checkInputs(p, this.inputs[i].shape, label(i)));
    checked.forEach((c, i) => {
      if (c.n !== checked[0].n) fail(`${label(i)} has ${c.n} samples, ${label(0)} has ${checked[0].n}`);
    });
    // Token ids an Embedding reads straight from a model input must be integers in its range, checked
    // before any step runs (the one-hot lookup would silently give a zero vector).
    for (const { input, layer, inputDim } of this.tokenInputs()) {
      const d = checked[input].data;
      const per = d.length / Math.max(checked[input].n, 1);
      for (let k = 0; k < d.length; k++) {
        const v = d[k];
        if (!(Number.isInteger(v) && v >= 0 && v < inputDim)) {
          fail(`${label(input)}: sample ${Math.floor(k / per)} has token ${v} at position ${k % per}, but ${layer} takes integers in [0, ${inputDim})`);
        }
      }
    }
    return { n: checked[0]?.n ?? 0, data: checked.map((c) => c.data) };
  }

  /** Model inputs that feed an Embedding directly: their token ids are checked on the host. */
  private tokenInputs(): { input: number; layer: string; inputDim: number }[] {
    const out: { input: number; layer: string; inputDim: number }[] = [];
    for (const l of this.layers) {
      if (!(l instanceof EmbeddingLayer)) continue;
      for (const c of l.calls) {
        const i = this.inputs.indexOf(c.inputs[0]);
        if (i >= 0) out.push({ input: i, layer: l.label, inputDim: l.inputDim });
      }
    }
    return out;
  }

  /** Labels: one tensor for a one-output model, else a list in output order or keyed by output name. */
  private checkY(y: unknown, c: Compiled, n: number, what: string): (Float32Array | Int32Array)[] {
    const names = this.outputNames;
    const parts = byName(y, names, what, 'output');
    return parts.map((p, i) => checkLabels(p, c.losses[i], this.outputs[i].shape, n, names.length === 1 ? what : `${what} output '${names[i]}'`));
  }

  async fit(x: unknown, y: unknown, opts: FitOptions = {}): Promise<History> {
    const c = this.compiled ?? fail('fit: call model.compile({optimizer, loss}) first');
    const epochs = opts.epochs ?? 1;
    const batchSize = opts.batchSize ?? 32;
    const initialEpoch = opts.initialEpoch ?? 0;
    if (!Number.isInteger(epochs) || epochs < 1) fail(`fit: epochs must be a positive integer, got ${String(epochs)}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) fail(`fit: batchSize must be a positive integer, got ${String(batchSize)}`);
    if (!Number.isInteger(initialEpoch) || initialEpoch < 0 || initialEpoch >= epochs) fail(`fit: initialEpoch must be an integer in [0, epochs), got ${String(opts.initialEpoch)}`);
    let xs = this.checkX(x, 'x');
    let ys = this.checkY(y, c, xs.n, 'y');
    if (xs.n === 0) fail('fit: x has no samples');
    let sw = this.sampleWeights(opts, ys, xs.n, 'fit');
    let val: { x: Inputs; y: (Float32Array | Int32Array)[]; w: Float32Array | null } | null = null;
    if (opts.validationSplit !== undefined) {
      const f = opts.validationSplit;
      if (opts.validationData) fail('fit: give validationData or validationSplit, not both');
      if (typeof f !== 'number' || !(f > 0 && f < 1)) fail(`fit: validationSplit must be in (0, 1), got ${String(f)}`);
      // Keras: the last fraction of the samples, before any shuffling.
      const at = Math.floor(xs.n * (1 - f));
      if (at === 0 || at === xs.n) fail(`fit: validationSplit ${f} of ${xs.n} samples leaves ${at === 0 ? 'no training' : 'no validation'} samples`);
      const cut = <T extends Float32Array | Int32Array>(a: T, n: number, from: number, to: number) => a.subarray((a.length / n) * from, (a.length / n) * to) as T;
      // Keras holds out the same samples' weights; class weights do not apply to validation.
      const valW = opts.sampleWeight !== undefined && sw ? cut(sw, xs.n, at, xs.n) : null;
      val = { x: { n: xs.n - at, data: xs.data.map((d) => cut(d, xs.n, at, xs.n)) }, y: ys.map((d) => cut(d, xs.n, at, xs.n)), w: valW };
      if (sw) sw = cut(sw, xs.n, 0, at);
      ys = ys.map((d) => cut(d, xs.n, 0, at));
      xs = { n: at, data: xs.data.map((d) => cut(d, xs.n, 0, at)) };
    }
    if (opts.validationData) {
      const vd = opts.validationData;
      if (!Array.isArray(vd) || (vd.length !== 2 && vd.length !== 3)) fail(`fit: validationData must be [x, y] or [x, y, sampleWeight], got ${Array.isArray(vd) ? `${vd.length} items` : typeof vd}`);
      const vx = this.checkX(vd[0], 'validationData[0]');
      val = { x: vx, y: this.checkY(vd[1], c, vx.n, 'validationData[1]'), w: vd.length === 3 ? checkSampleWeight(vd[2], vx.n, 'validationData[2]') : null };
    }
    const callbacks = opts.callbacks ?? [];
    callbacks.forEach((cb, i) => {
      if (!cb || typeof cb !== 'object') fail(`fit: callbacks[${i}] must be a callback object (EarlyStopping(), ...), got ${cb === null ? 'null' : typeof cb}`);
      cb.setModel?.(this);
    });
    this.stopTraining = false;
    for (const cb of callbacks) await cb.onTrainBegin?.();
    const verbose = opts.verbose ?? 1;
    const history: History = { epoch: [], history: {} };
    const steps = Math.ceil(xs.n / batchSize);
    let lastLogs: Record<string, number> = {};
    for (let e = initialEpoch; e < epochs; e++) {
      for (const cb of callbacks) await cb.onEpochBegin?.(e);
      // Per epoch: a callback may have set the learning rate or restored weights, which the session picks up.
      const session = await this.session(opts.backend, batchSize);
      if (verbose) process.stdout.write(`Epoch ${e + 1}/${epochs}\n`);
      const order = opts.shuffle === false ? identity(xs.n) : permutation(xs.n, opts.seed ?? 0, e);
      const bar = verbose === 1 ? new ProgressBar(steps) : null;
      const avg = this.averages();
      let seen = 0;
      const t0 = performance.now();
      for (let s = 0; s < steps; s++) {
        const idx = order.subarray(s * batchSize, Math.min((s + 1) * batchSize, xs.n));
        const batch = this.gather(xs.data, ys, idx, batchSize, sw);
        avg.add(await session.train(batch), idx.length, batch.weight);
        seen += idx.length;
        const logs = avg.logs();
        opts.onBatchEnd?.(s, logs);
        for (const cb of callbacks) await cb.onBatchEnd?.(s, logs);
        bar?.update(s + 1, seen, logs, s + 1 === steps);
      }
      const logs: Record<string, number> = avg.logs();
      if (val) {
        const vr = await this.evaluateArrays(val.x, val.y, val.w, batchSize, opts.backend);
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
      lastLogs = logs;
      if (callbacks.length) {
        // Callbacks may read the weights (EarlyStopping, ModelCheckpoint): bring them within reach.
        await session.flush();
        for (const cb of callbacks) await cb.onEpochEnd?.(e, logs);
      }
      if (this.stopTraining) {
        if (verbose) process.stdout.write(`stopped after epoch ${e + 1}\n`);
        break;
      }
    }
    await this.sync();
    for (const cb of callbacks) await cb.onTrainEnd?.(lastLogs);
    return history;
  }

  /** Set by a callback (EarlyStopping) to end `fit` after the current epoch. */
  stopTraining = false;

  async trainOnBatch(x: unknown, y: unknown, opts: RunOptions & WeightOptions & ClassWeightOptions = {}): Promise<Record<string, number>> {
    const c = this.compiled ?? fail('trainOnBatch: call model.compile({optimizer, loss}) first');
    const xs = this.checkX(x, 'x');
    const ys = this.checkY(y, c, xs.n, 'y');
    const bs = opts.batchSize ?? xs.n;
    if (xs.n > bs || xs.n === 0) fail(`trainOnBatch: got ${xs.n} samples for batch size ${bs}`);
    const sw = this.sampleWeights(opts, ys, xs.n, 'trainOnBatch');
    const session = await this.session(opts.backend, bs);
    return session.train(this.gather(xs.data, ys, identity(xs.n), bs, sw));
  }

  async evaluate(x: unknown, y: unknown, opts: RunOptions & WeightOptions = {}): Promise<Record<string, number>> {
    const c = this.compiled ?? fail('evaluate: call model.compile({optimizer, loss}) first');
    const xs = this.checkX(x, 'x');
    const ys = this.checkY(y, c, xs.n, 'y');
    if (xs.n === 0) fail('evaluate: x has no samples');
    const sw = opts.sampleWeight === undefined ? null : checkSampleWeight(opts.sampleWeight, xs.n);
    return this.evaluateArrays(xs, ys, sw, opts.batchSize ?? 32, opts.backend);
  }

  private async evaluateArrays(x: Inputs, y: readonly (Float32Array | Int32Array)[], w: Float32Array | null, batchSize: number, backend?: BackendName): Promise<Record<string, number>> {
    const session = await this.session(backend, batchSize);
    const avg = this.averages();
    const all = identity(x.n);
    for (let s = 0; s < x.n; s += batchSize) {
      const idx = all.subarray(s, Math.min(s + batchSize, x.n));
      const batch = this.gather(x.data, y, idx, batchSize, w);
      avg.add(await session.evaluate(batch), idx.length, batch.weight);
    }
    return avg.logs();
  }

  /** Per-sample weights from `sampleWeight` or `classWeight` (not both, as Keras), or null for none. */
  private sampleWeights(opts: WeightOptions & ClassWeightOptions, ys: readonly (Float32Array | Int32Array)[], n: number, who: string): Float32Array | null {
    if (opts.sampleWeight !== undefined && opts.classWeight !== undefined) fail(`${who}: give sampleWeight or classWeight, not both (Keras refuses both too)`);
    if (opts.sampleWeight !== undefined) return checkSampleWeight(opts.sampleWeight, n, `${who}: sampleWeight`);
    if (opts.classWeight === undefined) return null;
    if (this.outputs.length !== 1) fail(`${who}: classWeight needs a model of one output; '${this.name}' has ${this.outputs.length} (${this.outputNames.join(', ')}); give sampleWeight instead`);
    if (!(ys[0] instanceof Int32Array) && this.outputs[0].shape.length !== 1) fail(`${who}: classWeight needs labels of one class per sample; the output is ${JSON.stringify(this.outputs[0].shape)} per sample`);
    return classWeights(opts.classWeight, ys[0], n, `${who}: classWeight`);
  }

  /**
   * Epoch logs from batch results: losses and plain metrics average over samples (Keras's loss
   * tracker weighs a batch by its size); weighted metrics over the batches' sums of sample weights.
   */
  private averages(): { add(r: Record<string, number>, n: number, w: Float32Array | undefined): void; logs(): Record<string, number> } {
    const c = this.compiled!;
    const oneOut = this.outputs.length === 1;
    const weighted = new Set(c.weightedMetrics.flatMap((ms, i) => ms.map((m) => (oneOut ? m.name : `${this.outputNames[i]}_${m.name}`))));
    const sums: Record<string, number> = {};
    const dens: Record<string, number> = {};
    return {
      add(r, n, w) {
        let wsum = n;
        if (w) {
          wsum = 0;
          for (let i = 0; i < n; i++) wsum += w[i];
        }
        for (const [k, v] of Object.entries(r)) {
          const d = weighted.has(k) ? wsum : n;
          sums[k] = (sums[k] ?? 0) + v * d;
          dens[k] = (dens[k] ?? 0) + d;
        }
      },
      logs: () => Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, dens[k] > 0 ? v / dens[k] : 0])),
    };
  }

  /** Outputs for every sample of `x`, as one tensor [N, ...outputShape] (one-output models; else `predictMany`). */
  async predict(x: unknown, opts: RunOptions = {}): Promise<Tensor> {
    if (this.outputs.length !== 1) fail(`predict: model '${this.name}' has ${this.outputs.length} outputs (${this.outputNames.join(', ')}); use predictMany, which returns one tensor per output`);
    return (await this.predictMany(x, opts))[0];
  }

  /** Outputs for every sample of `x`: one tensor [N, ...shape] per model output, in output order. */
  async predictMany(x: unknown, opts: RunOptions = {}): Promise<Tensor[]> {
    const xs = this.checkX(x, 'x');
    const bs = opts.batchSize ?? 32;
    if (!Number.isInteger(bs) || bs < 1) fail(`predict: batchSize must be a positive integer, got ${String(bs)}`);
    const session = await this.session(opts.backend, bs);
    const outPer = this.outputs.map((t) => numel(t.shape));
    const outs = outPer.map((p) => new Float32Array(xs.n * p));
    const inPer = this.inputs.map((t) => numel(t.shape));
    const bufs = inPer.map((p) => new Float32Array(bs * p));
    for (let s = 0; s < xs.n; s += bs) {
      const m = Math.min(bs, xs.n - s);
      bufs.forEach((buf, i) => {
        buf.fill(0);
        buf.set(xs.data[i].subarray(s * inPer[i], (s + m) * inPer[i]));
      });
      const r = await session.predict(bufs);
      r.forEach((o, i) => outs[i].set(o.subarray(0, m * outPer[i]), s * outPer[i]));
    }
    return outs.map((o, i) => tensor(o, [xs.n, ...this.outputs[i].shape], 'f32'));
  }

  /**
   * Copy samples `idx` into a full batch of `size`; rows past idx.length stay zero with mask 0.
   * Sample weights `w` (ones when null) are gathered the same way.
   */
  private gather(x: readonly Float32Array[], y: readonly (Float32Array | Int32Array)[], idx: Uint32Array, size: number, w: Float32Array | null = null): Batch {
    const rows = (src: Float32Array | Int32Array, per: number) => {
      const out = src instanceof Int32Array ? new Int32Array(size * per) : new Float32Array(size * per);
      idx.forEach((j, i) => out.set(src.subarray(j * per, (j + 1) * per), i * per));
      return out;
    };
    const mask = new Float32Array(size);
    mask.fill(1, 0, idx.length);
    const xs = x.map((a, i) => rows(a, numel(this.inputs[i].shape)) as Float32Array);
    const ys = y.map((a, i) => rows(a, a instanceof Int32Array ? 1 : numel(this.outputs[i].shape)));
    const weight = new Float32Array(size).fill(1);
    if (w) idx.forEach((j, i) => (weight[i] = w[j]));
    return { xs, ys, mask, weight };
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

/**
 * A model of the layer graph between `inputs` and `outputs`, as Keras's `keras.Model(inputs, outputs)`:
 * `Model({inputs, outputs, name})`, with or without `new`. Every model is a `Model` (`instanceof`
 * holds for Sequential ones too), and `Model` is also the type of all of them.
 */
export const Model = function Model(cfg: ModelConfig): LayersModel {
  return new LayersModel(cfg, 'functional');
} as unknown as { (cfg: ModelConfig): LayersModel; new (cfg: ModelConfig): LayersModel; readonly prototype: LayersModel };
(Model as unknown as { prototype: LayersModel }).prototype = LayersModel.prototype;
export type Model = LayersModel;
/** The old name of the model class, kept for programs that import it. */
export const SequentialModel = LayersModel;
export type SequentialModel = LayersModel;

/** Build a Sequential model from a list of layers (Keras: `keras.Sequential([...])`). */
export function Sequential(layers: readonly Layer[], opts?: ModelOptions): LayersModel {
  if (!Array.isArray(layers)) throw new DlcError('Sequential: expected an array of layers');
  return new LayersModel(chain(layers, opts), 'sequential');
}
