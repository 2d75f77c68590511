/**
 * @file Keras weight initializers, seeded so that a model built twice gets the same weights.
 *
 * Draws come from the same counter-based generator the graph uses (ir/random.ts), keyed by the
 * model seed and the weight's position in the model, so they do not depend on construction order
 * elsewhere in the process. Fans follow Keras: for a conv kernel [kh, kw, in, out],
 * fan_in = kh*kw*in and fan_out = kh*kw*out.
 */
import { uniformAt } from '../../ir/random.ts';
import type { Shape } from '../../ir/types.ts';
import { numel } from '../../ir/types.ts';
import { fail } from './errors.ts';

export type InitializerName =
  | 'glorot_uniform'
  | 'glorot_normal'
  | 'he_uniform'
  | 'he_normal'
  | 'zeros'
  | 'ones'
  /** Keras's `RandomUniform()` default: U(-0.05, 0.05) (Embedding's default). */
  | 'random_uniform'
  /** A matrix with orthonormal rows or columns (Keras's `Orthogonal`, recurrent kernels' default). */
  | 'orthogonal'
  /** Zeros with the second quarter ones: an LSTM bias with Keras's `unit_forget_bias`. Internal. */
  | 'lstm_forget_bias';
const ALIASES: Record<string, InitializerName> = {
  glorot_uniform: 'glorot_uniform', glorotUniform: 'glorot_uniform',
  glorot_normal: 'glorot_normal', glorotNormal: 'glorot_normal',
  he_uniform: 'he_uniform', heUniform: 'he_uniform',
  he_normal: 'he_normal', heNormal: 'he_normal',
  zeros: 'zeros', ones: 'ones',
  random_uniform: 'random_uniform', randomUniform: 'random_uniform', uniform: 'random_uniform',
  orthogonal: 'orthogonal',
};

export function checkInitializer(name: unknown, where: string): InitializerName {
  const n = typeof name === 'string' ? ALIASES[name] : undefined;
  if (!n) fail(`${where}: unknown initializer '${String(name)}'; expected one of ${Object.keys(ALIASES).join(', ')}`);
  return n;
}

function fans(shape: Shape): [number, number] {
  if (shape.length === 2) return [shape[0], shape[1]];
  if (shape.length >= 3) {
    // Keras: conv kernels [...spatial, in, out] have fans in*receptive and out*receptive (Conv1D too).
    const rf = numel(shape.slice(0, -2));
    return [rf * shape[shape.length - 2], rf * shape[shape.length - 1]];
  }
  const n = numel(shape);
  return [n, n];
}

/** A truncated normal (resampled beyond 2 standard deviations), as Keras uses for *_normal. */
function truncatedNormal(seed: number, key: number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  let draw = 0;
  for (let i = 0; i < n; i++) {
    for (;;) {
      const u1 = Math.max(uniformAt(seed, key, draw++), 1e-12);
      const u2 = uniformAt(seed, key, draw++);
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      if (Math.abs(z) <= 2) {
        out[i] = z * std;
        break;
      }
    }
  }
  return out;
}

function uniform(seed: number, key: number, n: number, limit: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (uniformAt(seed, key, i) * 2 - 1) * limit;
  return out;
}

/** Initial values for a weight of `shape`; `key` identifies the weight within the model. */
export function initialize(name: InitializerName, shape: Shape, seed: number, key: number): Float32Array {
  const n = numel(shape);
  const [fanIn, fanOut] = fans(shape);
  switch (name) {
    case 'zeros':
      return new Float32Array(n);
    case 'ones':
      return new Float32Array(n).fill(1);
    case 'glorot_uniform':
      return uniform(seed, key, n, Math.sqrt(6 / (fanIn + fanOut)));
    case 'he_uniform':
      return uniform(seed, key, n, Math.sqrt(6 / fanIn));
    // 0.87962566 is the standard deviation of a unit normal truncated at ±2 (Keras divides by it).
    case 'glorot_normal':
      return truncatedNormal(seed, key, n, Math.sqrt(2 / (fanIn + fanOut)) / 0.87962566);
    case 'he_normal':
      return truncatedNormal(seed, key, n, Math.sqrt(2 / fanIn) / 0.87962566);
    case 'random_uniform':
      return uniform(seed, key, n, 0.05);
    case 'orthogonal':
      return orthogonal(seed, key, shape);
    case 'lstm_forget_bias': {
      const out = new Float32Array(n);
      out.fill(1, n / 4, n / 2);
      return out;
    }
    default:
      return name satisfies never;
  }
}

/**
 * Keras's `Orthogonal(gain=1)`: a standard normal matrix of [prod(shape[:-1]), shape[-1]], made
 * orthonormal along its shorter side (QR with the signs of R's diagonal taken out, which is what
 * Gram-Schmidt on the columns of the taller orientation gives).
 */
function orthogonal(seed: number, key: number, shape: Shape): Float32Array {
  const cols = shape[shape.length - 1];
  const rows = numel(shape) / cols;
  const tall = rows >= cols;
  const [m, k] = tall ? [rows, cols] : [cols, rows];
  // Column-major m x k matrix of N(0, 1) draws (Box-Muller).
  const a = new Float64Array(m * k);
  for (let i = 0; i < m * k; i++) {
    const u1 = Math.max(uniformAt(seed, key, 2 * i), 1e-12);
    a[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * uniformAt(seed, key, 2 * i + 1));
  }
  for (let j = 0; j < k; j++) {
    const cj = a.subarray(j * m, (j + 1) * m);
    for (let q = 0; q < j; q++) {
      const cq = a.subarray(q * m, (q + 1) * m);
      let d = 0;
      for (let i = 0; i < m; i++) d += cq[i] * cj[i];
      for (let i = 0; i < m; i++) cj[i] -= d * cq[i];
    }
    let norm = 0;
    for (let i = 0; i < m; i++) norm += cj[i] * cj[i];
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < m; i++) cj[i] /= norm;
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = tall ? a[c * m + r] : a[r * m + c];
  return out;
}
