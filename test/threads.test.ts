/**
 * @file Multi-threaded Wasm (compiler/codegen/wasm/threads.ts, runtime/wasm.ts's worker pool): a
 * step split across 2 or 3 threads gives results bit-identical to one thread, because every output
 * element is computed by one thread in the same order. Checked per kernel kind on shapes with
 * remainders (rows not divisible by the thread count, partial matmul tiles, a reduction's scalar
 * tail), then on whole train steps: the reference CNN (im2col, matmuls, pooling gradients) and an
 * LSTM (loops whose copies thread 0 makes). Also: a worker that fails mid-step makes the step
 * reject with a clear error and leaves the model's state as it was, and the next step runs; one that
 * fails to start rejects the step by name; traced
 * runs time the split kernels; a Node process using threads exits on its own; bad thread counts
 * are refused naming the argument.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import cnn from '../examples/mnist-cnn.ts';
import { compileStep, Dense, Input, LSTM, Model, Sequential, setWasmThreads, tensor } from '../compiler/index.ts';
import { SMALL_STEP_WORK, stepWork } from '../compiler/backends/wasm.ts';
import type { LayersModel } from '../compiler/index.ts';
import { emitWasm, loadBinaryen, wasmMemoryBytes } from '../compiler/codegen/wasm.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { planMemory } from '../compiler/kernel/plan.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import * as b from '../ir/builders.ts';
import { makeFunc } from '../ir/graph.ts';
import { input } from '../ir/node.ts';
import { uniformAt } from '../ir/random.ts';
import type { Func, InputNode } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { failNextWorkerStartForTest, failNextWorkerStepForTest, instantiateProgram } from '../runtime/wasm.ts';
import { setDispatchTrace } from '../runtime/trace.ts';

// emitWasm needs binaryen, which is loaded on demand (compiler/codegen/wasm/binaryen.ts).
beforeAll(loadBinaryen);

afterAll(() => setWasmThreads(null));

/** The model of the process-exit test (the same layers as its script). */
const exitModel = () => {
  const m = Sequential([Dense(512, { activation: 'relu', inputShape: [1024] }), Dense(10, { activation: 'softmax' })]);
  m.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
  return m;
};

const inp = (name: string, shape: number[]) => input(name, 'f32', shape) as InputNode;
const rnd = (n: number, seed: number) => new Float32Array(n).map((_, i) => uniformAt(seed, 7, i) * 2 - 1);

/** Run `f` on the Wasm module built for `threads` threads; outputs as f32 arrays. */
async function run(f: Func, args: readonly Float32Array[], threads: number): Promise<Float32Array[]> {
  const p = fuse(simplify(f));
  const plan = planMemory(p);
  const inst = await instantiateProgram(emitWasm(p, plan, { relaxedSimd: false, threads }), {
    threads: threads > 1 ? { count: threads, memoryBytes: wasmMemoryBytes(p, plan, threads) } : undefined,
  });
  try {
    expect(inst.threads).toBe(threads);
    p.inputs.forEach((id, i) => inst.f32(plan.offsets[id], numel(p.buffers[id].shape)).set(args[i]));
    inst.run();
    return p.outputs.map((id) => inst.f32(plan.offsets[id], numel(p.buffers[id].shape)).slice());
  } finally {
    inst.dispose();
  }
}

const same = (a: Float32Array, c: Float32Array, what: string) => {
  expect(a.length, what).toBe(c.length);
  const bad = a.findIndex((v, i) => !Object.is(v, c[i]));
  if (bad >= 0) expect.fail(`${what}[${bad}]: ${c[bad]} with threads, ${a[bad]} without`);
};

describe('kernels split across threads give the single-threaded bits', () => {
  const cases: { name: string; f: Func; args: Float32Array[] }[] = [];
  {
    const x = inp('x', [67, 131]);
    cases.push({ name: 'elementwise, 67 rows', f: makeFunc('ew', [x], [b.tanh(b.mul(x, x))]), args: [rnd(67 * 131, 1)] });
  }
  {
    const x = inp('x', [67, 300]);
    cases.push({ name: 'reduce over the inner axis, 67 rows', f: makeFunc('red', [x], [b.reduceSum(b.mul(x, x), [1])]), args: [rnd(67 * 300, 2)] });
  }
  {
    const x = inp('x', [600, 35]);
    cases.push({ name: 'reduce to one axis of 35 (lane groups and a scalar tail)', f: makeFunc('bias', [x], [b.reduceSum(x, [0])]), args: [rnd(600 * 35, 3)] });
  }
  {
    const x = inp('x', [203, 77]);
    const w = inp('w', [77, 45]);
    cases.push({ name: 'matmul by row tiles, partial last tiles', f: makeFunc('mm_rows', [x, w], [b.dot(x, w)]), args: [rnd(203 * 77, 4), rnd(77 * 45, 5)] });
  }
  {
    const x = inp('x', [13, 300]);
    const w = inp('w', [300, 205]);
    cases.push({ name: 'matmul by column tiles (M < N), partial last tiles', f: makeFunc('mm_cols', [x, w], [b.dot(x, w)]), args: [rnd(13 * 300, 6), rnd(300 * 205, 7)] });
  }
  for (const c of cases) {
    it(c.name, async () => {
      const one = await run(c.f, c.args, 1);
      for (const t of [2, 3]) (await run(c.f, c.args, t)).forEach((o, i) => same(one[i], o, `${c.name}, ${t} threads, output ${i}`));
    });
  }
});

/** Train `m` from its current weights for `steps` steps on a fixed batch at `threads` threads; losses and final weights. */
async function trainRun(m: LayersModel, x: unknown, y: unknown, threads: number, steps: number) {
  setWasmThreads(threads);
  m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) losses.push((await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).loss);
  const pred = (await m.predict(x, { backend: 'wasm', batchSize: 32 })).data as Float32Array;
  return { losses, weights: m.getWeights().map((w) => w.data as Float32Array), pred };
}

describe('whole train steps on threads', () => {
  const x = tensor(new Float32Array(32 * 784).map((_, i) => 0.5 + 0.5 * Math.sin(i * 0.37)), [32, 28, 28, 1]);
  const y = tensor(Int32Array.from({ length: 32 }, (_, i) => (i * 7) % 10), [32], 'i32');

  it('the reference CNN: 3 steps on 2 threads match 1 thread to the bit (losses, weights, predictions)', async () => {
    const m = cnn as unknown as LayersModel;
    const init = m.getWeights();
    const one = await trainRun(m, x, y, 1, 3);
    m.setWeights(init);
    const two = await trainRun(m, x, y, 2, 3);
    expect(two.losses).toEqual(one.losses);
    two.weights.forEach((w, i) => same(one.weights[i], w, `weight ${i}`));
    same(one.pred, two.pred, 'predictions');
    expect(one.losses[2]).toBeLessThan(one.losses[0]);
  });

  it('an LSTM (loops, copies by thread 0): 2 threads match 1 thread to the bit', async () => {
    const inp = Input({ shape: [28, 28] });
    const m = Model({ inputs: inp, outputs: Dense(10, { activation: 'softmax' }).apply(LSTM(64).apply(inp)), seed: 3 });
    const xs = tensor(new Float32Array(32 * 784).map((_, i) => Math.cos(i * 0.11)), [32, 28, 28]);
    const init = m.getWeights();
    const one = await trainRun(m, xs, y, 1, 2);
    m.setWeights(init);
    const two = await trainRun(m, xs, y, 2, 2);
    expect(two.losses).toEqual(one.losses);
    two.weights.forEach((w, i) => same(one.weights[i], w, `weight ${i}`));
  });

  it('a worker failing mid-step rejects the step, leaves the state as it was, and the next step runs', async () => {
    const m = cnn as unknown as LayersModel;
    setWasmThreads(2);
    m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 });
    const before = m.getWeights().map((w) => (w.data as Float32Array).slice());
    failNextWorkerStepForTest(1);
    await expect(m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).rejects.toThrow(/the train step failed and was undone .*thread 1|the train step failed and was undone .*worker failed/);
    m.getWeights().forEach((w, i) => same(before[i], w.data as Float32Array, `weight ${i} after the failed step`));
    // The next step builds a fresh module and pool, and continues from the same state as a run without the failure.
    const after = (await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).loss;
    m.setWeights(before.map((d, i) => tensor(d, [...m.weightInfo[i].shape])));
    expect(Number.isFinite(after)).toBe(true);
  });

  it('thread 0 failing mid-step stops the workers waiting for it: the step rejects, the state is kept, the next step runs', async () => {
    const m = cnn as unknown as LayersModel;
    setWasmThreads(2);
    m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 });
    const before = m.getWeights().map((w) => (w.data as Float32Array).slice());
    failNextWorkerStepForTest(0);
    await expect(m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).rejects.toThrow(/the train step failed and was undone .*thread 0 failed in the middle of the step: failed on purpose/);
    m.getWeights().forEach((w, i) => same(before[i], w.data as Float32Array, `weight ${i} after the failed step`));
    expect(Number.isFinite((await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).loss)).toBe(true);
  });

  it('a worker that fails to start rejects the step by name, changes nothing, and the next step starts a new pool', async () => {
    const inp = Input({ shape: [1024] });
    const m = Model({ inputs: inp, outputs: Dense(10, { activation: 'softmax' }).apply(Dense(512, { activation: 'relu' }).apply(inp)), seed: 5 });
    setWasmThreads(2);
    m.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
    const xs = tensor(new Float32Array(64 * 1024).map((_, i) => Math.sin(i)), [64, 1024]);
    const ys = tensor(Int32Array.from({ length: 64 }, (_, i) => i % 10), [64], 'i32');
    const before = m.getWeights().map((w) => (w.data as Float32Array).slice());
    failNextWorkerStartForTest();
    await expect(m.trainOnBatch(xs, ys, { backend: 'wasm', batchSize: 64 })).rejects.toThrow(/wasm threads \(.*\.train\): thread 1 could not start: failed on purpose/);
    m.getWeights().forEach((w, i) => same(before[i], w.data as Float32Array, `weight ${i} after the failed start`));
    expect(Number.isFinite((await m.trainOnBatch(xs, ys, { backend: 'wasm', batchSize: 64 })).loss)).toBe(true);
  });

  it('a traced run times every kernel on all threads and computes the same', async () => {
    const m = cnn as unknown as LayersModel;
    const init = m.getWeights();
    setWasmThreads(2);
    m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const plain = (await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).loss;
    m.setWeights(init);
    m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    const events: { kernel: string; ms: number }[] = [];
    setDispatchTrace((e) => events.push(e));
    try {
      expect((await m.trainOnBatch(x, y, { backend: 'wasm', batchSize: 32 })).loss).toBe(plain);
    } finally {
      setDispatchTrace(null);
    }
    expect(events.length).toBeGreaterThan(80);
    expect(events.every((e) => e.ms >= 0)).toBe(true);
  });
});

describe('thread counts and process life', () => {
  it('bad thread counts are refused naming the argument', () => {
    expect(() => setWasmThreads(0)).toThrow('setWasmThreads: expected an integer from 1 to 64 (or null for the default), got 0');
    expect(() => setWasmThreads(2.5)).toThrow(/got 2\.5/);
  });

  it('a step below SMALL_STEP_WORK runs on one thread; the steps tested here are above it', () => {
    const work = (m: LayersModel, kind: 'train' | 'predict', batch: number) => stepWork(compileStep(m, kind, batch).program);
    const c = cnn as unknown as LayersModel;
    c.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
    expect(work(c, 'predict', 1)).toBeLessThan(SMALL_STEP_WORK);
    expect(work(c, 'train', 32)).toBeGreaterThan(SMALL_STEP_WORK);
    expect(work(exitModel(), 'train', 64)).toBeGreaterThan(SMALL_STEP_WORK);
  });

  it('a Node program that trains on 2 threads exits by itself (idle workers do not hold it)', () => {
    const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
    const script = path.join(root, '.tmp', 'threads-exit.mjs');
    writeFileSync(
      script,
      `import { Dense, Sequential, setWasmThreads, tensor } from ${JSON.stringify(path.join(root, 'dist', 'dlc.js'))};
setWasmThreads(2);
const m = Sequential([Dense(512, { activation: 'relu', inputShape: [1024] }), Dense(10, { activation: 'softmax' })]);
m.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
const r = await m.trainOnBatch(tensor(new Float32Array(64 * 1024).fill(0.5), [64, 1024]), tensor(new Int32Array(64), [64], 'i32'));
console.log('loss', r.loss.toFixed(4));
`,
    );
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^loss \d/);
    expect(Date.now() - t0).toBeLessThan(60_000);
  });
});
