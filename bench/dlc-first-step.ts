/**
 * @file `dlc-first-step`: how long the reference CNN (examples/mnist-cnn.ts) takes from a cold start
 * to its first train step done, on wasm, in a fresh process: loading the compiler (`import 'dlc'`),
 * constructing the model (the example module: Sequential + compile config), and the first
 * `model.trainOnBatch` at batch 32 (compileStep, emitWasm, WebAssembly.compile, instantiation, one
 * step). After that it times the parts apart, once more in the same process (compileStep with its
 * per-pass times, emitWasm, V8's WebAssembly.compile), so they are warm figures: the cold first step
 * minus their sum is mostly loading binaryen (the first emitWasm's, since the library loads it on
 * demand), JIT and binaryen warm-up, instantiation and the step itself.
 *
 * Everything dlc is imported dynamically inside `setup`, so the timed imports are this child's first;
 * the harness's peak RSS for the row covers the whole child (compiles and steps).
 */
import type { BenchData, FirstStepStat, SystemDef } from './common.ts';
import { initialWeights, median, PIXELS, TRAIN_BATCH } from './common.ts';

/** Steady steps after the first, for scale (their median). */
const NEXT_STEPS = 5;

export const dlcFirstStep: SystemDef = {
  id: 'dlc-first-step',
  async setup(d: BenchData, log) {
    const t0 = performance.now();
    const dlc = await import('../compiler/index.ts');
    const t1 = performance.now();
    if (!dlc.availableBackends().includes('wasm')) return { notBuilt: 'no wasm backend' };
    const { model } = await import('../examples/mnist-cnn.ts');
    const t2 = performance.now();
    model.setWeights(initialWeights().map((w) => dlc.tensor(w.data.slice(), w.shape, 'f32')));
    const batch = (i: number) =>
      [dlc.tensor(d.trainX.slice(i * TRAIN_BATCH * PIXELS, (i + 1) * TRAIN_BATCH * PIXELS), [TRAIN_BATCH, 28, 28, 1], 'f32'), dlc.tensor(d.trainY.slice(i * TRAIN_BATCH, (i + 1) * TRAIN_BATCH), [TRAIN_BATCH], 'i32')] as const;
    const opts = { backend: 'wasm', batchSize: TRAIN_BATCH } as const;
    const t3 = performance.now();
    await model.trainOnBatch(...batch(0), opts);
    const firstStepMs = performance.now() - t3;
    const next: number[] = [];
    for (let i = 1; i <= NEXT_STEPS; i++) {
      const t = performance.now();
      await model.trainOnBatch(...batch(i), opts);
      next.push(performance.now() - t);
    }
    // The parts, timed apart (second time in this process).
    const { emitWasm, loadBinaryen } = await import('../compiler/codegen/wasm.ts');
    await loadBinaryen(); // already loaded by the first step; emitWasm needs it
    const c0 = performance.now();
    const c = dlc.compileStep(model, 'train', TRAIN_BATCH);
    const c1 = performance.now();
    const bytes = emitWasm(c.program, c.plan, { relaxedSimd: dlc.detectRelaxedSimd() });
    const c2 = performance.now();
    await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
    const c3 = performance.now();
    const s: FirstStepStat = {
      importMs: t1 - t0,
      constructMs: t2 - t1,
      firstStepMs,
      kernels: c.program.kernels.length,
      compileStepMs: c1 - c0,
      passMs: Object.fromEntries(c.passes.map((p) => [p.name, p.ms])),
      emitWasmMs: c2 - c1,
      v8CompileMs: c3 - c2,
      wasmBytes: bytes.byteLength,
      nextStepMs: median(next),
    };
    log(`import ${s.importMs.toFixed(0)} ms, construct ${s.constructMs.toFixed(0)} ms, first trainOnBatch ${s.firstStepMs.toFixed(0)} ms; then compileStep ${s.compileStepMs.toFixed(0)} ms, emitWasm ${s.emitWasmMs.toFixed(0)} ms, WebAssembly.compile ${s.v8CompileMs.toFixed(0)} ms`);
    return { firstStep: s };
  },
};
