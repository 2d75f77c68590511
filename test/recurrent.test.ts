/**
 * @file Recurrent models end to end (their Keras semantics are in test/keras.test.ts): the train
 * step's program does not grow with the sequence length (one forward loop, one backward loop), the
 * loops appear in the dumps, Wasm and WebGPU agree on a few training steps of an LSTM model, and bad
 * input is refused naming the layer and the shapes.
 *
 * Tolerances: the Wasm/WebGPU losses over 5 Adam steps at 1e-4 relative (both f32; the summation
 * order of the matmuls differs, and the loop compounds it over 12 steps per pass).
 */
import { describe, expect, it } from 'vitest';
import { Add, Bidirectional, Dense, Embedding, GRU, Input, LSTM, Model, Sequential, SimpleRNN, tensor, TimeDistributed } from '../compiler/index.ts';
import { compileStep } from '../compiler/pipeline.ts';
import { printProgram } from '../compiler/kernel/print.ts';
import { funcNodes } from '../ir/graph.ts';
import { printFunc } from '../ir/print.ts';
import { needWebGpu } from './helpers/requirements.ts';

const gpu = !!(await needWebGpu('test/recurrent.test.ts: an LSTM model trained on webgpu against wasm (the rest still runs)'));

const lstmModel = (T: number) => {
  const m = Sequential([LSTM(16, { inputShape: [T, 5] }), Dense(3, { activation: 'softmax' })], { name: `lstm_${T}` });
  m.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
  return m;
};

describe('recurrent train steps', () => {
  it('have the same kernels at T = 8 and T = 64; only the arena grows, linearly', () => {
    const a = compileStep(lstmModel(8), 'train', 4);
    const b = compileStep(lstmModel(64), 'train', 4);
    expect(a.program.loops.length).toBe(2);
    expect(b.program.kernels.length).toBe(a.program.kernels.length);
    expect(b.program.kernels.map((k) => k.kind)).toEqual(a.program.kernels.map((k) => k.kind));
    // Per-step stacks (inputs, saved carries, gradients of the projections) grow with T; the rest is fixed.
    const c = compileStep(lstmModel(36), 'train', 4);
    const perStep = (b.plan.totalBytes - a.plan.totalBytes) / 56;
    expect(Math.abs(c.plan.totalBytes - (a.plan.totalBytes + 28 * perStep))).toBeLessThan(64 * 16);
  });

  it('print the forward loop, the backward (reverse) loop and the loop in the kernel program', () => {
    const m = lstmModel(6);
    const fwd = printFunc(compileStep(m, 'predict', 2).func);
    expect(fwd).toMatch(/scan\[carries=2,length=6,reverse=false,xs=1\]/);
    const train = compileStep(m, 'train', 2);
    expect(printFunc(train.passes.find((p) => p.name === 'autodiff')!.graph!)).toMatch(/scan\[carries=\d+,length=6,reverse=true,xs=\d+\]/);
    const prog = printProgram(train.program);
    expect(prog).toMatch(/^loop t in 0\.\.5 \(kernels \d+\.\.\d+\)/m);
    expect(prog).toMatch(/^loop t in 5\.\.0 \(kernels \d+\.\.\d+\)/m);
  });

  it.skipIf(!gpu)('train the same on Wasm and WebGPU', async () => {
    const x = tensor(Float32Array.from({ length: 8 * 12 * 5 }, (_, i) => Math.sin(i * 0.37)), [8, 12, 5], 'f32');
    const y = tensor(Int32Array.from({ length: 8 }, (_, i) => i % 3), [8], 'i32');
    const losses: Record<string, number[]> = {};
    for (const backend of ['wasm', 'webgpu'] as const) {
      const m = lstmModel(12);
      losses[backend] = [];
      for (let s = 0; s < 5; s++) losses[backend].push((await m.trainOnBatch(x, y, { backend })).loss);
      m.dispose();
    }
    expect(losses.wasm[4]).toBeLessThan(losses.wasm[0]);
    losses.wasm.forEach((l, i) => expect(Math.abs(l - losses.webgpu[i])).toBeLessThanOrEqual(1e-4 * Math.abs(l)));
  }, 120_000);
});

describe('returnState and initial states', () => {
  it('the final states are outputs of their own, named after the layer; they feed another layer as its initial state', async () => {
    const x = Input({ shape: [5, 3], name: 'x' });
    const [seq, h, c] = LSTM(4, { returnSequences: true, returnState: true, name: 'enc' }).apply(x);
    expect([seq.shape, h.shape, c.shape]).toEqual([[5, 4], [4], [4]]);
    const dec = LSTM(4, { name: 'dec' }).apply([seq, h, c]);
    const m = Model({ inputs: x, outputs: [dec, h, c], name: 'seq2seq' });
    expect(m.outputNames).toEqual(['dec', 'enc_h', 'enc_c']);
    const xs = tensor(Float32Array.from({ length: 2 * 15 }, (_, i) => Math.cos(i)), [2, 5, 3], 'f32');
    const [d, hv, cv] = await m.predictMany(xs);
    expect(d.shape).toEqual([2, 4]);
    // h is the last step of the returned sequence.
    const s = (await Model({ inputs: x, outputs: seq, name: 'just_seq' }).predict(xs)).data as Float32Array;
    for (let bi = 0; bi < 2; bi++) for (let u = 0; u < 4; u++) expect((hv.data as Float32Array)[bi * 4 + u]).toBeCloseTo(s[bi * 20 + 16 + u], 6);
    expect(Math.max(...Array.from(cv.data as Float32Array, Math.abs))).toBeGreaterThan(0);
  });

  it('refuses initial states of the wrong count or shape, and a Sequential model of a returnState layer', () => {
    const x = Input({ shape: [5, 3] });
    const h0 = Input({ shape: [3] });
    expect(() => LSTM(4, { name: 'l' }).apply([x, h0])).toThrow(/LSTM 'l': takes the sequence, or the sequence and its 2 initial states \(h, c\), got 2 inputs/);
    expect(() => GRU(4, { name: 'g' }).apply([x, h0])).toThrow(/GRU 'g': initial state h must be \[4\] per sample, got \[3\]/);
    expect(() => Sequential([LSTM(4, { returnState: true, inputShape: [5, 3], name: 'l2' }) as never])).toThrow(/Sequential: LSTM 'l2' has several outputs/);
  });
});

describe('masks', () => {
  it('padding tokens do not change a recurrent layer: a padded sequence gives what its unpadded part gives', async () => {
    const build = (T: number) => {
      const tok = Input({ shape: [T], name: 'tok' });
      const h = GRU(4, { name: 'gru' }).apply(Embedding(9, 3, { maskZero: true, name: 'emb' }).apply(tok));
      return Model({ inputs: tok, outputs: h, name: `masked_${T}`, seed: 7 });
    };
    const short = build(3);
    const long = build(6);
    long.setWeights(short.getWeights());
    const a = await short.predict(tensor(Float32Array.from([4, 2, 7, 1, 8, 3]), [2, 3], 'f32'));
    // Padding at the end, and at the start and in the middle: the states skip those steps.
    const b2 = await long.predict(tensor(Float32Array.from([4, 2, 7, 0, 0, 0, 0, 1, 0, 8, 0, 3]), [2, 6], 'f32'));
    Array.from(a.data as Float32Array).forEach((v, i) => expect((b2.data as Float32Array)[i]).toBeCloseTo(v, 6));
  });

  it('a masked sequence output averages its loss over the real steps only', async () => {
    const tok = Input({ shape: [4], name: 'tok' });
    const y = Dense(1, { name: 'd' }).apply(SimpleRNN(2, { returnSequences: true, name: 'rnn' }).apply(Embedding(5, 2, { maskZero: true, name: 'emb' }).apply(tok)));
    const m = Model({ inputs: tok, outputs: y, name: 'seq_loss', seed: 1 });
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    const x = tensor(Float32Array.from([1, 2, 0, 0, 3, 0, 4, 0]), [2, 4], 'f32');
    const target = tensor(new Float32Array(8).fill(0.5), [2, 4, 1], 'f32');
    const pred = (await m.predict(x)).data as Float32Array;
    const real = [0, 1, 4, 6];
    const want = real.reduce((s, i) => s + (pred[i] - 0.5) ** 2, 0) / real.length;
    const got = await m.evaluate(x, target);
    expect(got.loss).toBeCloseTo(want, 6);
  });

  it('Bidirectional refuses a masked input rather than ignore the mask', () => {
    const tok = Input({ shape: [4] });
    const e = Embedding(5, 2, { maskZero: true }).apply(tok);
    const m = () => Model({ inputs: tok, outputs: Bidirectional(LSTM(2), { name: 'bi' }).apply(e) }).predict(tensor(new Float32Array(4), [1, 4], 'f32'));
    return expect(m()).rejects.toThrow(/Bidirectional 'bi': masked input is not supported yet/);
  });
});

describe('dropout in recurrent layers', () => {
  it('applies in training only, one mask per sequence: predict is the dropout-free layer, a train step is not', async () => {
    const make = (dropout: number, recurrentDropout: number) => {
      const m = Sequential([LSTM(8, { dropout, recurrentDropout, inputShape: [6, 4], name: 'lstm' }), Dense(3, { activation: 'softmax', name: 'd' })], { name: `drop_${dropout}_${recurrentDropout}`, seed: 4 });
      m.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });
      return m;
    };
    const x = tensor(Float32Array.from({ length: 4 * 24 }, (_, i) => Math.sin(i * 0.7)), [4, 6, 4], 'f32');
    const y = tensor(Int32Array.from([0, 1, 2, 1]), [4], 'i32');
    const plain = make(0, 0);
    const want = (await plain.predict(x)).data as Float32Array;
    const plainLoss = (await plain.evaluate(x, y)).loss;
    for (const [d, r] of [[0.5, 0], [0, 0.5], [0.3, 0.3]]) {
      const m = make(d, r);
      m.setWeights(plain.getWeights());
      expect(Array.from((await m.predict(x)).data as Float32Array)).toEqual(Array.from(want));
      const trained = await m.trainOnBatch(x, y);
      expect(Math.abs(trained.loss - plainLoss), `dropout ${d}, recurrent ${r}`).toBeGreaterThan(1e-4);
    }
    expect(() => LSTM(4, { dropout: 1 })).toThrow(/LSTM: dropout must be in \[0, 1\), got 1/);
    // The masks are drawn once, outside the loop, and the loop body reads them as consts.
    const f = compileStep(make(0.3, 0.3), 'train', 4).func;
    const scans = funcNodes(f).filter((n) => n.op === 'scan');
    expect(scans.length).toBe(2);
    for (const s of scans) if (s.op === 'scan') expect(funcNodes(s.params.body).some((n) => n.op === 'random_uniform')).toBe(false);
    expect(funcNodes(f).filter((n) => n.op === 'random_uniform').length).toBe(2);
  });
});

describe('recurrent layers refuse bad input', () => {
  it('Embedding token ids out of range or not integers, before any step runs, naming the sample', async () => {
    const tok = Input({ shape: [3], name: 'tok' });
    const m = Model({ inputs: tok, outputs: Dense(2, { name: 'd' }).apply(GRU(2, { name: 'g' }).apply(Embedding(5, 2, { name: 'emb' }).apply(tok))), name: 'tokens' });
    m.compile({ optimizer: 'sgd', loss: 'mse' });
    const y = tensor(new Float32Array(4), [2, 2]);
    await expect(m.fit(tensor(Float32Array.from([1, 2, 3, 4, 5, 0]), [2, 3]), y, { verbose: 0 })).rejects.toThrow(/x: sample 1 has token 5 at position 1, but Embedding 'emb' takes integers in \[0, 5\)/);
    await expect(m.predict(tensor(Float32Array.from([1, 2.5, 3]), [1, 3]))).rejects.toThrow(/x: sample 0 has token 2.5 at position 1/);
    await expect(m.predict(tensor(Float32Array.from([1, -1, 3]), [1, 3]))).rejects.toThrow(/token -1/);
  });

  it('a sequence input of the wrong rank', () => {
    const x = Input({ shape: [5], name: 'x' });
    expect(() => LSTM(4, { name: 'lstm' }).apply(x)).toThrow(/LSTM 'lstm': expects sequences of shape \[time, features\] per sample, got \[5\]/);
  });

  it('a returnSequences=false layer feeding a recurrent layer', () => {
    const x = Input({ shape: [6, 3] });
    const h = GRU(4, { name: 'first' }).apply(x);
    expect(() => SimpleRNN(2, { name: 'second' }).apply(h)).toThrow(/SimpleRNN 'second': expects sequences .* got \[4\] \(a recurrent layer before it needs returnSequences: true\)/);
  });

  it('Bidirectional around a layer that is not recurrent', () => {
    expect(() => Bidirectional(Dense(3, { name: 'd' }) as never, { name: 'bi' })).toThrow(/Bidirectional 'bi': wraps a recurrent layer \(SimpleRNN, LSTM, GRU\), got Dense 'd'/);
  });

  it('bad units, merge modes and Embedding sizes', () => {
    expect(() => LSTM(0)).toThrow(/LSTM: units must be a positive integer, got 0/);
    expect(() => Bidirectional(LSTM(2), { mergeMode: 'max' as never })).toThrow(/mergeMode must be concat, sum, mul or ave, got max/);
    expect(() => Embedding(0, 3, { name: 'emb' })).toThrow(/Embedding 'emb': inputDim must be a positive integer, got 0/);
    expect(() => TimeDistributed(Add())).toThrow(/TimeDistributed: wraps a one-input layer, got Add \(unnamed\)/);
  });
});
