/**
 * @file Activations, written as compositions of primitives so they get gradients and fusion for free.
 *
 * Names, formulas and defaults are Keras 3's (keras/src/activations/activations.py and the backends'
 * nn.py): `gelu` is the exact erf form unless asked for the tanh approximation, `leaky_relu` has
 * slope 0.2, `elu` alpha 1, `selu` the constants of Klambauer et al., `hard_sigmoid` is
 * relu6(x + 3) / 6, `swish` is another name for `silu`.
 *
 * Numerical care, because the f32 backends run these graphs too:
 *  - softmax/log_softmax subtract the max along their axis before `exp`, so it never overflows; the
 *    losses module recognises a final softmax/sigmoid and works from the logits instead (losses.ts);
 *  - `exp` only ever sees arguments that cannot overflow, also in branches a `select` throws away:
 *    the VJP sends a zero cotangent into the unused branch, and 0 * inf there would still be NaN;
 *  - there is no erf primitive, so `erf` (and exact `gelu`) use a polynomial fit of erfc whose error
 *    (3.4e-12 absolute) is far below f32 resolution; see `halfErfc`.
 *
 * Kinks follow `max`'s rule (ties go to the first operand): relu, relu6 and leaky_relu have
 * derivative 1 at 0, as relu always had here.
 */
import * as b from '../../ir/builders.ts';
import type { Node } from '../../ir/types.ts';
import { fail } from './errors.ts';

export type ActivationName =
  | 'relu'
  | 'sigmoid'
  | 'tanh'
  | 'softmax'
  | 'linear'
  | 'gelu'
  | 'silu'
  | 'swish'
  | 'elu'
  | 'selu'
  | 'softplus'
  | 'softsign'
  | 'leaky_relu'
  | 'relu6'
  | 'hard_sigmoid'
  | 'exponential'
  | 'log_softmax';
export const ACTIVATIONS: readonly ActivationName[] = [
  'relu',
  'sigmoid',
  'tanh',
  'softmax',
  'linear',
  'gelu',
  'silu',
  'swish',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'leaky_relu',
  'relu6',
  'hard_sigmoid',
  'exponential',
  'log_softmax',
];

export function checkActivation(name: unknown, where: string): ActivationName {
  if (name === undefined || name === null) return 'linear';
  if (typeof name !== 'string' || !ACTIVATIONS.includes(name as ActivationName)) {
    fail(`${where}: unknown activation '${String(name)}'; expected one of ${ACTIVATIONS.join(', ')}`);
  }
  return name as ActivationName;
}

const k = (value: number, like: Node): Node => b.scalarLike(value, like);
/** |x| without an abs primitive; at 0 the tie sends the gradient to x, so d|x|/dx = 1 there. */
const abs = (x: Node): Node => b.max(x, b.neg(x));

/** A helper's numeric parameter must be a finite number (NaN would poison every value silently). */
function param(fn: string, name: string, v: number, min = -Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    fail(`${fn}: ${name} must be a finite number${min > -Infinity ? ` >= ${min}` : ''}, got ${String(v)}`);
  }
  return v;
}

export const relu = (x: Node): Node => b.max(x, k(0, x));

/**
 * Largest argument `sigmoid` gives `exp`: e^80 = 5.5e34 is finite in f32 (whose limit is e^88.7).
 * Without the clamp, x < -88.7 makes exp(-x) = inf in f32, sigmoid is still 0, but its VJP multiplies
 * the zero cotangent from `recip` by that inf: NaN gradients (seen on the Wasm backend from x = -89
 * on). Below -80 the value 1/(1 + e^80) = 1.8e-35 stands in for e^x, which is as good as zero to
 * anything it feeds. The clamp keeps x single-use, so a Dense + sigmoid still fuses into one kernel.
 */
const SIGMOID_EXP_MAX = 80;

export const sigmoid = (x: Node): Node => b.recip(b.add(k(1, x), b.exp(b.min(b.neg(x), k(SIGMOID_EXP_MAX, x)))));

/** silu(x) = swish(x) = x * sigmoid(x). */
export const silu = (x: Node): Node => b.mul(x, sigmoid(x));

/** min(max(x, 0), 6). */
export const relu6 = (x: Node): Node => b.min(relu(x), k(6, x));

/** relu6(x + 3) / 6: 0 below -3, 1 above 3, linear between (Keras 3; Keras 2 used 0.2x + 0.5). */
export const hardSigmoid = (x: Node): Node => b.div(relu6(b.add(x, k(3, x))), k(6, x));

/** x for x >= 0, negativeSlope * x below (a select, so any slope is right, not only slopes <= 1). */
export function leakyRelu(x: Node, negativeSlope = 0.2): Node {
  const s = param('leakyRelu', 'negativeSlope', negativeSlope);
  return b.select(b.less(x, k(0, x)), b.mul(x, k(s, x)), x);
}

/**
 * Keras's `relu(x, negative_slope, max_value, threshold)`: x where x > threshold, else 0; clipped to
 * [0, maxValue] when maxValue is given; minus negativeSlope * max(threshold - x, 0).
 */
export function reluCapped(x: Node, maxValue?: number, negativeSlope = 0, threshold = 0): Node {
  const slope = param('reluCapped', 'negativeSlope', negativeSlope);
  const t = param('reluCapped', 'threshold', threshold);
  let y = t === 0 ? relu(x) : b.select(b.less(k(t, x), x), x, k(0, x));
  if (maxValue !== undefined) {
    const m = k(param('reluCapped', 'maxValue', maxValue, 0), x);
    // Below a negative threshold y can be negative; Keras clips to [0, maxValue] then.
    y = b.min(t === 0 ? y : b.max(y, k(0, x)), m);
  }
  return slope === 0 ? y : b.sub(y, b.mul(k(slope, x), relu(b.sub(k(t, x), x))));
}

/**
 * x for x >= 0, alpha * (e^x - 1) below. The exp sees min(x, 0): the select evaluates both sides,
 * and exp(800) = inf in the unused branch would turn the zero cotangent it gets into NaN.
 * e^x - 1 instead of expm1 loses relative precision for tiny negative x, not absolute precision.
 */
export function elu(x: Node, alpha = 1): Node {
  const a = param('elu', 'alpha', alpha);
  const neg = b.mul(k(a, x), b.sub(b.exp(b.min(x, k(0, x))), k(1, x)));
  return b.select(b.less(x, k(0, x)), neg, x);
}

/** The constants of keras/src/backend/numpy/nn.py (Klambauer et al. 2017) to f64 precision. */
const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;
export const selu = (x: Node): Node => b.mul(k(SELU_SCALE, x), elu(x, SELU_ALPHA));

/**
 * log(1 + e^x) as max(x, 0) + log(1 + e^-|x|): exp never sees a positive argument. Absolute error is
 * an ulp of 1; without log1p the value is 0 once e^x is below that ulp (x < -37 in f64, -17 in f32),
 * but the gradient, e^-|x| / (1 + e^-|x|) there, keeps its relative accuracy.
 */
export const softplus = (x: Node): Node => b.add(relu(x), b.log(b.add(k(1, x), b.exp(b.neg(abs(x))))));

/** x / (1 + |x|). */
export const softsign = (x: Node): Node => b.div(x, b.add(k(1, x), abs(x)));

/**
 * erfc(z) = 2 r exp(P(u) - z^2) for z >= 0, with r = 1 / (2 + z), u = (2 - z) r in (-1, 1] and P of
 * degree 16: the first 17 terms of the Chebyshev series of Numerical Recipes (3rd ed., section 6.2,
 * `Erf::erfccheb`), re-expanded into monomials in u (exactly, then rounded to f64) so that P is a
 * Horner chain. A Clenshaw recurrence would use each partial sum twice, and fusion materializes every
 * value with several uses into its own kernel; Horner values are used once. The sum of |P's
 * coefficients| is 1.46, so evaluating in f32 does not cancel.
 * Error in exact arithmetic: relative 9.6e-12 on erfc over [0, 40] (the NR series is fit on all of
 * [0, inf)); measured in f64 through the interpreter: 3.4e-12 absolute on erf over [-6, 6]
 * (test/activations.test.ts), i.e. 2e4 times below the f32 spacing just under 1 (6e-8). Autodiff
 * differentiates the fit: its derivative is off from -2/sqrt(pi) e^{-z^2} by at most 1.1e-9.
 * Cost: 16 Horner steps. Fusion keeps the forward pass to a few kernels, but a gradient keeps every
 * partial sum, so exact gelu's VJP is ~45 kernels where the tanh form needs a handful.
 */
const ERFC_POLY = [
  -0.6717940840638893, 0.6726432239564852, 0.047343308019487586, -0.04689560948546305, -0.009872721153550009,
  0.00882493328190112, 0.001759264918692128, -0.002345825839560576, -0.000147984664082048, 0.00067396035235072,
  -8.858314558976e-5, -0.00017558776046592, 6.2342789871616e-5, 3.46923840512e-5, -2.0765497196544e-5,
  -3.725150158848e-6, 3.161060507648e-6,
];

/** erfc(z) / 2 for z >= 0; the halving is free (erfc = 2 r ...). For large z it underflows to 0, no NaN. */
function halfErfc(z: Node): Node {
  const r = b.recip(b.add(k(2, z), z));
  const u = b.mul(b.sub(k(2, z), z), r);
  let p = k(ERFC_POLY[ERFC_POLY.length - 1], z);
  for (let i = ERFC_POLY.length - 2; i >= 0; i--) p = b.add(b.mul(p, u), k(ERFC_POLY[i], z));
  return b.mul(r, b.exp(b.sub(p, b.mul(z, z))));
}

/** The error function, sign(x) (1 - erfc(|x|)); accuracy as documented at `ERFC_POLY`. */
export function erf(x: Node): Node {
  const sign = b.select(b.less(x, k(0, x)), k(-1, x), k(1, x));
  return b.mul(sign, b.sub(k(1, x), b.mul(k(2, x), halfErfc(abs(x)))));
}

/**
 * The standard normal CDF, erfc(-x / sqrt 2) / 2. For x < 0 it is computed as erfc directly, not
 * as 1 + erf(x / sqrt 2) (which cancels), so gelu keeps its relative accuracy in the negative tail.
 */
function normalCdf(x: Node): Node {
  const h = halfErfc(b.mul(abs(x), k(Math.SQRT1_2, x)));
  return b.select(b.less(x, k(0, x)), h, b.sub(k(1, x), h));
}

/**
 * x * P(X <= x) for X ~ N(0, 1). Exact (erf) by default, as Keras's `activations.gelu`; with
 * `approximate` the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) of Hendrycks & Gimpel
 * (Keras's `ops.gelu` and JAX default to that one; the 'gelu' activation name does not).
 */
export function gelu(x: Node, approximate = false): Node {
  if (!approximate) return b.mul(x, normalCdf(x));
  // x^3 as products: pow is undefined for negative bases in WGSL.
  const inner = b.mul(k(Math.sqrt(2 / Math.PI), x), b.add(x, b.mul(k(0.044715, x), b.mul(x, b.mul(x, x)))));
  return b.mul(b.mul(k(0.5, x), x), b.add(k(1, x), b.tanh(inner)));
}

function softmaxAxisOf(x: Node, axis: number, fn: string): number {
  const r = x.shape.length;
  if (!Number.isInteger(axis) || axis < -r || axis >= r) {
    fail(`${fn}: axis ${String(axis)} is out of range for an input of rank ${r} (valid: ${-r} to ${r - 1})`);
  }
  return axis < 0 ? axis + r : axis;
}

/** log(softmax(x)) along `axis` (negative counts from the end), as x - max - log(sum(exp(x - max))). */
export function logSoftmaxAxis(x: Node, axis = -1): Node {
  const a = softmaxAxisOf(x, axis, 'logSoftmax');
  const shifted = b.sub(x, b.broadcastTo(b.maxKeep(x, [a]), x.shape));
  const lse = b.log(b.sumKeep(b.exp(shifted), [a]));
  return b.sub(shifted, b.broadcastTo(lse, x.shape));
}

/** softmax along `axis` (negative counts from the end), with the max subtracted first. */
export function softmaxAxis(x: Node, axis = -1): Node {
  const a = softmaxAxisOf(x, axis, 'softmax');
  const e = b.exp(b.sub(x, b.broadcastTo(b.maxKeep(x, [a]), x.shape)));
  return b.div(e, b.broadcastTo(b.sumKeep(e, [a]), x.shape));
}

/** log(softmax(x)) over the last axis, in the stable form x - max - log(sum(exp(x - max))). */
export function logSoftmax(x: Node): Node {
  return logSoftmaxAxis(x, -1);
}

/** softmax over the last axis. */
export function softmax(x: Node): Node {
  return softmaxAxis(x, -1);
}

export function activate(name: ActivationName, x: Node): Node {
  switch (name) {
    case 'relu':
      return relu(x);
    case 'sigmoid':
      return sigmoid(x);
    case 'tanh':
      return b.tanh(x);
    case 'softmax':
      return softmax(x);
    case 'linear':
      return x;
    case 'gelu':
      return gelu(x, false);
    case 'silu':
    case 'swish':
      return silu(x);
    case 'elu':
      return elu(x, 1);
    case 'selu':
      return selu(x);
    case 'softplus':
      return softplus(x);
    case 'softsign':
      return softsign(x);
    case 'leaky_relu':
      return leakyRelu(x, 0.2);
    case 'relu6':
      return relu6(x);
    case 'hard_sigmoid':
      return hardSigmoid(x);
    case 'exponential':
      return b.exp(x);
    case 'log_softmax':
      return logSoftmax(x);
    default:
      return name satisfies never;
  }
}
