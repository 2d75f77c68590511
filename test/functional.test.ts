/**
 * @file Models as layer graphs, on the 'interp' backend (the f64 reference interpreter): the
 * functional API (several inputs and outputs, shared layers, per-output losses and their weights,
 * Keras's log names), the graph checks that refuse a bad model at build time, non-trainable state
 * (BatchNormalization's moving statistics, frozen layers) and its round trip through safetensors.
 *
 * Tolerances: values a step stores as f32 are compared at 1e-5 relative to f64 references written
 * out here (a few f32 ulps apart); identities that hold up to summation order at 1e-6.
 */
import { describe, expect, it } from 'vitest';
import type { LayersModel } from '../compiler/index.ts';
import { Add, Concatenate } from '../compiler/frontend/layers/merge.ts';
import { BatchNormalization, Dense, DlcError, Flatten, Input, Model, Sequential, SGD, tensor } from '../compiler/index.ts';
import { mulberry32 } from './helpers/gradcheck.ts';
import { parseFunc } from '../ir/parse.ts';
import { printFunc } from '../ir/print.ts';
import { verifyFunc } from '../ir/verify.ts';

const interp = { backend: 'interp' as const };

function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol = 0, what = ''): void {
  expect(got.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = rtol * Math.max(Math.abs(got[i]), Math.abs(want[i])) + atol;
    if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]} (tolerance ${tol})`);
  }
}

/** Two inputs, two outputs: a regression head and a classifier over a shared trunk. */
function twoHeads(): LayersModel {
  const a = Input({ shape: [4], name: 'a' });
  const b = Input({ shape: [3], name: 'b' });
  const h = Concatenate({ name: 'cat' }).apply([Dense(5, { activation: 'relu', name: 'h1' }).apply(a), Dense(5, { activation: 'relu', name: 'h2' }).apply(b)]);
  const reg = Dense(2, { name: 'out_reg' }).apply(h);
  const cls = Dense(3, { activation: 'softmax', name: 'out_cls' }).apply(h);
  return Model({ inputs: [a, b], outputs: [reg, cls], name: 'two_heads' });
}

describe('functional models', () => {
  it('a two-input, two-output graph: names, shapes, layers, summary with Connected to', () => {
    const m = twoHeads();
    expect(m).toBeInstanceOf(Model);
    expect(m.inputNames).toEqual(['a', 'b']);
    expect(m.outputNames).toEqual(['out_reg', 'out_cls']);
    expect(m.inputShapes).toEqual([[4], [3]]);
    expect(m.outputShapes).toEqual([[2], [3]]);
    expect(m.layers.map((l) => l.name)).toEqual(['a', 'b', 'h1', 'h2', 'cat', 'out_reg', 'out_cls']);
    expect(m.getLayer('cat').className).toBe('Concatenate');
    expect(() => m.getLayer('nope')).toThrow(/no layer 'nope'; its layers are a, b, h1/);
    expect(() => m.inputShape).toThrow(/2 inputs \(a, b\); use inputShapes/);
    const text = m.summary(() => undefined);
    expect(text).toMatch(/Connected to/);
    expect(text).toMatch(/cat \(Concatenate\)\s+\(None, 10\)\s+0\s+h1\[0\]\[0\], h2\[0\]\[0\]/);
    expect(text).toMatch(/a \(InputLayer\)\s+\(None, 4\)\s+0\s+-/);
    // 4*5+5 + 3*5+5 + 10*2+2 + 10*3+3 = 25 + 20 + 22 + 33
    expect(text).toMatch(/Total params: 100\nTrainable params: 100\nNon-trainable params: 0/);
  });

  it('Sequential is the same class; its summary has no Connected to column', () => {
    const s = Sequential([Dense(3, { inputShape: [2] }), Dense(1)]);
    expect(s).toBeInstanceOf(Model);
    expect(s.kind).toBe('sequential');
    expect(s.layers.map((l) => l.name)).toEqual(['dense', 'dense_1']);
    expect(s.summary(() => undefined)).not.toMatch(/Connected to/);
  });

  it('fits with per-output losses and loss weights; logs use Keras names; inputs as a list or by name', async () => {
    const m = twoHeads();
    m.compile({ optimizer: SGD({ learningRate: 0.1 }), loss: { out_reg: 'mse', out_cls: 'sparse_categorical_crossentropy' }, lossWeights: { out_reg: 1, out_cls: 0.5 }, metrics: { out_cls: ['accuracy'] } });
    const n = 6;
    const xa = tensor(uniform(n * 4, 1), [n, 4]);
    const xb = tensor(uniform(n * 3, 2), [n, 3]);
    const yr = tensor(uniform(n * 2, 3), [n, 2]);
    const yc = tensor(Int32Array.from([0, 1, 2, 0, 1, 2]), [n], 'i32');
    const e1 = await m.evaluate([xa, xb], [yr, yc], interp);
    expect(Object.keys(e1).sort()).toEqual(['loss', 'out_cls_accuracy', 'out_cls_loss', 'out_reg_loss']);
    expectClose([e1.loss], [e1.out_reg_loss + 0.5 * e1.out_cls_loss], 1e-6, 0, 'total loss');
    const e2 = await m.evaluate({ b: xb, a: xa }, { out_cls: yc, out_reg: yr }, interp);
    expectClose([e2.loss], [e1.loss], 1e-6);
    const h = await m.fit({ a: xa, b: xb }, [yr, yc], { ...interp, epochs: 5, batchSize: 4, verbose: 0 });
    expect(h.history.loss[4]).toBeLessThan(h.history.loss[0]);
    const [pr, pc] = await m.predictMany([xa, xb], interp);
    expect(pr.shape).toEqual([n, 2]);
    expect(pc.shape).toEqual([n, 3]);
    await expect(m.predict([xa, xb], interp)).rejects.toThrow(/2 outputs \(out_reg, out_cls\); use predictMany/);
  });

  it('step functions name each input and output; their IR text verifies and round-trips', () => {
    const m = twoHeads();
    m.compile({ optimizer: 'adam', loss: ['mse', 'sparse_categorical_crossentropy'], lossWeights: [1, 0.5], metrics: { out_cls: ['accuracy'] } });
    const train = m.stepFunction('train', 2);
    expect(train.xs.map((i) => train.func.inputs[i].params.name)).toEqual(['x.a', 'x.b']);
    expect(train.ys.map((i) => train.func.inputs[i].params.name)).toEqual(['y.out_reg', 'y.out_cls']);
    expect([...train.results.keys()]).toEqual(['loss', 'out_reg_loss', 'out_cls_loss', 'out_cls_accuracy']);
    const predict = m.stepFunction('predict', 2);
    expect([...predict.results.keys()]).toEqual(['out_reg', 'out_cls']);
    for (const st of [train, predict, m.stepFunction('eval', 2)]) {
      verifyFunc(st.func);
      const text = printFunc(st.func);
      expect(printFunc(parseFunc(text))).toBe(text);
    }
  });

  it('refuses wrong numbers, orders and names of data arrays, naming the input', async () => {
    const m = twoHeads();
    m.compile({ optimizer: 'sgd', loss: ['mse', 'sparse_categorical_crossentropy'] });
    const xa = tensor(uniform(8, 1), [2, 4]);
    const xb = tensor(uniform(6, 2), [2, 3]);
    const y = [tensor(uniform(4, 3), [2, 2]), tensor(Int32Array.from([0, 1]), [2], 'i32')];
    await expect(m.predictMany([xa], interp)).rejects.toThrow(/expected 2 input arrays \(a, b\), got 1/);
    await expect(m.predictMany([xb, xa], interp)).rejects.toThrow(/x input 'a': expected shape \[N,4\], got \[2,3\]/);
    await expect(m.predictMany({ a: xa, c: xb }, interp)).rejects.toThrow(/no model input is named 'c'; the inputs are a, b/);
    await expect(m.predictMany({ a: xa }, interp)).rejects.toThrow(/missing input 'b'/);
    await expect(m.predictMany(xa, interp)).rejects.toThrow(/has 2 inputs \(a, b\); pass a list/);
    await expect(m.trainOnBatch([xa, xb], y.slice(0, 1), interp)).rejects.toThrow(/expected 2 label arrays \(out_reg, out_cls\), got 1/);
    await expect(m.trainOnBatch([xa, tensor(uniform(9, 2), [3, 3])], y, interp)).rejects.toThrow(/input 'b' has 3 samples, x input 'a' has 2/);
  });

  it('refuses bad per-output compile settings, naming the output', () => {
    const m = twoHeads();
    expect(() => m.compile({ optimizer: 'sgd', loss: ['mse'] })).toThrow(/loss has 1 entries, the model has 2 outputs \(out_reg, out_cls\)/);
    expect(() => m.compile({ optimizer: 'sgd', loss: { out_reg: 'mse' } })).toThrow(/loss has no entry for output 'out_cls'/);
    expect(() => m.compile({ optimizer: 'sgd', loss: { out_x: 'mse', out_reg: 'mse', out_cls: 'mse' } })).toThrow(/names output 'out_x'/);
    expect(() => m.compile({ optimizer: 'sgd', loss: 'mse', lossWeights: [1, -1] })).toThrow(/lossWeights for output 'out_cls' must be a finite number >= 0, got -1/);
    expect(() => m.compile({ optimizer: 'sgd', loss: ['sparse_categorical_crossentropy', 'mse'], metrics: [] })).not.toThrow();
  });

  it('a layer applied twice shares its weights', async () => {
    const a = Input({ shape: [4], name: 'a' });
    const b = Input({ shape: [4], name: 'b' });
    const shared = Dense(3, { name: 'shared' });
    const m = Model({ inputs: [a, b], outputs: Add({ name: 'add' }).apply([shared.apply(a), shared.apply(b)]) });
    expect(m.weightInfo.map((w) => w.name)).toEqual(['shared.kernel', 'shared.bias']);
    expect(m.summary(() => undefined)).toMatch(/shared \(Dense\)\s+\(None, 3\)\s+15\s+a\[0\]\[0\], b\[0\]\[0\]/);
    // f(a, b) = W^T a + W^T b + 2 bias: predicting (a, b) equals predicting (a + b, 0) plus the bias once more.
    const xa = uniform(8, 5);
    const xb = uniform(8, 6);
    const [w, bias] = m.getWeights();
    const out = (await m.predict([tensor(xa, [2, 4]), tensor(xb, [2, 4])], interp)).data;
    const want: number[] = [];
    for (let s = 0; s < 2; s++) for (let j = 0; j < 3; j++) {
      let v = 2 * bias.data[j];
      for (let i = 0; i < 4; i++) v += w.data[i * 3 + j] * (xa[s * 4 + i] + xb[s * 4 + i]);
      want.push(v);
    }
    expectClose(out, want, 1e-5, 1e-6, 'shared');
    expect(() => shared.apply(Input({ shape: [5] }))).toThrow(/Dense 'shared': is already built for inputs \[4\] and shares its weights, so it cannot be applied to \[5\]/);
  });

  it('dispose() releases the sessions after saving the newest state; the model keeps working', async () => {
    for (const backend of ['interp', 'wasm'] as const) {
      const m = twoHeads();
      m.compile({ optimizer: SGD({ learningRate: 0.1 }), loss: ['mse', 'sparse_categorical_crossentropy'] });
      const xs = [tensor(uniform(8, 1), [2, 4]), tensor(uniform(6, 2), [2, 3])];
      const ys = [tensor(uniform(4, 3), [2, 2]), tensor(Int32Array.from([0, 2]), [2], 'i32')];
      await m.trainOnBatch(xs, ys, { backend });
      const trained = m.readState();
      await m.dispose();
      // The state the session held came back before it was released.
      for (const [k, v] of trained) expect(Array.from(m.readState().get(k)!), `${backend} ${k}`).toEqual(Array.from(v));
      const again = await m.trainOnBatch(xs, ys, { backend });
      expect(Number.isFinite(again.loss)).toBe(true);
      expect(Array.from(m.readState().get('out_reg.kernel')!)).not.toEqual(Array.from(trained.get('out_reg.kernel')!));
      await m.dispose();
    }
  });

  const bad: [string, () => unknown, RegExp][] = [
    ['an output not reachable from the inputs', () => {
      const a = Input({ shape: [2], name: 'a' });
      const other = Input({ shape: [2], name: 'other' });
      return Model({ inputs: a, outputs: Dense(1).apply(other) });
    }, /output 0 \(Dense \(unnamed\)\) depends on Input 'other' of shape \[2\], which is not among the model's inputs/],
    ['an input not used by any output', () => {
      const a = Input({ shape: [2], name: 'a' });
      const b = Input({ shape: [2], name: 'b' });
      return Model({ inputs: [a, b], outputs: Dense(1).apply(a) });
    }, /input 1 \(InputLayer 'b', shape \[2\]\) is not used by any output/],
    ['two layers with one name', () => {
      const a = Input({ shape: [2] });
      return Model({ inputs: a, outputs: Dense(1, { name: 'd' }).apply(Dense(2, { name: 'd' }).apply(a)) });
    }, /two layers are named 'd'/],
    ['a layer output as a model input', () => {
      const a = Input({ shape: [2] });
      const h = Dense(2).apply(a);
      return Model({ inputs: h, outputs: Dense(1).apply(h) });
    }, /inputs\[0\] must be a tensor made by Input\(\), got the output of Dense/],
    ['mismatched merge shapes', () => {
      const a = Input({ shape: [2] });
      const b = Input({ shape: [3] });
      return Add({ name: 'sum' }).apply([a, b]);
    }, /Add 'sum'.*\[2\].*\[3\]/],
    ['a Concatenate axis mismatch', () => {
      const a = Input({ shape: [2, 3] });
      const b = Input({ shape: [4, 5] });
      return Concatenate({ axis: -1, name: 'cat' }).apply([a, b]);
    }, /Concatenate 'cat'/],
    ['a non-tensor passed to apply', () => Dense(2).apply({} as never), /Dense \(unnamed\): apply\(\) expects symbolic tensors/],
    ['an Input with a bad shape', () => Input({ shape: [0, 2], name: 'img' }), /Input 'img': shape must be a list of positive integers/],
  ];
  for (const [what, make, re] of bad) {
    it(`refuses ${what} at build time`, () => {
      expect(make).toThrow(DlcError);
      expect(make).toThrow(re);
    });
  }
});

describe('non-trainable state: BatchNormalization', () => {
  const C = 3;
  function bnModel(momentum = 0.9): LayersModel {
    const x = Input({ shape: [2, C], name: 'x' });
    const y = BatchNormalization({ name: 'bn', momentum }).apply(Dense(C, { name: 'dense' }).apply(x));
    return Model({ inputs: x, outputs: y });
  }

  /** Per-channel mean and biased variance over the first `n` samples of [n, 2, C]. */
  function stats(h: Float64Array, n: number): { mean: number[]; variance: number[] } {
    const mean = new Array<number>(C).fill(0);
    const variance = new Array<number>(C).fill(0);
    for (let s = 0; s < n * 2; s++) for (let c = 0; c < C; c++) mean[c] += h[s * C + c] / (n * 2);
    for (let s = 0; s < n * 2; s++) for (let c = 0; c < C; c++) variance[c] += (h[s * C + c] - mean[c]) ** 2 / (n * 2);
    return { mean, variance };
  }

  function dense(m: LayersModel, x: Float32Array, n: number): Float64Array {
    const [w, b] = m.getWeights();
    const h = new Float64Array(n * 2 * C);
    for (let r = 0; r < n * 2; r++) for (let j = 0; j < C; j++) {
      let v = b.data[j];
      for (let i = 0; i < C; i++) v += x[r * C + i] * w.data[i * C + j];
      h[r * C + j] = v;
    }
    return h;
  }

  it('weights: gamma, beta trainable; moving statistics non-trainable, no optimizer slots for them; summary counts', () => {
    const m = bnModel();
    expect(m.weightInfo.map((w) => [w.name, w.trainable])).toEqual([
      ['dense.kernel', true], ['dense.bias', true], ['bn.gamma', true], ['bn.beta', true], ['bn.moving_mean', false], ['bn.moving_variance', false],
    ]);
    m.compile({ optimizer: 'adam', loss: 'mse' });
    // Adam's m and v for the 4 trainable weights; the learning rate is optimizer-wide state, not a slot.
    const slots = [...m.state.keys()].filter((k) => k.startsWith('adam.') && k !== 'adam.learning_rate');
    expect(slots.some((k) => k.includes('moving'))).toBe(false);
    expect(slots.length).toBe(2 * 4);
    expect(m.summary(() => undefined)).toMatch(/Total params: 24\nTrainable params: 18\nNon-trainable params: 6/);
  });

  it('training uses batch statistics and moves the moving averages (momentum); predict uses the moving statistics', async () => {
    const momentum = 0.9;
    const m = bnModel(momentum);
    m.compile({ optimizer: SGD({ learningRate: 0.1 }), loss: 'mse' });
    const n = 4;
    const x = uniform(n * 2 * C, 11);
    const y = uniform(n * 2 * C, 12);
    const h = dense(m, x, n);
    const { mean, variance } = stats(h, n);
    // The loss of the first step sees the batch-normalized output (gamma 1, beta 0, eps 1e-3).
    let loss = 0;
    for (let r = 0; r < n * 2; r++) for (let c = 0; c < C; c++) loss += ((h[r * C + c] - mean[c]) / Math.sqrt(variance[c] + 1e-3) - y[r * C + c]) ** 2 / (n * 2 * C);
    const r = await m.trainOnBatch(tensor(x, [n, 2, C]), tensor(y, [n, 2, C]), interp);
    expectClose([r.loss], [loss], 1e-5, 0, 'loss');
    const st = m.readState();
    expectClose(st.get('bn.moving_mean')!, mean.map((v) => (1 - momentum) * v), 1e-5, 1e-7, 'moving_mean');
    expectClose(st.get('bn.moving_variance')!, variance.map((v) => momentum + (1 - momentum) * v), 1e-5, 0, 'moving_variance');
    // predict normalizes with the moving statistics.
    const p = (await m.predict(tensor(x, [n, 2, C]), interp)).data;
    const h2 = dense(m, x, n);
    const [, , gamma, beta, mm, mv] = m.getWeights().map((t) => t.data);
    const want = Array.from(h2, (v, i) => ((v - mm[i % C]) / Math.sqrt(mv[i % C] + 1e-3)) * gamma[i % C] + beta[i % C]);
    expectClose(p, want, 1e-5, 1e-6, 'predict');
  });

  it('batch statistics count only the real samples of a padded final batch', async () => {
    const x = uniform(2 * 2 * C, 21);
    const y = uniform(2 * 2 * C, 22);
    const run = async (batchSize: number) => {
      const m = bnModel();
      m.compile({ optimizer: SGD({ learningRate: 0.1 }), loss: 'mse' });
      const r = await m.trainOnBatch(tensor(x, [2, 2, C]), tensor(y, [2, 2, C]), { ...interp, batchSize });
      return { loss: r.loss, state: m.readState() };
    };
    const exact = await run(2);
    const padded = await run(5);
    expectClose([padded.loss], [exact.loss], 1e-6);
    for (const k of ['bn.moving_mean', 'bn.moving_variance', 'dense.kernel', 'bn.gamma']) expectClose(padded.state.get(k)!, exact.state.get(k)!, 1e-6, 1e-7, k);
  });

  it('a frozen layer (trainable = false before compile) keeps its weights, has no slots, and BatchNormalization runs in inference mode', async () => {
    const m = bnModel();
    m.getLayer('bn').trainable = false;
    m.getLayer('dense').trainable = false;
    m.compile({ optimizer: 'adam', loss: 'mse' });
    expect(m.summary(() => undefined)).toMatch(/Trainable params: 0\nNon-trainable params: 24/);
    expect([...m.state.keys()].filter((k) => k.startsWith('adam.'))).toEqual(['adam.learning_rate']);
    const before = m.readState();
    await m.trainOnBatch(tensor(uniform(12, 1), [2, 2, C]), tensor(uniform(12, 2), [2, 2, C]), interp);
    const after = m.readState();
    for (const w of m.weightInfo) expect(Array.from(after.get(w.name)!), w.name).toEqual(Array.from(before.get(w.name)!));
    // Unfreezing takes effect at the next compile, as in Keras.
    m.getLayer('dense').trainable = true;
    await m.trainOnBatch(tensor(uniform(12, 1), [2, 2, C]), tensor(uniform(12, 2), [2, 2, C]), interp);
    expect(Array.from(m.readState().get('dense.kernel')!)).toEqual(Array.from(before.get('dense.kernel')!));
    m.compile({ optimizer: 'adam', loss: 'mse' });
    await m.trainOnBatch(tensor(uniform(12, 1), [2, 2, C]), tensor(uniform(12, 2), [2, 2, C]), interp);
    expect(Array.from(m.readState().get('dense.kernel')!)).not.toEqual(Array.from(before.get('dense.kernel')!));
  });

  it('safetensors save/load carries the moving statistics', async () => {
    const m = bnModel();
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    await m.trainOnBatch(tensor(uniform(12, 3), [2, 2, C]), tensor(uniform(12, 4), [2, 2, C]), interp);
    const bytes = await m.saveWeights();
    const fresh = bnModel();
    fresh.loadWeights(bytes);
    const want = m.readState();
    for (const w of m.weightInfo) expect(Array.from(fresh.readState().get(w.name)!), w.name).toEqual(Array.from(want.get(w.name)!));
    expect(Array.from(want.get('bn.moving_variance')!)).not.toEqual([1, 1, 1]);
  });

  it('Sequential with BatchNormalization trains and predicts', async () => {
    const m = Sequential([Dense(4, { inputShape: [3] }), BatchNormalization(), Flatten(), Dense(2)]);
    expect(m.layers.map((l) => l.name)).toEqual(['dense', 'batch_normalization', 'flatten', 'dense_1']);
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    const h = await m.fit(tensor(uniform(24, 5), [8, 3]), tensor(uniform(16, 6), [8, 2]), { ...interp, epochs: 3, batchSize: 3, verbose: 0 });
    expect(h.history.loss.every(Number.isFinite)).toBe(true);
  });
});
