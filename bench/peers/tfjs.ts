/**
 * @file The TF.js peer: the reference model through the Layers API (`tf.sequential`, `model.compile`
 * with `tf.train.adam(1e-3)` and 'sparseCategoricalCrossentropy', `trainOnBatch` / `predict`) on the
 * stock WebAssembly backend (@tensorflow/tfjs-backend-wasm 4.22.0, single-threaded in Node).
 *
 * That backend has no `Conv2DBackpropFilter` kernel, so a Conv2D layer cannot be trained on it. We
 * register one built only from the backend's own kernels (the filter gradient written as a dilated
 * stride-1 Conv2D of transposed operands, see `makeBackpropFilter`). Before the bench uses it, it is checked against
 * the cpu backend's kernel (shipped inside @tensorflow/tfjs) on small strided/padded cases and through
 * `tf.grad` of a conv; any disagreement aborts this peer loudly. `Conv2DBackpropInput` and
 * `MaxPoolGrad` exist in the stock backend; the list of missing kernels is checked, not assumed.
 *
 * The ResNet and LSTM examples are rebuilt from the dlc model's graph (bench/model-spec.ts) with
 * dlc's initial weights copied in; the LSTM runs on the stock backend (nothing registered).
 * `initWasmBackend` and `buildFromSpec` are also used by bench/lstm-accuracy.ts (`--only lstm-accuracy`).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import type * as TFWasm from '@tensorflow/tfjs-backend-wasm';
import type { BenchData, Runner, SystemDef } from '../common.ts';
import { CLASSES, initialWeights, LEARNING_RATE } from '../common.ts';
import type { LayerSpec, ModelSpec, SpecWeight } from '../model-spec.ts';
import { loadModelSpec, LSTM_REFERENCE, LSTM_SPEC_FILE, RESNET_SPEC_FILE } from '../model-spec.ts';

const require = createRequire(import.meta.url);

type TensorInfo = TF.TensorInfo;
type KernelArgs = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: Record<string, unknown> };

/** Kernels the Conv2D/MaxPool/Dense training graph needs beyond the forward ones. */
const GRAD_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad'] as const;

function load(): { tf: typeof TF; wasm: typeof TFWasm } {
  // The CommonJS builds (package "main"), so both share one @tensorflow/tfjs-core instance.
  const tf = require('@tensorflow/tfjs') as typeof TF;
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof TFWasm;
  return { tf, wasm };
}

/**
 * Conv2DBackpropFilter for the wasm backend, from the backend's own kernels. The filter gradient
 *   dW[a,b,c,o] = sum_{n,i,j} xpad[n, a + i*s, b + j*s, c] * dy[n,i,j,o]
 * is itself a stride-1 convolution with dilation s: input xpad transposed to [c, H, W, n] (batch =
 * input channels, channels = batch), filter dy transposed to [i, j, n, o]; its [c, a, b, o] output is
 * cropped to the filter window and transposed to HWIO. So: PadV2 (if padded), Transpose x2, Conv2D
 * (XNNPACK), Slice (if the dilated window overhangs), Transpose. A first version did im2col (one
 * Slice per tap + Concat + BatchMatMul with transposeA) and was ~10x slower, because the wasm
 * backend's Slice is a JS loop and its transposeA matmul takes a slow path; that would have measured
 * our kernel, not TF.js.
 */
function makeBackpropFilter(tf: typeof TF) {
  return (args: KernelArgs): TensorInfo => {
    const { backend } = args;
    const x = args.inputs.x;
    const dy = args.inputs.dy;
    const attrs = args.attrs as unknown as TF.Conv2DBackpropFilterAttrs;
    if (attrs.dataFormat !== 'NHWC') throw new Error(`bench Conv2DBackpropFilter: only NHWC is implemented, got ${attrs.dataFormat}`);
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number],
      attrs.filterShape,
      attrs.strides,
      1,
      attrs.pad,
      attrs.dimRoundingMode,
      false,
      'channelsLast',
    );
    const { inChannels: ci, outChannels: co, strideHeight: sh, strideWidth: sw, filterHeight: fh, filterWidth: fw, padInfo } = info;
    const run = (name: string, inputs: Record<string, TensorInfo>, kattrs: Record<string, unknown>): TensorInfo => {
      const k = tf.getKernel(name, 'wasm');
      if (!k) throw new Error(`bench Conv2DBackpropFilter: wasm backend has no '${name}' kernel`);
      return k.kernelFunc({ inputs: inputs as TF.NamedTensorInfoMap, backend: backend as TF.KernelBackend, attrs: kattrs as TF.NamedAttrMap }) as TensorInfo;
    };
    const temps: TensorInfo[] = [];
    const keep = (t: TensorInfo): TensorInfo => {
      temps.push(t);
      return t;
    };
    try {
      let xp = x;
      const { top, bottom, left, right } = padInfo;
      if (top || bottom || left || right) xp = keep(run('PadV2', { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 }));
      const xt = keep(run('Transpose', { x: xp }, { perm: [3, 1, 2, 0] })); // [ci, Hp, Wp, n]
      const dyt = keep(run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] })); // [oh, ow, n, co]
      let g = keep(run('Conv2D', { x: xt, filter: dyt }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [sh, sw], dimRoundingMode: undefined })); // [ci, >=fh, >=fw, co]
      if (g.shape[1] !== fh || g.shape[2] !== fw) g = keep(run('Slice', { x: g }, { begin: [0, 0, 0, 0], size: [ci, fh, fw, co] }));
      return run('Transpose', { x: g }, { perm: [1, 2, 0, 3] }); // [fh, fw, ci, co]
    } finally {
      const b = backend as { disposeData(id: unknown): boolean };
      for (const t of temps) b.disposeData(t.dataId);
    }
  };
}

/** Compare the wasm kernel (ours) with the cpu backend's on small cases; throws on disagreement. */
async function verifyBackpropFilter(tf: typeof TF, log: (l: string) => void): Promise<void> {
  let seed = 7;
  const rand = (k: number) => Float32Array.from({ length: k }, () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32 - 0.5;
  });
  const cases: { x: [number, number, number, number]; f: [number, number, number, number]; strides: [number, number]; pad: 'valid' | 'same' }[] = [
    { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: [1, 1], pad: 'valid' },
    { x: [2, 8, 7, 3], f: [3, 2, 3, 5], strides: [2, 2], pad: 'same' },
    { x: [3, 9, 9, 2], f: [3, 3, 2, 4], strides: [1, 1], pad: 'same' },
  ];
  const onBackend = async (name: string, f: () => TF.Tensor): Promise<Float32Array> => {
    await tf.setBackend(name);
    await tf.ready();
    const t = f();
    const d = (await t.data()) as Float32Array;
    t.dispose();
    return d;
  };
  const compare = (what: string, got: Float32Array, want: Float32Array) => {
    let maxErr = 0;
    let maxRef = 0;
    for (let i = 0; i < want.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(got[i] - want[i]));
      maxRef = Math.max(maxRef, Math.abs(want[i]));
    }
    const ok = got.length === want.length && maxErr <= 1e-4 * Math.max(1, maxRef);
    log(`verify ${what}: max |wasm - cpu| = ${maxErr.toExponential(2)} (max |ref| ${maxRef.toFixed(3)}) ${ok ? 'ok' : 'MISMATCH'}`);
    if (!ok) throw new Error(`ABORT: our wasm Conv2DBackpropFilter disagrees with tfjs cpu on ${what} (max err ${maxErr.toExponential(2)})`);
  };
  for (const c of cases) {
    const xs = rand(c.x.reduce((p, d) => p * d, 1));
    const info = tf.backend_util.computeConv2DInfo(c.x, c.f, c.strides, 1, c.pad);
    const dyShape = [c.x[0], info.outHeight, info.outWidth, c.f[3]];
    const dys = rand(dyShape.reduce((p, d) => p * d, 1));
    const ws = rand(c.f.reduce((p, d) => p * d, 1));
    const kernel = () => tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor(xs, c.x), dy: tf.tensor(dys, dyShape) }, { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: c.f } as unknown as TF.NamedAttrMap) as TF.Tensor;
    const what = `x ${c.x.join('x')} filter ${c.f.join('x')} stride ${c.strides[0]} ${c.pad}`;
    compare(`kernel, ${what}`, await onBackend('wasm', kernel), await onBackend('cpu', kernel));
    // End to end: the gradient of a conv with respect to its filter, as layers training computes it.
    const viaGrad = () => {
      const g = tf.grad((w: TF.Tensor) => tf.conv2d(tf.tensor4d(xs, c.x), w as TF.Tensor4D, c.strides, c.pad).mul(tf.tensor(dys, dyShape)).sum());
      return g(tf.tensor(ws, c.f));
    };
    compare(`tf.grad(conv2d), ${what}`, await onBackend('wasm', viaGrad), await onBackend('cpu', viaGrad));
  }
}

/**
 * The wasm backend, single-threaded, with our Conv2DBackpropFilter registered (if missing) and
 * verified against the cpu backend; shared by the TF.js systems (each in its own process). With
 * `convGrad` false (the LSTM, which has no conv) the stock backend is used as it is.
 */
export async function initWasmBackend(log: (l: string) => void, convGrad = true): Promise<typeof TF | { failed: string }> {
  const { tf, wasm } = load();
  tf.env().set('PROD', true); // no debug checks, and no "install tfjs-node" banner from the cpu backend
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
  wasm.setWasmPaths(dist);
  if (!(await tf.setBackend('wasm'))) return { failed: `tf.setBackend('wasm') failed (wasm files from ${dist})` };
  await tf.ready();
  log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}, SIMD ${String(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'))}, threads ${wasm.getThreadsCount()}`);
  if (!convGrad) return tf;

  const missing = GRAD_KERNELS.filter((k) => !tf.getKernel(k, 'wasm'));
  log(`stock wasm backend lacks: ${missing.length ? missing.join(', ') : 'nothing'}`);
  if (missing.some((k) => k !== 'Conv2DBackpropFilter')) return { failed: `the stock wasm backend also lacks ${missing.filter((k) => k !== 'Conv2DBackpropFilter').join(', ')}; not implemented here` };
  if (missing.includes('Conv2DBackpropFilter')) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: makeBackpropFilter(tf) as unknown as TF.KernelFunc });
  }
  await verifyBackpropFilter(tf, log);
  await tf.setBackend('wasm');
  await tf.ready();
  return tf;
}

async function setup(log: (l: string) => void): Promise<Runner | { failed: string }> {
  const tf = await initWasmBackend(log);
  if ('failed' in tf) return tf;

  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu', inputShape: [28, 28, 1] }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 64, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 128, kernelSize: 3, activation: 'relu' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 128, activation: 'relu' }),
      tf.layers.dense({ units: CLASSES, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(LEARNING_RATE), loss: 'sparseCategoricalCrossentropy' });
  const init = initialWeights().map((w) => tf.tensor(w.data, [...w.shape]));
  model.setWeights(init);
  tf.dispose(init);
  return layersRunner(tf, model, log);
}

/**
 * trainOnBatch / predict on a compiled layers model (the reference one, the ResNet or the LSTM);
 * `inputShape` is the per-sample shape the 784 pixels are fed as.
 */
function layersRunner(tf: typeof TF, model: TF.LayersModel, log: (l: string) => void, flops?: Runner['flops'], inputShape: readonly number[] = [28, 28, 1]): Runner {
  let tensorsAfterFirstStep = -1;
  let steps = 0;
  return {
    flops,
    async trainStep(x: Float32Array, y: Int32Array): Promise<number> {
      const xs = tf.tensor(x, [y.length, ...inputShape]);
      const ys = tf.tensor1d(Float32Array.from(y));
      const loss = await model.trainOnBatch(xs, ys);
      xs.dispose();
      ys.dispose();
      const l = Array.isArray(loss) ? loss[0] : loss;
      if (!Number.isFinite(l)) throw new Error(`tfjs: loss is ${l}`);
      if (++steps === 1) tensorsAfterFirstStep = tf.memory().numTensors;
      return l;
    },
    async predict(x: Float32Array, n: number): Promise<Float32Array> {
      const xs = tf.tensor(x, [n, ...inputShape]);
      const out = model.predict(xs, { batchSize: n }) as TF.Tensor;
      const d = (await out.data()) as Float32Array;
      xs.dispose();
      out.dispose();
      return d;
    },
    dispose(): void {
      const now = tf.memory().numTensors;
      if (tensorsAfterFirstStep >= 0 && now !== tensorsAfterFirstStep) log(`WARNING: live tensors went from ${tensorsAfterFirstStep} after step 1 to ${now} (leak?)`);
      else log(`live tensors stable at ${now}`);
      model.dispose();
    },
  };
}

export const tfjsWasm: SystemDef = {
  id: 'tfjs-wasm',
  notes: [
    'tfjs-wasm: stock backend has no Conv2DBackpropFilter; we register one (the filter gradient as a dilated Conv2D of transposed x and dy, from its own Transpose/Conv2D/Pad/Slice kernels), verified against tfjs-cpu at start',
  ],
  setup: async (_d: BenchData, log) => setup(log),
};

// ------------------------------------------------------------------------------------ ResNet

/** TF.js's Layer base class (not among the package's top-level exports). */
type TfLayer = TF.LayersModel['layers'][number];
type TfActivation = NonNullable<Parameters<typeof TF.layers.activation>[0]['activation']>;

/** dlc activation names TF.js spells the same way; anything else is refused. */
const ACTIVATIONS = new Set(['linear', 'relu', 'relu6', 'sigmoid', 'softmax', 'tanh', 'elu', 'selu', 'softplus', 'softsign']);

function activation(name: string, where: string): TfActivation {
  if (!ACTIVATIONS.has(name)) throw new Error(`tfjs spec: ${where}: activation '${name}' is not translated`);
  return name as TfActivation;
}

/** One TF.js layer for one dlc layer of the spec; throws, naming the class, for any other class. */
function tfLayer(tf: typeof TF, l: LayerSpec): TfLayer {
  const c = l.config;
  const where = `${c.className} '${l.name}'`;
  const pair = (v: readonly number[]) => [v[0], v[1]] as [number, number];
  switch (c.className) {
    case 'Conv2D':
      return tf.layers.conv2d({
        name: l.name,
        filters: c.filters,
        kernelSize: pair(c.kernel),
        strides: pair(c.strides),
        dilationRate: pair(c.dilation),
        padding: c.padding,
        useBias: c.useBias,
        activation: activation(c.activation, where),
      });
    case 'BatchNormalization':
      // TF.js's training path reads gamma and beta unconditionally.
      if (!c.center || !c.scale) throw new Error(`tfjs spec: ${where}: center/scale false is not translated`);
      return tf.layers.batchNormalization({ name: l.name, axis: -1, momentum: c.momentum, epsilon: c.epsilon, center: c.center, scale: c.scale });
    case 'Activation':
      return tf.layers.activation({ name: l.name, activation: activation(c.activation, where) });
    case 'Add':
      return tf.layers.add({ name: l.name });
    case 'MaxPooling2D':
      return tf.layers.maxPooling2d({ name: l.name, poolSize: pair(c.window), strides: pair(c.strides), padding: c.padding });
    case 'AveragePooling2D':
      return tf.layers.averagePooling2d({ name: l.name, poolSize: pair(c.window), strides: pair(c.strides), padding: c.padding });
    case 'GlobalAveragePooling2D':
      return tf.layers.globalAveragePooling2d({ name: l.name });
    case 'GlobalMaxPooling2D':
      return tf.layers.globalMaxPooling2d({ name: l.name });
    case 'Flatten':
      return tf.layers.flatten({ name: l.name });
    case 'Dense':
      return tf.layers.dense({ name: l.name, units: c.units, useBias: c.useBias, activation: activation(c.activation, where) });
    case 'LSTM':
      // Same kernel [F, 4U], recurrent_kernel [U, 4U], bias [4U] layouts and i, f, c, o gate order as
      // Keras (the predictions are cross-checked against dlc's before timing). TF.js follows Keras 2's
      // defaults: recurrentActivation is hardSigmoid unless given, so both activations are passed.
      // The initializers only matter until dlc's weights are copied in: zeros skip TF.js's orthogonal
      // initializer (a slow QR in JS that warns on a 128x512 matrix).
      return tf.layers.lstm({
        name: l.name,
        units: c.units,
        activation: activation(c.activation, where),
        recurrentActivation: activation(c.recurrentActivation, where),
        useBias: c.useBias,
        returnSequences: c.returnSequences,
        goBackwards: c.goBackwards,
        kernelInitializer: 'zeros',
        recurrentInitializer: 'zeros',
        biasInitializer: 'zeros',
      });
    default:
      throw new Error(`tfjs spec: layer class ${c.className} ('${l.name}') is not translated`);
  }
}

/**
 * The dlc model of the spec as a TF.js functional model: one TF.js layer per dlc layer, applied to
 * the same producers in the same order, then dlc's initial weights copied layer by layer (each
 * TF.js variable checked against the dlc weight's local name, the part after its last dot, and
 * shape: kernel, bias, gamma, beta, moving_mean, moving_variance, recurrent_kernel; dlc's LSTM
 * weights are `<layer>.lstm_cell.<var>` as in Keras 3, TF.js's `<layer>/<var>`).
 */
export function buildFromSpec(tf: typeof TF, spec: ModelSpec, weights: readonly SpecWeight[]): TF.LayersModel {
  const outs = new Map<string, TF.SymbolicTensor>();
  const built: [LayerSpec, TfLayer][] = [];
  for (const l of spec.layers) {
    if (l.config.className === 'InputLayer') {
      outs.set(l.name, tf.input({ shape: l.config.shape, name: l.name }));
      continue;
    }
    const ins = l.inputs.map((n) => outs.get(n) ?? (() => { throw new Error(`tfjs spec: '${l.name}' reads '${n}', which is not built yet`); })());
    const layer = tfLayer(tf, l);
    const out = layer.apply(ins.length === 1 ? ins[0] : ins);
    if (!(out instanceof tf.SymbolicTensor)) throw new Error(`tfjs spec: '${l.name}' did not return one symbolic tensor`);
    const want = [null, ...l.outputShape].join();
    if (out.shape.join() !== want) throw new Error(`tfjs spec: '${l.name}' outputs [${out.shape.join(', ')}], dlc's [${want}]`);
    outs.set(l.name, out);
    built.push([l, layer]);
  }
  const model = tf.model({ inputs: outs.get(spec.input)!, outputs: outs.get(spec.output)!, name: spec.name });
  const byName = new Map(weights.map((w) => [w.name, w]));
  let copied = 0;
  for (const [l, layer] of built) {
    const ws = l.weights.map((n) => byName.get(n) ?? (() => { throw new Error(`tfjs spec: no initial value for ${n}`); })());
    if (layer.weights.length !== ws.length) throw new Error(`tfjs spec: '${l.name}' has ${layer.weights.length} TF.js weights, dlc has ${ws.length} (${l.weights.join(', ')})`);
    layer.weights.forEach((v, i) => {
      const local = ws[i].name.slice(ws[i].name.lastIndexOf('.') + 1);
      if (!v.originalName.endsWith(`/${local}`) || v.shape.join() !== ws[i].shape.join()) {
        throw new Error(`tfjs spec: '${l.name}' weight ${i} is ${v.originalName} [${v.shape.join(', ')}], dlc's is ${ws[i].name} [${ws[i].shape.join(', ')}]`);
      }
    });
    if (ws.length) {
      const ts = ws.map((w) => tf.tensor(w.data, w.shape));
      layer.setWeights(ts);
      tf.dispose(ts);
      copied += ws.length;
    }
  }
  if (copied !== weights.length) throw new Error(`tfjs spec: copied ${copied} of dlc's ${weights.length} weights`);
  const o = spec.optimizer;
  model.compile({ optimizer: tf.train.adam(o.learningRate, o.beta1, o.beta2, o.epsilon), loss: 'sparseCategoricalCrossentropy' });
  return model;
}

export const tfjsWasmResnet: SystemDef = {
  id: 'tfjs-wasm-resnet',
  notes: ['tfjs-wasm-resnet: the ResNet example rebuilt with tf.input/tf.layers/tf.model by walking the dlc model graph (bench/model-spec.ts), dlc\'s initial weights copied layer by layer; same wasm backend and Conv2DBackpropFilter as tfjs-wasm'],
  measure: { modes: ['resnet train b32'] },
  async setup(_d: BenchData, log) {
    const { spec, weights } = loadModelSpec(RESNET_SPEC_FILE);
    const tf = await initWasmBackend(log);
    if ('failed' in tf) return tf;
    const model = buildFromSpec(tf, spec, weights);
    log(`${spec.name}: ${model.layers.length} TF.js layers, ${model.countParams()} parameters (dlc: ${spec.params})`);
    if (model.countParams() !== spec.params) return { failed: `TF.js model has ${model.countParams()} parameters, dlc's ${spec.params}` };
    const fwd = 2 * spec.fwdMacsPerSample;
    return layersRunner(tf, model, log, { forward: fwd, train: 3 * fwd });
  },
};

// ------------------------------------------------------------------------------------ LSTM

export const tfjsWasmLstm: SystemDef = {
  id: 'tfjs-wasm-lstm',
  notes: [
    "tfjs-wasm-lstm: examples/mnist-lstm.ts rebuilt from the dlc model (tf.layers.lstm with activation tanh and recurrentActivation sigmoid given explicitly, since TF.js's default is Keras 2's hardSigmoid; then tf.layers.dense softmax), dlc's initial weights copied in unchanged (same kernel/recurrent_kernel/bias layouts and gate order); the stock wasm backend, nothing registered",
  ],
  measure: { modes: ['lstm train b32', 'lstm infer b32'] },
  reference: LSTM_REFERENCE,
  async setup(_d: BenchData, log) {
    const { spec, weights } = loadModelSpec(LSTM_SPEC_FILE);
    const tf = await initWasmBackend(log, false);
    if ('failed' in tf) return tf;
    const model = buildFromSpec(tf, spec, weights);
    log(`${spec.name}: ${model.layers.length} TF.js layers, ${model.countParams()} parameters (dlc: ${spec.params})`);
    if (model.countParams() !== spec.params) return { failed: `TF.js model has ${model.countParams()} parameters, dlc's ${spec.params}` };
    const input = spec.layers.find((l) => l.name === spec.input);
    if (!input) return { failed: `the spec has no input layer '${spec.input}'` };
    const fwd = 2 * spec.fwdMacsPerSample;
    return layersRunner(tf, model, log, { forward: fwd, train: 3 * fwd }, input.outputShape);
  },
};
