/**
 * @file Keras merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum and Concatenate.
 *
 * They take a list of tensors (`Add().apply([a, b])`) and subclass `Layer` directly. As in Keras 3
 * (keras/src/layers/merging/base_merge.py), the elementwise ones broadcast their inputs numpy-style
 * over the per-sample shapes: axes align at the end, a size-1 axis stretches, and an input of lower
 * rank gains leading size-1 axes (Keras expands it at axis 1, right after the batch axis, which is
 * the same thing). `Concatenate` (keras/src/layers/merging/concatenate.py) counts `axis` with the
 * batch axis, as Keras does: -1 is the last axis, 0 the batch axis, which it refuses. Broadcasts are
 * explicit `broadcast` nodes, the IR has no implicit broadcasting. None of these layers has weights.
 */
import * as b from '../../../ir/builders.ts';
import type { Node, Shape } from '../../../ir/types.ts';
import { fmtShape } from '../../../ir/types.ts';
import { fail } from '../errors.ts';
import type { Built, CommonOptions } from '../layer.ts';
import { Layer } from '../layer.ts';

type MergeKind = 'Add' | 'Subtract' | 'Multiply' | 'Average' | 'Maximum' | 'Minimum';

const DEFAULT_NAMES: Readonly<Record<MergeKind | 'Concatenate', string>> = {
  Add: 'add',
  Subtract: 'subtract',
  Multiply: 'multiply',
  Average: 'average',
  Maximum: 'maximum',
  Minimum: 'minimum',
  Concatenate: 'concatenate',
};

const fmtShapes = (ss: readonly Shape[]): string => ss.map(fmtShape).join(', ');

/** Numpy broadcasting of per-sample shapes, or null where an axis differs and neither side is 1. */
function broadcastShapes(shapes: readonly Shape[]): Shape | null {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = new Array(rank).fill(1);
  for (const s of shapes) {
    const off = rank - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = s[i];
      const o = out[off + i];
      if (o === 1) out[off + i] = d;
      else if (d !== 1 && d !== o) return null;
    }
  }
  return out;
}

class MergeLayer extends Layer {
  constructor(readonly className: MergeKind, opts: CommonOptions | undefined) {
    super(opts, DEFAULT_NAMES[className]);
  }

  build(inputShapes: readonly Shape[]): Built {
    const n = inputShapes.length;
    if (this.className === 'Subtract') {
      if (n !== 2) this.error(`expects exactly 2 inputs, got ${n}${n ? ` (${fmtShapes(inputShapes)})` : ''}`);
    } else if (n < 2) {
      this.error(`expects a list of at least 2 inputs, got ${n}${n ? ` (${fmtShapes(inputShapes)})` : ''}`);
    }
    const out = broadcastShapes(inputShapes);
    if (!out) {
      this.error(`inputs have incompatible shapes ${fmtShapes(inputShapes)}: per sample, each axis (aligned at the end) must be equal or 1 in every input`);
    }
    return { outputShape: out, weights: [] };
  }

  call(xs: readonly Node[]): Node {
    const batch = xs[0].shape[0];
    const target = [batch, ...broadcastShapes(xs.map((x) => x.shape.slice(1)))!];
    const ys = xs.map((x) => {
      // Per-sample axes align at the end; the batch axis maps to the batch axis.
      const off = target.length - x.shape.length;
      return b.broadcast(x, target, x.shape.map((_, i) => (i === 0 ? 0 : i + off)));
    });
    switch (this.className) {
      case 'Add':
        return ys.reduce((acc, y) => b.add(acc, y));
      case 'Subtract':
        return b.sub(ys[0], ys[1]);
      case 'Multiply':
        return ys.reduce((acc, y) => b.mul(acc, y));
      case 'Average': {
        const sum = ys.reduce((acc, y) => b.add(acc, y));
        return b.div(sum, b.scalarLike(ys.length, sum));
      }
      case 'Maximum':
        return ys.reduce((acc, y) => b.max(acc, y));
      case 'Minimum':
        return ys.reduce((acc, y) => b.min(acc, y));
    }
  }
}

export interface ConcatenateOptions extends CommonOptions {
  /** Axis to join along, counting the batch axis (Keras): -1 (default) is the last, 0 is refused. */
  axis?: number;
}

class ConcatenateLayer extends Layer {
  readonly className = 'Concatenate';
  readonly axis: number;
  constructor(opts: ConcatenateOptions = {}) {
    super(opts, DEFAULT_NAMES.Concatenate);
    const where = opts.name ? `Concatenate '${opts.name}'` : 'Concatenate';
    this.axis = opts.axis ?? -1;
    if (!Number.isInteger(this.axis)) fail(`${where}: axis must be an integer, got ${String(opts.axis)}`);
    if (this.axis === 0) fail(`${where}: axis 0 is the batch axis; concatenate along a per-sample axis (1, 2, ... or -1, -2, ...)`);
  }

  /** The axis as an index into the batched shape (1..rank of the per-sample shape). */
  private resolve(rank: number): number {
    const a = this.axis < 0 ? this.axis + rank + 1 : this.axis;
    if (a === 0) this.error(`axis ${this.axis} is the batch axis for inputs of rank ${rank} per sample; concatenate along a per-sample axis`);
    if (a < 1 || a > rank) {
      this.error(`axis ${this.axis} is out of range for inputs of rank ${rank} per sample (batched rank ${rank + 1}): use 1..${rank} or -1..-${rank}`);
    }
    return a;
  }

  build(inputShapes: readonly Shape[]): Built {
    const n = inputShapes.length;
    if (n < 2) this.error(`expects a list of at least 2 inputs, got ${n}${n ? ` (${fmtShapes(inputShapes)})` : ''}`);
    const rank = inputShapes[0].length;
    if (inputShapes.some((s) => s.length !== rank)) {
      this.error(`inputs must all have the same rank to concatenate along axis ${this.axis}, got ${fmtShapes(inputShapes)}`);
    }
    const a = this.resolve(rank);
    const k = a - 1; // per-sample axis
    const s0 = inputShapes[0];
    if (inputShapes.some((s) => s.some((d, i) => i !== k && d !== s0[i]))) {
      this.error(`inputs must match on every axis except the concatenation axis ${this.axis}, got ${fmtShapes(inputShapes)}`);
    }
    const total = inputShapes.reduce((acc, s) => acc + s[k], 0);
    return { outputShape: s0.map((d, i) => (i === k ? total : d)), weights: [] };
  }

  call(xs: readonly Node[]): Node {
    return b.concat(xs, this.resolve(xs[0].shape.length - 1));
  }
}

// ---------------------------------------------------------------- factories (the public names)

/** Elementwise sum of two or more inputs (Keras `Add`). */
export const Add = (opts?: CommonOptions): Layer => new MergeLayer('Add', opts);
/** `inputs[0] - inputs[1]` for exactly two inputs (Keras `Subtract`). */
export const Subtract = (opts?: CommonOptions): Layer => new MergeLayer('Subtract', opts);
/** Elementwise product of two or more inputs (Keras `Multiply`). */
export const Multiply = (opts?: CommonOptions): Layer => new MergeLayer('Multiply', opts);
/** Elementwise mean of two or more inputs (Keras `Average`). */
export const Average = (opts?: CommonOptions): Layer => new MergeLayer('Average', opts);
/** Elementwise maximum of two or more inputs (Keras `Maximum`). */
export const Maximum = (opts?: CommonOptions): Layer => new MergeLayer('Maximum', opts);
/** Elementwise minimum of two or more inputs (Keras `Minimum`). */
export const Minimum = (opts?: CommonOptions): Layer => new MergeLayer('Minimum', opts);
/**
 * Join two or more inputs along `axis` (Keras `Concatenate(axis=-1)`): `Concatenate()`,
 * `Concatenate({axis: 1})`, or Keras's positional form `Concatenate(1)`.
 */
export const Concatenate = (opts?: number | ConcatenateOptions): Layer => {
  if (opts !== undefined && typeof opts !== 'number' && (typeof opts !== 'object' || opts === null || Array.isArray(opts))) {
    fail(`Concatenate: expected an axis or options {axis?, name?}, got ${JSON.stringify(opts)}`);
  }
  return new ConcatenateLayer(typeof opts === 'number' ? { axis: opts } : opts);
};
