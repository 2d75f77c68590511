/**
 * @file Resource leaks. WebGPU: 50 sessions of a small model are created, run (a train step, then
 * predict, so the train and predict programs and a GPU-to-GPU weight copy all exist) and disposed;
 * the device's live buffers and `uncapturederror` listeners, counted by wrapping `createBuffer` /
 * `destroy` and `addEventListener` / `removeEventListener` on the shared device, must return to where
 * they started, and many live programs must share one listener (Node warns past 10 per target). The
 * same through the public API: 40 models, each trained a step on, evaluated and predicted with on
 * WebGPU, then `model.dispose()`d (12 of them alive at once first), with their weights still readable.
 * Wasm: RSS over many `trainOnBatch` steps of a small Dense model must level off after a warm-up.
 *
 * Without a WebGPU adapter the WebGPU half is skipped with a banner, or fails under DLC_TEST_REQUIRE
 * (test/helpers/requirements.ts); the Wasm half runs either way.
 */
import { describe, expect, it } from 'vitest';
import { backendFactory } from '../compiler/backend.ts';
import { webgpuDevice } from '../compiler/backends/webgpu.ts';
import { Dense, Input, Model, tensor } from '../compiler/index.ts';
import { needWebGpu } from './helpers/requirements.ts';

const gpu = !!(await needWebGpu('test/leaks.test.ts: WebGPU sessions release their buffers and listeners (the Wasm RSS check still runs)'));

function smallModel() {
  const x = Input({ shape: [8], name: 'x' });
  const h = Dense(16, { activation: 'relu', name: 'hidden' }).apply(x);
  const out = Dense(4, { activation: 'softmax', name: 'head' }).apply(h);
  const model = Model({ inputs: x, outputs: out, name: 'leak', seed: 5 });
  model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
  return model;
}

/** Count the device's live buffers and `uncapturederror` listeners by wrapping its methods. */
function countOn(device: GPUDevice) {
  const live = new Set<GPUBuffer>();
  let listeners = 0;
  let peakListeners = 0;
  const d = device as GPUDevice & Record<string, unknown>;
  const orig = { createBuffer: device.createBuffer, add: device.addEventListener, remove: device.removeEventListener };
  d.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor) {
    const b = orig.createBuffer.call(this, desc);
    live.add(b);
    const destroy = b.destroy.bind(b);
    b.destroy = () => {
      live.delete(b);
      destroy();
    };
    return b;
  };
  d.addEventListener = function (this: GPUDevice, type: string, ...rest: unknown[]) {
    if (type === 'uncapturederror') peakListeners = Math.max(peakListeners, ++listeners);
    return (orig.add as (...a: unknown[]) => void).call(this, type, ...rest);
  };
  d.removeEventListener = function (this: GPUDevice, type: string, ...rest: unknown[]) {
    if (type === 'uncapturederror') listeners--;
    return (orig.remove as (...a: unknown[]) => void).call(this, type, ...rest);
  };
  return {
    get buffers() {
      return live.size;
    },
    get listeners() {
      return listeners;
    },
    get peakListeners() {
      return peakListeners;
    },
    restore() {
      d.createBuffer = orig.createBuffer;
      d.addEventListener = orig.add;
      d.removeEventListener = orig.remove;
    },
  };
}

describe.runIf(gpu)('WebGPU sessions release their device resources', () => {
  it('50 sessions created, run and disposed leave no buffer or listener behind; live programs share one listener', async () => {
    const device = await webgpuDevice();
    const model = smallModel();
    const batch = 4;
    const x = Float32Array.from({ length: batch * 8 }, (_, i) => Math.sin(i));
    const y = Int32Array.from({ length: batch }, (_, i) => i % 4);
    const mask = new Float32Array(batch).fill(1);
    const make = backendFactory('webgpu')!;
    const count = countOn(device);
    try {
      const start = { buffers: count.buffers, listeners: count.listeners };
      const run = async () => {
        const s = await make(model, batch);
        s.load(model.state);
        const r = await s.train({ xs: [x], ys: [y], mask });
        expect(Number.isFinite(r.loss)).toBe(true);
        const [p] = await s.predict([x]);
        expect(p.length).toBe(batch * 4);
        return s;
      };
      // 12 live sessions at once (24 programs): one listener between them, not one each.
      const held = [];
      for (let i = 0; i < 12; i++) held.push(await run());
      expect(count.listeners - start.listeners).toBe(1);
      expect(count.buffers).toBeGreaterThan(start.buffers);
      for (const s of held) s.dispose();
      // Then 38 more, one at a time.
      for (let i = 0; i < 38; i++) (await run()).dispose();
      await device.queue.onSubmittedWorkDone();
      await new Promise((r) => setTimeout(r, 0));
      console.log(`leaks: buffers ${start.buffers} -> ${count.buffers}, listeners ${start.listeners} -> ${count.listeners} (peak ${count.peakListeners})`);
      expect({ buffers: count.buffers, listeners: count.listeners }).toEqual(start);
      expect(count.peakListeners - start.listeners).toBeLessThanOrEqual(1);
    } finally {
      count.restore();
    }
  }, 300_000);
});

describe.runIf(gpu)('WebGPU models release their device resources on model.dispose()', () => {
  it('40 models trained a step on, evaluated, predicted with and disposed leave no buffer or listener behind', async () => {
    const device = await webgpuDevice();
    const batch = 4;
    const x = tensor(Float32Array.from({ length: batch * 8 }, (_, i) => Math.sin(i)), [batch, 8]);
    const y = tensor(Int32Array.from({ length: batch }, (_, i) => i % 4), [batch]);
    const count = countOn(device);
    try {
      const start = { buffers: count.buffers, listeners: count.listeners };
      const use = async () => {
        const m = smallModel();
        const initial = m.getWeights().map((t) => Float32Array.from(t.data as Float32Array));
        const logs = await m.trainOnBatch(x, y, { backend: 'webgpu', batchSize: batch });
        expect(Number.isFinite(logs.loss)).toBe(true);
        const ev = await m.evaluate(x, y, { backend: 'webgpu', batchSize: batch });
        expect(Number.isFinite(ev.loss)).toBe(true);
        expect((await m.predict(x, { backend: 'webgpu', batchSize: batch })).shape).toEqual([batch, 4]);
        return { m, initial };
      };
      const done = async ({ m, initial }: Awaited<ReturnType<typeof use>>) => {
        await m.dispose();
        // dispose() brought the trained weights back first: they are finite and moved off the initial ones.
        const w = m.getWeights().map((t) => t.data as Float32Array);
        expect(w.every((d) => d.every(Number.isFinite))).toBe(true);
        expect(w.some((d, i) => d.some((v, j) => v !== initial[i][j]))).toBe(true);
      };
      // 12 live models at once (each with train, eval and predict programs): one listener between them.
      const held = [];
      for (let i = 0; i < 12; i++) held.push(await use());
      const live = { buffers: count.buffers, listeners: count.listeners };
      expect(live.listeners - start.listeners).toBe(1);
      for (const m of held) await done(m);
      // Then 28 more, one at a time.
      for (let i = 0; i < 28; i++) await done(await use());
      await device.queue.onSubmittedWorkDone();
      await new Promise((r) => setTimeout(r, 0));
      console.log(
        `leaks: models: buffers ${start.buffers} -> ${live.buffers} (12 models alive) -> ${count.buffers} (all 40 disposed), listeners ${start.listeners} -> ${live.listeners} -> ${count.listeners} (peak ${count.peakListeners})`,
      );
      expect({ buffers: count.buffers, listeners: count.listeners }).toEqual(start);
      expect(count.peakListeners - start.listeners).toBeLessThanOrEqual(1);
    } finally {
      count.restore();
    }
  }, 300_000);

  it('a disposed model trains on', async () => {
    const m = smallModel();
    const batch = 4;
    const x = tensor(Float32Array.from({ length: batch * 8 }, (_, i) => Math.cos(i)), [batch, 8]);
    const y = tensor(Int32Array.from({ length: batch }, (_, i) => (i + 1) % 4), [batch]);
    const first = await m.trainOnBatch(x, y, { backend: 'webgpu', batchSize: batch });
    await m.dispose();
    const second = await m.trainOnBatch(x, y, { backend: 'webgpu', batchSize: batch });
    // The second step starts from the first step's weights (brought back by dispose), so the loss moved.
    expect(second.loss).not.toBe(first.loss);
    await m.dispose();
  });
});

describe('Wasm training does not grow memory', () => {
  it('RSS levels off over 10,000 trainOnBatch steps of a small Dense model', async () => {
    const model = smallModel();
    const batch = 8;
    const x = tensor(Float32Array.from({ length: batch * 8 }, (_, i) => Math.cos(i)), [batch, 8]);
    const y = tensor(Int32Array.from({ length: batch }, (_, i) => i % 4), [batch]);
    const mb = () => process.memoryUsage().rss / 2 ** 20;
    const samples: number[] = [];
    const steps = 10_000;
    for (let s = 0; s <= steps; s++) {
      if (s % 2000 === 0) samples.push(mb());
      if (s < steps) await model.trainOnBatch(x, y, { backend: 'wasm', batchSize: batch });
    }
    console.log(`leaks: RSS (MiB) at steps 0, 2000, ..., ${steps}: ${samples.map((v) => v.toFixed(1)).join(', ')}`);
    // After the first 2,000 steps (compiles, JIT, caches) the process must not keep growing.
    expect(samples[samples.length - 1] - samples[1]).toBeLessThan(20);
  }, 120_000);
});
