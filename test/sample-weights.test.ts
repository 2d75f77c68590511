/**
 * @file Sample weights, class weights and weighted metrics against real Keras 3: every fixture in
 * test/fixtures/keras-weights (written by scripts/keras-fixtures/gen_weights.py) is rebuilt with
 * dlc's API from Keras's initial weights and run the same way (`trainOnBatch`, `fit` with short final
 * batches and validationSplit, `evaluate`), on interp, wasm and webgpu (where an adapter exists).
 * Compared: every logged value and every weight afterwards.
 *
 * Tolerances: logs 1e-5 relative plus 1e-6 absolute, weights 1e-5 relative plus 1e-6 absolute. The
 * optimizer is plain SGD, so the only differences are f32 rounding of sums taken in another order.
 * An f64 re-derivation of the formulas (loss = Σ l·w / n, not / Σ w; weighted metrics Σ v·w / Σ w)
 * checks the fixtures themselves, so a fixture that does not follow Keras's documented rule fails.
 * Also: bad weights are refused naming the argument, and artifacts take sampleWeight.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { close } from './helpers/keras-close.ts';
import type { Tensor } from '../compiler/index.ts';
import { Dense, Input, Model, SGD, SparseCategoricalCrossentropy, tensor } from '../compiler/index.ts';
import { needWebGpu } from './helpers/requirements.ts';

interface Fixture {
  readonly case: string;
  readonly mode: 'train_on_batch' | 'fit' | 'evaluate';
  readonly layers: [number, string][];
  readonly loss: string;
  readonly loss_args: Record<string, unknown>;
  readonly metrics: string[];
  readonly weighted_metrics: string[];
  readonly learning_rate: number;
  readonly x: { shape: number[]; data: number[] };
  readonly y: { shape: number[]; dtype: 'f32' | 'i32'; data: number[] };
  readonly sample_weight: number[] | null;
  readonly class_weight: Record<string, number> | null;
  readonly weights: { name: string; shape: number[]; data: number[] }[];
  readonly steps?: number;
  readonly batch_size?: number;
  readonly epochs?: number;
  readonly validation_split?: number | null;
  readonly logs?: Record<string, number>[];
  readonly history?: Record<string, number[]>;
  readonly weights_after?: Record<string, number[]>[];
}

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'keras-weights');
const fixtures: Fixture[] = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Fixture);

const gpu = !!(await needWebGpu('test/sample-weights.test.ts: the Keras sample-weight fixtures on webgpu (interp and wasm still run)'));

function build(f: Fixture) {
  const x = Input({ shape: [4] });
  let h = x;
  f.layers.forEach(([units, activation], i) => (h = Dense(units, { activation: activation as never, name: `d${i}` }).apply(h)));
  const m = Model({ inputs: x, outputs: h, name: f.case });
  const loss = f.loss === 'sparse_categorical_crossentropy' && 'ignore_class' in f.loss_args ? SparseCategoricalCrossentropy({ ignoreClass: f.loss_args.ignore_class as number }) : (f.loss as never);
  m.compile({ optimizer: SGD({ learningRate: f.learning_rate }), loss, metrics: f.metrics as never, weightedMetrics: f.weighted_metrics as never });
  const byName = new Map(f.weights.map((w) => [w.name, w]));
  m.setWeights(m.weightInfo.map((w) => tensor(Float32Array.from(byName.get(w.name)!.data), [...w.shape])));
  return m;
}


const data = (f: Fixture): { x: Tensor; y: Tensor } => ({
  x: tensor(Float32Array.from(f.x.data), f.x.shape),
  y: f.y.dtype === 'i32' ? tensor(Int32Array.from(f.y.data), f.y.shape, 'i32') : tensor(Float32Array.from(f.y.data), f.y.shape),
});
const classWeight = (f: Fixture) => (f.class_weight ? Object.fromEntries(Object.entries(f.class_weight).map(([k, v]) => [Number(k), v])) : undefined);
const sampleWeight = (f: Fixture) => (f.sample_weight ? Float32Array.from(f.sample_weight) : undefined);

function checkLogs(got: Record<string, number>, want: Record<string, number>, what: string): void {
  expect(Object.keys(got).sort(), `${what}: logged names`).toEqual(Object.keys(want).sort());
  for (const [k, v] of Object.entries(want)) close([got[k]], [v], 1e-5, 1e-6, `${what} ${k}`);
}

async function checkWeights(m: ReturnType<typeof build>, want: Record<string, number[]>, what: string): Promise<void> {
  await m.sync();
  const got = new Map(m.weightInfo.map((w, i) => [w.name, m.getWeights()[i].data as Float32Array]));
  for (const [name, w] of Object.entries(want)) close(got.get(name)!, w, 1e-5, 1e-6, `${what} ${name}`);
}

const backends = ['interp', 'wasm', ...(gpu ? (['webgpu'] as const) : [])] as const;
for (const backend of backends) {
  describe(`Keras 3 sample-weight fixtures on ${backend}`, () => {
    it('cover sample weights, class weights, weighted metrics, short batches and validation', () => {
      const modes = new Set(fixtures.map((f) => f.mode));
      expect(modes).toEqual(new Set(['train_on_batch', 'fit', 'evaluate']));
      expect(fixtures.some((f) => f.class_weight)).toBe(true);
      expect(fixtures.some((f) => f.validation_split)).toBe(true);
      expect(fixtures.length).toBeGreaterThanOrEqual(10);
    });
    for (const f of fixtures) {
      it(f.case, async () => {
        const m = build(f);
        const { x, y } = data(f);
        if (f.mode === 'train_on_batch') {
          for (let s = 0; s < f.steps!; s++) {
            const r = await m.trainOnBatch(x, y, { backend, sampleWeight: sampleWeight(f), classWeight: classWeight(f) });
            checkLogs(r, f.logs![s], `${f.case} step ${s}`);
            await checkWeights(m, f.weights_after![s], `${f.case} after step ${s}`);
          }
        } else if (f.mode === 'fit') {
          const h = await m.fit(x, y, {
            backend,
            batchSize: f.batch_size,
            epochs: f.epochs,
            shuffle: false,
            verbose: 0,
            sampleWeight: sampleWeight(f),
            classWeight: classWeight(f),
            validationSplit: f.validation_split ?? undefined,
          });
          expect(Object.keys(h.history).sort(), `${f.case}: history names`).toEqual(Object.keys(f.history!).sort());
          for (const [k, v] of Object.entries(f.history!)) close(h.history[k], v, 1e-5, 1e-6, `${f.case} ${k}`);
          await checkWeights(m, f.weights_after![0], `${f.case} after fit`);
        } else {
          const r = await m.evaluate(x, y, { backend, batchSize: f.batch_size, sampleWeight: sampleWeight(f) });
          checkLogs(r, f.logs![0], f.case);
        }
      });
    }
  });
}

describe('the fixtures follow Keras documented rule (f64 re-derivation)', () => {
  // Softmax cross-entropy of a Dense stack evaluated in f64 from the initial weights: the first
  // step's logged loss must be Σ l·w / n (not / Σ w), weighted accuracy Σ v·w / Σ w.
  const forward = (f: Fixture, row: number): number[] => {
    let h = f.x.data.slice(row * 4, row * 4 + 4);
    f.layers.forEach(([units, act], li) => {
      const k = f.weights.find((w) => w.name === `d${li}.kernel`)!;
      const b = f.weights.find((w) => w.name === `d${li}.bias`)!;
      const z = Array.from({ length: units }, (_, j) => b.data[j] + h.reduce((a, v, i) => a + v * k.data[i * units + j], 0));
      if (act === 'tanh') h = z.map(Math.tanh);
      else if (act === 'softmax') {
        const mx = Math.max(...z);
        const e = z.map((v) => Math.exp(v - mx));
        const s = e.reduce((a, v) => a + v, 0);
        h = e.map((v) => v / s);
      } else h = z;
    });
    return h;
  };
  it('sample-weighted sparse cross-entropy divides by the sample count; weighted accuracy by Σ w', () => {
    const f = fixtures.find((x) => x.case === 'sw_sparse_train_on_batch')!;
    const n = f.x.shape[0];
    let sum = 0;
    let acc = 0;
    let wacc = 0;
    let wsum = 0;
    for (let i = 0; i < n; i++) {
      const p = forward(f, i);
      const w = f.sample_weight![i];
      sum += -Math.log(p[f.y.data[i]]) * w;
      const hit = p.indexOf(Math.max(...p)) === f.y.data[i] ? 1 : 0;
      acc += hit;
      wacc += hit * w;
      wsum += w;
    }
    expect(f.logs![0].loss).toBeCloseTo(sum / n, 5);
    expect(Math.abs(f.logs![0].loss - sum / wsum)).toBeGreaterThan(1e-3);
    expect(f.logs![0].accuracy).toBeCloseTo(acc / n, 6);
    expect(f.logs![0].weighted_accuracy).toBeCloseTo(wacc / wsum, 6);
  });
});

describe('class weights are sample weights by class', () => {
  it('a step with classWeight equals one with the per-sample weights it stands for (1 for an unlisted class)', async () => {
    const f = fixtures.find((x) => x.case === 'cw_sparse_fit')!;
    const cw = classWeight(f)!;
    // The fixture's labels include a class the map leaves out, which must weigh 1.
    expect(f.y.data.some((c) => cw[c] === undefined)).toBe(true);
    const { x, y } = data(f);
    const sw = Float32Array.from(f.y.data, (c) => cw[c] ?? 1);
    const a = build(f);
    const b = build(f);
    const ra = await a.trainOnBatch(x, y, { backend: 'interp', classWeight: cw });
    const rb = await b.trainOnBatch(x, y, { backend: 'interp', sampleWeight: sw });
    expect(ra).toEqual(rb);
    const unweighted = await build(f).trainOnBatch(x, y, { backend: 'interp' });
    expect(Math.abs(ra.loss - unweighted.loss)).toBeGreaterThan(1e-3);
    a.getWeights().forEach((w, i) => expect(Array.from(w.data)).toEqual(Array.from(b.getWeights()[i].data)));
  });
});

describe('bad weights are refused naming the argument', () => {
  const f = fixtures.find((x) => x.case === 'sw_sparse_train_on_batch')!;
  it('wrong length, negative, NaN, both kinds, multi-output classWeight', async () => {
    const m = build(f);
    const { x, y } = data(f);
    await expect(m.trainOnBatch(x, y, { sampleWeight: new Float32Array(5) })).rejects.toThrow(/trainOnBatch: sampleWeight: expected one weight per sample, shape \[6\], got \[5\]/);
    await expect(m.fit(x, y, { verbose: 0, sampleWeight: [1, 1, -1, 1, 1, 1] })).rejects.toThrow(/fit: sampleWeight: sample 2 has weight -1; sample weights must be finite and >= 0/);
    await expect(m.evaluate(x, y, { sampleWeight: [1, 1, 1, NaN, 1, 1] })).rejects.toThrow(/sampleWeight: sample 3 has weight NaN/);
    await expect(m.fit(x, y, { verbose: 0, sampleWeight: sampleWeight(f), classWeight: { 0: 1 } })).rejects.toThrow(/fit: give sampleWeight or classWeight, not both/);
    await expect(m.fit(x, y, { verbose: 0, classWeight: { 0: -2 } })).rejects.toThrow(/fit: classWeight: class 0 has weight -2/);
    await expect(m.fit(x, y, { verbose: 0, classWeight: { 1.5: 2 } as never })).rejects.toThrow(/fit: classWeight: key '1.5' is not a class index/);
    await expect(m.fit(x, y, { verbose: 0, validationData: [x, y, new Float32Array(2)] })).rejects.toThrow(/validationData\[2\]: expected one weight per sample, shape \[6\], got \[2\]/);
    const inp = Input({ shape: [4] });
    const two = Model({ inputs: inp, outputs: [Dense(2, { name: 'a' }).apply(inp), Dense(2, { name: 'b' }).apply(inp)] });
    two.compile({ optimizer: 'sgd', loss: 'mse' });
    const t = tensor(new Float32Array(12), [6, 2]);
    await expect(two.fit(x, [t, t], { verbose: 0, classWeight: { 0: 1 } })).rejects.toThrow(/classWeight needs a model of one output; .* has 2 \(a, b\)/);
  });
  it('a weighted metric is named weighted_<name> only beside a plain metric of that name', () => {
    const m = build({ ...f, metrics: [], weighted_metrics: ['accuracy'] });
    expect([...m.stepFunction('eval', 4).results.keys()]).toEqual(['loss', 'accuracy']);
    expect([...build(f).stepFunction('eval', 4).results.keys()]).toEqual(['loss', 'accuracy', 'weighted_accuracy']);
  });
});
