/**
 * @file Keras pooling layers beyond the 2-D windows of layers.ts: GlobalAveragePooling2D,
 * GlobalMaxPooling2D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D and AveragePooling1D.
 *
 * Keras sources followed (keras/src/layers/pooling/): base_global_pooling.py and global_*.py (mean or
 * max over the spatial axes, `keepdims` keeps them as size 1), base_pooling.py and
 * max_pooling1d.py / average_pooling1d.py (`pool_size=2`, `strides=None` meaning pool_size,
 * `padding='valid'`; 'same' pads as TensorFlow does, extra at the end, and averages over the
 * in-bounds cells only). The 1-D windows reuse the IR's 2-D `reduce_window` on [B, T, 1, C] with a
 * [p, 1] window. Only channels_last is supported; `dataFormat: 'channels_first'` is refused.
 */
import * as b from '../../../ir/builders.ts';
import type { Node, Padding2, Shape } from '../../../ir/types.ts';
import { fmtShape } from '../../../ir/types.ts';
import { fail } from '../errors.ts';
import type { Built, CommonOptions } from '../layer.ts';
import { Layer, UnaryLayer } from '../layer.ts';

const who = (cls: string, opts: CommonOptions | undefined): string => (opts?.name ? `${cls} '${opts.name}'` : cls);

type DataFormat = 'channels_last';

function checkDataFormat(v: unknown, where: string): void {
  if (v === undefined || v === null || v === 'channels_last') return;
  if (v === 'channels_first') fail(`${where}: dataFormat 'channels_first' is not supported; dlc layers are channels_last only`);
  fail(`${where}: dataFormat must be 'channels_last', got ${JSON.stringify(v)}`);
}

// ---------------------------------------------------------------- global pooling

export interface GlobalPoolingOptions extends CommonOptions {
  /** Keep the pooled axes as size 1 ([1, 1, C] / [1, C]) instead of dropping them ([C]). */
  keepdims?: boolean;
  dataFormat?: DataFormat;
}

type GlobalKind = 'GlobalAveragePooling2D' | 'GlobalMaxPooling2D' | 'GlobalAveragePooling1D' | 'GlobalMaxPooling1D';

const GLOBAL_NAMES: Readonly<Record<GlobalKind, string>> = {
  GlobalAveragePooling2D: 'global_average_pooling2d',
  GlobalMaxPooling2D: 'global_max_pooling2d',
  GlobalAveragePooling1D: 'global_average_pooling1d',
  GlobalMaxPooling1D: 'global_max_pooling1d',
};

class GlobalPoolLayer extends UnaryLayer {
  readonly keepdims: boolean;
  /** Number of pooled (spatial) axes: 2 for [H, W, C], 1 for [T, C]. */
  readonly dims: 1 | 2;
  readonly mode: 'average' | 'max';
  constructor(readonly className: GlobalKind, opts: GlobalPoolingOptions = {}) {
    super(opts, GLOBAL_NAMES[className]);
    const where = who(className, opts);
    if (opts.keepdims !== undefined && typeof opts.keepdims !== 'boolean') fail(`${where}: keepdims must be true or false, got ${JSON.stringify(opts.keepdims)}`);
    this.keepdims = opts.keepdims ?? false;
    checkDataFormat(opts.dataFormat, where);
    this.dims = className.endsWith('2D') ? 2 : 1;
    this.mode = className.startsWith('GlobalMax') ? 'max' : 'average';
  }
  buildOne(s: Shape): Built {
    if (s.length !== this.dims + 1) {
      const want = this.dims === 2 ? '[height, width, channels]' : '[steps, features]';
      this.error(`expects an input of rank ${this.dims + 1} per sample ${want}, got ${fmtShape(s)}`);
    }
    const c = s[s.length - 1];
    return { outputShape: this.keepdims ? [...s.slice(0, -1).map(() => 1), c] : [c], weights: [] };
  }
  callOne(x: Node): Node {
    const axes = this.dims === 2 ? [1, 2] : [1];
    const count = axes.reduce((a, i) => a * x.shape[i], 1);
    let y = this.mode === 'max' ? b.reduceMax(x, axes) : b.reduceSum(x, axes);
    if (this.mode === 'average') y = b.div(y, b.scalarLike(count, y));
    return this.keepdims ? b.reshape(y, x.shape.map((d, i) => (axes.includes(i) ? 1 : d))) : y;
  }
}

// ---------------------------------------------------------------- 1-D windows

type PaddingMode = 'valid' | 'same';

export interface Pool1DOptions extends CommonOptions {
  /** Step between windows (default: the pool size). */
  strides?: number | readonly number[] | null;
  /** 'valid' (default) or 'same', case-insensitive as in Keras. */
  padding?: PaddingMode;
  dataFormat?: DataFormat;
}

/** A positive integer, or a list holding one (Keras's standardize_tuple with n = 1). */
function one(v: unknown, what: string, where: string): number {
  const x = Array.isArray(v) && v.length === 1 ? v[0] : v;
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 1) fail(`${where}: ${what} must be a positive integer, got ${JSON.stringify(v)}`);
  return x;
}

/** TensorFlow's 'same' rule: ceil(in / stride) outputs, the extra padding at the end. */
function samePadding(mode: PaddingMode, size: number, k: number, s: number): [number, number] {
  if (mode === 'valid') return [0, 0];
  const out = Math.ceil(size / s);
  const total = Math.max((out - 1) * s + k - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

class Pool1DLayer extends UnaryLayer {
  readonly pool: number;
  readonly strides: number;
  readonly padding: PaddingMode;
  constructor(readonly className: 'MaxPooling1D' | 'AveragePooling1D', poolSize: number | readonly number[] | undefined, opts: Pool1DOptions = {}) {
    super(opts, className === 'MaxPooling1D' ? 'max_pooling1d' : 'average_pooling1d');
    const where = who(className, opts);
    this.pool = one(poolSize ?? 2, 'poolSize', where);
    this.strides = opts.strides === undefined || opts.strides === null ? this.pool : one(opts.strides, 'strides', where);
    const p = opts.padding ?? 'valid';
    const lower = typeof p === 'string' ? p.toLowerCase() : p;
    if (lower !== 'valid' && lower !== 'same') fail(`${where}: padding must be 'valid' or 'same', got ${JSON.stringify(p)}`);
    this.padding = lower;
    checkDataFormat(opts.dataFormat, where);
  }
  private window(steps: number): { window: [number, number]; strides: [number, number]; padding: Padding2 } {
    return { window: [this.pool, 1], strides: [this.strides, 1], padding: [samePadding(this.padding, steps, this.pool, this.strides), [0, 0]] };
  }
  buildOne(s: Shape): Built {
    if (s.length !== 2) this.error(`expects an input of rank 2 per sample [steps, features], got ${fmtShape(s)}`);
    const [lo, hi] = this.window(s[0]).padding[0];
    const out = Math.floor((s[0] + lo + hi - this.pool) / this.strides) + 1;
    if (out < 1) this.error(`pool size ${this.pool} is larger than its input ${fmtShape(s)} (padding '${this.padding}')`);
    return { outputShape: [out, s[1]], weights: [] };
  }
  callOne(x: Node): Node {
    const [n, t, c] = x.shape;
    const x4 = b.reshape(x, [n, t, 1, c]);
    const p = this.window(t);
    let y: Node;
    if (this.className === 'MaxPooling1D') {
      y = b.reduceWindow(x4, { op: 'max', ...p });
    } else {
      const sum = b.reduceWindow(x4, { op: 'sum', ...p });
      const [lo, hi] = p.padding[0];
      if (lo === 0 && hi === 0) {
        y = b.div(sum, b.scalarLike(this.pool, sum));
      } else {
        // With 'same' padding Keras averages over the in-bounds cells only: count them the same way.
        const count = b.reduceWindow(b.constant(1, [1, t, 1, 1]), { op: 'sum', ...p });
        y = b.div(sum, b.broadcast(count, sum.shape, [0, 1, 2, 3]));
      }
    }
    return b.reshape(y, [n, y.shape[1], c]);
  }
}

// ---------------------------------------------------------------- factories (the public names)

/** Mean over height and width: [H, W, C] -> [C] (or [1, 1, C] with keepdims). */
export const GlobalAveragePooling2D = (opts?: GlobalPoolingOptions): Layer => new GlobalPoolLayer('GlobalAveragePooling2D', opts);
/** Maximum over height and width: [H, W, C] -> [C] (or [1, 1, C] with keepdims). */
export const GlobalMaxPooling2D = (opts?: GlobalPoolingOptions): Layer => new GlobalPoolLayer('GlobalMaxPooling2D', opts);
/** Mean over steps: [T, C] -> [C] (or [1, C] with keepdims). */
export const GlobalAveragePooling1D = (opts?: GlobalPoolingOptions): Layer => new GlobalPoolLayer('GlobalAveragePooling1D', opts);
/** Maximum over steps: [T, C] -> [C] (or [1, C] with keepdims). */
export const GlobalMaxPooling1D = (opts?: GlobalPoolingOptions): Layer => new GlobalPoolLayer('GlobalMaxPooling1D', opts);
/** Max over windows of `poolSize` steps (default 2) of a [T, C] input. */
export const MaxPooling1D = (poolSize?: number | readonly number[], opts?: Pool1DOptions): Layer => new Pool1DLayer('MaxPooling1D', poolSize, opts);
/** Mean over windows of `poolSize` steps (default 2) of a [T, C] input. */
export const AveragePooling1D = (poolSize?: number | readonly number[], opts?: Pool1DOptions): Layer =>
  new Pool1DLayer('AveragePooling1D', poolSize, opts);
