/**
 * @file dlc against real Keras 3: every fixture in test/fixtures/keras (written by
 * scripts/keras-fixtures/gen.py with Keras 3 on its JAX CPU backend) is rebuilt here with dlc's API,
 * loaded with Keras's weights by name (so the weight names and layouts are Keras's), and run on
 * interp, wasm and webgpu: the inference output, then three SGD steps on one batch, checking each
 * step's loss and every final variable, non-trainable ones (BatchNormalization's moving statistics,
 * frozen layers) included.
 *
 * Tolerances: the forward pass at 1e-5 relative plus 1e-6 absolute (Keras and dlc both compute in
 * f32, in different orders; 1e-6 absolute covers outputs that cancel to near zero); losses and
 * weights after three steps at 1e-4 relative plus 1e-5 absolute (rounding differences grow through
 * the gradients and three updates at learning rate 0.1). With no WebGPU adapter the webgpu rows are
 * skipped with a banner, or fail when DLC_TEST_REQUIRE names webgpu (test/helpers/requirements.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BackendName, LayersModel, SymbolicTensor } from '../compiler/index.ts';
import {
  Add,
  AveragePooling1D,
  Average,
  BatchNormalization,
  Concatenate,
  Conv1D,
  Conv2D,
  Conv2DTranspose,
  Cropping2D,
  Dense,
  DepthwiseConv2D,
  ELU,
  GlobalAveragePooling1D,
  GlobalAveragePooling2D,
  GlobalMaxPooling1D,
  GlobalMaxPooling2D,
  Input,
  LayerNormalization,
  LeakyReLU,
  Maximum,
  MaxPooling1D,
  Minimum,
  Model,
  Multiply,
  Permute,
  ReLU,
  RepeatVector,
  Reshape,
  SeparableConv2D,
  SGD,
  Softmax,
  Subtract,
  tensor,
  UpSampling2D,
  ZeroPadding2D,
} from '../compiler/index.ts';
import { Activation } from '../compiler/frontend/layers.ts';
import { Bidirectional, Embedding, Flatten, GRU, LSTM, Masking, SimpleRNN, TimeDistributed } from '../compiler/index.ts';
import { gelu } from '../compiler/frontend/activations.ts';
import { UnaryLayer } from '../compiler/frontend/layer.ts';
import { needWebGpu } from './helpers/requirements.ts';

interface Arr {
  readonly name?: string;
  readonly shape: number[];
  readonly dtype?: 'float32' | 'int32';
  readonly data: number[];
}
interface Fixture {
  readonly case: string;
  readonly keras: string;
  readonly inputs: Arr[];
  readonly outputs: { name: string; shape: number[] }[];
  readonly weights: (Arr & { name: string; trainable: boolean })[];
  readonly predict: number[][];
  readonly train: {
    readonly optimizer: { kind: 'sgd'; learning_rate: number };
    readonly loss: string | Record<string, string>;
    readonly loss_weights?: Record<string, number>;
    readonly targets: Arr[];
    readonly steps: number;
    readonly losses: number[];
    /** Each output's own (unweighted) loss per step, by Keras's log name, for multi-output models. */
    readonly output_losses?: Record<string, number>[];
    readonly weights: (Arr & { name: string })[];
  };
}

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'keras');
const fixtures: Fixture[] = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as Fixture);

/** Keras's `activation=lambda t: gelu(t, approximate=True)`: no string names it, so a one-off layer. */
class GeluTanh extends UnaryLayer {
  readonly className = 'GeluTanh';
  constructor() {
    super({ name: 'gelu_tanh' }, 'gelu_tanh');
  }
  buildOne(s: readonly number[]) {
    return { outputShape: s, weights: [] };
  }
  callOne(x: Parameters<typeof gelu>[0]) {
    return gelu(x, true);
  }
}

type Build = (inp: (name: string, shape: number[]) => SymbolicTensor) => { inputs: SymbolicTensor[]; outputs: SymbolicTensor[] };

const one = (shape: number[], f: (x: SymbolicTensor) => SymbolicTensor): Build => (inp) => {
  const x = inp('x', shape);
  return { inputs: [x], outputs: [f(x)] };
};
const dense = (units: number, name = 'dense') => Dense(units, { name });
const merge = (layer: () => ReturnType<typeof Add>, shape: number[] = [4], units = 3): Build => (inp) => {
  const a = inp('a', shape);
  const b = inp('b', shape);
  return { inputs: [a, b], outputs: [layer().apply([dense(units, 'da').apply(a), dense(units, 'db').apply(b)])] };
};
const act = (name: Parameters<typeof Activation>[0]): Build => one([5], (x) => Dense(4, { activation: name, name: 'dense' }).apply(x));

/** Each fixture's model, written with dlc's API as gen.py writes it with Keras's (see each file's `code`). */
const BUILDERS: Record<string, Build> = {
  act_elu: act('elu'),
  act_exponential: act('exponential'),
  act_gelu: act('gelu'),
  act_gelu_approximate: one([5], (x) => new GeluTanh().apply(Dense(4, { name: 'dense' }).apply(x))),
  act_hard_sigmoid: act('hard_sigmoid'),
  act_leaky_relu: act('leaky_relu'),
  act_log_softmax: act('log_softmax'),
  act_relu6: act('relu6'),
  act_selu: act('selu'),
  act_silu: act('silu'),
  act_softplus: act('softplus'),
  act_softsign: act('softsign'),
  act_swish: act('swish'),
  add: merge(() => Add({ name: 'merge' })),
  subtract: merge(() => Subtract({ name: 'merge' })),
  multiply: merge(() => Multiply({ name: 'merge' })),
  average: merge(() => Average({ name: 'merge' })),
  maximum: merge(() => Maximum({ name: 'merge' })),
  minimum: merge(() => Minimum({ name: 'merge' })),
  concatenate: (inp) => {
    const a = inp('a', [3, 4]);
    const b = inp('b', [3, 2]);
    return { inputs: [a, b], outputs: [Concatenate({ axis: -1, name: 'merge' }).apply([dense(3, 'da').apply(a), dense(3, 'db').apply(b)])] };
  },
  concatenate_axis1: (inp) => {
    const a = inp('a', [3, 4]);
    const b = inp('b', [3, 2]);
    return { inputs: [a, b], outputs: [Concatenate({ axis: 1, name: 'merge' }).apply([dense(3, 'da').apply(a), dense(3, 'db').apply(b)])] };
  },
  avgpool1d: one([8, 3], (x) => AveragePooling1D(2, { name: 'pool' }).apply(dense(4).apply(x))),
  maxpool1d: one([8, 3], (x) => MaxPooling1D(2, { name: 'pool' }).apply(dense(4).apply(x))),
  batchnorm_conv: one([5, 5, 2], (x) => BatchNormalization({ momentum: 0.9, name: 'bn' }).apply(Conv2D(3, 3, { padding: 'same', name: 'conv' }).apply(x))),
  batchnorm_dense: one([5], (x) => BatchNormalization({ name: 'bn' }).apply(dense(6).apply(x))),
  conv1d: one([8, 3], (x) => Conv1D(4, 3, { name: 'conv' }).apply(x)),
  conv1d_same_strided: one([8, 3], (x) => Conv1D(4, 3, { strides: 2, padding: 'same', name: 'conv' }).apply(x)),
  conv2d_transpose_same: one([4, 4, 2], (x) => Conv2DTranspose(3, 3, { strides: 2, padding: 'same', name: 'convt' }).apply(x)),
  conv2d_transpose_valid: one([4, 4, 2], (x) => Conv2DTranspose(3, 3, { strides: 2, padding: 'valid', name: 'convt' }).apply(x)),
  cropping2d: one([6, 6, 2], (x) => Cropping2D([[1, 2], [0, 1]], { name: 'crop' }).apply(Conv2D(2, 1, { name: 'conv' }).apply(x))),
  depthwise_conv2d: one([5, 5, 3], (x) => DepthwiseConv2D(3, { name: 'dw' }).apply(x)),
  depthwise_conv2d_mult2_same: one([5, 5, 3], (x) => DepthwiseConv2D(3, { depthMultiplier: 2, padding: 'same', name: 'dw' }).apply(x)),
  separable_conv2d: one([5, 5, 3], (x) => SeparableConv2D(4, 3, { name: 'sep' }).apply(x)),
  elu_layer: one([5], (x) => ELU({ alpha: 0.7, name: 'act' }).apply(dense(4).apply(x))),
  relu_layer: one([5], (x) => ReLU({ name: 'act' }).apply(dense(4).apply(x))),
  leaky_relu_layer: one([5], (x) => LeakyReLU({ negativeSlope: 0.2, name: 'act' }).apply(dense(4).apply(x))),
  softmax_layer_axis1: one([3, 4], (x) => Softmax({ axis: 1, name: 'act' }).apply(dense(4).apply(x))),
  frozen_bn: one([5], (x) => {
    const bn = BatchNormalization({ name: 'bn', trainable: false });
    return bn.apply(dense(4).apply(x));
  }),
  frozen_dense: one([4], (x) => Dense(2, { name: 'd2' }).apply(Dense(5, { trainable: false, name: 'd1' }).apply(x))),
  global_avg_pool1d: one([6, 3], (x) => GlobalAveragePooling1D({ name: 'pool' }).apply(dense(4).apply(x))),
  global_max_pool1d: one([6, 3], (x) => GlobalMaxPooling1D({ name: 'pool' }).apply(dense(4).apply(x))),
  global_avg_pool2d: one([5, 5, 2], (x) => GlobalAveragePooling2D({ name: 'pool' }).apply(Conv2D(3, 3, { name: 'conv' }).apply(x))),
  global_max_pool2d: one([5, 5, 2], (x) => GlobalMaxPooling2D({ name: 'pool' }).apply(Conv2D(3, 3, { name: 'conv' }).apply(x))),
  layernorm: one([3, 6], (x) => LayerNormalization({ name: 'ln' }).apply(dense(6).apply(x))),
  permute: one([3, 4], (x) => Permute([2, 1], { name: 'permute' }).apply(dense(5).apply(x))),
  repeat_vector: one([4], (x) => RepeatVector(5, { name: 'repeat' }).apply(dense(3).apply(x))),
  reshape: one([6], (x) => Reshape([3, 4], { name: 'reshape' }).apply(dense(12).apply(x))),
  residual_block: one([6, 6, 2], (x) => {
    let h = Conv2D(4, 3, { padding: 'same', name: 'c1' }).apply(x);
    h = ReLU({ name: 'r1' }).apply(BatchNormalization({ name: 'bn1' }).apply(h));
    h = BatchNormalization({ name: 'bn2' }).apply(Conv2D(4, 3, { padding: 'same', name: 'c2' }).apply(h));
    const s = Conv2D(4, 1, { name: 'sc' }).apply(x);
    h = ReLU({ name: 'r2' }).apply(Add({ name: 'add' }).apply([h, s]));
    return Dense(3, { activation: 'softmax', name: 'out' }).apply(GlobalAveragePooling2D({ name: 'gap' }).apply(h));
  }),
  shared_dense: (inp) => {
    const a = inp('a', [4]);
    const b = inp('b', [4]);
    const shared = Dense(3, { name: 'shared' });
    return { inputs: [a, b], outputs: [Add({ name: 'add' }).apply([shared.apply(a), shared.apply(b)])] };
  },
  two_outputs: (inp) => {
    const a = inp('a', [4]);
    const b = inp('b', [3]);
    const h = Concatenate({ name: 'cat' }).apply([Dense(5, { activation: 'relu', name: 'h1' }).apply(a), Dense(5, { activation: 'relu', name: 'h2' }).apply(b)]);
    return { inputs: [a, b], outputs: [Dense(2, { name: 'out_reg' }).apply(h), Dense(3, { activation: 'softmax', name: 'out_cls' }).apply(h)] };
  },
  upsampling2d: one([3, 3, 2], (x) => UpSampling2D(2, { name: 'up' }).apply(Conv2D(2, 1, { name: 'conv' }).apply(x))),
  upsampling2d_bilinear: one([3, 3, 2], (x) => UpSampling2D(2, { interpolation: 'bilinear', name: 'up' }).apply(Conv2D(2, 1, { name: 'conv' }).apply(x))),
  zeropadding2d: one([3, 3, 2], (x) => ZeroPadding2D([[1, 0], [2, 1]], { name: 'pad' }).apply(Conv2D(2, 1, { name: 'conv' }).apply(x))),
  // Recurrent layers: one scan each (forward) and one reverse scan (backward).
  rnn_simple: one([4, 3], (x) => dense(2).apply(SimpleRNN(4, { name: 'rnn' }).apply(x))),
  rnn_simple_seq: one([4, 3], (x) => dense(2).apply(SimpleRNN(4, { returnSequences: true, name: 'rnn' }).apply(x))),
  rnn_lstm: one([4, 3], (x) => dense(2).apply(LSTM(4, { name: 'lstm' }).apply(x))),
  rnn_lstm_seq_backwards: one([5, 3], (x) => LSTM(3, { returnSequences: true, goBackwards: true, name: 'lstm' }).apply(x)),
  rnn_gru: one([4, 3], (x) => dense(2).apply(GRU(4, { name: 'gru' }).apply(x))),
  rnn_gru_seq: one([5, 3], (x) => GRU(3, { returnSequences: true, goBackwards: true, name: 'gru' }).apply(x)),
  rnn_gru_reset_before: one([4, 3], (x) => dense(2).apply(GRU(4, { resetAfter: false, name: 'gru' }).apply(x))),
  rnn_stacked: one([4, 3], (x) => dense(2).apply(GRU(3, { name: 'gru' }).apply(LSTM(4, { returnSequences: true, name: 'lstm' }).apply(x)))),
  rnn_bidirectional_concat: one([4, 3], (x) => Bidirectional(LSTM(3, { returnSequences: true, name: 'lstm' }), { mergeMode: 'concat', name: 'bi' }).apply(x)),
  rnn_bidirectional_sum: one([4, 3], (x) => Bidirectional(LSTM(3, { name: 'lstm' }), { mergeMode: 'sum', name: 'bi' }).apply(x)),
  rnn_bidirectional_mul: one([4, 3], (x) => Bidirectional(LSTM(3, { name: 'lstm' }), { mergeMode: 'mul', name: 'bi' }).apply(x)),
  rnn_bidirectional_ave: one([4, 3], (x) => Bidirectional(LSTM(3, { name: 'lstm' }), { mergeMode: 'ave', name: 'bi' }).apply(x)),
  rnn_time_distributed: one([4, 3], (x) => LSTM(3, { name: 'lstm' }).apply(TimeDistributed(dense(3), { name: 'td' }).apply(x))),
  rnn_lstm_state: one([4, 3], (x) => Concatenate({ name: 'cat' }).apply(LSTM(4, { returnState: true, name: 'lstm' }).apply(x))),
  rnn_lstm_initial_state: (inp) => {
    const [x, h0, c0] = [inp('x', [4, 3]), inp('h0', [4]), inp('c0', [4])];
    return { inputs: [x, h0, c0], outputs: [LSTM(4, { name: 'lstm' }).apply([x, h0, c0])] };
  },
  rnn_embedding_lstm_mask: (inp) => {
    const tok = inp('tok', [5]);
    return { inputs: [tok], outputs: [dense(2).apply(LSTM(4, { name: 'lstm' }).apply(Embedding(7, 3, { maskZero: true, name: 'emb' }).apply(tok)))] };
  },
  rnn_embedding_gru_seq_mask: (inp) => {
    const tok = inp('tok', [5]);
    return { inputs: [tok], outputs: [dense(2).apply(GRU(3, { returnSequences: true, name: 'gru' }).apply(Embedding(7, 3, { maskZero: true, name: 'emb' }).apply(tok)))] };
  },
  rnn_masking: one([5, 3], (x) => dense(2).apply(SimpleRNN(3, { name: 'rnn' }).apply(Masking({ maskValue: 0, name: 'mask' }).apply(x)))),
  rnn_embedding: (inp) => {
    const tok = inp('tok', [4]);
    return { inputs: [tok], outputs: [dense(2).apply(Flatten({ name: 'flat' }).apply(Embedding(7, 3, { name: 'emb' }).apply(tok)))] };
  },
};


function build(f: Fixture): LayersModel {
  const make = BUILDERS[f.case];
  if (!make) throw new Error(`no dlc builder for Keras fixture '${f.case}': add one to BUILDERS`);
  const g = make((name, shape) => Input({ shape, name }));
  const m = Model({ ...g, name: f.case });
  // Keras's weights by name: the same names and layouts, or this fails naming the difference.
  const byName = new Map(f.weights.map((w) => [w.name, w]));
  expect(m.weightInfo.map((w) => w.name).sort(), 'weight names').toEqual([...byName.keys()].sort());
  m.setWeights(m.weightInfo.map((w) => {
    const k = byName.get(w.name)!;
    expect(w.shape, `${w.name} shape`).toEqual(k.shape);
    return tensor(Float32Array.from(k.data), k.shape);
  }));
  return m;
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(got.length, `${what} length`).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const tol = rtol * Math.max(Math.abs(got[i]), Math.abs(want[i])) + atol;
    if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`${what}[${i}]: dlc ${got[i]}, Keras ${want[i]} (tolerance ${tol})`);
  }
}

const LOSS_NAMES: Record<string, string> = { mse: 'mse', mean_squared_error: 'mse', sparse_categorical_crossentropy: 'sparse_categorical_crossentropy' };

async function check(f: Fixture, backend: BackendName): Promise<void> {
  const m = build(f);
  const xs = f.inputs.map((a) => tensor(Float32Array.from(a.data), a.shape));
  const n = f.inputs[0].shape[0];
  const preds = await m.predictMany(xs, { backend, batchSize: n });
  preds.forEach((p, i) => close(p.data, f.predict[i], 1e-5, 1e-6, `${f.case} predict output ${i}`));

  const loss = typeof f.train.loss === 'string' ? LOSS_NAMES[f.train.loss] : Object.fromEntries(Object.entries(f.train.loss).map(([k, v]) => [k, LOSS_NAMES[v]]));
  m.compile({ optimizer: SGD({ learningRate: f.train.optimizer.learning_rate }), loss, lossWeights: f.train.loss_weights });
  const ys = f.train.targets.map((t) => (t.dtype === 'int32' ? tensor(Int32Array.from(t.data), t.shape, 'i32') : tensor(Float32Array.from(t.data), t.shape)));
  for (let s = 0; s < f.train.steps; s++) {
    const r = await m.trainOnBatch(xs, ys, { backend, batchSize: n });
    close([r.loss], [f.train.losses[s]], 1e-4, 1e-5, `${f.case} step ${s} loss`);
    // Multi-output logs: the same names as Keras's, the same unweighted values.
    for (const [k, v] of Object.entries(f.train.output_losses?.[s] ?? {})) close([r[k]], [v], 1e-4, 1e-5, `${f.case} step ${s} ${k}`);
  }
  await m.sync();
  const state = m.readState();
  for (const w of f.train.weights) close(state.get(w.name)!, w.data, 1e-4, 1e-5, `${f.case} ${w.name} after ${f.train.steps} steps`);
}

const gpu = !!(await needWebGpu('test/keras.test.ts: the Keras 3 fixtures on webgpu (interp and wasm still run)'));

describe('every Keras fixture has a builder', () => {
  it('and every builder a fixture', () => {
    expect(fixtures.length).toBeGreaterThan(40);
    expect(Object.keys(BUILDERS).sort()).toEqual(fixtures.map((f) => f.case).sort());
  });
});

for (const backend of ['interp', 'wasm', 'webgpu'] as const) {
  describe(`Keras 3 fixtures on ${backend}`, () => {
    for (const f of fixtures) {
      it.skipIf(backend === 'webgpu' && !gpu)(f.case, () => check(f, backend), 120_000);
    }
  });
}
