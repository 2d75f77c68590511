/**
 * @file The jax-js peer (@jax-js/jax on its 'wasm' device): the reference model written by hand, the
 * whole train step (forward, loss, gradient, Adam update) under one `jit`, in two forms:
 *
 *  - `jax-conv` (idiomatic): NCHW `lax.conv` and `lax.reduceWindow(max)`, as a JAX user would write it;
 *  - `jax-im2col` (fast): NHWC, each conv as an im2col gather (nine shifted slices concatenated on the
 *    channel axis) followed by one `np.dot`, and 2x2 max pooling as a reshape + max.
 *
 * Both start from the same Keras-layout weights as every other row (permuted to OIHW, and the first
 * dense kernel's rows to CHW order, for the NCHW form), so the math is identical. jax-js uses
 * reference-counted ownership: every function, `jit`-compiled ones included, consumes its arguments,
 * so arrays used again are passed as `.ref` and `Array.data()` consumes the array it reads. The step
 * consumes the old parameters and optimizer slots and returns new ones, so nothing accumulates.
 * In Node 20 there is no global `Worker`, so the wasm device runs single-threaded.
 *
 * `jax-lstm` is the LSTM example (examples/mnist-lstm.ts) from dlc's initial weights (the model
 * spec the parent writes): jax-js has no `lax.scan`, so the cell is written out once per time step
 * and `jit` traces all 28 copies (and their gradients) into one program; same Adam as above.
 */
import type { Array as JaxArray } from '@jax-js/jax';
import { blockUntilReady, defaultDevice, init, jit, lax, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
import type { BenchData, Runner, SystemDef, WeightInit } from '../common.ts';
import { CLASSES, CONVS, FLAT, HIDDEN, initialWeights, KSIZE, LEARNING_RATE } from '../common.ts';
import { loadModelSpec, LSTM_REFERENCE, LSTM_SPEC_FILE } from '../model-spec.ts';

type Params = JaxArray[];
type Form = 'conv' | 'im2col';

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-7;

/** HWIO [kh,kw,ci,co] -> OIHW [co,ci,kh,kw]. */
function hwioToOihw(w: WeightInit): Float32Array {
  const [kh, kw, ci, co] = w.shape;
  const out = new Float32Array(w.data.length);
  for (let a = 0; a < kh; a++)
    for (let b = 0; b < kw; b++)
      for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) out[((o * ci + c) * kh + a) * kw + b] = w.data[((a * kw + b) * ci + c) * co + o];
  return out;
}

/** Dense kernel rows in HWC flatten order (Keras, NHWC) -> CHW order (flattening NCHW). */
function hwcRowsToChw(w: WeightInit, h: number, wd: number, c: number): Float32Array {
  const cols = w.shape[1];
  const out = new Float32Array(w.data.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < wd; x++)
      for (let ch = 0; ch < c; ch++) {
        const src = ((y * wd + x) * c + ch) * cols;
        const dst = ((ch * h + y) * wd + x) * cols;
        out.set(w.data.subarray(src, src + cols), dst);
      }
  return out;
}

function initParams(form: Form): Params {
  const ws = initialWeights();
  return ws.map((w) => {
    if (form === 'conv' && w.shape.length === 4) {
      const [kh, kw, ci, co] = w.shape;
      return np.array(hwioToOihw(w)).reshape([co, ci, kh, kw]);
    }
    if (form === 'conv' && w.name === 'dense1.kernel') return np.array(hwcRowsToChw(w, 3, 3, 128)).reshape([FLAT, HIDDEN]);
    if (form === 'im2col' && w.shape.length === 4) {
      const [kh, kw, ci, co] = w.shape;
      return np.array(w.data.slice()).reshape([kh * kw * ci, co]);
    }
    return np.array(w.data.slice()).reshape([...w.shape]);
  });
}

// ------------------------------------------------------------------------------------ idiomatic

/** x: NHWC [n,28,28,1] -> logits [n,10], with NCHW convs. Consumes `p` and `x`. */
function forwardConv(p: Params, x: JaxArray): JaxArray {
  const n = x.shape[0];
  let h = x.reshape([n, 1, 28, 28]); // C = 1: NHWC and NCHW share one memory layout
  for (let i = 0; i < 3; i++) {
    const co = CONVS[i].cout;
    h = nn.relu(lax.conv(h, p[2 * i], [1, 1], 'VALID').add(p[2 * i + 1].reshape([1, co, 1, 1])));
    if (i < 2) h = lax.reduceWindow(h, (w: JaxArray) => np.max(w), [2, 2], [2, 2]);
  }
  h = h.reshape([n, FLAT]);
  h = nn.relu(np.dot(h, p[6]).add(p[7]));
  return np.dot(h, p[8]).add(p[9]);
}

// ------------------------------------------------------------------------------------ im2col

/** 3x3 valid conv as im2col + dot. x: NHWC [n,hw,hw,ci], w: [9*ci, co], b: [co]. Consumes all. */
function convIm2col(x: JaxArray, w: JaxArray, b: JaxArray): JaxArray {
  const [n, hw, , ci] = x.shape;
  const o = hw - KSIZE + 1;
  const cols: JaxArray[] = [];
  for (let i = 0; i < KSIZE; i++) for (let j = 0; j < KSIZE; j++) cols.push(x.ref.slice([], [i, i + o], [j, j + o], []));
  x.dispose();
  const patches = np.concatenate(cols, 3).reshape([n * o * o, KSIZE * KSIZE * ci]);
  const co = w.shape[1];
  return np.dot(patches, w).add(b).reshape([n, o, o, co]);
}

/** 2x2 max pool, stride 2, floor (drops the odd last row/column). NHWC. Consumes x. */
function pool2(x: JaxArray): JaxArray {
  const [n, hw, , c] = x.shape;
  const h = Math.floor(hw / 2);
  const even = hw % 2 ? x.slice([], [0, 2 * h], [0, 2 * h], []) : x;
  return even.reshape([n, h, 2, h, 2, c]).max([2, 4]);
}

function forwardIm2col(p: Params, x: JaxArray): JaxArray {
  const n = x.shape[0];
  let h = x;
  for (let i = 0; i < 3; i++) {
    h = nn.relu(convIm2col(h, p[2 * i], p[2 * i + 1]));
    if (i < 2) h = pool2(h);
  }
  h = h.reshape([n, FLAT]);
  h = nn.relu(np.dot(h, p[6]).add(p[7]));
  return np.dot(h, p[8]).add(p[9]);
}

// ------------------------------------------------------------------------------------ the step

interface AdamConfig {
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
}
const CNN_ADAM: AdamConfig = { learningRate: LEARNING_RATE, beta1: BETA1, beta2: BETA2, epsilon: EPS };

/**
 * The train step and predict of `forward` (params, x [n, ...inputShape]) -> logits [n, 10], from
 * `initial` (consumed). `label` names the model in errors; `reportLoss`: whether trainStep returns
 * the step's loss (the LSTM's, cross-checked against the other systems).
 */
function makeRunner(label: string, forward: (p: Params, x: JaxArray) => JaxArray, initial: Params, inputShape: readonly number[], adam: AdamConfig, reportLoss = false): Runner {
  const { beta1, beta2, epsilon } = adam;
  const lossFn = (p: Params, x: JaxArray, y: JaxArray): JaxArray => {
    const logp = nn.logSoftmax(forward(p, x), -1);
    const n = y.shape[0];
    return nn.oneHot(y, CLASSES).mul(logp).sum().mul(-1 / n);
  };
  /** (params, m, v, x, y, lr_t) -> [params', m', v', loss]; Keras/TF.js Adam with lr_t = lr*sqrt(1-b2^t)/(1-b1^t). */
  const step = jit((p: Params, m: Params, v: Params, x: JaxArray, y: JaxArray, lrT: JaxArray) => {
    const [loss, g] = valueAndGrad(lossFn)(tree.ref(p), x, y);
    const p2: Params = [];
    const m2: Params = [];
    const v2: Params = [];
    for (let i = 0; i < p.length; i++) {
      const gi = g[i];
      const mi = m[i].mul(beta1).add(gi.ref.mul(1 - beta1));
      const vi = v[i].mul(beta2).add(gi.ref.mul(gi).mul(1 - beta2));
      p2.push(p[i].sub(lrT.ref.mul(mi.ref).div(np.sqrt(vi.ref).add(epsilon))));
      m2.push(mi);
      v2.push(vi);
    }
    lrT.dispose();
    return [p2, m2, v2, loss] as [Params, Params, Params, JaxArray];
  });
  const predictFn = jit((p: Params, x: JaxArray) => nn.softmax(forward(p, x), -1));

  let params = initial;
  let m: Params = params.map((q) => np.zeros(q.shape));
  let v: Params = params.map((q) => np.zeros(q.shape));
  let t = 0;
  return {
    async trainStep(x: Float32Array, y: Int32Array): Promise<number | void> {
      t++;
      const lrT = (adam.learningRate * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
      const xa = np.array(x).reshape([y.length, ...inputShape]);
      const ya = np.array(y, { dtype: np.int32 });
      const [p2, m2, v2, loss] = step(params, m, v, xa, ya, np.array(lrT));
      params = p2;
      m = m2;
      v = v2;
      await blockUntilReady([params, m, v]);
      const l = (await loss.data())[0]; // data() consumes `loss`
      if (!Number.isFinite(l)) throw new Error(`jax-js ${label}: loss is ${l} at step ${t}`);
      if (reportLoss) return l;
    },
    async predict(x: Float32Array, n: number): Promise<Float32Array> {
      const xa = np.array(x).reshape([n, ...inputShape]);
      return (await predictFn(tree.ref(params), xa).data()) as Float32Array;
    },
    dispose(): void {
      const leaked = params.filter((q) => q.refCount !== 1).length;
      if (leaked) throw new Error(`jax-js ${label}: ${leaked} parameter arrays have refCount != 1 after the run (ownership bug)`);
      tree.dispose([params, m, v]);
      step.dispose();
      predictFn.dispose();
    },
  };
}

async function setup(form: Form): Promise<Runner | { failed: string }> {
  const devices = await init('wasm');
  if (!devices.includes('wasm')) return { failed: `jax-js init('wasm') returned [${devices.join(', ')}]` };
  defaultDevice('wasm');
  return makeRunner(form, form === 'conv' ? forwardConv : forwardIm2col, initParams(form), [28, 28, 1], CNN_ADAM);
}

export const jaxConv: SystemDef = {
  id: 'jax-conv',
  notes: ['jax-js (both forms): the whole train step (forward, loss, grad, hand-written Adam) is one jit; (a) idiomatic = NCHW lax.conv + lax.reduceWindow(max)'],
  setup: async (_d: BenchData) => setup('conv'),
};

export const jaxIm2col: SystemDef = {
  id: 'jax-im2col',
  notes: ['jax-js (b) fast = NHWC, convs as im2col (9 shifted slices concatenated) + np.dot, pooling as reshape + max'],
  setup: async (_d: BenchData) => setup('im2col'),
};

// ------------------------------------------------------------------------------------ LSTM

/**
 * examples/mnist-lstm.ts with the recurrence unrolled by hand (jax-js has no `lax.scan`): the input
 * projection of all steps as one matmul (as dlc does), then T copies of the Keras LSTM cell (gates
 * i, f, c, o in the columns of [F, 4U]/[U, 4U] kernels; sigmoid gates, tanh candidate and output),
 * then the dense softmax layer. `jit` traces the T steps into one program, forward and backward.
 * p = [kernel [F,4U], recurrent_kernel [U,4U], bias [4U], dense kernel [U,10], dense bias [10]]; x
 * [n, T, F]. Consumes `p` and `x`.
 */
function forwardLstm(p: Params, x: JaxArray): JaxArray {
  const [W, U, bias, Wd, bd] = p;
  const [n, T, F] = x.shape;
  const G = W.shape[1];
  const H = G / 4;
  const xw = np.dot(x.transpose([1, 0, 2]).reshape([T * n, F]), W).add(bias).reshape([T, n, G]);
  let h = np.zeros([n, H]);
  let c = np.zeros([n, H]);
  for (let t = 0; t < T; t++) {
    const z = xw.ref.slice(t).add(np.dot(h, U.ref));
    const i = nn.sigmoid(z.ref.slice([], [0, H]));
    const f = nn.sigmoid(z.ref.slice([], [H, 2 * H]));
    const g = np.tanh(z.ref.slice([], [2 * H, 3 * H]));
    const o = nn.sigmoid(z.slice([], [3 * H, 4 * H]));
    c = f.mul(c).add(i.mul(g));
    h = o.mul(np.tanh(c.ref));
  }
  xw.dispose();
  U.dispose();
  c.dispose();
  return np.dot(h, Wd).add(bd);
}

export const jaxLstm: SystemDef = {
  id: 'jax-lstm',
  notes: ['jax-lstm: jax-js has no scan, so the 28 LSTM steps are unrolled by hand inside one jit (input projection hoisted into one matmul, as dlc does); hand-written Adam as in the CNN rows; dlc\'s initial weights'],
  measure: { modes: ['lstm train b32', 'lstm infer b32'] },
  reference: LSTM_REFERENCE,
  async setup(_d: BenchData, log) {
    const { spec, weights } = loadModelSpec(LSTM_SPEC_FILE);
    const want = ['LSTM', 'Dense'];
    const layers = spec.layers.filter((l) => l.config.className !== 'InputLayer');
    if (layers.map((l) => l.config.className).join() !== want.join()) return { failed: `jax-lstm is written for ${want.join(' → ')}, the spec has ${layers.map((l) => l.config.className).join(' → ')}` };
    const [lstm, dense] = layers.map((l) => l.config);
    if (lstm.className !== 'LSTM' || dense.className !== 'Dense') throw new Error('unreachable');
    if (lstm.activation !== 'tanh' || lstm.recurrentActivation !== 'sigmoid' || !lstm.useBias || lstm.returnSequences || lstm.goBackwards) return { failed: `jax-lstm is written for the Keras defaults (tanh/sigmoid, bias, last output only), the spec's LSTM is ${JSON.stringify(lstm)}` };
    if (dense.activation !== 'softmax' || !dense.useBias) return { failed: `jax-lstm is written for a dense softmax layer with bias, the spec's is ${JSON.stringify(dense)}` };
    const shapes = weights.map((w) => `[${w.shape.join(',')}]`).join(' ');
    const U = lstm.units;
    const F = layers[0].inputShapes[0][1];
    if (shapes !== `[${F},${4 * U}] [${U},${4 * U}] [${4 * U}] [${U},${CLASSES}] [${CLASSES}]`) return { failed: `unexpected weight shapes ${shapes}` };
    const devices = await init('wasm');
    if (!devices.includes('wasm')) return { failed: `jax-js init('wasm') returned [${devices.join(', ')}]` };
    defaultDevice('wasm');
    log(`${spec.name}: weights ${weights.map((w) => w.name).join(', ')}`);
    const params = weights.map((w) => np.array(w.data.slice()).reshape([...w.shape]));
    const fwd = 2 * spec.fwdMacsPerSample;
    return { ...makeRunner('lstm', forwardLstm, params, layers[0].inputShapes[0], spec.optimizer, true), flops: { forward: fwd, train: 3 * fwd } };
  },
};
