/**
 * @file Keras convolution layers beyond Conv2D: Conv1D, Conv2DTranspose, DepthwiseConv2D and
 * SeparableConv2D, composed from primitive graph ops only (conv, dot, movement and elementwise ops),
 * so autodiff and fusion handle them unchanged. Shapes in `build` are per sample; nodes in `call`
 * have the batch axis first. Only channels_last (NHWC / NWC) is supported.
 *
 * Weight layouts and names are Keras 3's, so Keras weights load unchanged:
 *  - Conv1D: `kernel` [k, in, filters], `bias` [filters].
 *  - Conv2DTranspose: `kernel` [kh, kw, filters, in] (output channels BEFORE input channels),
 *    `bias` [filters].
 *  - DepthwiseConv2D: `kernel` [kh, kw, in, depthMultiplier] (Keras 3 names this variable `kernel`;
 *    tf.keras 2 called it `depthwise_kernel`), `bias` [in * depthMultiplier]; output channel
 *    c * depthMultiplier + m comes from input channel c and multiplier m.
 *  - SeparableConv2D: `depthwise_kernel` [kh, kw, in, dm], `pointwise_kernel` [1, 1, in*dm, filters],
 *    `bias` [filters].
 *
 * Compositions:
 *  - Conv1D is the 2-D `conv` on [B, L, 1, C] with a [k, 1, C, F] kernel. 'same' is TensorFlow's rule
 *    (ceil(L/stride) outputs, the odd padding element at the end); 'causal' pads (k-1)*dilation on the
 *    left and then runs 'valid', as Keras's Conv1D.call does.
 *  - Conv2DTranspose is a `conv` with lhsDilation = strides over the spatially reversed kernel with its
 *    last two axes swapped ([kh, kw, in, filters]), padded per axis as Keras's JAX backend does
 *    (`_convert_conv_transpose_padding_args_from_keras_to_jax`, kd = (k-1)*dilation+1):
 *      valid: lo = kd-1, hi = kd-1 + outputPadding (default max(kd, s) - kd);
 *      same:  total = s + kd - 2 (no outputPadding) or kd + kd%2 - 2 + outputPadding,
 *             lo = min(ceil(total/2), kd-1), hi = total - lo.
 *    Equivalently, as a scatter-add: input pixel i with kernel tap t lands on output
 *    o = i*s + t*dilation - (kd-1-lo). Output sizes follow `compute_conv_transpose_output_shape`:
 *    valid (in-1)*s + max(kd, s) [+ outputPadding instead of the max when given], same in*s
 *    [(in-1)*s + kd%2 + outputPadding when given].
 *  - DepthwiseConv2D (no grouped conv primitive): a sum over the kh*kw kernel taps of a strided
 *    window of the padded input times that tap's weights broadcast over the batch and pixels
 *    (x[..., c, newaxis] * w[kh, kw, c, m] for a depth multiplier > 1). Strides become a reshape of
 *    the padded input into [B, H/s, s, W/s, s, C] phases, so every tap is a plain slice. Fusion turns
 *    the sum into one elementwise kernel over one padded copy of the input.
 *  - SeparableConv2D is that depthwise step followed by the pointwise kernel as one `dot`
 *    ([B*OH*OW, C*dm] x [C*dm, F]), as Keras's `separable_conv` (depthwise, then a 1x1 'valid' conv).
 * As in Keras, strides > 1 together with dilationRate > 1 is refused.
 */
import * as b from '../../../ir/builders.ts';
import type { Node, Shape } from '../../../ir/types.ts';
import { fmtShape } from '../../../ir/types.ts';
import type { ActivationName } from '../activations.ts';
import { checkActivation } from '../activations.ts';
import { fail } from '../errors.ts';
import type { InitializerName } from '../initializers.ts';
import { checkInitializer } from '../initializers.ts';
import type { Built, CommonOptions, Layer, WeightSpec } from '../layer.ts';
import { UnaryLayer } from '../layer.ts';

// ---------------------------------------------------------------- argument checking

/** The constructor's name for messages: the class, with the layer name when one was given. */
const who = (cls: string, opts: CommonOptions | undefined): string => (opts?.name ? `${cls} '${opts.name}'` : cls);

const isInt = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;

/** An integer >= min, or `n` of them (Keras's `standardize_tuple`). */
function tuple(v: unknown, n: number, min: number, what: string, where: string): number[] {
  if (isInt(v, min)) return new Array<number>(n).fill(v);
  if (Array.isArray(v) && v.length === n && v.every((x) => isInt(x, min))) return [...(v as number[])];
  const kind = min === 0 ? 'non-negative' : 'positive';
  return fail(`${where}: ${what} must be a ${kind} integer${n > 1 ? ` or ${n} of them` : ''}, got ${JSON.stringify(v)}`);
}

function positiveInt(v: unknown, what: string, where: string): number {
  if (!isInt(v, 1)) fail(`${where}: ${what} must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function checkDataFormat(v: unknown, where: string): void {
  if (v === undefined || v === null || v === 'channels_last') return;
  if (v === 'channels_first') fail(`${where}: dataFormat 'channels_first' is not supported; dlc conv layers are channels_last only`);
  fail(`${where}: dataFormat must be 'channels_last', got ${JSON.stringify(v)}`);
}

export type ConvPadding = 'valid' | 'same';
export type Conv1DPadding = ConvPadding | 'causal';

function paddingMode<P extends string>(v: unknown, allowed: readonly P[], where: string): P {
  if (v === undefined) return allowed[0];
  if (typeof v !== 'string' || !allowed.includes(v.toLowerCase() as P)) {
    fail(`${where}: padding must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(v)}`);
  }
  return v.toLowerCase() as P;
}

/** Keras: "`strides > 1` not supported in conjunction with `dilation_rate > 1`". */
function checkStridesDilation(strides: readonly number[], dilation: readonly number[], where: string): void {
  if (Math.max(...strides) > 1 && Math.max(...dilation) > 1) {
    fail(`${where}: strides > 1 together with dilationRate > 1 is not supported (as in Keras), got strides ${fmtShape(strides)} and dilationRate ${fmtShape(dilation)}`);
  }
}

const dilated = (k: number, d: number): number => (k - 1) * d + 1;

/** TensorFlow's 'same' rule along one axis: ceil(in/stride) outputs, the odd padding element at the end. */
function samePads(inSize: number, k: number, s: number, d: number): [number, number] {
  const out = Math.ceil(inSize / s);
  const total = Math.max((out - 1) * s + dilated(k, d) - inSize, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** [lo, hi] padding per spatial axis for a 'valid' / 'same' / 'causal' window. */
function windowPads(mode: Conv1DPadding, inSizes: readonly number[], k: readonly number[], s: readonly number[], d: readonly number[]): [number, number][] {
  return inSizes.map((n, i) => {
    if (mode === 'same') return samePads(n, k[i], s[i], d[i]);
    if (mode === 'causal') return [(k[i] - 1) * d[i], 0];
    return [0, 0];
  });
}

const outSize = (n: number, [lo, hi]: readonly [number, number], k: number, s: number, d: number): number =>
  Math.floor((n + lo + hi - dilated(k, d)) / s) + 1;

const addBias = (y: Node, bias: Node | undefined): Node => (bias ? b.add(y, b.broadcastTo(bias, y.shape)) : y);

// ---------------------------------------------------------------- shared options

interface ConvCommonOptions extends CommonOptions {
  strides?: number | readonly number[];
  dilationRate?: number | readonly number[];
  activation?: ActivationName;
  useBias?: boolean;
  biasInitializer?: InitializerName;
  /** Only 'channels_last'. */
  dataFormat?: 'channels_last';
}

/** Options, kernel geometry and error helpers shared by the layers of this file. */
abstract class ConvBase extends UnaryLayer {
  override readonly activation: ActivationName;
  readonly kernel: number[];
  readonly strides: number[];
  readonly dilation: number[];
  readonly useBias: boolean;
  readonly biasInit: InitializerName;

  constructor(cls: string, defaultName: string, rank: number, kernelSize: unknown, opts: ConvCommonOptions) {
    super(opts, defaultName);
    const where = who(cls, opts);
    if (opts === null || typeof opts !== 'object') fail(`${where}: options must be an object, got ${JSON.stringify(opts)}`);
    checkDataFormat(opts.dataFormat, where);
    this.kernel = tuple(kernelSize, rank, 1, 'kernelSize', where);
    this.strides = tuple(opts.strides ?? 1, rank, 1, 'strides', where);
    this.dilation = tuple(opts.dilationRate ?? 1, rank, 1, 'dilationRate', where);
    checkStridesDilation(this.strides, this.dilation, where);
    this.activation = checkActivation(opts.activation, where);
    if (opts.useBias !== undefined && typeof opts.useBias !== 'boolean') fail(`${where}: useBias must be true or false, got ${JSON.stringify(opts.useBias)}`);
    this.useBias = opts.useBias ?? true;
    this.biasInit = checkInitializer(opts.biasInitializer ?? 'zeros', `${where} biasInitializer`);
  }

  protected expectRank(s: Shape, rank: number, layout: string): void {
    if (s.length !== rank) this.error(`expects an input of rank ${rank} per sample ${layout}, got ${fmtShape(s)}`);
  }

  /** Output spatial sizes for the padded window, or an error naming the kernel and the input. */
  protected windowOut(s: Shape, pads: readonly (readonly [number, number])[], padding: string): number[] {
    const out = pads.map((p, i) => outSize(s[i], p, this.kernel[i], this.strides[i], this.dilation[i]));
    if (out.some((d) => d < 1)) {
      const kd = this.kernel.map((k, i) => dilated(k, this.dilation[i]));
      const dil = this.dilation.some((d) => d > 1) ? ` (dilated to ${fmtShape(kd)})` : '';
      const need = kd.map((k, i) => k - pads[i][0] - pads[i][1]);
      this.error(`kernel ${fmtShape(this.kernel)}${dil} is larger than its input ${fmtShape(s)} with padding '${padding}': expected spatial size >= ${fmtShape(need)}, got ${fmtShape(s.slice(0, pads.length))}`);
    }
    return out;
  }
}

// ---------------------------------------------------------------- Conv1D

export interface Conv1DOptions extends ConvCommonOptions {
  padding?: Conv1DPadding;
  kernelInitializer?: InitializerName;
}

class Conv1DLayer extends ConvBase {
  readonly className = 'Conv1D';
  readonly padding: Conv1DPadding;
  readonly kernelInit: InitializerName;
  constructor(readonly filters: number, kernelSize: number | readonly number[], opts: Conv1DOptions = {}) {
    super('Conv1D', 'conv1d', 1, kernelSize, opts);
    const where = who('Conv1D', opts);
    positiveInt(filters, 'filters', where);
    this.padding = paddingMode(opts.padding, ['valid', 'same', 'causal'] as const, where);
    this.kernelInit = checkInitializer(opts.kernelInitializer ?? 'glorot_uniform', `${where} kernelInitializer`);
  }
  private pads(steps: number): [number, number] {
    return windowPads(this.padding, [steps], this.kernel, this.strides, this.dilation)[0];
  }
  buildOne(s: Shape): Built {
    this.expectRank(s, 2, '[steps, channels]');
    const [out] = this.windowOut(s, [this.pads(s[0])], this.padding);
    const weights: WeightSpec[] = [{ name: 'kernel', shape: [this.kernel[0], s[1], this.filters], init: this.kernelInit }];
    if (this.useBias) weights.push({ name: 'bias', shape: [this.filters], init: this.biasInit });
    return { outputShape: [out, this.filters], weights };
  }
  callOne(x: Node, [w, bias]: readonly Node[]): Node {
    const [B, L, C] = x.shape;
    const K = this.kernel[0];
    const y = b.conv(b.reshape(x, [B, L, 1, C]), b.reshape(w, [K, 1, C, this.filters]), {
      strides: [this.strides[0], 1],
      padding: [this.pads(L), [0, 0]],
      lhsDilation: [1, 1],
      rhsDilation: [this.dilation[0], 1],
    });
    return addBias(b.reshape(y, [B, y.shape[1], this.filters]), bias);
  }
}

// ---------------------------------------------------------------- Conv2DTranspose

export interface Conv2DTransposeOptions extends ConvCommonOptions {
  padding?: ConvPadding;
  /** Extra rows/columns at the bottom/right of the output; each must be < its stride (Keras). */
  outputPadding?: number | readonly number[];
  kernelInitializer?: InitializerName;
}

class Conv2DTransposeLayer extends ConvBase {
  readonly className = 'Conv2DTranspose';
  readonly padding: ConvPadding;
  readonly outputPadding: number[] | null;
  readonly kernelInit: InitializerName;
  constructor(readonly filters: number, kernelSize: number | readonly number[], opts: Conv2DTransposeOptions = {}) {
    super('Conv2DTranspose', 'conv2d_transpose', 2, kernelSize, opts);
    const where = who('Conv2DTranspose', opts);
    positiveInt(filters, 'filters', where);
    this.padding = paddingMode(opts.padding, ['valid', 'same'] as const, where);
    this.outputPadding = opts.outputPadding === undefined || opts.outputPadding === null ? null : tuple(opts.outputPadding, 2, 0, 'outputPadding', where);
    if (this.outputPadding && this.outputPadding.some((p, i) => p >= this.strides[i])) {
      fail(`${where}: outputPadding must be smaller than strides on every axis (as in Keras), got outputPadding ${fmtShape(this.outputPadding)} and strides ${fmtShape(this.strides)}`);
    }
    this.kernelInit = checkInitializer(opts.kernelInitializer ?? 'glorot_uniform', `${where} kernelInitializer`);
  }
  /** The [lo, hi] padding of the lhs-dilated conv along axis i (Keras's JAX backend rule). */
  private convPads(i: number): [number, number] {
    const kd = dilated(this.kernel[i], this.dilation[i]);
    const s = this.strides[i];
    const op = this.outputPadding ? this.outputPadding[i] : null;
    if (this.padding === 'valid') return [kd - 1, kd - 1 + (op ?? Math.max(kd, s) - kd)];
    const total = op === null ? s + kd - 2 : kd + (kd % 2) - 2 + op;
    const lo = Math.min(Math.ceil(total / 2), kd - 1);
    return [lo, total - lo];
  }
  /** Keras's `compute_conv_transpose_output_shape` along axis i. */
  private outLen(n: number, i: number): number {
    const kd = dilated(this.kernel[i], this.dilation[i]);
    const s = this.strides[i];
    const op = this.outputPadding ? this.outputPadding[i] : null;
    if (this.padding === 'valid') return (n - 1) * s + kd + (op ?? Math.max(kd, s) - kd);
    return op === null ? n * s : (n - 1) * s + (kd % 2) + op;
  }
  buildOne(s: Shape): Built {
    this.expectRank(s, 3, '[height, width, channels]');
    const out = [0, 1].map((i) => this.outLen(s[i], i));
    if (out.some((d) => d < 1)) {
      this.error(`output would be empty: input ${fmtShape(s)}, kernel ${fmtShape(this.kernel)}, strides ${fmtShape(this.strides)}, padding 'same', outputPadding ${fmtShape(this.outputPadding ?? [])} give ${fmtShape(out)}`);
    }
    const weights: WeightSpec[] = [{ name: 'kernel', shape: [...this.kernel, this.filters, s[2]], init: this.kernelInit }];
    if (this.useBias) weights.push({ name: 'bias', shape: [this.filters], init: this.biasInit });
    return { outputShape: [out[0], out[1], this.filters], weights };
  }
  callOne(x: Node, [w, bias]: readonly Node[]): Node {
    // Keras kernel [kh, kw, filters, in] -> HWIO [kh, kw, in, filters], spatially reversed.
    const wc = b.transpose(b.reverse(w, [0, 1]), [0, 1, 3, 2]);
    const y = b.conv(x, wc, { strides: [1, 1], padding: [this.convPads(0), this.convPads(1)], lhsDilation: this.strides, rhsDilation: this.dilation });
    return addBias(y, bias);
  }
}

// ---------------------------------------------------------------- depthwise composition

/**
 * Depthwise 2-D convolution of x [B, H, W, C] with w [KH, KW, C, M] (Keras layout) into
 * [B, OH, OW, C*M], channel c*M + m: the sum over kernel taps of a strided window of the padded
 * input times the tap's weights. Only slices, reshapes, pads, broadcasts, mul and add.
 */
export function depthwiseConv(x: Node, w: Node, p: { strides: readonly number[]; dilation: readonly number[]; padding: readonly (readonly [number, number])[]; out: readonly number[] }): Node {
  const [B, H, W, C] = x.shape;
  const [KH, KW, , M] = w.shape;
  const { strides: s, dilation: d, padding: pad, out } = p;
  const K = [KH, KW];
  const strided = s.some((v) => v > 1);
  // Extent each spatial axis needs (after the low padding) so that every tap's window is a slice:
  // with strides, whole phases of s rows, enough for the furthest tap's phase block.
  const need = [0, 1].map((i) => (strided ? (Math.floor(((K[i] - 1) * d[i]) / s[i]) + out[i]) * s[i] : (K[i] - 1) * d[i] + out[i]));
  const inSizes = [H, W];
  // Crop rows the windows never reach, then pad to exactly `need`.
  const keep = [0, 1].map((i) => Math.min(inSizes[i], need[i] - pad[i][0]));
  let xp = keep[0] < H || keep[1] < W ? b.slice(x, [0, 0, 0, 0], [B, keep[0], keep[1], C]) : x;
  const lo = [0, 1].map((i) => pad[i][0]);
  const hi = [0, 1].map((i) => need[i] - lo[i] - keep[i]);
  if (lo.some((v) => v > 0) || hi.some((v) => v > 0)) xp = b.pad(xp, [0, lo[0], lo[1], 0], [0, hi[0], hi[1], 0]);
  const phases = strided ? b.reshape(xp, [B, need[0] / s[0], s[0], need[1] / s[1], s[1], C]) : xp;
  const tapOf = (kh: number, kw: number): Node => {
    const a = [kh * d[0], kw * d[1]];
    if (!strided) return b.slice(phases, [0, a[0], a[1], 0], [B, a[0] + out[0], a[1] + out[1], C]);
    const q = [0, 1].map((i) => Math.floor(a[i] / s[i]));
    const r = [0, 1].map((i) => a[i] % s[i]);
    const win = b.slice(phases, [0, q[0], r[0], q[1], r[1], 0], [B, q[0] + out[0], r[0] + 1, q[1] + out[1], r[1] + 1, C]);
    return b.reshape(win, [B, out[0], out[1], C]);
  };
  const ys = [B, out[0], out[1], C, M];
  let sum: Node | null = null;
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const tap = tapOf(kh, kw);
      const wt = b.reshape(b.slice(w, [kh, kw, 0, 0], [kh + 1, kw + 1, C, M]), [C, M]);
      const term =
        M === 1
          ? b.mul(tap, b.broadcast(b.reshape(wt, [C]), tap.shape, [3]))
          : b.mul(b.broadcast(tap, ys, [0, 1, 2, 3]), b.broadcast(wt, ys, [3, 4]));
      sum = sum ? b.add(sum, term) : term;
    }
  }
  return b.reshape(sum!, [B, out[0], out[1], C * M]);
}

// ---------------------------------------------------------------- DepthwiseConv2D

export interface DepthwiseConv2DOptions extends ConvCommonOptions {
  padding?: ConvPadding;
  depthMultiplier?: number;
  depthwiseInitializer?: InitializerName;
}

class DepthwiseConv2DLayer extends ConvBase {
  readonly className: string;
  readonly padding: ConvPadding;
  readonly depthMultiplier: number;
  readonly depthwiseInit: InitializerName;
  constructor(kernelSize: number | readonly number[], opts: DepthwiseConv2DOptions = {}, cls = 'DepthwiseConv2D', defaultName = 'depthwise_conv2d') {
    super(cls, defaultName, 2, kernelSize, opts);
    this.className = cls;
    const where = who(cls, opts);
    this.padding = paddingMode(opts.padding, ['valid', 'same'] as const, where);
    this.depthMultiplier = positiveInt(opts.depthMultiplier ?? 1, 'depthMultiplier', where);
    this.depthwiseInit = checkInitializer(opts.depthwiseInitializer ?? 'glorot_uniform', `${where} depthwiseInitializer`);
  }
  private pads(s: Shape): [number, number][] {
    return windowPads(this.padding, s.slice(0, 2), this.kernel, this.strides, this.dilation);
  }
  /** Output spatial size (checked) and the depthwise kernel's spec, named as Keras names it in this layer. */
  protected depthwiseBuild(s: Shape, name: string): { out: number[]; spec: WeightSpec } {
    this.expectRank(s, 3, '[height, width, channels]');
    const out = this.windowOut(s, this.pads(s), this.padding);
    return { out, spec: { name, shape: [...this.kernel, s[2], this.depthMultiplier], init: this.depthwiseInit } };
  }
  /** The depthwise convolution: [B, H, W, C] -> [B, OH, OW, C * depthMultiplier]. */
  protected depthwise(x: Node, w: Node): Node {
    const s = x.shape.slice(1);
    const pads = this.pads(s);
    const out = pads.map((p, i) => outSize(s[i], p, this.kernel[i], this.strides[i], this.dilation[i]));
    return depthwiseConv(x, w, { strides: this.strides, dilation: this.dilation, padding: pads, out });
  }
  buildOne(s: Shape): Built {
    const { out, spec } = this.depthwiseBuild(s, 'kernel');
    const C = s[2] * this.depthMultiplier;
    const weights: WeightSpec[] = [spec];
    if (this.useBias) weights.push({ name: 'bias', shape: [C], init: this.biasInit });
    return { outputShape: [out[0], out[1], C], weights };
  }
  callOne(x: Node, [w, bias]: readonly Node[]): Node {
    return addBias(this.depthwise(x, w), bias);
  }
}

// ---------------------------------------------------------------- SeparableConv2D

export interface SeparableConv2DOptions extends DepthwiseConv2DOptions {
  pointwiseInitializer?: InitializerName;
}

/** A depthwise convolution (its weight named `depthwise_kernel` here, as Keras does), then a 1x1 conv. */
class SeparableConv2DLayer extends DepthwiseConv2DLayer {
  readonly pointwiseInit: InitializerName;
  constructor(readonly filters: number, kernelSize: number | readonly number[], opts: SeparableConv2DOptions = {}) {
    super(kernelSize, opts, 'SeparableConv2D', 'separable_conv2d');
    const where = who('SeparableConv2D', opts);
    positiveInt(filters, 'filters', where);
    this.pointwiseInit = checkInitializer(opts.pointwiseInitializer ?? 'glorot_uniform', `${where} pointwiseInitializer`);
  }
  override buildOne(s: Shape): Built {
    const { out, spec } = this.depthwiseBuild(s, 'depthwise_kernel');
    const CM = s[2] * this.depthMultiplier;
    const weights: WeightSpec[] = [spec, { name: 'pointwise_kernel', shape: [1, 1, CM, this.filters], init: this.pointwiseInit }];
    if (this.useBias) weights.push({ name: 'bias', shape: [this.filters], init: this.biasInit });
    return { outputShape: [out[0], out[1], this.filters], weights };
  }
  override callOne(x: Node, [dw, pw, bias]: readonly Node[]): Node {
    const h = this.depthwise(x, dw);
    const [B, OH, OW, CM] = h.shape;
    const y = b.dot(b.reshape(h, [B * OH * OW, CM]), b.reshape(pw, [CM, this.filters]));
    return addBias(b.reshape(y, [B, OH, OW, this.filters]), bias);
  }
}

// ---------------------------------------------------------------- factories (the public names)

/** 1-D convolution over [steps, channels] (Keras `Conv1D(filters, kernel_size, ...)`). */
export const Conv1D = (filters: number, kernelSize: number | readonly number[], opts?: Conv1DOptions): Layer => new Conv1DLayer(filters, kernelSize, opts);
/** Transposed 2-D convolution (Keras `Conv2DTranspose(filters, kernel_size, ...)`). */
export const Conv2DTranspose = (filters: number, kernelSize: number | readonly number[], opts?: Conv2DTransposeOptions): Layer =>
  new Conv2DTransposeLayer(filters, kernelSize, opts);
/** Depthwise 2-D convolution (Keras `DepthwiseConv2D(kernel_size, ...)`). */
export const DepthwiseConv2D = (kernelSize: number | readonly number[], opts?: DepthwiseConv2DOptions): Layer => new DepthwiseConv2DLayer(kernelSize, opts);
/** Depthwise then pointwise 2-D convolution (Keras `SeparableConv2D(filters, kernel_size, ...)`). */
export const SeparableConv2D = (filters: number, kernelSize: number | readonly number[], opts?: SeparableConv2DOptions): Layer =>
  new SeparableConv2DLayer(filters, kernelSize, opts);
