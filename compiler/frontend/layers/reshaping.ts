/**
 * @file Keras reshaping layers: Reshape, Permute, RepeatVector, ZeroPadding2D, Cropping2D and
 * UpSampling2D, as compositions of movement ops (reshape, transpose, broadcast, pad, slice, concat)
 * and, for bilinear upsampling, fixed linear combinations; autodiff and fusion handle them as they
 * are. Shapes in `build` are per sample; nodes in `call` have the batch axis first.
 *
 * Keras sources followed (keras/src/layers/reshaping/): reshape.py (one -1 inferred), permute.py
 * (1-based dims without the batch axis), repeat_vector.py ([F] -> [n, F]), zero_padding2d.py and
 * cropping2d.py (int, [h, w] or [[top, bottom], [left, right]]; a crop must leave at least one row
 * and column), up_sampling2d.py (nearest repeats rows and columns; bilinear is `ops.image.resize`,
 * i.e. `jax.image.resize` / `tf.image.resize` with half-pixel centers and no antialiasing). Only
 * channels_last (NHWC) is supported; `dataFormat: 'channels_first'` is refused.
 */
import * as b from '../../../ir/builders.ts';
import type { Node, Shape } from '../../../ir/types.ts';
import { fmtShape, numel } from '../../../ir/types.ts';
import { fail } from '../errors.ts';
import type { Built, CommonOptions } from '../layer.ts';
import { Layer, UnaryLayer } from '../layer.ts';

/** The constructor's name for messages: the class, with the layer name when one was given. */
const who = (cls: string, opts: CommonOptions | undefined): string => (opts?.name ? `${cls} '${opts.name}'` : cls);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

type DataFormat = 'channels_last';

/** Keras's `data_format`: only channels_last (NHWC), the IR's window and conv layout. */
function checkDataFormat(v: unknown, where: string): void {
  if (v === undefined || v === null || v === 'channels_last') return;
  if (v === 'channels_first') fail(`${where}: dataFormat 'channels_first' is not supported; dlc layers are channels_last (NHWC) only`);
  fail(`${where}: dataFormat must be 'channels_last', got ${JSON.stringify(v)}`);
}

const isInt = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;

/**
 * Keras's 2-D padding/cropping argument: an int for all four sides, [h, w] symmetric per axis, or
 * [[top, bottom], [left, right]] (each entry may also be one int, symmetric, as Keras allows).
 */
function sides2(v: unknown, what: string, where: string): [[number, number], [number, number]] {
  const bad = (): never =>
    fail(`${where}: ${what} must be a non-negative integer, two of them [height, width], or [[top, bottom], [left, right]], got ${JSON.stringify(v)}`);
  if (isInt(v, 0)) return [[v, v], [v, v]];
  if (!Array.isArray(v) || v.length !== 2) return bad();
  const axis = (e: unknown): [number, number] => {
    if (isInt(e, 0)) return [e, e];
    if (Array.isArray(e) && e.length === 2 && isInt(e[0], 0) && isInt(e[1], 0)) return [e[0], e[1]];
    return bad();
  };
  return [axis(v[0]), axis(v[1])];
}

/** A positive integer or two of them. */
function pair(v: unknown, what: string, where: string): [number, number] {
  if (isInt(v, 1)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && isInt(v[0], 1) && isInt(v[1], 1)) return [v[0], v[1]];
  return fail(`${where}: ${what} must be a positive integer or two of them, got ${JSON.stringify(v)}`);
}

// ---------------------------------------------------------------- Reshape

class ReshapeLayer extends UnaryLayer {
  readonly className = 'Reshape';
  readonly targetShape: readonly number[];
  constructor(targetShape: readonly number[], opts?: CommonOptions) {
    super(opts, 'reshape');
    const where = who('Reshape', opts);
    if (!Array.isArray(targetShape) || !targetShape.every((d) => isInt(d, 1) || d === -1)) {
      fail(`${where}: targetShape must be a list of positive integers (per sample, no batch axis), at most one of them -1, got ${JSON.stringify(targetShape)}`);
    }
    if (targetShape.filter((d) => d === -1).length > 1) fail(`${where}: targetShape may hold at most one -1, got ${fmtShape(targetShape)}`);
    this.targetShape = [...targetShape];
  }
  private resolve(s: Shape): number[] {
    const n = numel(s);
    const known = this.targetShape.reduce((a, d) => (d === -1 ? a : a * d), 1);
    const free = this.targetShape.indexOf(-1);
    if (free < 0) {
      if (known !== n) this.error(`cannot reshape an input of shape ${fmtShape(s)} (${n} values per sample) to target shape ${fmtShape(this.targetShape)} (${known} values)`);
      return [...this.targetShape];
    }
    if (n % known !== 0) {
      this.error(`cannot reshape an input of shape ${fmtShape(s)} (${n} values per sample) to target shape ${fmtShape(this.targetShape)}: ${n} is not a multiple of ${known}`);
    }
    return this.targetShape.map((d) => (d === -1 ? n / known : d));
  }
  buildOne(s: Shape): Built {
    return { outputShape: this.resolve(s), weights: [] };
  }
  callOne(x: Node): Node {
    return b.reshape(x, [x.shape[0], ...this.resolve(x.shape.slice(1))]);
  }
}

// ---------------------------------------------------------------- Permute

class PermuteLayer extends UnaryLayer {
  readonly className = 'Permute';
  readonly dims: readonly number[];
  constructor(dims: readonly number[], opts?: CommonOptions) {
    super(opts, 'permute');
    const where = who('Permute', opts);
    const ok = Array.isArray(dims) && dims.length > 0 && dims.every((d) => isInt(d, 1)) && [...dims].sort((p, q) => p - q).every((d, i) => d === i + 1);
    if (!ok) fail(`${where}: dims must be a permutation of 1..n (axes counted from 1, without the batch axis), e.g. [2, 1], got ${JSON.stringify(dims)}`);
    this.dims = [...dims];
  }
  buildOne(s: Shape): Built {
    if (s.length !== this.dims.length) {
      this.error(`dims ${fmtShape(this.dims)} expect an input of rank ${this.dims.length} per sample, got ${fmtShape(s)}`);
    }
    return { outputShape: this.dims.map((d) => s[d - 1]), weights: [] };
  }
  callOne(x: Node): Node {
    return b.transpose(x, [0, ...this.dims]);
  }
}

// ---------------------------------------------------------------- RepeatVector

class RepeatVectorLayer extends UnaryLayer {
  readonly className = 'RepeatVector';
  constructor(readonly n: number, opts?: CommonOptions) {
    super(opts, 'repeat_vector');
    if (!isInt(n, 1)) fail(`${who('RepeatVector', opts)}: n must be a positive integer, got ${JSON.stringify(n)}`);
  }
  buildOne(s: Shape): Built {
    if (s.length !== 1) this.error(`expects an input of rank 1 per sample [features], got ${fmtShape(s)}`);
    return { outputShape: [this.n, s[0]], weights: [] };
  }
  callOne(x: Node): Node {
    return b.broadcast(x, [x.shape[0], this.n, x.shape[1]], [0, 2]);
  }
}

// ---------------------------------------------------------------- ZeroPadding2D, Cropping2D

export interface Padding2DOptions extends CommonOptions {
  dataFormat?: DataFormat;
}

/** A layer over NHWC images: refuses inputs that are not [height, width, channels] per sample. */
abstract class ImageLayer extends UnaryLayer {
  protected expectImage(s: Shape): void {
    if (s.length !== 3) this.error(`expects an input of rank 3 per sample [height, width, channels], got ${fmtShape(s)}`);
  }
}

class ZeroPadding2DLayer extends ImageLayer {
  readonly className = 'ZeroPadding2D';
  readonly padding: [[number, number], [number, number]];
  constructor(padding: unknown, opts?: Padding2DOptions) {
    super(opts, 'zero_padding2d');
    const where = who('ZeroPadding2D', opts);
    this.padding = sides2(padding ?? 1, 'padding', where);
    checkDataFormat(opts?.dataFormat, where);
  }
  buildOne(s: Shape): Built {
    this.expectImage(s);
    const [[t, bo], [l, r]] = this.padding;
    return { outputShape: [s[0] + t + bo, s[1] + l + r, s[2]], weights: [] };
  }
  callOne(x: Node): Node {
    const [[t, bo], [l, r]] = this.padding;
    if (t + bo + l + r === 0) return x;
    return b.pad(x, [0, t, l, 0], [0, bo, r, 0], 0);
  }
}

class Cropping2DLayer extends ImageLayer {
  readonly className = 'Cropping2D';
  readonly cropping: [[number, number], [number, number]];
  constructor(cropping: unknown, opts?: Padding2DOptions) {
    super(opts, 'cropping2d');
    const where = who('Cropping2D', opts);
    this.cropping = sides2(cropping ?? 0, 'cropping', where);
    checkDataFormat(opts?.dataFormat, where);
  }
  buildOne(s: Shape): Built {
    this.expectImage(s);
    const [[t, bo], [l, r]] = this.cropping;
    if (t + bo >= s[0] || l + r >= s[1]) {
      this.error(`cropping [[${t}, ${bo}], [${l}, ${r}]] must leave at least one row and one column of the input ${fmtShape(s)}`);
    }
    return { outputShape: [s[0] - t - bo, s[1] - l - r, s[2]], weights: [] };
  }
  callOne(x: Node): Node {
    const [[t, bo], [l, r]] = this.cropping;
    const [n, h, w, c] = x.shape;
    if (t + bo + l + r === 0) return x;
    return b.slice(x, [0, t, l, 0], [n, h - bo, w - r, c]);
  }
}

// ---------------------------------------------------------------- UpSampling2D

export type Interpolation = 'nearest' | 'bilinear';

export interface UpSampling2DOptions extends CommonOptions {
  /** Upsampling factors for rows and columns (default [2, 2]); also the factory's first argument. */
  size?: number | readonly number[];
  dataFormat?: DataFormat;
  interpolation?: Interpolation;
}

/** Slices `[lo, hi)` of axis `axis`, everything of the others. */
function sliceAxis(x: Node, axis: number, lo: number, hi: number): Node {
  return b.slice(x, x.shape.map((_, i) => (i === axis ? lo : 0)), x.shape.map((d, i) => (i === axis ? hi : d)));
}

/**
 * Linear upsampling by an integer factor `s` along one axis, with half-pixel centers and the edges
 * clamped (jax.image.resize 'bilinear' without antialiasing; tf.image.resize; torch align_corners
 * False). Output `s*k + j` samples the input at `k + d_j`, d_j = (2j + 1 - s) / (2s) in (-1/2, 1/2):
 * (1 - |d_j|) x[k] + |d_j| x[k ± 1], the neighbour clamped to the edge (jax renormalizes the weights
 * of in-bounds pixels, which gives the same value). The s phases are interleaved with concat+reshape.
 */
function linearUpsample(x: Node, axis: number, s: number): Node {
  if (s === 1) return x;
  const n = x.shape[axis];
  // x[k+1] and x[k-1] with the edge repeated; a single row is its own neighbour.
  const next = n === 1 ? x : b.concat([sliceAxis(x, axis, 1, n), sliceAxis(x, axis, n - 1, n)], axis);
  const prev = n === 1 ? x : b.concat([sliceAxis(x, axis, 0, 1), sliceAxis(x, axis, 0, n - 1)], axis);
  const split = [...x.shape.slice(0, axis + 1), 1, ...x.shape.slice(axis + 1)];
  const phases: Node[] = [];
  for (let j = 0; j < s; j++) {
    const d = (2 * j + 1 - s) / (2 * s);
    const w = Math.abs(d);
    const y = d === 0 ? x : b.add(b.mul(x, b.scalarLike(1 - w, x)), b.mul(d < 0 ? prev : next, b.scalarLike(w, x)));
    phases.push(b.reshape(y, split));
  }
  const out = x.shape.map((d, i) => (i === axis ? d * s : d));
  return b.reshape(b.concat(phases, axis + 1), out);
}

class UpSampling2DLayer extends ImageLayer {
  readonly className = 'UpSampling2D';
  readonly size: [number, number];
  readonly interpolation: Interpolation;
  constructor(size: unknown, opts: UpSampling2DOptions = {}) {
    super(opts, 'up_sampling2d');
    const where = who('UpSampling2D', opts);
    if (size !== undefined && opts.size !== undefined) fail(`${where}: size given twice (as the first argument and as an option)`);
    this.size = pair(size ?? opts.size ?? 2, 'size', where);
    checkDataFormat(opts.dataFormat, where);
    const interp = opts.interpolation ?? 'nearest';
    const lower = typeof interp === 'string' ? interp.toLowerCase() : interp;
    if (lower !== 'nearest' && lower !== 'bilinear') {
      const known = ['bicubic', 'lanczos3', 'lanczos5', 'area'].includes(lower as string);
      fail(`${where}: interpolation must be 'nearest' or 'bilinear', got ${JSON.stringify(interp)}${known ? ' (a Keras method dlc does not support)' : ''}`);
    }
    this.interpolation = lower;
  }
  buildOne(s: Shape): Built {
    this.expectImage(s);
    return { outputShape: [s[0] * this.size[0], s[1] * this.size[1], s[2]], weights: [] };
  }
  callOne(x: Node): Node {
    const [sh, sw] = this.size;
    const [n, h, w, c] = x.shape;
    if (this.interpolation === 'bilinear') return linearUpsample(linearUpsample(x, 1, sh), 2, sw);
    if (sh === 1 && sw === 1) return x;
    // Nearest: repeat each row sh times and each column sw times (Keras's ops.repeat).
    const rep = b.broadcast(x, [n, h, sh, w, sw, c], [0, 1, 3, 5]);
    return b.reshape(rep, [n, h * sh, w * sw, c]);
  }
}

// ---------------------------------------------------------------- factories (the public names)

/** Reshape each sample to `targetShape` (no batch axis; one entry may be -1). */
export const Reshape = (targetShape: readonly number[], opts?: CommonOptions): Layer => new ReshapeLayer(targetShape, opts);
/** Permute the per-sample axes: `dims` counts from 1 and excludes the batch axis, e.g. [2, 1]. */
export const Permute = (dims: readonly number[], opts?: CommonOptions): Layer => new PermuteLayer(dims, opts);
/** Repeat a [features] input n times: [n, features]. */
export const RepeatVector = (n: number, opts?: CommonOptions): Layer => new RepeatVectorLayer(n, opts);
/** Zeros around an NHWC image: `padding` is an int, [h, w] or [[top, bottom], [left, right]] (default 1). */
export const ZeroPadding2D = (padding?: number | readonly (number | readonly number[])[], opts?: Padding2DOptions): Layer =>
  new ZeroPadding2DLayer(padding, opts);
/** Crop an NHWC image: `cropping` is an int, [h, w] or [[top, bottom], [left, right]] (default 0). */
export const Cropping2D = (cropping?: number | readonly (number | readonly number[])[], opts?: Padding2DOptions): Layer =>
  new Cropping2DLayer(cropping, opts);
/**
 * Upsample an NHWC image by integer factors: `UpSampling2D(2)`, `UpSampling2D([2, 3], {interpolation:
 * 'bilinear'})` or `UpSampling2D({size, interpolation})`. Nearest (default) repeats rows and columns.
 */
export const UpSampling2D = (size?: number | readonly number[] | UpSampling2DOptions, opts?: UpSampling2DOptions): Layer => {
  if (isObject(size)) {
    if (opts !== undefined) fail('UpSampling2D: pass the options once, either as the first argument or the second');
    return new UpSampling2DLayer(undefined, size as UpSampling2DOptions);
  }
  return new UpSampling2DLayer(size, opts);
};
