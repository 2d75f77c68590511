/**
 * @file Validation of user data before any step runs: shapes, dtypes, label ranges and NaN/Inf.
 *
 * Each check names the argument (`x`, `y`, `validationData[1]`, ...) and states what was expected
 * against what was given. Labels for sparse losses are normalised to Int32Array here, so step
 * functions never see a label they could index out of range.
 */
import type { Shape } from '../ir/types.ts';
import { fmtShape, numel } from '../ir/types.ts';
import { fail } from './frontend/errors.ts';
import type { Loss } from './frontend/losses.ts';
import type { Tensor } from './frontend/tensor.ts';

export interface TensorLike {
  readonly data: Float32Array | Int32Array | readonly number[];
  readonly shape: readonly number[];
  readonly dtype?: 'f32' | 'i32';
}

function shapeOk(got: readonly number[], want: Shape): boolean {
  return got.length === want.length && got.every((d, i) => d === want[i]);
}

function checkFinite(data: ArrayLike<number>, what: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) fail(`${what}: element ${i} is ${data[i]}; data must be finite (no NaN or Infinity)`);
  }
}

function asTensor(t: unknown, what: string): TensorLike {
  if (!t || typeof t !== 'object' || !('data' in t) || !('shape' in t)) fail(`${what}: expected a tensor {data, shape}, got ${t === null ? 'null' : typeof t}`);
  const tl = t as TensorLike;
  if (!Array.isArray(tl.shape) || !tl.shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`${what}: shape must be a list of sizes, got ${JSON.stringify(tl.shape)}`);
  if (tl.data.length !== numel(tl.shape)) fail(`${what}: ${tl.data.length} values do not fill shape ${fmtShape(tl.shape)}`);
  return tl;
}

/** Model inputs: f32 [N, ...inputShape]. Returns the sample count and the data as f32. */
export function checkInputs(t: unknown, inputShape: Shape, what = 'x'): { n: number; data: Float32Array } {
  const x = asTensor(t, what);
  if (x.dtype === 'i32' || x.data instanceof Int32Array) fail(`${what}: expected dtype f32, got i32`);
  const want = [x.shape[0], ...inputShape];
  if (!shapeOk(x.shape, want)) fail(`${what}: expected shape [N,${inputShape.join(',')}], got ${fmtShape(x.shape)}`);
  const data = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
  checkFinite(data, what);
  return { n: x.shape[0], data };
}

/** Labels for `loss` and a model output of per-sample shape `outShape`. */
export function checkLabels(t: unknown, loss: Loss, outShape: Shape, n: number, what = 'y'): Float32Array | Int32Array {
  const y = asTensor(t, what);
  switch (loss.kind) {
    case 'sparse_categorical_crossentropy': {
      const ignore = loss.ignoreClass;
      const classes = outShape[0];
      const okShape = shapeOk(y.shape, [n]) || shapeOk(y.shape, [n, 1]);
      if (!okShape) fail(`${what}: sparse_categorical_crossentropy expects integer labels of shape [${n}], got ${fmtShape(y.shape)}`);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = y.data[i];
        if (!Number.isInteger(v) || ((v < 0 || v >= classes) && v !== ignore)) fail(`${what}: label ${i} is ${v}; expected an integer class in [0, ${classes - 1}]${ignore === null ? '' : ` or the ignored class ${ignore}`}`);
        out[i] = v;
      }
      return out;
    }
    default: {
      // Every other loss takes targets of the output's shape.
      if (!shapeOk(y.shape, [n, ...outShape])) fail(`${what}: ${loss.kind} expects targets of shape [${[n, ...outShape].join(',')}], got ${fmtShape(y.shape)}`);
      const data = y.data instanceof Float32Array ? y.data : Float32Array.from(y.data);
      checkFinite(data, what);
      return data;
    }
  }
}

export type { Tensor };

/**
 * Keras's `sample_weight`: one finite weight >= 0 per sample, as a tensor [n] or [n, 1], a
 * Float32Array or a list of numbers.
 */
export function checkSampleWeight(t: unknown, n: number, what = 'sampleWeight'): Float32Array {
  const w = t instanceof Float32Array || Array.isArray(t) ? { data: t as ArrayLike<number>, shape: [(t as ArrayLike<number>).length] } : asTensor(t, what);
  if (!(shapeOk(w.shape, [n]) || shapeOk(w.shape, [n, 1]))) fail(`${what}: expected one weight per sample, shape [${n}], got ${fmtShape(w.shape)}`);
  const data = Float32Array.from(w.data as ArrayLike<number>);
  for (let i = 0; i < n; i++) {
    if (!(Number.isFinite(data[i]) && data[i] >= 0)) fail(`${what}: sample ${i} has weight ${data[i]}; sample weights must be finite and >= 0`);
  }
  return data;
}

/**
 * Keras's `class_weight` turned into per-sample weights: the class of a sample is its integer label,
 * the rounded label of a one-value target (binary), or the argmax of a one-hot target; a class
 * missing from the map weighs 1, as in Keras.
 */
export function classWeights(cw: unknown, labels: Float32Array | Int32Array, n: number, what = 'classWeight'): Float32Array {
  if (!cw || typeof cw !== 'object' || Array.isArray(cw)) fail(`${what}: expected an object of class -> weight ({0: 1, 1: 5}), got ${Array.isArray(cw) ? 'an array' : cw === null ? 'null' : typeof cw}`);
  const map = new Map<number, number>();
  for (const [k, v] of Object.entries(cw as Record<string, unknown>)) {
    const c = Number(k);
    if (!Number.isInteger(c) || c < 0) fail(`${what}: key '${k}' is not a class index (an integer >= 0)`);
    if (typeof v !== 'number' || !(Number.isFinite(v) && v >= 0)) fail(`${what}: class ${k} has weight ${String(v)}; weights must be finite numbers >= 0`);
    map.set(c, v);
  }
  const per = labels.length / Math.max(n, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let c: number;
    if (labels instanceof Int32Array || per === 1) c = Math.round(labels[i * per]);
    else {
      c = 0;
      for (let k = 1; k < per; k++) if (labels[i * per + k] > labels[i * per + c]) c = k;
    }
    out[i] = map.get(c) ?? 1;
  }
  return out;
}
