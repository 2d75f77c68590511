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

export type InitializerName = 'glorot_uniform' | 'glorot_normal' | 'he_uniform' | 'he_normal' | 'zeros' | 'ones';
const ALIASES: Record<string, InitializerName> = {
  glorot_uniform: 'glorot_uniform', glorotUniform: 'glorot_uniform',
  glorot_normal: 'glorot_normal', glorotNormal: 'glorot_normal',
  he_uniform: 'he_uniform', heUniform: 'he_uniform',
  he_normal: 'he_normal', heNormal: 'he_normal',
  zeros: 'zeros', ones: 'ones',
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
    default:
      return name satisfies never;
  }
}
