/**
 * @file Keras layers as factories over primitive graph ops: Dense, Conv2D, MaxPooling2D,
 * AveragePooling2D, Flatten, Dropout, Activation.
 *
 * A layer is configured by its factory (Keras argument order, camelCase options), then `build`
 * receives the per-sample input shape (no batch axis) and returns the output shape and the weights it
 * needs, or throws a DlcError naming the layer and the shapes that do not fit. `call` maps a batched
 * input node and the weight nodes to the layer's pre-activation output; the model applies
 * `activation`, so losses can see a final softmax/sigmoid and work from its logits.
 */
import * as b from '../../ir/builders.ts';
import type { Node, Padding2, Shape } from '../../ir/types.ts';
import { fmtShape, numel } from '../../ir/types.ts';
import type { ActivationName } from './activations.ts';
import { checkActivation } from './activations.ts';
import { fail } from './errors.ts';
import type { InitializerName } from './initializers.ts';
import { checkInitializer } from './initializers.ts';
import type { Built, CallContext, CommonOptions, WeightSpec } from './layer.ts';
import { Layer, UnaryLayer } from './layer.ts';

export { Input, InputLayer, Layer, SymbolicTensor, UnaryLayer } from './layer.ts';
export type { AnyLayer, LayerOutput } from './layer.ts';
export type { Built, CallContext, CommonOptions, InputOptions, LayerCall, WeightSpec } from './layer.ts';

function pair(v: number | readonly number[] | undefined, dflt: readonly [number, number], what: string, where: string): [number, number] {
  if (v === undefined) return [...dflt];
  const p = typeof v === 'number' ? [v, v] : [...v];
  if (p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 1)) fail(`${where}: ${what} must be a positive integer or two of them, got ${JSON.stringify(v)}`);
  return [p[0], p[1]];
}

type PaddingMode = 'valid' | 'same';
function paddingMode(v: unknown, where: string): PaddingMode {
  if (v === undefined) return 'valid';
  if (v !== 'valid' && v !== 'same') fail(`${where}: padding must be 'valid' or 'same', got '${String(v)}'`);
  return v;
}

/** TensorFlow's padding rule: 'same' gives ceil(in/stride) outputs, extra padding at the end. */
function windowPadding(mode: PaddingMode, inHW: readonly number[], k: readonly number[], s: readonly number[], d: readonly number[] = [1, 1]): Padding2 {
  return [0, 1].map((i) => {
    if (mode === 'valid') return [0, 0] as const;
    const out = Math.ceil(inHW[i] / s[i]);
    const kd = (k[i] - 1) * d[i] + 1;
    const total = Math.max((out - 1) * s[i] + kd - inHW[i], 0);
    return [Math.floor(total / 2), total - Math.floor(total / 2)] as const;
  });
}

// ---------------------------------------------------------------- Dense

export interface DenseOptions extends CommonOptions {
  activation?: ActivationName;
  useBias?: boolean;
  kernelInitializer?: InitializerName;
  biasInitializer?: InitializerName;
}

class DenseLayer extends UnaryLayer {
  // Acts on each time step alone, so a Keras mask passes through (Keras: supports_masking).
  override readonly supportsMasking = true;
  readonly className = 'Dense';
  override readonly activation: ActivationName;
  readonly useBias: boolean;
  readonly kernelInit: InitializerName;
  readonly biasInit: InitializerName;
  constructor(readonly units: number, opts: DenseOptions = {}) {
    super(opts, 'dense');
    if (!Number.isInteger(units) || units < 1) fail(`Dense: units must be a positive integer, got ${String(units)}`);
    this.activation = checkActivation(opts.activation, opts.name ? `Dense '${opts.name}'` : 'Dense');
    this.useBias = opts.useBias ?? true;
    this.kernelInit = checkInitializer(opts.kernelInitializer ?? 'glorot_uniform', 'Dense kernelInitializer');
    this.biasInit = checkInitializer(opts.biasInitializer ?? 'zeros', 'Dense biasInitializer');
  }
  buildOne(s: Shape): Built {
    if (s.length < 1) this.error(`expects an input of rank >= 1 (per sample), got ${fmtShape(s)}`);
    const inF = s[s.length - 1];
    const weights: WeightSpec[] = [{ name: 'kernel', shape: [inF, this.units], init: this.kernelInit }];
    if (this.useBias) weights.push({ name: 'bias', shape: [this.units], init: this.biasInit });
    return { outputShape: [...s.slice(0, -1), this.units], weights };
  }
  callOne(x: Node, [w, bias]: readonly Node[]): Node {
    // Dense applies to the last axis, as in Keras: flatten the leading axes into rows.
    const inF = x.shape[x.shape.length - 1];
    const rows = numel(x.shape) / inF;
    const outShape = [...x.shape.slice(0, -1), this.units];
    let y = b.dot(b.reshape(x, [rows, inF]), w);
    if (bias) y = b.add(y, b.broadcastTo(bias, y.shape));
    return b.reshape(y, outShape);
  }
}

// ---------------------------------------------------------------- Conv2D

export interface Conv2DOptions extends DenseOptions {
  padding?: PaddingMode;
  strides?: number | readonly number[];
  dilationRate?: number | readonly number[];
}

class Conv2DLayer extends UnaryLayer {
  readonly className = 'Conv2D';
  override readonly activation: ActivationName;
  readonly kernel: [number, number];
  readonly strides: [number, number];
  readonly dilation: [number, number];
  readonly padding: PaddingMode;
  readonly useBias: boolean;
  readonly kernelInit: InitializerName;
  readonly biasInit: InitializerName;
  constructor(readonly filters: number, kernelSize: number | readonly number[], opts: Conv2DOptions = {}) {
    super(opts, 'conv2d');
    if (!Number.isInteger(filters) || filters < 1) fail(`Conv2D: filters must be a positive integer, got ${String(filters)}`);
    this.kernel = pair(kernelSize, [1, 1], 'kernelSize', 'Conv2D');
    this.strides = pair(opts.strides, [1, 1], 'strides', 'Conv2D');
    this.dilation = pair(opts.dilationRate, [1, 1], 'dilationRate', 'Conv2D');
    this.padding = paddingMode(opts.padding, 'Conv2D');
    this.activation = checkActivation(opts.activation, opts.name ? `Conv2D '${opts.name}'` : 'Conv2D');
    this.useBias = opts.useBias ?? true;
    this.kernelInit = checkInitializer(opts.kernelInitializer ?? 'glorot_uniform', 'Conv2D kernelInitializer');
    this.biasInit = checkInitializer(opts.biasInitializer ?? 'zeros', 'Conv2D biasInitializer');
  }
  private pads(s: Shape): Padding2 {
    return windowPadding(this.padding, s.slice(0, 2), this.kernel, this.strides, this.dilation);
  }
  buildOne(s: Shape): Built {
    if (s.length !== 3) this.error(`expects input of rank 3 per sample [height, width, channels], got ${fmtShape(s)}`);
    const pads = this.pads(s);
    const out = [0, 1].map((i) => {
      const kd = (this.kernel[i] - 1) * this.dilation[i] + 1;
      return Math.floor((s[i] + pads[i][0] + pads[i][1] - kd) / this.strides[i]) + 1;
    });
    if (out.some((d) => d < 1)) {
      this.error(`kernel ${fmtShape(this.kernel)} is larger than its input ${fmtShape(s)} (padding '${this.padding}')`);
    }
    const weights: WeightSpec[] = [{ name: 'kernel', shape: [...this.kernel, s[2], this.filters], init: this.kernelInit }];
    if (this.useBias) weights.push({ name: 'bias', shape: [this.filters], init: this.biasInit });
    return { outputShape: [out[0], out[1], this.filters], weights };
  }
  callOne(x: Node, [w, bias]: readonly Node[]): Node {
    let y = b.conv(x, w, { strides: this.strides, padding: this.pads(x.shape.slice(1)), lhsDilation: [1, 1], rhsDilation: this.dilation });
    if (bias) y = b.add(y, b.broadcastTo(bias, y.shape));
    return y;
  }
}

// ---------------------------------------------------------------- pooling

export interface PoolOptions extends CommonOptions {
  strides?: number | readonly number[];
  padding?: PaddingMode;
}

class PoolLayer extends UnaryLayer {
  readonly window: [number, number];
  readonly strides: [number, number];
  readonly padding: PaddingMode;
  constructor(readonly className: 'MaxPooling2D' | 'AveragePooling2D', poolSize: number | readonly number[] | undefined, opts: PoolOptions = {}) {
    super(opts, className === 'MaxPooling2D' ? 'max_pooling2d' : 'average_pooling2d');
    this.window = pair(poolSize, [2, 2], 'poolSize', className);
    this.strides = pair(opts.strides, this.window, 'strides', className);
    this.padding = paddingMode(opts.padding, className);
  }
  private pads(s: Shape): Padding2 {
    return windowPadding(this.padding, s.slice(0, 2), this.window, this.strides);
  }
  buildOne(s: Shape): Built {
    if (s.length !== 3) this.error(`expects input of rank 3 per sample [height, width, channels], got ${fmtShape(s)}`);
    const pads = this.pads(s);
    const out = [0, 1].map((i) => Math.floor((s[i] + pads[i][0] + pads[i][1] - this.window[i]) / this.strides[i]) + 1);
    if (out.some((d) => d < 1)) this.error(`pool window ${fmtShape(this.window)} is larger than its input ${fmtShape(s)}`);
    return { outputShape: [out[0], out[1], s[2]], weights: [] };
  }
  callOne(x: Node): Node {
    const p = { window: this.window, strides: this.strides, padding: this.pads(x.shape.slice(1)) };
    if (this.className === 'MaxPooling2D') return b.reduceWindow(x, { op: 'max', ...p });
    const sum = b.reduceWindow(x, { op: 'sum', ...p });
    const noPad = p.padding.every(([lo, hi]) => lo === 0 && hi === 0);
    if (noPad) return b.div(sum, b.scalarLike(this.window[0] * this.window[1], sum));
    // With 'same' padding Keras averages over the in-bounds cells only: count them the same way.
    const ones = b.constant(1, [1, ...x.shape.slice(1, 3), 1]);
    const count = b.reduceWindow(ones, { op: 'sum', ...p });
    return b.div(sum, b.broadcast(count, sum.shape, [0, 1, 2, 3]));
  }
}

// ---------------------------------------------------------------- shape-only layers

class FlattenLayer extends UnaryLayer {
  readonly className = 'Flatten';
  constructor(opts?: CommonOptions) {
    super(opts, 'flatten');
  }
  buildOne(s: Shape): Built {
    return { outputShape: [numel(s)], weights: [] };
  }
  callOne(x: Node): Node {
    return b.reshape(x, [x.shape[0], numel(x.shape) / x.shape[0]]);
  }
}

export interface DropoutOptions extends CommonOptions {
  seed?: number;
}

class DropoutLayer extends UnaryLayer {
  // Acts on each time step alone, so a Keras mask passes through (Keras: supports_masking).
  override readonly supportsMasking = true;
  readonly className = 'Dropout';
  readonly seed: number;
  constructor(readonly rate: number, opts: DropoutOptions = {}) {
    super(opts, 'dropout');
    if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) fail(`Dropout: rate must be in [0, 1), got ${String(rate)}`);
    this.seed = opts.seed ?? 0;
  }
  buildOne(s: Shape): Built {
    return { outputShape: s, weights: [] };
  }
  callOne(x: Node, _w: readonly Node[], ctx: CallContext): Node {
    if (!ctx.training || this.rate === 0) return x;
    // Inverted dropout: keep with probability 1 - rate and scale kept values so the mean is unchanged.
    const u = b.randomUniform(ctx.key, x.shape, this.seed * 7919 + ctx.layerIndex + 1);
    const keep = b.less(b.scalarLike(this.rate, u), u);
    return b.select(keep, b.mul(x, b.scalarLike(1 / (1 - this.rate), x)), b.scalarLike(0, x));
  }
}

class ActivationLayer extends UnaryLayer {
  // Acts on each time step alone, so a Keras mask passes through (Keras: supports_masking).
  override readonly supportsMasking = true;
  readonly className = 'Activation';
  override readonly activation: ActivationName;
  constructor(activation: ActivationName, opts?: CommonOptions) {
    super(opts, 'activation');
    this.activation = checkActivation(activation, opts?.name ? `Activation '${opts.name}'` : 'Activation');
  }
  buildOne(s: Shape): Built {
    return { outputShape: s, weights: [] };
  }
  callOne(x: Node): Node {
    return x;
  }
}

// ---------------------------------------------------------------- factories (the public names)

export const Dense = (units: number, opts?: DenseOptions): Layer => new DenseLayer(units, opts);
export const Conv2D = (filters: number, kernelSize: number | readonly number[], opts?: Conv2DOptions): Layer =>
  new Conv2DLayer(filters, kernelSize, opts);
export const MaxPooling2D = (poolSize?: number | readonly number[], opts?: PoolOptions): Layer => new PoolLayer('MaxPooling2D', poolSize, opts);
export const AveragePooling2D = (poolSize?: number | readonly number[], opts?: PoolOptions): Layer =>
  new PoolLayer('AveragePooling2D', poolSize, opts);
export const Flatten = (opts?: CommonOptions): Layer => new FlattenLayer(opts);
export const Dropout = (rate: number, opts?: DropoutOptions): Layer => new DropoutLayer(rate, opts);
export const Activation = (activation: ActivationName, opts?: CommonOptions): Layer => new ActivationLayer(activation, opts);
