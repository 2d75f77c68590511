/**
 * @file dlc's ResNet rows and its compile table.
 *
 * `dlc-wasm-resnet` / `dlc-webgpu-resnet`: the train step of examples/mnist-resnet.ts (imported, as
 * compiled there: Adam, sparse categorical cross-entropy) at batch 32 through `model.trainOnBatch`,
 * from the initial weights the parent wrote to the model spec (the same ones TF.js gets), on the same
 * MNIST batches as every row. Predict (for the loss check) uses the moving statistics, as in Keras.
 *
 * `dlc-compile`: how long dlc takes to compile a train step (`compileStep` at batch 32: frontend,
 * autodiff, simplify, fuse, memory plan) and how many kernels it makes, for the ResNet, the
 * autoencoder (examples/mnist-autoencoder.ts) and the reference CNN, in a fresh process; plus each
 * model's first `trainOnBatch` on wasm, which adds Wasm codegen, instantiation and one step.
 */
import { existsSync } from 'node:fs';
import type { BackendName, LayersModel } from '../compiler/index.ts';
import { emitWasm, loadBinaryen } from '../compiler/codegen/wasm.ts';
import { availableBackends, compileStep, detectRelaxedSimd, tensor } from '../compiler/index.ts';
import type { BenchData, CompileStat, Runner, SystemDef } from './common.ts';
import { PIXELS, TRAIN_BATCH } from './common.ts';
import { modelRunner } from './dlc.ts';
import { loadModelSpec, RESNET_SPEC_FILE } from './model-spec.ts';

async function resnetRunner(backend: BackendName, log: (l: string) => void): Promise<Runner> {
  const { model } = await import('../examples/mnist-resnet.ts');
  if (!existsSync(RESNET_SPEC_FILE)) throw new Error(`no model spec at ${RESNET_SPEC_FILE}; run through bench/run.ts`);
  const { spec, weights } = loadModelSpec(RESNET_SPEC_FILE);
  const names = model.weightInfo.map((w) => w.name);
  if (names.join() !== weights.map((w) => w.name).join()) throw new Error(`the model spec's weights (${weights.map((w) => w.name).join(', ')}) are not this model's (${names.join(', ')})`);
  log(`${spec.name}: ${spec.layers.length} layers, ${spec.params} parameters, from ${RESNET_SPEC_FILE}`);
  const fwd = 2 * spec.fwdMacsPerSample;
  return { ...modelRunner(model, backend, weights), flops: { forward: fwd, train: 3 * fwd } };
}

export const dlcWasmResnet: SystemDef = {
  id: 'dlc-wasm-resnet',
  measure: { modes: ['resnet train b32'] },
  async setup(_d: BenchData, log) {
    const have = availableBackends();
    if (!have.includes('wasm')) return { notBuilt: `NOT BUILT YET: availableBackends() = [${have.join(', ')}] has no 'wasm'` };
    return resnetRunner('wasm', log);
  },
};

export const dlcWebgpuResnet: SystemDef = {
  id: 'dlc-webgpu-resnet',
  measure: { modes: ['resnet train b32'] },
  async setup(_d: BenchData, log) {
    const { webgpuAdapterInfo } = await import('../compiler/index.ts');
    const info = await webgpuAdapterInfo();
    if (!info) return { notBuilt: 'no WebGPU adapter on this machine' };
    return resnetRunner('webgpu', log);
  },
};

/** compileStep repeats per model after the cold one; the table reports the best. */
const WARM_REPEATS = 3;

function timeCompile(model: LayersModel): { ms: number; kernels: number; passMs: Record<string, number>; compiled: ReturnType<typeof compileStep> } {
  const t0 = performance.now();
  const c = compileStep(model, 'train', TRAIN_BATCH);
  const ms = performance.now() - t0;
  return { ms, kernels: c.program.kernels.length, passMs: Object.fromEntries(c.passes.map((p) => [p.name, p.ms])), compiled: c };
}

export const dlcCompile: SystemDef = {
  id: 'dlc-compile',
  async setup(d: BenchData, log) {
    const models: { label: string; load: () => Promise<LayersModel>; y: () => unknown }[] = [
      { label: 'resnet (examples/mnist-resnet.ts)', load: async () => (await import('../examples/mnist-resnet.ts')).model, y: () => tensor(d.trainY.slice(0, TRAIN_BATCH), [TRAIN_BATCH], 'i32') },
      { label: 'autoencoder (examples/mnist-autoencoder.ts)', load: async () => (await import('../examples/mnist-autoencoder.ts')).model, y: () => tensor(d.trainX.slice(0, TRAIN_BATCH * PIXELS), [TRAIN_BATCH, 28, 28, 1], 'f32') },
      { label: 'reference CNN (examples/mnist-cnn.ts)', load: async () => (await import('../examples/mnist-cnn.ts')).model, y: () => tensor(d.trainY.slice(0, TRAIN_BATCH), [TRAIN_BATCH], 'i32') },
    ];
    const loaded = await Promise.all(models.map(async (m) => ({ ...m, model: await m.load() })));
    // Cold: each model's first compileStep in this process (the first model also pays for JIT warm-up
    // of the compiler itself); then the repeats.
    const cold = loaded.map((m) => timeCompile(m.model));
    const warm = loaded.map((m) => {
      let best = timeCompile(m.model);
      for (let i = 1; i < WARM_REPEATS; i++) {
        const t = timeCompile(m.model);
        if (t.ms < best.ms) best = t;
      }
      return best;
    });
    const wasm = availableBackends().includes('wasm');
    if (wasm) await loadBinaryen();
    const out: CompileStat[] = [];
    for (let i = 0; i < loaded.length; i++) {
      const m = loaded[i];
      let firstWasmStepMs: number | undefined;
      let wasmCodegen: CompileStat['wasmCodegen'];
      if (wasm) {
        // What the wasm backend does after compileStep, timed apart: codegen (binaryen), then V8's
        // compile; best of WARM_REPEATS (the process's first emitWasm also warms binaryen up).
        let emitMs = Infinity;
        let v8CompileMs = Infinity;
        let bytes: Uint8Array = new Uint8Array(0);
        for (let k = 0; k < WARM_REPEATS; k++) {
          const t0 = performance.now();
          bytes = emitWasm(warm[i].compiled.program, warm[i].compiled.plan, { relaxedSimd: detectRelaxedSimd() });
          const t1 = performance.now();
          await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
          emitMs = Math.min(emitMs, t1 - t0);
          v8CompileMs = Math.min(v8CompileMs, performance.now() - t1);
        }
        wasmCodegen = { emitMs, v8CompileMs, bytes: bytes.byteLength };
      }
      if (wasm) {
        const x = tensor(d.trainX.slice(0, TRAIN_BATCH * PIXELS), [TRAIN_BATCH, 28, 28, 1], 'f32');
        const t0 = performance.now();
        await m.model.trainOnBatch(x, m.y(), { backend: 'wasm', batchSize: TRAIN_BATCH });
        firstWasmStepMs = performance.now() - t0;
      }
      if (cold[i].kernels !== warm[i].kernels) throw new Error(`${m.label}: compileStep made ${cold[i].kernels} kernels, then ${warm[i].kernels}`);
      const s: CompileStat = { model: m.label, kernels: warm[i].kernels, coldMs: cold[i].ms, warmMs: warm[i].ms, passMs: warm[i].passMs, firstWasmStepMs, wasmCodegen };
      log(`${s.model}: ${s.kernels} kernels, compileStep ${s.coldMs.toFixed(0)} ms cold, ${s.warmMs.toFixed(0)} ms warm${wasmCodegen ? `, emitWasm ${wasmCodegen.emitMs.toFixed(0)} ms (${(wasmCodegen.bytes / 1024).toFixed(0)} KiB), WebAssembly.compile ${wasmCodegen.v8CompileMs.toFixed(0)} ms` : ''}${firstWasmStepMs !== undefined ? `, first wasm trainOnBatch ${firstWasmStepMs.toFixed(0)} ms` : ''}`);
      out.push(s);
    }
    return { compile: out };
  },
};
