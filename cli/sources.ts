/**
 * @file What `dlc train`, `dlc eval` and `dlc predict` run on: a model file (through the library's
 * `fit`/`evaluate`/`predict`) or a compiled artifact folder (through the artifact runtime's
 * `trainStep`/`predict`), behind one small interface so each command is written once.
 *
 * An artifact has no eval entry, so its loss and accuracy are computed on the host from `predict`'s
 * outputs: accuracy by argmax; the loss as mean -log p[label], only when the outputs are
 * probabilities (every row non-negative and summing to 1 within 1e-3, i.e. a softmax head), else it
 * is left out rather than guessed. A model file reports what its compiled loss and metrics say.
 *
 * Stateless: the CLI bundles this file; the library comes in through compiler/index.ts only (plus
 * the stateless ir/types.ts for `numel`).
 */
import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ArtifactModel, BackendName, LayersModel } from '../compiler/index.ts';
import type { Callback } from '../compiler/index.ts';
import { DlcError, EarlyStopping, getDefaultBackend, loadArtifact, Model, ModelCheckpoint, permutation, tensor } from '../compiler/index.ts';
import { numel } from '../ir/types.ts';
import { ProgressBar } from '../compiler/progress.ts';
import type { Target } from './load.ts';
import { CliError, loadModel, targetOf } from './load.ts';

/** A model file or an artifact, as the CLI's train/eval/predict see it. */
export interface Source {
  readonly kind: 'model' | 'artifact';
  /** The loaded model, for a model file (the CLI's compiler diagnostics compile it again). */
  readonly model?: LayersModel;
  readonly name: string;
  /** What training compares the output with: the labels, or the input itself (autoencoders). */
  readonly target: Target;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  /** Outputs for n samples (x holds n * numel(inputShape) values). */
  predict(x: Float32Array): Promise<Float32Array>;
  /** Loss (when known) and accuracy on labelled samples. */
  evaluate(x: Float32Array, labels: Int32Array): Promise<Record<string, number>>;
  /** Train on the samples; prints Keras-style progress and a test line per epoch; returns the last epoch's test metrics. */
  fit(x: Float32Array, labels: Int32Array, opts: FitArgs): Promise<Record<string, number>>;
  /** The current weights as safetensors bytes. */
  saveWeights(): Promise<Uint8Array>;
}

export interface FitArgs {
  readonly epochs: number;
  readonly batchSize: number | undefined;
  readonly seed: number;
  readonly test?: { readonly x: Float32Array; readonly y: Int32Array };
  /** Model files: the learning rate to train with. */
  readonly learningRate?: number;
  /** Model files: EarlyStopping's patience, in epochs (restoring the best weights). */
  readonly earlyStopping?: number;
  /** Model files: write the weights here after each epoch that improves the monitored loss. */
  readonly checkpoint?: string;
}

/** True when `file` is an artifact folder (or its manifest.json). */
export function isArtifactPath(file: string): boolean {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st) return false;
  if (st.isDirectory()) return existsSync(path.join(file, 'manifest.json'));
  return path.basename(file) === 'manifest.json';
}

/** Read a file named by a flag, or fail with exit code 2 naming the flag. */
export function readFlagFile(flag: string, file: string): Uint8Array {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st?.isFile()) throw new CliError(`--${flag}: file not found: ${file}`, 2);
  return readFileSync(file);
}

/** Refuse, before any work, an output file whose folder does not exist (a typo would cost a whole run). */
export function checkWritable(flag: string, file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new CliError(`--${flag}: folder ${path.dirname(file)} does not exist`, 2);
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new CliError(`--${flag}: ${file} is a folder`, 2);
}

/** Write `bytes` to `file` through a temporary file and a rename, so a failure leaves no half file. */
export function writeFileAtomic(file: string, bytes: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${file}: ${(e as Error).message}`, 1);
  }
}

/** Index of the largest value (the first, on ties). */
export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Accuracy, and the cross-entropy when the rows are probabilities. */
export function scoreOutputs(out: Float32Array, labels: Int32Array, classes: number): Record<string, number> {
  const n = labels.length;
  let correct = 0;
  let nll = 0;
  let probs = true;
  for (let i = 0; i < n; i++) {
    const row = out.subarray(i * classes, (i + 1) * classes);
    if (argmax(row) === labels[i]) correct++;
    let sum = 0;
    for (const v of row) {
      if (!(v >= 0)) probs = false;
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-3) probs = false;
    nll -= Math.log(Math.max(row[labels[i]], 1e-7));
  }
  return probs ? { loss: nll / n, accuracy: correct / n } : { accuracy: correct / n };
}

const fmtLogs = (logs: Record<string, number>, prefix = '') => Object.entries(logs).map(([k, v]) => `${prefix}${k}: ${v.toFixed(4)}`).join(' - ');

// ---- model files ----

export async function modelSource(file: string, backend: BackendName | undefined, weights: string | undefined): Promise<Source> {
  const model = await loadModel(file);
  if (!(model instanceof Model)) throw new DlcError(`${file}: the model has no fit()/evaluate(); build it with Model({inputs, outputs}) or Sequential([...])`);
  const m: LayersModel = model;
  if (m.inputs.length !== 1 || m.outputs.length !== 1) {
    throw new DlcError(`${file}: dlc train/eval/predict feed MNIST digits to a model of one input and one output; '${m.name}' has ${m.inputs.length} inputs and ${m.outputs.length} outputs (train it from a program with fit)`);
  }
  if (weights) m.loadWeights(readFlagFile('weights', weights), weights);
  const be = backend ?? getDefaultBackend();
  const classes = numel(m.outputShape);
  const target = targetOf(m);
  if (target === 'input' && m.outputShape.join() !== m.inputShape.join()) {
    throw new DlcError(`${file}: target 'input' needs an output shaped like the input, [${m.inputShape.join(', ')}]; the model outputs [${m.outputShape.join(', ')}]`);
  }
  /** What the loss compares the output with: the digits themselves, or their labels. */
  const targets = (x: Float32Array, labels: Int32Array, n: number) => (target === 'input' ? tensor(x, [n, ...m.inputShape], 'f32') : tensor(labels, [n], 'i32'));
  return {
    kind: 'model',
    model: m,
    name: m.name,
    target,
    inputShape: m.inputShape,
    outputShape: m.outputShape,
    async predict(x) {
      const n = x.length / numel(m.inputShape);
      return (await m.predict(tensor(x, [n, ...m.inputShape], 'f32'), { backend: be })).data as Float32Array;
    },
    async evaluate(x, labels) {
      const n = labels.length;
      const xt = tensor(x, [n, ...m.inputShape], 'f32');
      // A compiled model reports its own loss and metrics; an uncompiled one only what predict gives.
      if (m.compiled) return m.evaluate(xt, targets(x, labels, n), { backend: be });
      const out = (await m.predict(xt, { backend: be })).data as Float32Array;
      if (target === 'input') {
        // No compiled loss: report the reconstruction's mean squared error.
        let se = 0;
        for (let i = 0; i < out.length; i++) se += (out[i] - x[i]) ** 2;
        return { mse: se / out.length };
      }
      return scoreOutputs(out, labels, classes);
    },
    async fit(x, labels, a) {
      const n = labels.length;
      const nt = a.test?.y.length ?? 0;
      if (a.learningRate !== undefined) m.optimizer.learningRate = a.learningRate;
      // Watch the test loss when there is a test split, else the training loss.
      const monitor = a.test ? 'val_loss' : 'loss';
      const callbacks: Callback[] = [];
      if (a.earlyStopping !== undefined) callbacks.push(EarlyStopping({ monitor, patience: a.earlyStopping, restoreBestWeights: true }));
      if (a.checkpoint) {
        const file = a.checkpoint;
        callbacks.push(ModelCheckpoint({ filepath: file, monitor, saveBestOnly: true, write: (_p, bytes) => writeFileAtomic(file, bytes) }));
      }
      const h = await m.fit(tensor(x, [n, ...m.inputShape], 'f32'), targets(x, labels, n), {
        epochs: a.epochs,
        batchSize: a.batchSize ?? 32,
        validationData: a.test ? [tensor(a.test.x, [nt, ...m.inputShape], 'f32'), targets(a.test.x, a.test.y, nt)] : undefined,
        verbose: 1,
        backend: be,
        seed: a.seed,
        callbacks,
      });
      // With early stopping the best weights are back in the model: report their test scores.
      if (a.earlyStopping !== undefined && a.test) return m.evaluate(tensor(a.test.x, [nt, ...m.inputShape], 'f32'), targets(a.test.x, a.test.y, nt), { backend: be });
      // fit already evaluated the test split after the last epoch; report that rather than rerun it.
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(h.history)) if (k.startsWith('val_')) out[k.slice(4)] = v[v.length - 1];
      return out;
    },
    saveWeights: () => m.saveWeights(),
  };
}

// ---- artifacts ----

export async function artifactSource(dir: string, backend: BackendName | undefined, weights: string | undefined, threads?: number): Promise<Source> {
  const base = path.basename(dir) === 'manifest.json' ? path.dirname(dir) : dir;
  if (backend === 'interp') throw new CliError("an artifact runs on 'wasm' or 'webgpu'; 'interp' needs the model file", 2);
  const m: ArtifactModel = await loadArtifact(base, { backend: backend ?? 'wasm', ...(threads ? { threads } : {}), ...(weights ? { weights: readFlagFile('weights', weights), weightsName: weights } : {}) });
  const man = m.manifest;
  const { inputs, outputs } = man.model;
  if (inputs.length !== 1 || outputs.length !== 1) {
    m.dispose();
    const list = (ts: typeof inputs) => ts.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(', ');
    throw new DlcError(
      `${base}: dlc train/eval/predict feed MNIST digits to an artifact of one input and one output; '${man.model.name}' has ${inputs.length} input${inputs.length === 1 ? '' : 's'} (${list(inputs)}) and ${outputs.length} output${outputs.length === 1 ? '' : 's'} (${list(outputs)}). Load it from a program (its index.js) and call predictMany/trainStep`,
    );
  }
  const inputShape = inputs[0].shape;
  const outputShape = outputs[0].shape;
  const inPer = numel(inputShape);
  const classes = numel(outputShape);
  const src: Source = {
    kind: 'artifact',
    name: man.model.name,
    target: 'labels',
    inputShape,
    outputShape,
    predict: (x) => m.predict(x),
    async evaluate(x, labels) {
      return scoreOutputs(await m.predict(x), labels, classes);
    },
    async fit(x, labels, a) {
      const train = man.entries.train_step;
      if (!train) throw new CliError(`${base}: the artifact has no train entry (dlc compile --entry predict,train)`, 1);
      const B = man.batchSize;
      if (a.batchSize !== undefined && a.batchSize !== B) throw new CliError(`--batch-size: the artifact was compiled for batches of ${B}, got ${a.batchSize} (recompile with --batch-size ${a.batchSize})`, 2);
      const yIn = train.inputs.find((i) => i.role === 'y')!;
      const oneHot = yIn.dtype === 'f32';
      const n = labels.length;
      const steps = Math.ceil(n / B);
      let last: Record<string, number> = {};
      for (let e = 0; e < a.epochs; e++) {
        process.stdout.write(`Epoch ${e + 1}/${a.epochs}\n`);
        const order = permutation(n, a.seed, e);
        const bar = new ProgressBar(steps);
        const sums: Record<string, number> = {};
        let seen = 0;
        const t0 = performance.now();
        for (let s = 0; s < steps; s++) {
          const idx = order.subarray(s * B, Math.min((s + 1) * B, n));
          const xb = new Float32Array(idx.length * inPer);
          const yb = oneHot ? new Float32Array(idx.length * classes) : new Int32Array(idx.length);
          idx.forEach((k, i) => {
            xb.set(x.subarray(k * inPer, (k + 1) * inPer), i * inPer);
            if (oneHot) yb[i * classes + labels[k]] = 1;
            else yb[i] = labels[k];
          });
          const r = await m.trainStep(xb, yb);
          for (const [k, v] of Object.entries(r)) sums[k] = (sums[k] ?? 0) + v * idx.length;
          seen += idx.length;
          bar.update(s + 1, seen, Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / seen])), s + 1 === steps);
        }
        const logs = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / seen]));
        if (a.test) {
          last = await src.evaluate(a.test.x, a.test.y);
          const secs = (performance.now() - t0) / 1000;
          process.stdout.write(`epoch ${e + 1}: ${secs.toFixed(1)}s - ${(seen / secs).toFixed(0)} samples/s - ${fmtLogs(logs)} - ${fmtLogs(last, 'val_')}\n`);
        }
      }
      return last;
    },
    saveWeights: () => m.saveWeights(),
  };
  return src;
}

/** The source named on the command line: an artifact folder (or its manifest.json), else a model file. */
export function openSource(file: string, backend: BackendName | undefined, weights: string | undefined, threads?: number): Promise<Source> {
  return isArtifactPath(file) ? artifactSource(file, backend, weights, threads) : modelSource(file, backend, weights);
}
