/**
 * @file What every benchmarked system shares: the protocol (step counts, batch sizes), the reference
 * model's shapes and FLOP count, the deterministic initial weights (Keras layout), the MNIST batches,
 * the timing loop (median ms/step), peak-RSS sampling and the loss sanity check.
 *
 * A system plugs in as a `Runner`: `trainStep` (one optimizer step on a host batch of 32, finished
 * and synchronised before it resolves) and `predict` (host batch in, host softmax probabilities out).
 * `measure` drives both through the same protocol for every system, so differences in the table come
 * from the systems and not from the harness. Host-to-device copies and the read-back of results are
 * inside the timed region for every system, as they are for a user calling the API.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

// ------------------------------------------------------------------------------------ protocol

export const TRAIN_BATCH = 32;
export const TRAIN_WARMUP = 3;
export const TRAIN_STEPS = 20;
export const INFER_BATCH = 32;
export const INFER_WARMUP = 3;
export const INFER_BATCHES = 20;
export const INFER1_WARMUP = 5;
export const INFER1_SAMPLES = 100;
/** Test samples on which the loss is computed before and after training (the sanity check). */
export const LOSS_SAMPLES = 256;
/** Samples whose initial outputs are compared across systems. */
export const PROBE_SAMPLES = 8;
export const LEARNING_RATE = 1e-3;

/**
 * 'resnet train b32' is the train step of examples/mnist-resnet.ts (bench/model-spec.ts), same
 * protocol; 'lstm train b32' and 'lstm infer b32' are examples/mnist-lstm.ts's (each digit as 28
 * rows of 28 pixels), same protocol.
 */
export type Mode = 'train b32' | 'infer b32' | 'infer b1' | 'resnet train b32' | 'lstm train b32' | 'lstm infer b32';
export const MODES: readonly Mode[] = ['train b32', 'infer b32', 'infer b1'];
export const isTrainMode = (m: Mode): boolean => m === 'train b32' || m === 'resnet train b32' || m === 'lstm train b32';
const isInferBatchMode = (m: Mode): boolean => m === 'infer b32' || m === 'lstm infer b32';

// ------------------------------------------------------------------------------------ the model

/** The reference model (examples/mnist-cnn.ts): 3x3 valid convs, 2x2 max pools, two dense layers. */
export const CONVS = [
  { cin: 1, cout: 32, inHW: 28 },
  { cin: 32, cout: 64, inHW: 13 },
  { cin: 64, cout: 128, inHW: 5 },
] as const;
export const KSIZE = 3;
export const FLAT = 3 * 3 * 128;
export const HIDDEN = 128;
export const CLASSES = 10;

/** Multiply-adds per sample of the forward pass (convs and dense layers; pools and activations not counted). */
export function forwardMacsPerSample(): number {
  let macs = 0;
  for (const c of CONVS) {
    const out = c.inHW - KSIZE + 1;
    macs += out * out * c.cout * KSIZE * KSIZE * c.cin;
  }
  return macs + FLAT * HIDDEN + HIDDEN * CLASSES;
}
export const FWD_FLOPS = 2 * forwardMacsPerSample();
/** Training counts as forward + two backward matmul-sized passes. */
export const TRAIN_FLOPS = 3 * FWD_FLOPS;

export interface WeightInit {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** mulberry32: a small seeded PRNG, so every system starts from bit-identical weights. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Glorot-uniform kernels and zero biases in Keras layout and order: conv kernels HWIO
 * [3,3,cin,cout], dense kernels [in,out], each followed by its bias.
 */
export function initialWeights(seed = 42): WeightInit[] {
  const r = rng(seed);
  const glorot = (shape: number[], fanIn: number, fanOut: number): Float32Array => {
    const lim = Math.sqrt(6 / (fanIn + fanOut));
    const a = new Float32Array(shape.reduce((p, d) => p * d, 1));
    for (let i = 0; i < a.length; i++) a[i] = (2 * r() - 1) * lim;
    return a;
  };
  const ws: WeightInit[] = [];
  CONVS.forEach((c, i) => {
    const shape = [KSIZE, KSIZE, c.cin, c.cout];
    ws.push({ name: `conv${i + 1}.kernel`, shape, data: glorot(shape, KSIZE * KSIZE * c.cin, KSIZE * KSIZE * c.cout) });
    ws.push({ name: `conv${i + 1}.bias`, shape: [c.cout], data: new Float32Array(c.cout) });
  });
  ws.push({ name: 'dense1.kernel', shape: [FLAT, HIDDEN], data: glorot([FLAT, HIDDEN], FLAT, HIDDEN) });
  ws.push({ name: 'dense1.bias', shape: [HIDDEN], data: new Float32Array(HIDDEN) });
  ws.push({ name: 'dense2.kernel', shape: [HIDDEN, CLASSES], data: glorot([HIDDEN, CLASSES], HIDDEN, CLASSES) });
  ws.push({ name: 'dense2.bias', shape: [CLASSES], data: new Float32Array(CLASSES) });
  return ws;
}

// ------------------------------------------------------------------------------------ data

/** The MNIST samples the bench uses, NHWC f32 pixels in [0,1] and i32 labels. */
export interface BenchData {
  readonly trainX: Float32Array;
  readonly trainY: Int32Array;
  readonly testX: Float32Array;
  readonly testY: Int32Array;
}

export const PIXELS = 28 * 28;
export const TRAIN_SAMPLES = (TRAIN_WARMUP + TRAIN_STEPS) * TRAIN_BATCH;
export const TEST_SAMPLES = Math.max(LOSS_SAMPLES, INFER_BATCH * (INFER_WARMUP + INFER_BATCHES), INFER1_WARMUP + INFER1_SAMPLES);

/** Write the bench's samples once (the parent does this) so each child process skips the 2 s JSON load. */
export function saveBenchData(path: string, d: BenchData): void {
  const header = new Int32Array([d.trainY.length, d.testY.length]);
  const parts = [header, d.trainX, d.trainY, d.testX, d.testY];
  const bytes = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  writeFileSync(path, bytes);
}

export function loadBenchData(path: string): BenchData {
  const buf = readFileSync(path);
  const bytes = new Uint8Array(buf.byteLength);
  bytes.set(buf);
  const [nTrain, nTest] = new Int32Array(bytes.buffer, 0, 2);
  let at = 8;
  const f32 = (n: number) => {
    const a = new Float32Array(bytes.buffer, at, n);
    at += n * 4;
    return a;
  };
  const i32 = (n: number) => {
    const a = new Int32Array(bytes.buffer, at, n);
    at += n * 4;
    return a;
  };
  const trainX = f32(nTrain * PIXELS);
  const trainY = i32(nTrain);
  const testX = f32(nTest * PIXELS);
  const testY = i32(nTest);
  return { trainX, trainY, testX, testY };
}

const sliceX = (x: Float32Array, start: number, n: number) => x.subarray(start * PIXELS, (start + n) * PIXELS);

// ------------------------------------------------------------------------------------ RSS

/** Peak resident set size, sampled after every step and on a 20 ms timer while awaiting. */
export class RssMeter {
  peak = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  sample(): number {
    const rss = process.memoryUsage().rss;
    if (rss > this.peak) this.peak = rss;
    return rss;
  }
  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 20);
    this.timer.unref();
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }
}

export const MB = 1024 * 1024;

// ------------------------------------------------------------------------------------ results

export interface ModeResult {
  readonly mode: Mode;
  /** Timed steps (batches for train/infer b32, samples for infer b1). */
  readonly steps: number;
  readonly msMedian: number;
  readonly msMin: number;
  readonly msMax: number;
  readonly samplesPerSec: number;
  readonly gflops: number;
}

export interface SystemResult {
  readonly id: string;
  readonly system: string;
  /** Caveats shown under the table (e.g. kernels we had to register). */
  readonly notes: string[];
  /** 'ok', or why this system has no numbers ('not built yet', an error message). */
  readonly status: 'ok' | 'not built' | 'failed';
  readonly reason?: string;
  readonly modes: ModeResult[];
  readonly lossBefore?: number;
  readonly lossAfter?: number;
  readonly peakRssMB?: number;
  /** RSS growth across the timed train steps (a leak shows here). */
  readonly rssDriftMB?: number;
  /** Softmax outputs at the initial weights for the first PROBE_SAMPLES test samples (layout cross-check). */
  readonly initProbe?: number[];
  /** Wall time of each warm-up train step; the first includes compilation. */
  readonly trainWarmupMs?: number[];
  /** The loss each train step reported (warm-up steps included), where the system returns it. */
  readonly stepLosses?: number[];
  readonly setupMs?: number;
  /** Compile statistics (the dlc-compile child only). */
  readonly compile?: CompileStat[];
  /** Train-step memory and compile time against sequence length (the dlc-lstm-seq child only). */
  readonly seqScaling?: SeqScalingStat[];
  /** Largest |difference| of this system's initial softmax outputs from the reference ones (`SystemDef.reference`), checked before timing. */
  readonly refMaxAbsDiff?: number;
  /** The reference CNN from a cold start to its first train step (the dlc-first-step child only). */
  readonly firstStep?: FirstStepStat;
  /** GFLOP/s of dlc's Wasm matmul kernel per shape (the wasm-matmul child only). */
  readonly matmul?: MatmulStat[];
}

/**
 * The reference CNN in a fresh process, as a user's first `trainOnBatch` meets it: loading the
 * compiler, constructing the model (examples/mnist-cnn.ts), then its first train step on wasm (which
 * compiles the step: compileStep, emitWasm, WebAssembly.compile, instantiation, one step). The split
 * is timed after that, once more in the same process (so binaryen and the compiler are warm by then).
 */
export interface FirstStepStat {
  readonly importMs: number;
  readonly constructMs: number;
  readonly firstStepMs: number;
  readonly kernels: number;
  readonly compileStepMs: number;
  readonly passMs: Record<string, number>;
  readonly emitWasmMs: number;
  readonly v8CompileMs: number;
  readonly wasmBytes: number;
  /** Steady train steps after the first (median), for scale. */
  readonly nextStepMs: number;
}

/** One matmul shape on dlc's Wasm backend (bench/matmul-wasm.ts). */
export interface MatmulStat {
  readonly M: number;
  readonly N: number;
  readonly K: number;
  readonly relaxedSimd: boolean;
  readonly transB: boolean;
  readonly msPerRun: number;
  readonly gflops: number;
  /** Largest relative error of the spot-checked outputs against f64. */
  readonly maxRelErr: number;
}

/** One sequence length of the LSTM's train step in dlc (batch 32), for the sequence-length table. */
export interface SeqScalingStat {
  /** Time steps. */
  readonly T: number;
  readonly kernels: number;
  /** The train step's arena (`compileStep(...).plan.totalBytes`), and the scan loops' lengths. */
  readonly arenaBytes: number;
  readonly loopLengths: number[];
  /** Bytes of the buffers that have a time axis (a dimension T or T·batch); only where T is unambiguous. */
  readonly timeBuffers?: { readonly count: number; readonly bytes: number; readonly shapes: string[] };
  /** compileStep (frontend … memory plan): best of the repeats. */
  readonly compileStepMs: number;
  /** The wasm backend's emitWasm (binaryen) and V8's WebAssembly.compile of its bytes, best of the repeats. */
  readonly emitWasmMs: number;
  readonly v8CompileMs: number;
  readonly wasmBytes: number;
  /** The model's first trainOnBatch on wasm (compileStep, codegen, instantiation, one step), and the median of the next ones. */
  readonly firstStepMs: number;
  readonly stepMs: number;
}

/** One model's train-step compilation in dlc (`compileStep`), for the compile table. */
export interface CompileStat {
  readonly model: string;
  readonly kernels: number;
  /** compileStep wall time: the first in its process (cold JIT), and the best of the repeats. */
  readonly coldMs: number;
  readonly warmMs: number;
  /** Per pass of the warm run (frontend, autodiff, simplify, fuse); the memory plan is the rest. */
  readonly passMs: Record<string, number>;
  /** The first `trainOnBatch` on wasm: compileStep again, Wasm codegen, instantiation and one step. */
  readonly firstWasmStepMs?: number;
  /** The wasm backend's work after compileStep, timed apart: emitWasm (binaryen) and V8's compile of its bytes. */
  readonly wasmCodegen?: { readonly emitMs: number; readonly v8CompileMs: number; readonly bytes: number };
}

// ------------------------------------------------------------------------------------ the loop

export interface Runner {
  /**
   * One optimizer step on a batch of TRAIN_BATCH samples; resolves once the step has finished, with
   * the step's loss where the system reports it (compared across systems: same weights, same data).
   */
  trainStep(x: Float32Array, y: Int32Array): Promise<number | void>;
  /** Softmax probabilities [n, 10] for n samples (n is INFER_BATCH or 1). */
  predict(x: Float32Array, n: number): Promise<Float32Array>;
  dispose?(): void;
  /** FLOPs per sample of the forward pass and of a train step, when the model is not the reference one. */
  readonly flops?: { readonly forward: number; readonly train: number };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Mean sparse categorical cross-entropy of the softmax outputs `probs` [n,10] against `labels`. */
export function crossEntropy(probs: Float32Array, labels: Int32Array): number {
  let s = 0;
  for (let i = 0; i < labels.length; i++) s -= Math.log(Math.max(probs[i * CLASSES + labels[i]], 1e-7));
  return s / labels.length;
}

async function lossOn(r: Runner, d: BenchData): Promise<{ loss: number; probe: number[] }> {
  const probs = new Float32Array(LOSS_SAMPLES * CLASSES);
  for (let s = 0; s < LOSS_SAMPLES; s += INFER_BATCH) {
    const p = await r.predict(sliceX(d.testX, s, INFER_BATCH), INFER_BATCH);
    probs.set(p.subarray(0, INFER_BATCH * CLASSES), s * CLASSES);
  }
  return { loss: crossEntropy(probs, d.testY.subarray(0, LOSS_SAMPLES)), probe: [...probs.subarray(0, PROBE_SAMPLES * CLASSES)] };
}

/**
 * How far two systems' initial outputs differ, relative to how far they are from uniform: at the
 * initial weights the softmax is close to 0.1 everywhere, so the loss alone cannot tell a transposed
 * kernel from a right one, but the deviations from 0.1 can (about 1e-6 if equal, about 1 if not).
 */
export function probeDistance(a: readonly number[], b: readonly number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += (a[i] - 1 / CLASSES) ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

function result(mode: Mode, times: number[], samplesPerStep: number, perSample: { readonly forward: number; readonly train: number }): ModeResult {
  const ms = median(times);
  const sps = (samplesPerStep * 1000) / ms;
  const flops = isTrainMode(mode) ? perSample.train : perSample.forward;
  return { mode, steps: times.length, msMedian: ms, msMin: Math.min(...times), msMax: Math.max(...times), samplesPerSec: sps, gflops: (sps * flops) / 1e9 };
}

export interface MeasureOptions {
  readonly modes?: readonly Mode[];
  /** Override the number of timed samples for 'infer b1' (slow systems). */
  readonly infer1Samples?: number;
  readonly log?: (line: string) => void;
}

/**
 * Run the protocol on one system: loss before, warm-up + timed train steps, loss after, then timed
 * inference at batch 32 and batch 1. Every step is timed on its own; the table reports medians.
 */
export async function measure(r: Runner, d: BenchData, rss: RssMeter, opts: MeasureOptions = {}): Promise<Pick<SystemResult, 'modes' | 'lossBefore' | 'lossAfter' | 'rssDriftMB' | 'trainWarmupMs' | 'initProbe' | 'stepLosses'>> {
  const modes = opts.modes ?? MODES;
  const perSample = r.flops ?? { forward: FWD_FLOPS, train: TRAIN_FLOPS };
  const trainMode = modes.find(isTrainMode);
  const stepLosses: number[] = [];
  const trainStep = async (x: Float32Array, y: Int32Array) => {
    const l = await r.trainStep(x, y);
    if (typeof l === 'number') stepLosses.push(l);
  };
  const log = opts.log ?? (() => {});
  const out: ModeResult[] = [];
  let lossAfter: number | undefined;
  let rssDriftMB: number | undefined;
  let trainWarmupMs: number[] | undefined;
  const timeIt = async (f: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await f();
    const t = performance.now() - t0;
    rss.sample();
    return t;
  };

  // Every system starts from the same weights, so this also cross-checks the weight layouts.
  const init = await lossOn(r, d);
  const lossBefore = init.loss;
  log(`loss at the initial weights: ${lossBefore.toFixed(6)}`);
  if (trainMode) {
    const batch = (i: number) => [sliceX(d.trainX, i * TRAIN_BATCH, TRAIN_BATCH), d.trainY.subarray(i * TRAIN_BATCH, (i + 1) * TRAIN_BATCH)] as const;
    const warm: number[] = [];
    for (let i = 0; i < TRAIN_WARMUP; i++) warm.push(await timeIt(() => trainStep(...batch(i))));
    log(`train warm-up ms: ${warm.map((t) => t.toFixed(0)).join(', ')}`);
    trainWarmupMs = warm;
    const rss0 = rss.sample();
    const times: number[] = [];
    for (let i = 0; i < TRAIN_STEPS; i++) times.push(await timeIt(() => trainStep(...batch(TRAIN_WARMUP + i))));
    rssDriftMB = (rss.sample() - rss0) / MB;
    out.push(result(trainMode, times, TRAIN_BATCH, perSample));
    if (stepLosses.length) log(`train-step losses: first ${stepLosses[0].toFixed(6)}, last ${stepLosses[stepLosses.length - 1].toFixed(4)}`);
    log(`${trainMode}: median ${median(times).toFixed(1)} ms/step, RSS drift over ${TRAIN_STEPS} steps ${rssDriftMB.toFixed(1)} MB`);
    lossAfter = (await lossOn(r, d)).loss;
    log(`loss after ${TRAIN_WARMUP + TRAIN_STEPS} steps: ${lossAfter.toFixed(4)}`);
  }

  const inferMode = modes.find(isInferBatchMode);
  if (inferMode) {
    const times: number[] = [];
    for (let i = 0; i < INFER_WARMUP + INFER_BATCHES; i++) {
      const t = await timeIt(() => r.predict(sliceX(d.testX, i * INFER_BATCH, INFER_BATCH), INFER_BATCH));
      if (i >= INFER_WARMUP) times.push(t);
    }
    out.push(result(inferMode, times, INFER_BATCH, perSample));
    log(`${inferMode}: median ${median(times).toFixed(2)} ms/batch`);
  }

  if (modes.includes('infer b1')) {
    const n = opts.infer1Samples ?? INFER1_SAMPLES;
    const times: number[] = [];
    for (let i = 0; i < INFER1_WARMUP + n; i++) {
      const t = await timeIt(() => r.predict(sliceX(d.testX, i, 1), 1));
      if (i >= INFER1_WARMUP) times.push(t);
    }
    out.push(result('infer b1', times, 1, perSample));
    log(`infer b1: median ${median(times).toFixed(2)} ms/sample`);
  }
  return { modes: out, lossBefore, lossAfter, rssDriftMB, trainWarmupMs, initProbe: init.probe, stepLosses: stepLosses.length ? stepLosses : undefined };
}

// ------------------------------------------------------------------------------------ reference outputs

/**
 * A model's softmax outputs on the first `samples` test samples at the shared initial weights, as
 * dlc computes them (the parent runs dlc once and writes them), for each child to check before it
 * times anything: a peer that does not compute the same function from the same weights fails its
 * row instead of timing a different model.
 */
export interface ReferenceOutputs {
  /** Who computed them, for messages (e.g. 'dlc wasm'). */
  readonly by: string;
  readonly samples: number;
  readonly probs: number[];
}

export function saveReference(file: string, ref: ReferenceOutputs): void {
  writeFileSync(file, JSON.stringify(ref));
}

function loadReference(file: string): ReferenceOutputs {
  if (!existsSync(file)) throw new Error(`no reference outputs at ${file}; run through bench/run.ts`);
  return JSON.parse(readFileSync(file, 'utf8')) as ReferenceOutputs;
}

/** The largest |difference| between `r`'s softmax outputs and the reference's, on the same test samples. */
async function referenceDiff(r: Runner, d: BenchData, ref: ReferenceOutputs): Promise<number> {
  const got = await r.predict(sliceX(d.testX, 0, ref.samples), ref.samples);
  if (got.length !== ref.probs.length) throw new Error(`predict returned ${got.length} values for ${ref.samples} samples, the reference has ${ref.probs.length}`);
  let diff = 0;
  for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i] - ref.probs[i]));
  return Number.isNaN(got.reduce((a, x) => a + x, 0)) ? Infinity : diff;
}

/** A system's entry point in a child process: build it (timed as setup), then measure. Its table label lives in run.ts. */
export interface SystemDef {
  readonly id: string;
  readonly notes?: string[];
  readonly measure?: MeasureOptions;
  /** Check the initial outputs against the reference in `file` before timing; fail the row above `maxAbsDiff`. */
  readonly reference?: { readonly file: string; readonly maxAbsDiff: number };
  /** Build the runner, or return a string saying why this system cannot run (e.g. 'not built yet'). */
  setup(
    d: BenchData,
    log: (line: string) => void,
  ): Promise<Runner | { notBuilt: string } | { failed: string } | { compile: CompileStat[] } | { seqScaling: SeqScalingStat[] } | { firstStep: FirstStepStat } | { matmul: MatmulStat[] }>;
}

export async function runSystem(def: SystemDef, system: string, d: BenchData, log: (line: string) => void): Promise<SystemResult> {
  const rss = new RssMeter();
  rss.start();
  const notes = [...(def.notes ?? [])];
  const base = { id: def.id, system, notes };
  try {
    const t0 = performance.now();
    const r = await def.setup(d, (l) => {
      log(l);
    });
    const setupMs = performance.now() - t0;
    if ('notBuilt' in r) return { ...base, status: 'not built', reason: r.notBuilt, modes: [] };
    if ('failed' in r) return { ...base, status: 'failed', reason: r.failed, modes: [], peakRssMB: rss.peak / MB };
    if ('compile' in r) {
      rss.stop();
      return { ...base, status: 'ok', modes: [], compile: r.compile, peakRssMB: rss.peak / MB, setupMs };
    }
    if ('seqScaling' in r) {
      rss.stop();
      return { ...base, status: 'ok', modes: [], seqScaling: r.seqScaling, peakRssMB: rss.peak / MB, setupMs };
    }
    if ('firstStep' in r) {
      rss.stop();
      return { ...base, status: 'ok', modes: [], firstStep: r.firstStep, peakRssMB: rss.peak / MB, setupMs };
    }
    if ('matmul' in r) {
      rss.stop();
      return { ...base, status: 'ok', modes: [], matmul: r.matmul, peakRssMB: rss.peak / MB, setupMs };
    }
    log(`setup ${setupMs.toFixed(0)} ms`);
    let refMaxAbsDiff: number | undefined;
    if (def.reference) {
      const ref = loadReference(def.reference.file);
      refMaxAbsDiff = await referenceDiff(r, d, ref);
      const ok = refMaxAbsDiff <= def.reference.maxAbsDiff;
      log(`initial outputs on ${ref.samples} test samples: max |this - ${ref.by}| = ${refMaxAbsDiff.toExponential(2)} ${ok ? 'ok' : `ABOVE ${def.reference.maxAbsDiff.toExponential(0)}`}`);
      if (!ok) {
        r.dispose?.();
        rss.stop();
        const reason = `NOT THE SAME MODEL: its softmax outputs at the initial weights differ from ${ref.by}'s by up to ${refMaxAbsDiff.toExponential(2)} (limit ${def.reference.maxAbsDiff.toExponential(0)}; ${ref.samples} test samples); not timed`;
        return { ...base, status: 'failed', reason, modes: [], peakRssMB: rss.peak / MB, refMaxAbsDiff };
      }
    }
    const m = await measure(r, d, rss, { ...def.measure, log });
    r.dispose?.();
    rss.stop();
    return { ...base, status: 'ok', ...m, peakRssMB: rss.peak / MB, setupMs, refMaxAbsDiff };
  } catch (e) {
    rss.stop();
    const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    log(`FAILED: ${msg}`);
    if (e instanceof Error && e.stack) log(e.stack);
    return { ...base, status: 'failed', reason: msg.split('\n')[0].slice(0, 300), modes: [], peakRssMB: rss.peak / MB };
  }
}
