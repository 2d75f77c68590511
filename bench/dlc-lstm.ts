/**
 * @file dlc's LSTM rows and its sequence-length table.
 *
 * `dlc-wasm-lstm` / `dlc-webgpu-lstm`: examples/mnist-lstm.ts (LSTM(128) over each digit read as 28
 * time steps of 28 pixels, then Dense(10, softmax); Adam, sparse categorical cross-entropy, as
 * compiled there) at batch 32 through `model.trainOnBatch` and `model.predict`, from the initial
 * weights the parent wrote to the LSTM's model spec (the same ones TF.js and jax-js get), on the same
 * MNIST batches as every row.
 *
 * `dlc-lstm-seq`: the same architecture over sequences of T = 28, 140 and 280 steps (28 features,
 * batch 32): the train step's kernel count (one scan loop forward and one backward, so it must not
 * grow with T), its arena (`compileStep(...).plan.totalBytes`, which grows linearly with T: the
 * per-step values the backward loop needs), and how long compiling it takes at each length.
 */
import { existsSync } from 'node:fs';
import type { BackendName, LayersModel } from '../compiler/index.ts';
import { emitWasm, loadBinaryen } from '../compiler/codegen/wasm.ts';
import { availableBackends, compileStep, Dense, detectRelaxedSimd, LSTM, Sequential, setWasmThreads, tensor } from '../compiler/index.ts';
import type { BenchData, Runner, SeqScalingStat, SystemDef } from './common.ts';
import { median, TRAIN_BATCH } from './common.ts';
import { modelRunner, MT_THREADS } from './dlc.ts';
import { loadModelSpec, LSTM_REFERENCE, LSTM_SPEC_FILE } from './model-spec.ts';

/** The LSTM's rows read each 28x28 digit as [time 28, features 28]. */
export const LSTM_INPUT_SHAPE = [28, 28] as const;

async function lstmRunner(backend: BackendName, log: (l: string) => void): Promise<Runner> {
  const { model } = await import('../examples/mnist-lstm.ts');
  if (!existsSync(LSTM_SPEC_FILE)) throw new Error(`no model spec at ${LSTM_SPEC_FILE}; run through bench/run.ts`);
  const { spec, weights } = loadModelSpec(LSTM_SPEC_FILE);
  const names = model.weightInfo.map((w) => w.name);
  if (names.join() !== weights.map((w) => w.name).join()) throw new Error(`the model spec's weights (${weights.map((w) => w.name).join(', ')}) are not this model's (${names.join(', ')})`);
  log(`${spec.name}: ${spec.layers.length} layers, ${spec.params} parameters, from ${LSTM_SPEC_FILE}`);
  const fwd = 2 * spec.fwdMacsPerSample;
  return { ...modelRunner(model, backend, weights, LSTM_INPUT_SHAPE), flops: { forward: fwd, train: 3 * fwd } };
}

export const dlcWasmLstm: SystemDef = {
  id: 'dlc-wasm-lstm',
  measure: { modes: ['lstm train b32', 'lstm infer b32'] },
  reference: LSTM_REFERENCE,
  async setup(_d: BenchData, log) {
    const have = availableBackends();
    if (!have.includes('wasm')) return { notBuilt: `NOT BUILT YET: availableBackends() = [${have.join(', ')}] has no 'wasm'` };
    setWasmThreads(1);
    return lstmRunner('wasm', log);
  },
};

export const dlcWasmLstmMt: SystemDef = {
  id: 'dlc-wasm-lstm-mt',
  measure: { modes: ['lstm train b32', 'lstm infer b32'] },
  reference: LSTM_REFERENCE,
  async setup(_d: BenchData, log) {
    setWasmThreads(MT_THREADS);
    return lstmRunner('wasm', log);
  },
};

export const dlcWebgpuLstm: SystemDef = {
  id: 'dlc-webgpu-lstm',
  measure: { modes: ['lstm train b32', 'lstm infer b32'] },
  reference: LSTM_REFERENCE,
  async setup(_d: BenchData, log) {
    const { webgpuAdapterInfo } = await import('../compiler/index.ts');
    const info = await webgpuAdapterInfo();
    if (!info) return { notBuilt: 'no WebGPU adapter on this machine' };
    log(`adapter: ${info}`);
    return lstmRunner('webgpu', log);
  },
};

// ------------------------------------------------------------------------------------ sequence length

/** Sequence lengths of the table: the example's 28, ten times it, and one between (linearity). */
export const SEQ_LENGTHS = [28, 140, 280] as const;
const FEATURES = 28;
const UNITS = 128;
/** compileStep and codegen repeats per length; the table reports the best (this machine is noisy). */
const REPEATS = 5;
/**
 * Throwaway compiles first: binaryen's code (emitWasm) takes several runs to warm up in V8 (about
 * 3.5 s, then 2.6, 0.4, 0.6 s before it settles near 0.2 s here), which would otherwise land on
 * whichever length goes first.
 */
const WARMUP_COMPILES = 5;
/** Train steps after the first one, timed for the steady step time. */
const STEADY_STEPS = 3;

function lstmModel(T: number): LayersModel {
  const m = Sequential([LSTM(UNITS, { inputShape: [T, FEATURES] }), Dense(10, { activation: 'softmax' })], { name: `lstm_t${T}` });
  m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
  return m;
}

function bestOf<T>(n: number, f: () => T): { ms: number; value: T } {
  let best = { ms: Infinity, value: undefined as T };
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const value = f();
    const ms = performance.now() - t0;
    if (ms < best.ms) best = { ms, value };
  }
  return best;
}

export const dlcLstmSeq: SystemDef = {
  id: 'dlc-lstm-seq',
  async setup(d: BenchData, log) {
    if (!availableBackends().includes('wasm')) return { notBuilt: "NOT BUILT YET: no 'wasm' backend" };
    const relaxedSimd = detectRelaxedSimd();
    await loadBinaryen();
    // Warm the compiler's and binaryen's JIT on a throwaway model, so the first length does not pay for it.
    const warm = lstmModel(SEQ_LENGTHS[0]);
    const t0 = performance.now();
    for (let i = 0; i < WARMUP_COMPILES; i++) {
      const c = compileStep(warm, 'train', TRAIN_BATCH);
      emitWasm(c.program, c.plan, { relaxedSimd });
    }
    log(`warm-up: ${WARMUP_COMPILES} compiles (compileStep + emitWasm) in ${(performance.now() - t0).toFixed(0)} ms`);
    const out: SeqScalingStat[] = [];
    for (const T of SEQ_LENGTHS) {
      const model = lstmModel(T);
      const c = bestOf(REPEATS, () => compileStep(model, 'train', TRAIN_BATCH));
      const { program, plan } = c.value;
      let v8CompileMs = Infinity;
      let wasmBytes = 0;
      const emit = bestOf(REPEATS, () => emitWasm(program, plan, { relaxedSimd }));
      for (let k = 0; k < REPEATS; k++) {
        const t0 = performance.now();
        await WebAssembly.compile(emit.value as Uint8Array<ArrayBuffer>);
        v8CompileMs = Math.min(v8CompileMs, performance.now() - t0);
      }
      wasmBytes = emit.value.byteLength;
      // Buffers with a time axis, where T cannot be mistaken for another dimension of the model.
      let timeBuffers: SeqScalingStat['timeBuffers'];
      if (![FEATURES, TRAIN_BATCH, UNITS, 4 * UNITS, 10].includes(T)) {
        const timed = program.buffers.filter((b) => b.shape.includes(T) || b.shape.includes(T * TRAIN_BATCH));
        const bytes = timed.reduce((a, b) => a + Math.ceil((b.shape.reduce((p, x) => p * x, 1) * 4) / 16) * 16, 0);
        timeBuffers = { count: timed.length, bytes, shapes: timed.map((b) => `[${b.shape.join(',')}]`) };
      }
      // The MNIST pixels as rows of 28: sample i's sequence is T consecutive rows (digits run on).
      const rows = d.trainX.length / FEATURES;
      const x = new Float32Array(TRAIN_BATCH * T * FEATURES);
      for (let i = 0; i < TRAIN_BATCH * T; i++) {
        const r = i % rows;
        x.set(d.trainX.subarray(r * FEATURES, (r + 1) * FEATURES), i * FEATURES);
      }
      const xs = tensor(x, [TRAIN_BATCH, T, FEATURES], 'f32');
      const ys = tensor(d.trainY.slice(0, TRAIN_BATCH), [TRAIN_BATCH], 'i32');
      const step = async () => {
        const t0 = performance.now();
        const r = await model.trainOnBatch(xs, ys, { backend: 'wasm', batchSize: TRAIN_BATCH });
        if (!Number.isFinite(r.loss)) throw new Error(`T=${T}: train-step loss is ${r.loss}`);
        return performance.now() - t0;
      };
      const firstStepMs = await step();
      const steady: number[] = [];
      for (let k = 0; k < STEADY_STEPS; k++) steady.push(await step());
      await model.dispose();
      const s: SeqScalingStat = {
        T,
        kernels: program.kernels.length,
        arenaBytes: plan.totalBytes,
        loopLengths: program.loops.map((l) => l.length),
        timeBuffers,
        compileStepMs: c.ms,
        emitWasmMs: emit.ms,
        v8CompileMs,
        wasmBytes,
        firstStepMs,
        stepMs: median(steady),
      };
      log(
        `T=${T}: ${s.kernels} kernels, loops of [${s.loopLengths.join(', ')}] steps, arena ${(s.arenaBytes / 2 ** 20).toFixed(2)} MiB, compileStep ${s.compileStepMs.toFixed(0)} ms, emitWasm ${s.emitWasmMs.toFixed(0)} ms (${(wasmBytes / 1024).toFixed(0)} KiB), WebAssembly.compile ${v8CompileMs.toFixed(0)} ms, first trainOnBatch ${firstStepMs.toFixed(0)} ms, then ${s.stepMs.toFixed(0)} ms/step`,
      );
      out.push(s);
    }
    return { seqScaling: out };
  },
};
