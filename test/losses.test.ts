/**
 * @file dlc's losses and metrics against real Keras 3: every fixture in test/fixtures/keras-losses
 * (written by scripts/keras-fixtures/gen_losses.py, re-derived in f64 by check_losses.py) is built
 * with dlc's API and evaluated by the f64 reference interpreter.
 *
 *  - Losses: the per-sample values and the reduced value (1e-5 relative plus 1e-7 absolute) and the
 *    gradient of the reduced value with respect to y_pred (ir/autodiff.ts `grad`, 1e-4 relative plus
 *    1e-7 absolute). Cross-entropies on probabilities are checked a second time the way a model with
 *    a final softmax/sigmoid computes them, from the logits (z = log p, or log(p / (1 - p))).
 *  - Metrics: per-sample and reduced values, with `accuracy` resolved by Keras's compile rule.
 *  - Through `compile` and `evaluate`: a model whose output is its input gives each fixture's loss and
 *    metric under Keras's log names.
 *  - End to end: small models compiled with the new losses and options train one step on Wasm with the
 *    loss and weights of the reference interpreter; a padded final batch changes nothing.
 *  - Bad input is refused at compile (or at the factory), naming the argument, expected against got.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { close } from './helpers/keras-close.ts';
import type { Loss, LossSpec, Metric, MetricSpec } from '../compiler/index.ts';
import {
  BinaryAccuracy,
  BinaryCrossentropy,
  CategoricalAccuracy,
  CategoricalCrossentropy,
  CategoricalHinge,
  CosineSimilarity,
  Dense,
  DlcError,
  Hinge,
  Huber,
  Input,
  KLDivergence,
  LogCosh,
  MeanAbsoluteError,
  MeanSquaredError,
  Model,
  Poisson,
  Sequential,
  SparseCategoricalAccuracy,
  SparseCategoricalCrossentropy,
  SparseTopKCategoricalAccuracy,
  TopKCategoricalAccuracy,
  tensor,
} from '../compiler/index.ts';
import { activate } from '../compiler/frontend/activations.ts';
import { batchLoss, checkLoss, checkMetric, perSampleLoss, perSampleMetric, resolveMetric } from '../compiler/frontend/losses.ts';
import { grad } from '../ir/autodiff.ts';
import * as b from '../ir/builders.ts';
import { makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import type { InputNode, Node } from '../ir/types.ts';
import { mulberry32 } from './helpers/gradcheck.ts';

interface Data {
  readonly shape: number[];
  readonly dtype: 'float32' | 'int32';
  readonly data: number[];
}
interface LossFixture {
  readonly case: string;
  readonly kind: 'loss';
  readonly loss: { readonly class: string; readonly function: string; readonly args: Record<string, unknown> };
  readonly y_true: Data;
  readonly y_pred: Data;
  readonly per_sample: number[];
  readonly value: number;
  readonly grad: number[];
}
interface MetricFixture {
  readonly case: string;
  readonly kind: 'metric';
  readonly metric: { readonly class: string; readonly function: string; readonly args: Record<string, unknown>; readonly compile_name?: string; readonly compile_resolves_to?: string };
  readonly y_true: Data;
  readonly y_pred: Data;
  readonly per_sample_shape: number[];
  readonly per_sample: number[];
  readonly value: number;
}
type Fixture = LossFixture | MetricFixture;

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'keras-losses');
const fixtures: Fixture[] = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Fixture);
const lossFixtures = fixtures.filter((f): f is LossFixture => f.kind === 'loss');
const metricFixtures = fixtures.filter((f): f is MetricFixture => f.kind === 'metric');

/** Keras's snake_case arguments as dlc's camelCase options. */
const camel = (args: Record<string, unknown>) => Object.fromEntries(Object.entries(args).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()), v]));

const LOSSES: Record<string, (o: never) => Loss> = {
  BinaryCrossentropy,
  CategoricalCrossentropy,
  CategoricalHinge,
  CosineSimilarity,
  Hinge,
  Huber,
  KLDivergence,
  LogCosh,
  MeanAbsoluteError,
  MeanSquaredError,
  Poisson,
  SparseCategoricalCrossentropy,
};
const METRICS: Record<string, (o: never) => Metric> = {
  BinaryAccuracy,
  CategoricalAccuracy,
  SparseCategoricalAccuracy,
  TopKCategoricalAccuracy,
  SparseTopKCategoricalAccuracy,
  MeanAbsoluteError: () => checkMetric('mean_absolute_error'),
  MeanSquaredError: () => checkMetric('mean_squared_error'),
};
/** Keras's metric classes by dlc's metric kinds. */
const METRIC_CLASS: Record<string, string> = {
  binary_accuracy: 'BinaryAccuracy',
  categorical_accuracy: 'CategoricalAccuracy',
  sparse_categorical_accuracy: 'SparseCategoricalAccuracy',
  top_k_categorical_accuracy: 'TopKCategoricalAccuracy',
  sparse_top_k_categorical_accuracy: 'SparseTopKCategoricalAccuracy',
  mean_absolute_error: 'MeanAbsoluteError',
  mean_squared_error: 'MeanSquaredError',
};

function lossOf(f: LossFixture): Loss {
  const make = LOSSES[f.loss.class];
  if (!make) throw new Error(`no dlc loss for Keras's ${f.loss.class}`);
  return make(camel(f.loss.args) as never);
}


const inputOf = (name: string, d: Data): InputNode => input(name, d.dtype === 'int32' ? 'i32' : 'f32', d.shape) as InputNode;
const argOf = (d: Data) => (d.dtype === 'int32' ? Int32Array.from(d.data) : Float64Array.from(d.data));

/**
 * Run one loss on a fixture: per-sample values, the batch's value (the model's reduction, all mask 1)
 * and its gradient with respect to y_pred. `toOut` maps the y_pred input to (output, logits, act).
 */
function runLoss(f: LossFixture, loss: Loss, toOut: (p: Node) => { out: Node; logits: Node; act: 'linear' | 'softmax' | 'sigmoid' }) {
  const yt = inputOf('y_true', f.y_true);
  const yp = inputOf('y_pred', f.y_pred);
  const o = toOut(yp);
  const per = perSampleLoss(loss, o.out, o.logits, o.act, yt);
  const B = f.y_pred.shape[0];
  const mask = b.constant(1, [B]);
  const count = b.max(b.reduceSum(mask, [0]), b.constant(1, []));
  const value = batchLoss(loss, per, yt, mask, count);
  const [g] = grad(value, [yp]);
  const [rp, rv, rg] = interpret(makeFunc(f.case, [yt, yp], [per, value, g]), [argOf(f.y_true), argOf(f.y_pred)]);
  return { per: rp.data, value: rv.data[0], grad: rg.data };
}

describe('Keras 3 loss fixtures on the reference interpreter', () => {
  it('cover every loss dlc has', () => {
    expect(new Set(lossFixtures.map((f) => f.loss.class))).toEqual(new Set(Object.keys(LOSSES)));
    expect(lossFixtures.length).toBe(24);
  });
  for (const f of lossFixtures) {
    it(f.case, () => {
      const r = runLoss(f, lossOf(f), (p) => ({ out: p, logits: p, act: 'linear' }));
      close(r.per, f.per_sample, 1e-5, 1e-7, `${f.case} per-sample`);
      close([r.value], [f.value], 1e-5, 1e-7, `${f.case} value`);
      close(r.grad, f.grad, 1e-4, 1e-7, `${f.case} gradient`);
    });
  }

  // A model ending in softmax (sigmoid) computes cross-entropy on probabilities from the logits
  // before the activation. With logits z = log p (binary: log(p / (1 - p))) that is Keras's value on
  // p (renormalised, for categorical) as long as no probability reaches Keras's clipping at 1e-7.
  const probabilityCE = lossFixtures.filter((f) => /crossentropy/.test(f.loss.function) && !f.loss.args.from_logits);
  for (const f of probabilityCE) {
    it(`${f.case}, from the logits of a final ${f.loss.function === 'binary_crossentropy' ? 'sigmoid' : 'softmax'}`, () => {
      const binary = f.loss.function === 'binary_crossentropy';
      const C = f.y_pred.shape[1];
      const q = f.y_pred.data.map((p, i) => (binary ? p : p / f.y_pred.data.slice(i - (i % C), i - (i % C) + C).reduce((a, v) => a + v, 0)));
      expect(q.every((p) => p > 1e-6 && p < 1 - 1e-6)).toBe(true);
      const r = runLoss(f, lossOf(f), (p) => {
        const z = binary ? b.sub(b.log(p), b.log(b.sub(b.scalarLike(1, p), p))) : b.log(p);
        const act = binary ? ('sigmoid' as const) : ('softmax' as const);
        return { out: activate(act, z), logits: z, act };
      });
      close(r.per, f.per_sample, 1e-5, 1e-7, `${f.case} per-sample`);
      close([r.value], [f.value], 1e-5, 1e-7, `${f.case} value`);
      close(r.grad, f.grad, 1e-4, 1e-7, `${f.case} gradient`);
    });
  }
});

describe('Keras 3 metric fixtures on the reference interpreter', () => {
  it('cover every metric dlc has', () => {
    expect(new Set(metricFixtures.map((f) => f.metric.class))).toEqual(new Set(Object.keys(METRICS)));
    expect(metricFixtures.length).toBe(8);
  });
  for (const f of metricFixtures) {
    it(f.case, () => {
      const sparse = f.y_true.dtype === 'int32';
      // The labels' form comes from the loss: class indices for sparse categorical cross-entropy.
      const loss = sparse ? SparseCategoricalCrossentropy() : MeanSquaredError();
      const spec: Metric = f.metric.compile_name ? checkMetric(f.metric.compile_name) : METRICS[f.metric.class](camel(f.metric.args) as never);
      const m = resolveMetric(spec, loss, f.y_pred.shape.slice(1));
      expect(METRIC_CLASS[m.kind], `${f.case}: compile's choice`).toBe(f.metric.compile_resolves_to ?? f.metric.class);
      expect(m.name).toBe(f.metric.compile_name ?? f.metric.function);
      const yt = inputOf('y_true', f.y_true);
      const yp = inputOf('y_pred', f.y_pred);
      const per = perSampleMetric(m, yp, yt);
      const value = b.div(b.reduceSum(per, [0]), b.constant(per.shape[0], []));
      const [rp, rv] = interpret(makeFunc(f.case, [yt, yp], [per, value]), [argOf(f.y_true), argOf(f.y_pred)]);
      // Keras's binary accuracy is per element; dlc's per sample is their mean over the sample.
      const B = f.y_pred.shape[0];
      const per1 = f.per_sample.length / B;
      const want = Array.from({ length: B }, (_, i) => f.per_sample.slice(i * per1, (i + 1) * per1).reduce((a, v) => a + v, 0) / per1);
      close(rp.data, want, 1e-6, 1e-7, `${f.case} per-sample`);
      close([rv.data[0]], [f.value], 1e-6, 1e-7, `${f.case} value`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Through compile and evaluate

/** A model whose output is its input (an identity Dense), so evaluate(y_pred, y_true) scores y_pred. */
function identityModel(units: number, name: string) {
  const x = Input({ shape: [units], name: 'x' });
  const m = Model({ inputs: x, outputs: Dense(units, { name }).apply(x), name: 'identity' });
  const eye = new Float32Array(units * units);
  for (let i = 0; i < units; i++) eye[i * units + i] = 1;
  return { m, weights: [tensor(eye, [units, units]), tensor(new Float32Array(units), [units])] };
}
const labels = (d: Data) => (d.dtype === 'int32' ? tensor(Int32Array.from(d.data), d.shape, 'i32') : tensor(Float32Array.from(d.data), d.shape));

describe('fixtures through compile and evaluate (interp)', () => {
  for (const f of lossFixtures) {
    it(`loss ${f.case}`, async () => {
      const { m, weights } = identityModel(f.y_pred.shape[1], 'out');
      m.compile({ optimizer: 'sgd', loss: lossOf(f) });
      m.setWeights(weights);
      const r = await m.evaluate(tensor(Float32Array.from(f.y_pred.data), f.y_pred.shape), labels(f.y_true), { backend: 'interp', batchSize: 4 });
      close([r.loss], [f.value], 1e-5, 1e-7, `${f.case} loss`);
    });
  }
  for (const f of metricFixtures) {
    it(`metric ${f.case}`, async () => {
      const { m, weights } = identityModel(f.y_pred.shape[1], 'out');
      const spec: MetricSpec = f.metric.compile_name ?? METRICS[f.metric.class](camel(f.metric.args) as never);
      m.compile({ optimizer: 'sgd', loss: f.y_true.dtype === 'int32' ? 'sparse_categorical_crossentropy' : 'mse', metrics: [spec] });
      m.setWeights(weights);
      const r = await m.evaluate(tensor(Float32Array.from(f.y_pred.data), f.y_pred.shape), labels(f.y_true), { backend: 'interp', batchSize: 4 });
      // Keras's log name: the string as given, or the metric class's default name.
      const name = f.metric.compile_name ?? f.metric.function;
      expect(Object.keys(r)).toEqual(['loss', name]);
      close([r[name]], [f.value], 1e-6, 1e-7, `${f.case} ${name}`);
    });
  }

  it("logs each output's metrics under Keras's names", async () => {
    const x = Input({ shape: [4], name: 'x' });
    const cls = Dense(4, { activation: 'softmax', name: 'cls' }).apply(x);
    const reg = Dense(2, { name: 'reg' }).apply(x);
    const m = Model({ inputs: x, outputs: [cls, reg] });
    m.compile({
      optimizer: 'sgd',
      loss: { cls: 'sparse_categorical_crossentropy', reg: Huber({ delta: 0.5 }) },
      metrics: { cls: ['acc', SparseTopKCategoricalAccuracy({ k: 2, name: 'top2' })], reg: ['mae', 'mean_squared_error'] },
    });
    const r = await m.evaluate(tensor(new Float32Array(12), [3, 4]), { cls: tensor([0, 1, 3], [3], 'i32'), reg: tensor(new Float32Array(6), [3, 2]) }, { backend: 'interp' });
    expect(Object.keys(r).sort()).toEqual(['cls_acc', 'cls_loss', 'cls_top2', 'loss', 'reg_loss', 'reg_mae', 'reg_mean_squared_error']);
    // x = 0: every class scores the same, so the first (class 0) is the argmax and every label ties for the top.
    expect(r.cls_acc).toBeCloseTo(1 / 3, 12);
    expect(r.cls_top2).toBe(1);
    expect(m.compiled!.metrics[0].map((x) => x.kind)).toEqual(['sparse_categorical_accuracy', 'sparse_top_k_categorical_accuracy']);
  });

  it('categorical cross-entropy and accuracy on a sequence of class scores average over the steps, as Keras', async () => {
    const m = Sequential([Dense(3, { activation: 'softmax', inputShape: [2, 4] })], { seed: 2 });
    m.compile({ optimizer: 'sgd', loss: 'categorical_crossentropy', metrics: ['accuracy'] });
    const rnd = mulberry32(5);
    const x = tensor(Float32Array.from({ length: 5 * 8 }, () => 2 * rnd() - 1), [5, 2, 4]);
    const cls = Array.from({ length: 10 }, (_, i) => (i * 5) % 3);
    const y = tensor(Float32Array.from({ length: 30 }, (_, i) => (cls[Math.floor(i / 3)] === i % 3 ? 1 : 0)), [5, 2, 3]);
    const p = (await m.predict(x, { backend: 'interp' })).data;
    let ce = 0;
    let hits = 0;
    for (let r = 0; r < 10; r++) {
      const row = Array.from(p.slice(r * 3, r * 3 + 3));
      ce -= Math.log(row[cls[r]]);
      if (row.indexOf(Math.max(...row)) === cls[r]) hits++;
    }
    const e = await m.evaluate(x, y, { backend: 'interp' });
    close([e.loss], [ce / 10], 1e-6, 0, 'sequence loss');
    expect(e.accuracy).toBeCloseTo(hits / 10, 12);
  });

  it("resolves 'accuracy' by Keras's rule: binary for one unit, else categorical for targets of the output's shape", () => {
    const kinds = (units: number, loss: LossSpec) => {
      const m = Sequential([Dense(units, { inputShape: [3] })]);
      m.compile({ optimizer: 'sgd', loss, metrics: ['accuracy'] });
      return m.compiled!.metrics[0][0].kind;
    };
    expect(kinds(1, BinaryCrossentropy({ fromLogits: true }))).toBe('binary_accuracy');
    expect(kinds(3, BinaryCrossentropy({ fromLogits: true }))).toBe('categorical_accuracy');
    expect(kinds(3, 'mse')).toBe('categorical_accuracy');
    expect(kinds(3, SparseCategoricalCrossentropy({ fromLogits: true }))).toBe('sparse_categorical_accuracy');
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: one train step on Wasm against the reference interpreter

interface E2E {
  readonly name: string;
  readonly loss: LossSpec;
  readonly units: number;
  readonly activation: 'linear' | 'softmax' | 'sigmoid' | 'softplus';
  readonly y: (n: number, rnd: () => number) => ReturnType<typeof tensor>;
}
const N = 6;
const dense = (units: number, f: (rnd: () => number) => number) => (n: number, rnd: () => number) => tensor(Float32Array.from({ length: n * units }, () => f(rnd)), [n, units]);
const oneHotRows = (units: number) => (n: number) =>
  tensor(Float32Array.from({ length: n * units }, (_, i) => (i % units === Math.floor(((Math.floor(i / units) * 7919) % 97) % units) ? 1 : 0)), [n, units]);
const e2eCases: E2E[] = [
  { name: 'huber (delta 0.5)', loss: Huber({ delta: 0.5 }), units: 3, activation: 'linear', y: dense(3, (r) => 2 * r() - 1) },
  { name: 'categorical_crossentropy fromLogits + labelSmoothing', loss: CategoricalCrossentropy({ fromLogits: true, labelSmoothing: 0.1 }), units: 4, activation: 'linear', y: oneHotRows(4) },
  { name: 'categorical_crossentropy labelSmoothing after softmax', loss: CategoricalCrossentropy({ labelSmoothing: 0.2 }), units: 4, activation: 'softmax', y: oneHotRows(4) },
  { name: 'sparse_categorical_crossentropy ignoreClass', loss: SparseCategoricalCrossentropy({ ignoreClass: 2 }), units: 3, activation: 'softmax', y: (n) => tensor(Int32Array.from({ length: n }, (_, i) => i % 3), [n], 'i32') },
  {
    name: 'sparse_categorical_crossentropy fromLogits, ignoreClass -1',
    loss: { kind: 'sparse_categorical_crossentropy', fromLogits: true, ignoreClass: -1 },
    units: 3,
    activation: 'linear',
    y: (n) => tensor(Int32Array.from({ length: n }, (_, i) => (i % 4 === 1 ? -1 : i % 3)), [n], 'i32'),
  },
  { name: 'binary_crossentropy fromLogits + labelSmoothing', loss: BinaryCrossentropy({ fromLogits: true, labelSmoothing: 0.1 }), units: 2, activation: 'linear', y: dense(2, (r) => (r() < 0.5 ? 0 : 1)) },
  { name: 'mean_absolute_error', loss: 'mae', units: 2, activation: 'linear', y: dense(2, (r) => r()) },
  { name: 'kl_divergence', loss: 'kld', units: 3, activation: 'softmax', y: oneHotRows(3) },
  { name: 'log_cosh', loss: LogCosh(), units: 2, activation: 'linear', y: dense(2, (r) => 3 * r() - 1.5) },
  { name: 'hinge', loss: 'hinge', units: 2, activation: 'linear', y: dense(2, (r) => (r() < 0.5 ? 0 : 1)) },
  { name: 'categorical_hinge', loss: 'categorical_hinge', units: 3, activation: 'linear', y: oneHotRows(3) },
  { name: 'poisson', loss: 'poisson', units: 2, activation: 'softplus', y: dense(2, (r) => Math.floor(4 * r())) },
  { name: 'cosine_similarity', loss: CosineSimilarity(), units: 3, activation: 'linear', y: dense(3, (r) => 2 * r() - 1) },
];

describe('one train step on wasm matches the reference interpreter', () => {
  const rnd = mulberry32(7);
  const x = tensor(Float32Array.from({ length: N * 5 }, () => 2 * rnd() - 1), [N, 5]);
  for (const c of e2eCases) {
    it(c.name, async () => {
      const y = c.y(N, mulberry32(11));
      const make = () => {
        const m = Sequential([Dense(8, { activation: 'tanh', inputShape: [5] }), Dense(c.units, { activation: c.activation })], { seed: 3 });
        m.compile({ optimizer: 'sgd', loss: c.loss, metrics: [] });
        return m;
      };
      const mi = make();
      const mw = make();
      const ri = await mi.trainOnBatch(x, y, { backend: 'interp' });
      const rw = await mw.trainOnBatch(x, y, { backend: 'wasm' });
      expect(Number.isFinite(ri.loss) && ri.loss !== 0).toBe(true);
      close([rw.loss], [ri.loss], 1e-5, 1e-7, `${c.name} loss`);
      const wi = mi.getWeights();
      mw.getWeights().forEach((w, i) => close(w.data, wi[i].data, 1e-4, 1e-6, `${c.name} weight ${mi.weightInfo[i].name}`));
      // A padded final batch (batch 4 over 6 samples: 2 rows of zeros) scores the same as one batch.
      const full = await mw.evaluate(x, y, { backend: 'wasm', batchSize: N });
      const padded = await mw.evaluate(x, y, { backend: 'wasm', batchSize: 4 });
      expect(Number.isFinite(padded.loss)).toBe(true);
      // (With ignoreClass, batches hold different numbers of kept samples; evaluate weighs batches by samples, as Keras.)
      if (!(typeof c.loss === 'object' && 'ignoreClass' in c.loss)) close([padded.loss], [full.loss], 1e-5, 1e-7, `${c.name} padded`);
    });
  }

  it('ignoreClass: the loss is the mean over the kept samples only, whatever the batching', async () => {
    const m = Sequential([Dense(3, { activation: 'softmax', inputShape: [5] })], { seed: 1 });
    m.compile({ optimizer: 'sgd', loss: SparseCategoricalCrossentropy({ ignoreClass: -1 }) });
    const yv = [0, -1, 2, 1, -1, 2];
    const y = tensor(Int32Array.from(yv), [N], 'i32');
    const p = (await m.predict(x, { backend: 'interp' })).data;
    const kept = yv.flatMap((c, i) => (c < 0 ? [] : [-Math.log(p[i * 3 + c])]));
    const want = kept.reduce((a, v) => a + v, 0) / kept.length;
    for (const batchSize of [6, 4, 1]) {
      const r = await m.evaluate(x, y, { backend: 'interp', batchSize });
      // evaluate averages batch losses weighted by samples, as Keras; only one batch holds all.
      // (want is computed from predict's f32 probabilities.)
      if (batchSize === 6) close([r.loss], [want], 1e-7, 0, 'ignoreClass loss');
      expect(Number.isFinite(r.loss)).toBe(true);
    }
    const r = await m.trainOnBatch(x, y, { backend: 'interp' });
    close([r.loss], [want], 1e-7, 0, 'ignoreClass train loss');
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input

describe('bad losses and metrics are refused, naming the argument', () => {
  const small = (units = 3, activation: 'softmax' | 'linear' | 'sigmoid' = 'linear') => Sequential([Dense(units, { activation, inputShape: [4] })]);
  const cases: [string, () => unknown, RegExp][] = [
    ['unknown loss', () => small().compile({ optimizer: 'sgd', loss: 'squared_hinge' }), /^compile: unknown loss 'squared_hinge'; expected one of sparse_categorical_crossentropy, .*huber/],
    ['unknown loss object', () => small().compile({ optimizer: 'sgd', loss: { kind: 'hubr' } as never }), /^compile: unknown loss 'hubr'/],
    ['unknown option (factory)', () => Huber({ fromLogits: true } as never), /^Huber: unknown option 'fromLogits' for huber; expected delta \(fromLogits is an option of sparse_categorical_crossentropy and categorical_crossentropy and binary_crossentropy\)/],
    ['unknown option (object)', () => small().compile({ optimizer: 'sgd', loss: { kind: 'huber', delta: 1, detla: 2 } as never }), /^compile: loss 'huber': unknown option 'detla' for huber; expected delta/],
    ['an option on a loss without options', () => MeanSquaredError({ reduction: 'sum' } as never), /^MeanSquaredError: unknown option 'reduction' for mean_squared_error; it takes no options/],
    ['negative delta', () => Huber({ delta: -1 }), /^Huber: delta must be a positive number, got -1$/],
    ['negative delta at compile', () => small().compile({ optimizer: 'sgd', loss: { kind: 'huber', delta: -0.5 } }), /^compile: loss 'huber': delta must be a positive number, got -0.5$/],
    ['labelSmoothing 1', () => CategoricalCrossentropy({ labelSmoothing: 1 }), /^CategoricalCrossentropy: labelSmoothing must be a number in \[0, 1\), got 1$/],
    ['negative labelSmoothing', () => BinaryCrossentropy({ labelSmoothing: -0.1 }), /^BinaryCrossentropy: labelSmoothing must be a number in \[0, 1\), got -0.1$/],
    ['fromLogits not a boolean', () => BinaryCrossentropy({ fromLogits: 'yes' } as never), /^BinaryCrossentropy: fromLogits must be true or false, got 'yes'$/],
    [
      'ignoreClass on categorical cross-entropy',
      () => CategoricalCrossentropy({ ignoreClass: 0 } as never),
      /^CategoricalCrossentropy: unknown option 'ignoreClass' for categorical_crossentropy; expected fromLogits, labelSmoothing \(ignoreClass is an option of sparse_categorical_crossentropy\)$/,
    ],
    ['ignoreClass on huber at compile', () => small().compile({ optimizer: 'sgd', loss: { kind: 'huber', ignoreClass: 0 } as never }), /^compile: loss 'huber': unknown option 'ignoreClass' for huber/],
    ['ignoreClass not an integer', () => SparseCategoricalCrossentropy({ ignoreClass: 1.5 }), /^SparseCategoricalCrossentropy: ignoreClass must be an integer class \(or null for none\), got 1.5$/],
    [
      'sparse cross-entropy on a rank-2-per-sample output',
      () => Sequential([Dense(3, { inputShape: [2, 4] })]).compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' }),
      /^compile: loss sparse_categorical_crossentropy needs a model output of rank 1 per sample \[classes\], got \[2,3\]$/,
    ],
    ['categorical cross-entropy on one unit', () => small(1).compile({ optimizer: 'sgd', loss: 'categorical_crossentropy' }), /^compile: loss categorical_crossentropy needs at least 2 classes .* got an output of shape \[1\]; for one yes\/no output use binary_crossentropy$/],
    ['fromLogits after a softmax', () => small(3, 'softmax').compile({ optimizer: 'sgd', loss: CategoricalCrossentropy({ fromLogits: true }) }), /^compile: loss categorical_crossentropy has fromLogits: true, but the output comes out of a softmax activation/],
    ['fromLogits after a sigmoid', () => small(3, 'sigmoid').compile({ optimizer: 'sgd', loss: BinaryCrossentropy({ fromLogits: true }) }), /^compile: loss binary_crossentropy has fromLogits: true, but the output comes out of a sigmoid activation/],
    ['not a loss', () => small().compile({ optimizer: 'sgd', loss: 3 as never }), /^compile: loss must be one value, a list per output or an object keyed by output name, got 3$/],
    ['unknown metric', () => small().compile({ optimizer: 'sgd', loss: 'mse', metrics: ['auc'] }), /^compile: unknown metric 'auc'; expected one of accuracy, acc, binary_accuracy/],
    ['unknown metric option', () => TopKCategoricalAccuracy({ n: 2 } as never), /^TopKCategoricalAccuracy: unknown option 'n' for metric top_k_categorical_accuracy; expected name, k$/],
    ['top-k with k = 0', () => SparseTopKCategoricalAccuracy({ k: 0 }), /^SparseTopKCategoricalAccuracy: k must be a positive integer, got 0$/],
    [
      'top-k with more than the classes (the default k 5 on 3 classes)',
      () => small().compile({ optimizer: 'sgd', loss: 'categorical_crossentropy', metrics: ['top_k_categorical_accuracy'] }),
      /^compile: metric 'top_k_categorical_accuracy': k is 5, more than the 3 classes of the output \[3\]; pass TopKCategoricalAccuracy\(\{ k \}\) with k <= 3$/,
    ],
    [
      'a sparse metric on targets of the output shape',
      () => small().compile({ optimizer: 'sgd', loss: 'categorical_crossentropy', metrics: [SparseTopKCategoricalAccuracy({ k: 2 })] }),
      /^compile: metric 'sparse_top_k_categorical_accuracy' compares class indices, but loss categorical_crossentropy takes targets of the output's shape \[3\]; use top_k_categorical_accuracy$/,
    ],
    [
      'a metric on targets with class-index labels',
      () => small().compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy', metrics: ['mae'] }),
      /^compile: metric 'mae' needs targets of the output's shape \[3\], but loss sparse_categorical_crossentropy takes class indices$/,
    ],
    ['a metric named loss', () => small().compile({ optimizer: 'sgd', loss: 'mse', metrics: [BinaryAccuracy({ name: 'loss' })] }), /^compile: a metric cannot be named 'loss'/],
    ['two metrics under one name', () => small().compile({ optimizer: 'sgd', loss: 'categorical_crossentropy', metrics: [TopKCategoricalAccuracy({ k: 1 }), TopKCategoricalAccuracy({ k: 2 })] }), /two different metrics are logged as 'top_k_categorical_accuracy'/],
  ];
  for (const [what, make, re] of cases) {
    it(what, () => {
      expect(make).toThrow(DlcError);
      expect(make).toThrow(re);
    });
  }

  it("names the output of a model with several", () => {
    const x = Input({ shape: [4] });
    const m = Model({ inputs: x, outputs: [Dense(3, { name: 'a' }).apply(x), Dense(1, { name: 'b' }).apply(x)] });
    expect(() => m.compile({ optimizer: 'sgd', loss: { a: 'mse', b: 'sparse_categorical_crossentropy' } })).toThrow(/^compile: output 'b': loss sparse_categorical_crossentropy needs at least 2 classes/);
    expect(() => m.compile({ optimizer: 'sgd', loss: ['mse', Huber({ delta: 2 })], metrics: { b: ['top_k_categorical_accuracy'] } })).toThrow(/^compile: output 'b': metric 'top_k_categorical_accuracy': k is 5, more than the 1 classes/);
    m.compile({ optimizer: 'sgd', loss: ['mse', Huber({ delta: 2 })], metrics: { a: [TopKCategoricalAccuracy({ k: 2 })] } });
    expect(m.compiled!.losses).toEqual([{ kind: 'mean_squared_error' }, { kind: 'huber', delta: 2 }]);
  });

  it('labels that do not fit the loss are refused at fit', async () => {
    const m = small();
    m.compile({ optimizer: 'sgd', loss: Hinge() });
    // Class indices for an output of 3 units: hinge takes targets of the output's shape.
    await expect(m.fit(tensor(new Float32Array(12), [3, 4]), tensor([0, 1, 2], [3], 'i32'), { backend: 'interp', verbose: 0 })).rejects.toThrow(/^y: hinge expects targets of shape \[3,3\], got \[3\]$/);
    m.compile({ optimizer: 'sgd', loss: SparseCategoricalCrossentropy({ ignoreClass: -1 }) });
    await expect(m.fit(tensor(new Float32Array(12), [3, 4]), tensor([0, -2, 2], [3], 'i32'), { backend: 'interp', verbose: 0 })).rejects.toThrow(/^y: label 1 is -2; expected an integer class in \[0, 2\] or the ignored class -1$/);
  });

  it('strings keep their meaning: the defaults of each loss', () => {
    expect(checkLoss('sparse_categorical_crossentropy')).toEqual({ kind: 'sparse_categorical_crossentropy', fromLogits: false, ignoreClass: null });
    expect(checkLoss('categoricalCrossentropy')).toEqual({ kind: 'categorical_crossentropy', fromLogits: false, labelSmoothing: 0 });
    expect(checkLoss('bce')).toEqual({ kind: 'binary_crossentropy', fromLogits: false, labelSmoothing: 0 });
    expect(checkLoss('huber')).toEqual({ kind: 'huber', delta: 1 });
    expect(checkLoss('kld')).toEqual({ kind: 'kl_divergence' });
    expect(checkLoss('mae')).toEqual({ kind: 'mean_absolute_error' });
    expect(checkMetric('acc')).toEqual({ kind: 'accuracy', name: 'acc' });
    expect(checkMetric('top_k_categorical_accuracy')).toEqual({ kind: 'top_k_categorical_accuracy', name: 'top_k_categorical_accuracy', k: 5 });
    expect(BinaryAccuracy()).toEqual({ kind: 'binary_accuracy', name: 'binary_accuracy', threshold: 0.5 });
  });
});
