/**
 * @file The dlc rows of the benchmark: the reference model itself (examples/mnist-cnn.ts, compiled
 * there with Adam at its default lr 1e-3 and sparse categorical cross-entropy), run through the public
 * API: `model.trainOnBatch` and `model.predict` with `{backend, batchSize}`.
 *
 * `dlc-wasm` runs only when `availableBackends()` lists 'wasm'; otherwise its row says "not built yet".
 * It runs on one thread (whatever DLC_THREADS says); `dlc-wasm-mt` is the same on one thread per core
 * (`os.availableParallelism()`), so its ratio column is one thread's time over all of them.
 * `dlc-interp` (the f64 reference interpreter) is measured at inference batch 1 only, for scale.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { model } from '../examples/mnist-cnn.ts';
import type { BackendName, LayersModel } from '../compiler/index.ts';
import { availableBackends, setWasmThreads, tensor } from '../compiler/index.ts';
import type { BenchData, Runner, SystemDef } from './common.ts';
import { CLASSES, initialWeights, TRAIN_BATCH } from './common.ts';

/**
 * `m`'s train step and predict on `backend` through the public API, starting from `weights` (in
 * `m.weightInfo` order); the ResNet and LSTM rows (bench/dlc-resnet.ts, bench/dlc-lstm.ts) use it
 * too. `inputShape` is the per-sample shape the 784 pixels are fed as ([28, 28] for the LSTM: 28
 * time steps of 28 pixels, the same memory).
 */
export function modelRunner(
  m: LayersModel,
  backend: BackendName,
  weights: readonly { data: Float32Array; shape: readonly number[] }[],
  inputShape: readonly number[] = [28, 28, 1],
): Runner {
  m.setWeights(weights.map((w) => tensor(w.data.slice(), w.shape, 'f32')));
  return {
    async trainStep(x: Float32Array, y: Int32Array): Promise<number> {
      const r = await m.trainOnBatch(tensor(x, [y.length, ...inputShape], 'f32'), tensor(y, [y.length], 'i32'), { backend, batchSize: TRAIN_BATCH });
      return r.loss;
    },
    async predict(x: Float32Array, n: number): Promise<Float32Array> {
      const p = await m.predict(tensor(x, [n, ...inputShape], 'f32'), { backend, batchSize: n });
      if (p.data.length !== n * CLASSES) throw new Error(`dlc predict returned ${p.data.length} values for ${n} samples`);
      return p.data as Float32Array;
    },
  };
}

const dlcRunner = (backend: BackendName): Runner => modelRunner(model, backend, initialWeights());

export const dlcWasm: SystemDef = {
  id: 'dlc-wasm',
  async setup(_d: BenchData) {
    const have = availableBackends();
    if (!have.includes('wasm')) {
      const hint = existsSync('compiler/backends/wasm.ts') ? " (compiler/backends/wasm.ts exists, but importing 'dlc' does not register it)" : '';
      return { notBuilt: `NOT BUILT YET: availableBackends() = [${have.join(', ')}] has no 'wasm'${hint}` };
    }
    setWasmThreads(1);
    return dlcRunner('wasm');
  },
};

/** Threads of the `-mt` rows: one per core. */
export const MT_THREADS = os.availableParallelism();

export const dlcWasmMt: SystemDef = {
  id: 'dlc-wasm-mt',
  notes: [`dlc-wasm-mt: the same Wasm steps split across ${MT_THREADS} threads (worker_threads over one shared memory); results are bit-identical to one thread`],
  async setup(_d: BenchData) {
    setWasmThreads(MT_THREADS);
    return dlcRunner('wasm');
  },
};

export const dlcInterp: SystemDef = {
  id: 'dlc-interp',
  notes: ['dlc-interp: the f64 reference interpreter (plain JS), inference at batch 1 only, for scale'],
  measure: { modes: ['infer b1'] },
  async setup(_d: BenchData) {
    return dlcRunner('interp');
  },
};

export const dlcWebgpu: SystemDef = {
  id: 'dlc-webgpu',
  notes: [
    'dlc-webgpu: WGSL kernels through Dawn; on a machine without a GPU this is Mesa\'s CPU Vulkan driver (lavapipe), so its number says nothing about GPU speed',
  ],
  measure: { modes: ['train b32', 'infer b32'] },
  async setup(_d: BenchData) {
    const { webgpuAdapterInfo } = await import('../compiler/index.ts');
    const info = await webgpuAdapterInfo();
    if (!info) return { notBuilt: 'no WebGPU adapter on this machine' };
    return dlcRunner('webgpu');
  },
};
