/**
 * @file The Keras-like model API end to end on the 'interp' backend (the f64 reference
 * interpreter): summary of the reference model, training that lowers the loss (the reference CNN on
 * real MNIST digits, and a small MLP for every optimizer x every loss), optimizer steps against the
 * Keras update formulas computed by hand, numerical stability of the stable cross-entropies, dropout,
 * Dense on rank-3 inputs, errors for bad model definitions and bad data, partial final batches,
 * and weights (get/set, seeding, initializer ranges).
 *
 * Tolerances: the interpreter computes a step in f64 and stores the new state as f32, so values read
 * back from the model are compared at 1e-5 relative (f32 has a 2^-24 ~ 6e-8 unit roundoff; the
 * hand-computed reference rounds its state to f32 at the same points, so only a few ulps separate
 * them). Averages that must be identical up to summation order (the same samples in different
 * batches) are compared at 1e-6.
 */
import { describe, expect, it } from 'vitest';
import model from '../examples/mnist-cnn.ts';
import { makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import type { InputNode } from '../ir/types.ts';
import type { Optimizer, SequentialModel, Tensor } from '../compiler/index.ts';
import {
  Activation,
  Adam,
  AveragePooling2D,
  Conv2D,
  Dense,
  Dropout,
  DlcError,
  Flatten,
  loadMnist,
  MaxPooling2D,
  RMSprop,
  SGD,
  Sequential,
  tensor,
} from '../compiler/index.ts';
import { mulberry32 } from './helpers/gradcheck.ts';

const interp = { backend: 'interp' as const };
const quiet = { backend: 'interp' as const, verbose: 0 as const };

function uniformF32(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** All weights and optimizer state, copied. */
function snapshot(m: SequentialModel): Map<string, number[]> {
  return new Map([...m.readState()].map(([k, v]) => [k, Array.from(v)]));
}

/** |a - b| <= rtol * max(|a|, |b|) + atol, elementwise, with a message naming the first bad index. */
function expectAllClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol = 0, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = rtol * Math.max(Math.abs(got[i]), Math.abs(want[i])) + atol;
    if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]} (tolerance ${tol})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Reference model

describe('reference model (examples/mnist-cnn.ts)', () => {
  it('summary() pins the Keras output shapes and parameter counts', () => {
    const lines: string[] = [];
    const text = model.summary((l) => lines.push(l));
    expect(lines.join('\n')).toBe(text);
    const rows: [string, string, number][] = [
      ['conv2d (Conv2D)', '(None, 26, 26, 32)', 320],
      ['max_pooling2d (MaxPooling2D)', '(None, 13, 13, 32)', 0],
      ['conv2d_1 (Conv2D)', '(None, 11, 11, 64)', 18496],
      ['max_pooling2d_1 (MaxPooling2D)', '(None, 5, 5, 64)', 0],
      ['conv2d_2 (Conv2D)', '(None, 3, 3, 128)', 73856],
      ['flatten (Flatten)', '(None, 1152)', 0],
      ['dense (Dense)', '(None, 128)', 147584],
      ['dense_1 (Dense)', '(None, 10)', 1290],
    ];
    const body = text.split('\n');
    for (const [name, shape, params] of rows) {
      const line = body.find((l) => l.startsWith(`${name} `));
      expect(line, name).toBeDefined();
      const cols = line!.split(/\s{2,}/).map((s) => s.trim());
      expect(cols).toEqual([name, shape, String(params)]);
    }
    expect(text).toMatch(/^Total params: 241,546$/m);
    expect(text).toMatch(/^Trainable params: 241,546$/m);
    expect(text).toMatch(/^Non-trainable params: 0$/m);
    expect(model.countParams()).toBe(241546);
    expect(model.layerShapes).toEqual([[26, 26, 32], [13, 13, 32], [11, 11, 64], [5, 5, 64], [3, 3, 128], [1152], [128], [10]]);
    expect(model.weightInfo.map((w) => [w.name, w.shape])).toEqual([
      ['conv2d.kernel', [3, 3, 1, 32]],
      ['conv2d.bias', [32]],
      ['conv2d_1.kernel', [3, 3, 32, 64]],
      ['conv2d_1.bias', [64]],
      ['conv2d_2.kernel', [3, 3, 64, 128]],
      ['conv2d_2.bias', [128]],
      ['dense.kernel', [1152, 128]],
      ['dense.bias', [128]],
      ['dense_1.kernel', [128, 10]],
      ['dense_1.bias', [10]],
    ]);
  });

  it('20 train steps on real MNIST digits lower the loss', async () => {
    const { train } = loadMnist(256, 0);
    const B = 32;
    const px = train.x.data as Float32Array;
    const lb = train.y.data as Int32Array;
    const before = await model.evaluate(train.x, train.y, { ...interp, batchSize: 64 });
    const losses: number[] = [];
    for (let s = 0; s < 20; s++) {
      const k = s % (256 / B);
      const x = tensor(px.slice(k * B * 784, (k + 1) * B * 784), [B, 28, 28, 1]);
      const y = tensor(lb.slice(k * B, (k + 1) * B), [B], 'i32');
      const r = await model.trainOnBatch(x, y, interp);
      expect(Number.isFinite(r.loss)).toBe(true);
      losses.push(r.loss);
    }
    const after = await model.evaluate(train.x, train.y, { ...interp, batchSize: 64 });
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const first = mean(losses.slice(0, 3));
    const last = mean(losses.slice(-3));
    // An untrained 10-class softmax starts near ln(10) = 2.30.
    expect(before.loss).toBeGreaterThan(2.1);
    expect(before.loss).toBeLessThan(2.5);
    expect(last).toBeLessThan(first * 0.9);
    expect(after.loss).toBeLessThan(before.loss * 0.9);
    expect(after.accuracy).toBeGreaterThan(before.accuracy);
    expect(model.readState().get('step')).toEqual(Int32Array.from([20]));
  });
});

// ---------------------------------------------------------------------------------------------
// Every optimizer x every loss on a small MLP

const N = 64;
const FEAT = 8;

/** Learnable synthetic data: a fixed random linear map decides the targets. */
function synthetic(): { x: Tensor; cls: Int32Array; A: Float32Array } {
  const x = uniformF32(N * FEAT, 101);
  const A = uniformF32(FEAT * 3, 102);
  const cls = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const s = [0, 1, 2].map((c) => {
      let v = 0;
      for (let f = 0; f < FEAT; f++) v += x[n * FEAT + f] * A[f * 3 + c];
      return v;
    });
    cls[n] = s.indexOf(Math.max(...s));
  }
  return { x: tensor(x, [N, FEAT]), cls, A };
}

interface LossCase {
  readonly name: string;
  readonly units: number;
  readonly activation: 'softmax' | 'sigmoid' | 'linear';
  readonly y: () => Tensor;
}

function lossCases(): LossCase[] {
  const { x, cls, A } = synthetic();
  const sparse = () => tensor(cls, [N], 'i32');
  const onehot = () => tensor(Float32Array.from({ length: N * 3 }, (_, i) => (cls[Math.floor(i / 3)] === i % 3 ? 1 : 0)), [N, 3]);
  const lin = (n: number, c: number) => {
    let v = 0;
    for (let f = 0; f < FEAT; f++) v += x.data[n * FEAT + f] * A[f * 3 + c];
    return v;
  };
  const binary = () => tensor(Float32Array.from({ length: N * 2 }, (_, i) => (lin(Math.floor(i / 2), i % 2) > 0 ? 1 : 0)), [N, 2]);
  const regress = () => tensor(Float32Array.from({ length: N * 2 }, (_, i) => 0.5 * lin(Math.floor(i / 2), i % 2)), [N, 2]);
  return [
    { name: 'sparse_categorical_crossentropy', units: 3, activation: 'softmax', y: sparse },
    { name: 'sparseCategoricalCrossentropy', units: 3, activation: 'softmax', y: sparse },
    { name: 'categorical_crossentropy', units: 3, activation: 'softmax', y: onehot },
    { name: 'categoricalCrossentropy', units: 3, activation: 'softmax', y: onehot },
    { name: 'binary_crossentropy', units: 2, activation: 'sigmoid', y: binary },
    { name: 'binaryCrossentropy', units: 2, activation: 'sigmoid', y: binary },
    { name: 'mean_squared_error', units: 2, activation: 'linear', y: regress },
    { name: 'meanSquaredError', units: 2, activation: 'linear', y: regress },
    { name: 'mse', units: 2, activation: 'linear', y: regress },
  ];
}

const optimizers: [string, () => string | Optimizer][] = [
  ["'sgd'", () => 'sgd'],
  ["'SGD'", () => 'SGD'],
  ['SGD({learningRate: 0.1})', () => SGD({ learningRate: 0.1 })],
  ['SGD({learningRate: 0.05, momentum: 0.9})', () => SGD({ learningRate: 0.05, momentum: 0.9 })],
  ["'adam'", () => 'adam'],
  ["'Adam'", () => 'Adam'],
  ['Adam({learningRate: 0.01})', () => Adam({ learningRate: 0.01 })],
  ["'rmsprop'", () => 'rmsprop'],
  ["'RMSprop'", () => 'RMSprop'],
  ['RMSprop({learningRate: 0.01})', () => RMSprop({ learningRate: 0.01 })],
];

describe('every optimizer x every loss lowers the loss of a small MLP', () => {
  const { x } = synthetic();
  for (const lc of lossCases()) {
    for (const [oname, opt] of optimizers) {
      it(`${oname} with '${lc.name}'`, async () => {
        const m = Sequential([Dense(16, { activation: 'relu', inputShape: [FEAT] }), Dense(lc.units, { activation: lc.activation })], { seed: 5 });
        m.compile({ optimizer: opt(), loss: lc.name, metrics: ['accuracy'] });
        const y = lc.y();
        const before = await m.evaluate(x, y, { ...interp, batchSize: N });
        const hist = await m.fit(x, y, { ...quiet, batchSize: 16, epochs: 8, seed: 1 });
        const after = await m.evaluate(x, y, { ...interp, batchSize: N });
        expect(Number.isFinite(before.loss) && Number.isFinite(after.loss)).toBe(true);
        // Default learning rates (string names) move slowly; explicit ones must make real progress.
        expect(after.loss).toBeLessThan(before.loss * (typeof opt() === 'string' ? 0.995 : 0.9));
        expect(hist.history.loss).toHaveLength(8);
        expect(hist.history.loss[7]).toBeLessThan(hist.history.loss[0]);
        expect(m.readState().get('step')).toEqual(Int32Array.from([32]));
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Optimizer steps by hand

/**
 * One Dense(2) layer (linear) on 3 features with MSE: its gradients in closed form. Keras's MSE
 * averages over the 2 outputs and the batch, so dL/dout = 2 (out - y) / (2 N).
 */
function mseGrads(W: Float64Array, bias: Float64Array, x: Float32Array, y: Float32Array, n: number): { gW: Float64Array; gb: Float64Array } {
  const gW = new Float64Array(6);
  const gb = new Float64Array(2);
  for (let s = 0; s < n; s++) {
    for (let u = 0; u < 2; u++) {
      let out = bias[u];
      for (let f = 0; f < 3; f++) out += x[s * 3 + f] * W[f * 2 + u];
      const d = (2 * (out - y[s * 2 + u])) / (2 * n);
      gb[u] += d;
      for (let f = 0; f < 3; f++) gW[f * 2 + u] += x[s * 3 + f] * d;
    }
  }
  return { gW, gb };
}

const f32 = (a: ArrayLike<number>) => Float64Array.from(a, (v) => Math.fround(v));

describe('optimizer updates match the Keras formulas computed by hand', () => {
  const x = uniformF32(4 * 3, 201);
  const y = uniformF32(4 * 2, 202);
  const xs = tensor(x, [4, 3]);
  const ys = tensor(y, [4, 2]);

  it('Adam: two steps (bias correction at t = 1 and t = 2, slots carried over)', async () => {
    const lr = 0.01;
    const [b1, b2, eps] = [0.9, 0.999, 1e-7];
    const m = Sequential([Dense(2, { inputShape: [3], biasInitializer: 'ones' })], { seed: 9 });
    m.compile({ optimizer: Adam({ learningRate: lr }), loss: 'mean_squared_error' });
    let [W, B] = m.getWeights().map((t) => Float64Array.from(t.data));
    const mS = [new Float64Array(6), new Float64Array(2)];
    const vS = [new Float64Array(6), new Float64Array(2)];
    for (let t = 1; t <= 2; t++) {
      const { gW, gb } = mseGrads(W, B, x, y, 4);
      const alpha = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
      const next = [W, B].map((w, k) => {
        const g = [gW, gb][k];
        const mm = Float64Array.from(g, (gi, i) => b1 * mS[k][i] + (1 - b1) * gi);
        const vv = Float64Array.from(g, (gi, i) => b2 * vS[k][i] + (1 - b2) * gi * gi);
        const nw = Float64Array.from(w, (wi, i) => wi - (alpha * mm[i]) / (Math.sqrt(vv[i]) + eps));
        mS[k] = f32(mm);
        vS[k] = f32(vv);
        return f32(nw);
      });
      [W, B] = next;
      await m.trainOnBatch(xs, ys, interp);
      const got = m.getWeights();
      expectAllClose(got[0].data, W, 1e-5, 0, `kernel after step ${t}`);
      expectAllClose(got[1].data, B, 1e-5, 0, `bias after step ${t}`);
      const st = m.readState();
      expectAllClose(st.get('adam.m.dense.kernel')!, mS[0], 1e-5, 1e-12, `m after step ${t}`);
      expectAllClose(st.get('adam.v.dense.kernel')!, vS[0], 1e-5, 1e-15, `v after step ${t}`);
      expect(st.get('step')).toEqual(Int32Array.from([t]));
    }
  });

  it('SGD with momentum: two steps (v = momentum v - lr g; w += v)', async () => {
    const [lr, mom] = [0.1, 0.9];
    const m = Sequential([Dense(2, { inputShape: [3], biasInitializer: 'ones' })], { seed: 10 });
    m.compile({ optimizer: SGD({ learningRate: lr, momentum: mom }), loss: 'mse' });
    let [W, B] = m.getWeights().map((t) => Float64Array.from(t.data));
    const vS = [new Float64Array(6), new Float64Array(2)];
    for (let t = 1; t <= 2; t++) {
      const { gW, gb } = mseGrads(W, B, x, y, 4);
      [W, B] = [W, B].map((w, k) => {
        const g = [gW, gb][k];
        const v = Float64Array.from(g, (gi, i) => mom * vS[k][i] - lr * gi);
        vS[k] = f32(v);
        return f32(Float64Array.from(w, (wi, i) => wi + v[i]));
      });
      await m.trainOnBatch(xs, ys, interp);
      const got = m.getWeights();
      expectAllClose(got[0].data, W, 1e-5, 0, `kernel after step ${t}`);
      expectAllClose(got[1].data, B, 1e-5, 0, `bias after step ${t}`);
      expectAllClose(m.readState().get('sgd.momentum.dense.bias')!, vS[1], 1e-5, 1e-12, `velocity after step ${t}`);
    }
  });

  it('RMSprop and plain SGD: one step', async () => {
    for (const opt of ['rmsprop', 'sgd'] as const) {
      const m = Sequential([Dense(2, { inputShape: [3] })], { seed: 11 });
      m.compile({ optimizer: opt, loss: 'mse' });
      const [W, B] = m.getWeights().map((t) => Float64Array.from(t.data));
      const { gW, gb } = mseGrads(W, B, x, y, 4);
      const step = (w: Float64Array, g: Float64Array) =>
        f32(
          opt === 'sgd'
            ? Float64Array.from(w, (wi, i) => wi - 0.01 * g[i])
            : Float64Array.from(w, (wi, i) => wi - (0.001 * g[i]) / Math.sqrt(0.1 * g[i] * g[i] + 1e-7)),
        );
      await m.trainOnBatch(xs, ys, interp);
      const got = m.getWeights();
      expectAllClose(got[0].data, step(W, gW), 1e-5, 0, `${opt} kernel`);
      expectAllClose(got[1].data, step(B, gb), 1e-5, 0, `${opt} bias`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Numerical stability

describe('cross-entropies on extreme logits stay finite', () => {
  // Sample 0 is confidently wrong (loss ~ 2000), sample 1 confidently right (loss ~ 0).
  const x = tensor([1, 0, 1, 0], [2, 2]);

  for (const [loss, y] of [
    ['sparse_categorical_crossentropy', tensor([1, 0], [2], 'i32')],
    ['categorical_crossentropy', tensor([0, 1, 0, 1, 0, 0], [2, 3])],
  ] as const) {
    it(`softmax + ${loss} with logits of +-1000`, async () => {
      const m = Sequential([Dense(3, { activation: 'softmax', inputShape: [2] })]);
      m.compile({ optimizer: SGD({ learningRate: 1 }), loss, metrics: ['accuracy'] });
      m.setWeights([tensor([1000, -1000, 0, 0, 0, 0], [2, 3]), tensor([0, 0, 0], [3])]);
      const ev = await m.evaluate(x, y, interp);
      // mean(2000, 0): log-sum-exp of (1000, -1000, 0) is 1000 + log(1 + e^-1000 + e^-2000).
      expect(ev.loss).toBeCloseTo(1000, 9);
      expect(ev.accuracy).toBe(0.5);
      const p = await m.predict(x, interp);
      expect(Array.from(p.data)).toEqual([1, 0, 0, 1, 0, 0]);
      const r = await m.trainOnBatch(x, y, interp);
      expect(r.loss).toBeCloseTo(1000, 9);
      // dL/dlogits = (softmax - onehot) / N = ([1,-1,0] + [0,0,0]) / 2, exactly representable.
      const [k, bias] = m.getWeights();
      expect(Array.from(k.data)).toEqual([999.5, -999.5, 0, 0, 0, 0]);
      expect(Array.from(bias.data)).toEqual([-0.5, 0.5, 0]);
    });
  }

  it('softmax as a separate Activation layer is recognised too', async () => {
    const m = Sequential([Dense(3, { inputShape: [2] }), Activation('softmax')]);
    m.compile({ optimizer: SGD({ learningRate: 1 }), loss: 'sparse_categorical_crossentropy' });
    m.setWeights([tensor([1000, -1000, 0, 0, 0, 0], [2, 3]), tensor([0, 0, 0], [3])]);
    const r = await m.trainOnBatch(x, tensor([1, 0], [2], 'i32'), interp);
    // Not the clipped -log(1e-7) = 16.1 of a loss computed from probabilities: the exact 2000 / 2.
    expect(r.loss).toBeCloseTo(1000, 9);
    const [k, bias] = m.getWeights();
    expect(Array.from(k.data)).toEqual([999.5, -999.5, 0, 0, 0, 0]);
    expect(Array.from(bias.data)).toEqual([-0.5, 0.5, 0]);
  });

  it('sigmoid + binary_crossentropy with logits of +-1000', async () => {
    const m = Sequential([Dense(1, { activation: 'sigmoid', inputShape: [2] })]);
    m.compile({ optimizer: SGD({ learningRate: 1 }), loss: 'binary_crossentropy' });
    m.setWeights([tensor([1000, 0], [2, 1]), tensor([0], [1])]);
    const xb = tensor([1, 0, -1, 0], [2, 2]);
    const yb = tensor([0, 0], [2, 1]);
    const r = await m.trainOnBatch(xb, yb, interp);
    // z = 1000 with y = 0 costs 1000; z = -1000 with y = 0 costs log(1 + e^-1000) = 0.
    expect(r.loss).toBeCloseTo(500, 9);
    // dL/dz = (sigmoid(z) - y) / N = (1, 0) / 2; kernel row 0 gets x0 * that = 1 * 0.5 + (-1) * 0.
    const [k, bias] = m.getWeights();
    expect(Array.from(k.data)).toEqual([999.5, 0]);
    expect(Array.from(bias.data)).toEqual([-0.5]);
  });
});

// ---------------------------------------------------------------------------------------------
// Dropout

describe('Dropout', () => {
  it('masks in training (a new mask every step, mean kept) and is the identity otherwise', () => {
    const rate = 0.3;
    const n = 4000;
    const m = Sequential([Dropout(rate, { inputShape: [n] })]);
    const x = input('x', 'f32', [1, n]);
    const key = input('key', 'i32', []) as InputNode;
    const train = makeFunc('train', [x as InputNode, key], [m.forward([x], [], { training: true, key }).outputs[0].out]);
    const infer = makeFunc('infer', [x as InputNode, key], [m.forward([x], [], { training: false, key }).outputs[0].out]);
    const xs = Float64Array.from(uniformF32(n, 301, 0.5, 1.5));
    const outs = [0, 1, 2].map((k) => interpret(train, [xs, [k]])[0].data);
    const mean = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
    for (const o of outs) {
      let dropped = 0;
      for (let i = 0; i < n; i++) {
        if (o[i] === 0) dropped++;
        else expect(o[i]).toBeCloseTo(xs[i] / (1 - rate), 12);
      }
      expect(Math.abs(dropped / n - rate)).toBeLessThan(0.03);
      expect(Math.abs(mean(o) / mean(xs) - 1)).toBeLessThan(0.05);
    }
    // Different steps draw different masks.
    const differ = (a: ArrayLike<number>, c: ArrayLike<number>) => Array.from(a).filter((v, i) => (v === 0) !== (c[i] === 0)).length;
    expect(differ(outs[0], outs[1])).toBeGreaterThan(n * 0.2);
    expect(differ(outs[1], outs[2])).toBeGreaterThan(n * 0.2);
    // The same step draws the same mask (deterministic).
    expect(Array.from(interpret(train, [xs, [1]])[0].data)).toEqual(Array.from(outs[1]));
    expect(Array.from(interpret(infer, [xs, [1]])[0].data)).toEqual(Array.from(xs));
  });

  it('through the API: train steps see dropout, evaluate and predict do not', async () => {
    const m = Sequential([Dropout(0.5, { inputShape: [200] }), Dense(1, { useBias: false, kernelInitializer: 'ones' })]);
    // A learning rate so small the f32 weights cannot move: only the dropout mask changes the loss.
    m.compile({ optimizer: SGD({ learningRate: 1e-30 }), loss: 'mse' });
    const x = tensor(new Float32Array(4 * 200).fill(1), [4, 200]);
    const y = tensor(new Float32Array(4), [4, 1]);
    const p1 = await m.predict(x, interp);
    expect(Array.from(p1.data)).toEqual([200, 200, 200, 200]);
    const ev = await m.evaluate(x, y, interp);
    expect(ev.loss).toBe(40000);
    const losses: number[] = [];
    for (let s = 0; s < 4; s++) losses.push((await m.trainOnBatch(x, y, interp)).loss);
    expect(new Set(losses).size).toBe(4);
    for (const l of losses) expect(l).not.toBe(40000);
    // E[out^2] = 200^2 + Var(2 Binomial(200, 0.5)) = 40200.
    const meanLoss = losses.reduce((s, v) => s + v, 0) / losses.length;
    expect(Math.abs(meanLoss / 40200 - 1)).toBeLessThan(0.2);
    expect(Array.from(m.getWeights()[0].data)).toEqual(new Array(200).fill(1));
    expect(Array.from((await m.predict(x, interp)).data)).toEqual([200, 200, 200, 200]);
  });
});

// ---------------------------------------------------------------------------------------------
// Dense on rank-3 inputs

describe('Dense on a rank-3 per-sample input', () => {
  it('applies to the last axis: [N, a, in] -> [N, a, units], the same as row by row', async () => {
    const m = Sequential([Dense(4, { activation: 'tanh', inputShape: [3, 5] })], { seed: 4 });
    expect(m.outputShape).toEqual([3, 4]);
    expect(m.weightInfo.map((w) => w.shape)).toEqual([[5, 4], [4]]);
    expect(m.summary(() => {})).toContain('(None, 3, 4)');
    const bias = uniformF32(4, 402);
    m.setWeights([m.getWeights()[0], tensor(bias, [4])]);
    const [W] = m.getWeights();
    const xd = uniformF32(2 * 3 * 5, 401);
    const out = await m.predict(tensor(xd, [2, 3, 5]), interp);
    expect(out.shape).toEqual([2, 3, 4]);
    const want = new Float64Array(24);
    for (let r = 0; r < 6; r++)
      for (let u = 0; u < 4; u++) {
        let s = bias[u];
        for (let f = 0; f < 5; f++) s += xd[r * 5 + f] * W.data[f * 4 + u];
        want[r * 4 + u] = Math.tanh(s);
      }
    expectAllClose(out.data, want, 1e-6, 1e-7, 'rank-3 dense');
    // Bit for bit the same as a rank-2 Dense with the same weights applied to the 6 rows.
    const flat = Sequential([Dense(4, { activation: 'tanh', inputShape: [5] })]);
    flat.setWeights(m.getWeights());
    const rows = await flat.predict(tensor(xd, [6, 5]), interp);
    expect(Array.from(out.data)).toEqual(Array.from(rows.data));
  });

  it('trains on rank-3 targets', async () => {
    const m = Sequential([Dense(6, { activation: 'relu', inputShape: [3, 5] }), Dense(2)], { seed: 2 });
    m.compile({ optimizer: Adam({ learningRate: 0.02 }), loss: 'mse' });
    const x = tensor(uniformF32(16 * 15, 411), [16, 3, 5]);
    const y = tensor(Float32Array.from({ length: 16 * 6 }, (_, i) => x.data[Math.floor(i / 2) * 5 + (i % 2)]), [16, 3, 2]);
    const before = (await m.evaluate(x, y, interp)).loss;
    await m.fit(x, y, { ...quiet, epochs: 20, batchSize: 8 });
    expect((await m.evaluate(x, y, interp)).loss).toBeLessThan(before * 0.5);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad model definitions

describe('bad model definitions fail early and name the layer and shapes', () => {
  const cases: [string, () => unknown, RegExp][] = [
    [
      'Conv2D after a Dense (rank-1 per sample)',
      () => Sequential([Dense(8, { inputShape: [4] }), Conv2D(2, 3)]),
      /Conv2D 'conv2d'.*rank 3.*got \[8\]/,
    ],
    ['Conv2D first with a rank-2 inputShape', () => Sequential([Conv2D(4, 3, { inputShape: [28, 28] })]), /Conv2D 'conv2d'.*rank 3.*got \[28,28\]/],
    [
      'a kernel larger than its input',
      () => Sequential([Conv2D(4, [5, 5], { inputShape: [4, 4, 1], name: 'big' })]),
      /Conv2D 'big': kernel \[5,5\] is larger than its input \[4,4,1\]/,
    ],
    [
      'a pool window larger than its input',
      () => Sequential([Conv2D(2, 3, { inputShape: [4, 4, 1] }), MaxPooling2D([3, 3])]),
      /MaxPooling2D 'max_pooling2d': pool window \[3,3\] is larger than its input \[2,2,2\]/,
    ],
    [
      'an average pool window larger than its input',
      () => Sequential([AveragePooling2D(5, { inputShape: [4, 4, 3] })]),
      /AveragePooling2D 'average_pooling2d': pool window \[5,5\] is larger than its input \[4,4,3\]/,
    ],
    ['a pool fed a flat input', () => Sequential([Flatten({ inputShape: [4, 4, 1] }), MaxPooling2D()]), /MaxPooling2D 'max_pooling2d'.*rank 3.*got \[16\]/],
    ['no inputShape on the first layer', () => Sequential([Dense(3), Dense(2)]), /first layer \(Dense 'dense'\) needs an inputShape/],
    ['inputShape on a later layer', () => Sequential([Dense(3, { inputShape: [2] }), Dense(2, { inputShape: [3] })]), /Dense 'dense_1': only the first layer/],
    ['two layers with the same name', () => Sequential([Dense(3, { inputShape: [2], name: 'hidden' }), Dense(2, { name: 'hidden' })]), /two layers are named 'hidden'/],
    ['an unknown activation', () => Dense(3, { activation: 'relux' as never }), /Dense: unknown activation 'relux'; expected one of relu, sigmoid/],
    ['an unknown activation in Activation', () => Activation('gelu_tanh' as never), /Activation: unknown activation 'gelu_tanh'/],
    ['an unknown activation in Conv2D', () => Conv2D(3, 3, { activation: 'mish' as never }), /Conv2D: unknown activation 'mish'/],
    ['an empty model', () => Sequential([]), /non-empty array of layers/],
  ];
  for (const [what, make, re] of cases) {
    it(what, () => {
      expect(make).toThrow(DlcError);
      expect(make).toThrow(re);
    });
  }

  const small = () => Sequential([Dense(3, { activation: 'softmax', inputShape: [4] })]);
  it('unknown loss', () => {
    expect(() => small().compile({ optimizer: 'sgd', loss: 'squared_hinge' })).toThrow(/compile: unknown loss 'squared_hinge'/);
  });
  it('unknown optimizer (name and object)', () => {
    expect(() => small().compile({ optimizer: 'lion', loss: 'mse' })).toThrow(/compile: unknown optimizer 'lion'; expected one of sgd, rmsprop, adam, adamw, adagrad, adamax, nadam/);
    expect(() => small().compile({ optimizer: { kind: 'lion' } as never, loss: 'mse' })).toThrow(/compile: optimizer must be a name or an optimizer object/);
  });
  it('unknown metric', () => {
    expect(() => small().compile({ optimizer: 'sgd', loss: 'mse', metrics: ['auc'] })).toThrow(/unknown metric 'auc'/);
  });
  it('a loss that cannot apply to the output shape', () => {
    const m = Sequential([Dense(3, { inputShape: [2, 4] })]);
    expect(() => m.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' })).toThrow(/sparse_categorical_crossentropy.*rank 1.*got \[2,3\]/);
  });
  it('fit before compile', async () => {
    await expect(small().fit(tensor(new Float32Array(4), [1, 4]), tensor([0], [1], 'i32'), quiet)).rejects.toThrow(/compile/);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad data

describe('bad data is refused before any step runs', () => {
  const n = 10;
  const goodX = () => tensor(uniformF32(n * 4, 501), [n, 4]);
  const goodY = () => tensor(Int32Array.from({ length: n }, (_, i) => i % 3), [n], 'i32');
  const xWith = (i: number, v: number) => {
    const d = uniformF32(n * 4, 501);
    d[i] = v;
    return tensor(d, [n, 4]);
  };
  const cases: [string, () => unknown, () => unknown, RegExp][] = [
    ['x of the wrong shape', () => tensor(new Float32Array(n * 5), [n, 5]), goodY, /x: expected shape \[N,4\], got \[10,5\]/],
    ['x of the wrong rank', () => tensor(new Float32Array(n * 4), [n * 4]), goodY, /x: expected shape \[N,4\], got \[40\]/],
    ['x of dtype i32', () => tensor(new Int32Array(n * 4), [n, 4], 'i32'), goodY, /x: expected dtype f32, got i32/],
    ['NaN in x', () => xWith(7, NaN), goodY, /x: element 7 is NaN/],
    ['Infinity in x', () => xWith(3, Infinity), goodY, /x: element 3 is Infinity/],
    ['a label out of range', goodX, () => tensor([0, 1, 2, 3, 0, 1, 2, 0, 1, 2], [n], 'i32'), /y: label 3 is 3; expected an integer class in \[0, 2\]/],
    ['a negative label', goodX, () => tensor([0, 1, 2, 0, -1, 1, 2, 0, 1, 2], [n], 'i32'), /y: label 4 is -1/],
    ['a non-integer label', goodX, () => tensor([0, 1, 2, 0, 1, 1.5, 2, 0, 1, 2], [n]), /y: label 5 is 1.5/],
    ['y of the wrong length', goodX, () => tensor(new Int32Array(n - 1), [n - 1], 'i32'), /y: sparse_categorical_crossentropy expects integer labels of shape \[10\], got \[9\]/],
    ['x that is not a tensor', () => [1, 2, 3], goodY, /x: expected a tensor/],
  ];

  for (const [what, x, y, re] of cases) {
    it(what, async () => {
      const m = Sequential([Dense(3, { activation: 'softmax', inputShape: [4] })], { seed: 1 });
      m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy' });
      await m.trainOnBatch(goodX(), goodY(), interp); // a live session owns the state
      const state = snapshot(m);
      let batches = 0;
      await expect(m.fit(x(), y(), { ...quiet, onBatchEnd: () => batches++ })).rejects.toThrow(re);
      await expect(m.trainOnBatch(x(), y(), interp)).rejects.toThrow(re);
      await expect(m.evaluate(x(), y(), interp)).rejects.toThrow(re);
      await expect(m.fit(goodX(), goodY(), { ...quiet, validationData: [x(), y()], onBatchEnd: () => batches++ })).rejects.toThrow(DlcError);
      expect(batches).toBe(0);
      expect(snapshot(m)).toEqual(state);
      if (y === goodY) await expect(m.predict(x(), interp)).rejects.toThrow(re);
    });
  }

  it('targets of the wrong shape or with NaN for dense losses', async () => {
    const m = Sequential([Dense(2, { inputShape: [4] })]);
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    const state = snapshot(m);
    await expect(m.fit(goodX(), tensor(new Float32Array(n * 3), [n, 3]), quiet)).rejects.toThrow(/y: mean_squared_error expects targets of shape \[10,2\], got \[10,3\]/);
    const nan = new Float32Array(n * 2);
    nan[5] = NaN;
    await expect(m.fit(goodX(), tensor(nan, [n, 2]), quiet)).rejects.toThrow(/y: element 5 is NaN/);
    expect(snapshot(m)).toEqual(state);
  });
});

// ---------------------------------------------------------------------------------------------
// Partial final batch

describe('a final partial batch is not dropped', () => {
  const n = 70;
  const x = tensor(uniformF32(n * 4, 601), [n, 4]);
  const y = tensor(Int32Array.from({ length: n }, (_, i) => (i * 7) % 3), [n], 'i32');
  const make = (opt: string | Optimizer = SGD({ learningRate: 1e-30 })) => {
    const m = Sequential([Dense(5, { activation: 'tanh', inputShape: [4] }), Dense(3, { activation: 'softmax' })], { seed: 8 });
    m.compile({ optimizer: opt, loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    return m;
  };

  it('fit on 70 samples with batchSize 32 runs 3 steps and averages over exactly 70 samples', async () => {
    // The learning rate is too small to move the weights (beyond ~1e-30, from the zero biases), so
    // every step sees the same model.
    const m = make();
    const w0 = m.getWeights();
    const seen: [number, Record<string, number>][] = [];
    const hist = await m.fit(x, y, { ...quiet, batchSize: 32, shuffle: false, onBatchEnd: (s, logs) => seen.push([s, { ...logs }]) });
    expect(seen.map(([s]) => s)).toEqual([0, 1, 2]);
    expect(m.readState().get('step')).toEqual(Int32Array.from([3]));
    m.getWeights().forEach((t, i) => expectAllClose(t.data, w0[i].data, 1e-7, 1e-20, m.weightInfo[i].name));
    const full = await m.evaluate(x, y, { ...interp, batchSize: 70 });
    expect(hist.history.loss[0]).toBeCloseTo(full.loss, 6);
    expect(hist.history.accuracy[0]).toBeCloseTo(full.accuracy, 6);
    expect(seen[2][1].loss).toBeCloseTo(full.loss, 6);
    // Accuracy over 70 samples is a multiple of 1/70.
    expect(Math.abs(full.accuracy * 70 - Math.round(full.accuracy * 70))).toBeLessThan(1e-9);
    // Running averages: after batch 0 they are the first 32 samples' values.
    const first = await m.evaluate(tensor(x.data.slice(0, 32 * 4), [32, 4]), tensor(y.data.slice(0, 32), [32], 'i32'), interp);
    expect(seen[0][1].loss).toBeCloseTo(first.loss, 6);
  });

  it('a shuffled epoch still visits every sample exactly once', async () => {
    const m = make();
    const full = await m.evaluate(x, y, { ...interp, batchSize: 70 });
    let steps = 0;
    const hist = await m.fit(x, y, { ...quiet, batchSize: 32, epochs: 2, seed: 5, onBatchEnd: () => steps++ });
    expect(steps).toBe(6);
    for (const e of [0, 1]) {
      expect(Math.abs(hist.history.loss[e] - full.loss)).toBeLessThan(1e-6);
      expect(Math.abs(hist.history.accuracy[e] - full.accuracy)).toBeLessThan(1e-6);
    }
  });

  it('evaluate and predict do not depend on the batch size', async () => {
    const m = make();
    const e70 = await m.evaluate(x, y, { ...interp, batchSize: 70 });
    for (const bs of [32, 7, 64, 128]) {
      const e = await m.evaluate(x, y, { ...interp, batchSize: bs });
      expect(Math.abs(e.loss - e70.loss), `batch ${bs}`).toBeLessThan(1e-6);
      expect(Math.abs(e.accuracy - e70.accuracy), `batch ${bs}`).toBeLessThan(1e-6);
    }
    const p70 = await m.predict(x, { ...interp, batchSize: 70 });
    const p32 = await m.predict(x, { ...interp, batchSize: 32 });
    expect(p32.shape).toEqual([70, 3]);
    expect(Array.from(p32.data)).toEqual(Array.from(p70.data));
  });

  it('padded rows add nothing to the gradient', async () => {
    const x5 = tensor(x.data.slice(0, 20), [5, 4]);
    const y5 = tensor(y.data.slice(0, 5), [5], 'i32');
    const a = make(SGD({ learningRate: 0.5 }));
    const c = make(SGD({ learningRate: 0.5 }));
    const ra = await a.trainOnBatch(x5, y5, { ...interp, batchSize: 32 });
    const rc = await c.trainOnBatch(x5, y5, interp);
    expect(ra.loss).toBeCloseTo(rc.loss, 12);
    const wa = a.getWeights();
    const wc = c.getWeights();
    wa.forEach((t, i) => expectAllClose(t.data, wc[i].data, 1e-6, 1e-9, a.weightInfo[i].name));
    const w0 = make().getWeights();
    expect(wa.some((t, i) => Array.from(t.data).some((v, j) => v !== w0[i].data[j]))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Weights

describe('weights', () => {
  const build = (seed?: number) =>
    Sequential([Conv2D(8, 3, { inputShape: [6, 6, 4], activation: 'relu' }), Flatten(), Dense(30, { activation: 'relu' }), Dense(5)], seed === undefined ? {} : { seed });

  it('getWeights / setWeights round trip, including after training', async () => {
    const m = build(1);
    const ws = m.getWeights();
    expect(ws.map((t) => t.shape)).toEqual([[3, 3, 4, 8], [8], [128, 30], [30], [30, 5], [5]]);
    const fresh = ws.map((t, i) => tensor(uniformF32(t.data.length, 700 + i), t.shape));
    m.setWeights(fresh);
    m.getWeights().forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(fresh[i].data)));
    // getWeights returns copies: editing them does not change the model.
    (m.getWeights()[1].data as Float32Array)[0] = 123;
    expect(m.getWeights()[1].data[0]).toBe(fresh[1].data[0]);

    m.compile({ optimizer: Adam({ learningRate: 0.01 }), loss: 'mse' });
    const x = tensor(uniformF32(4 * 144, 710), [4, 6, 6, 4]);
    const y = tensor(uniformF32(20, 711), [4, 5]);
    await m.trainOnBatch(x, y, interp);
    const trained = m.getWeights();
    expect(Array.from(trained[4].data)).not.toEqual(Array.from(fresh[4].data));
    const pTrained = await m.predict(x, interp);
    m.setWeights(fresh);
    const other = build(1);
    other.setWeights(fresh);
    expect(Array.from((await m.predict(x, interp)).data)).toEqual(Array.from((await other.predict(x, interp)).data));
    m.setWeights(trained);
    expect(Array.from((await m.predict(x, interp)).data)).toEqual(Array.from(pTrained.data));
    m.getWeights().forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(trained[i].data)));
  });

  it('setWeights refuses the wrong count or shape', () => {
    const m = build(1);
    const ws = m.getWeights();
    expect(() => m.setWeights(ws.slice(1))).toThrow(/setWeights: expected 6 tensors, got 5/);
    const bad = [...ws];
    bad[2] = tensor(new Float32Array(128 * 30), [30, 128]);
    expect(() => m.setWeights(bad)).toThrow(/setWeights: dense.kernel expects shape \[128,30\], got \[30,128\]/);
    m.getWeights().forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(ws[i].data)));
  });

  it('the same seed gives the same weights; another seed gives different ones', () => {
    const a = build(42).getWeights();
    const a2 = build(42).getWeights();
    const c = build(43).getWeights();
    const d0 = build().getWeights();
    const d1 = build(0).getWeights();
    a.forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(a2[i].data)));
    d0.forEach((t, i) => expect(Array.from(t.data)).toEqual(Array.from(d1[i].data)));
    for (const i of [0, 2, 4]) {
      const same = Array.from(a[i].data).filter((v, j) => v === c[i].data[j]).length;
      expect(same, `kernel ${i}`).toBeLessThan(a[i].data.length / 100);
    }
    // Two kernels of the same shape in one model are drawn independently.
    const twin = Sequential([Dense(6, { inputShape: [6] }), Dense(6)], { seed: 3 }).getWeights();
    expect(Array.from(twin[0].data)).not.toEqual(Array.from(twin[2].data));
  });

  it('glorot_uniform kernels lie within +-sqrt(6 / (fan_in + fan_out)) and biases are zero', () => {
    const m = build(7);
    // Conv fans follow Keras: receptive field times channels.
    const limits = [Math.sqrt(6 / (9 * 4 + 9 * 8)), Math.sqrt(6 / (128 + 30)), Math.sqrt(6 / (30 + 5))];
    const ws = m.getWeights();
    [0, 2, 4].forEach((wi, k) => {
      const vals = Array.from(ws[wi].data);
      const maxAbs = Math.max(...vals.map(Math.abs));
      expect(maxAbs, m.weightInfo[wi].name).toBeLessThanOrEqual(limits[k]);
      // ... and fill the range: the largest draw is near the limit and the mean is near zero.
      expect(maxAbs).toBeGreaterThan(limits[k] * 0.9);
      expect(Math.abs(vals.reduce((s, v) => s + v, 0) / vals.length)).toBeLessThan(limits[k] * 0.15);
    });
    [1, 3, 5].forEach((wi) => expect(Array.from(ws[wi].data).every((v) => v === 0), m.weightInfo[wi].name).toBe(true));
  });
});
