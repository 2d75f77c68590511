/**
 * @file Normalization layers: BatchNormalization (with moving statistics as non-trainable state) and
 * LayerNormalization, with Keras 3's defaults, semantics and weight layouts.
 *
 * BatchNormalization normalizes over every axis but the feature axis (the last; channels_last only).
 * In a train step it uses the batch's statistics and asks the model (`ctx.update`) to write the moving
 * averages `moving = moving * momentum + batch * (1 - momentum)` back after the step, with the biased
 * batch variance as Keras 3 does; everywhere else (eval, predict, and when the layer is frozen, as
 * in Keras 3) it uses the moving statistics. Batch statistics count only the real samples of a
 * padded final batch (`ctx.mask`), so padding never leaks into the moving averages.
 */
import * as b from '../../../ir/builders.ts';
import type { Node, Shape } from '../../../ir/types.ts';
import { fmtShape } from '../../../ir/types.ts';
import { fail } from '../errors.ts';
import type { InitializerName } from '../initializers.ts';
import { checkInitializer } from '../initializers.ts';
import type { Built, CallContext, CommonOptions, Layer, WeightSpec } from '../layer.ts';
import { UnaryLayer } from '../layer.ts';

function checkAxis(axis: unknown, where: string): void {
  if (axis !== undefined && axis !== -1) fail(`${where}: only axis -1 (channels last) is supported, got ${JSON.stringify(axis)}`);
}

function positive(v: unknown, dflt: number, name: string, where: string): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)) fail(`${where}: ${name} must be a positive number, got ${String(v)}`);
  return x;
}

/** The options both normalizations share: epsilon, and the learned scale (gamma) and offset (beta). */
interface Affine {
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly gammaInit: InitializerName;
  readonly betaInit: InitializerName;
}

function affineOptions(opts: LayerNormalizationOptions, where: string): Affine {
  checkAxis(opts.axis, where);
  return {
    epsilon: positive(opts.epsilon, 1e-3, 'epsilon', where),
    center: opts.center ?? true,
    scale: opts.scale ?? true,
    gammaInit: checkInitializer(opts.gammaInitializer ?? 'ones', `${where} gammaInitializer`),
    betaInit: checkInitializer(opts.betaInitializer ?? 'zeros', `${where} betaInitializer`),
  };
}

/** gamma then beta over the last axis of per-sample shape `s`, as the options ask (Keras's order). */
function affineWeights(a: Affine, s: Shape): WeightSpec[] {
  const c = [s[s.length - 1]];
  const ws: WeightSpec[] = [];
  if (a.scale) ws.push({ name: 'gamma', shape: c, init: a.gammaInit });
  if (a.center) ws.push({ name: 'beta', shape: c, init: a.betaInit });
  return ws;
}

/** `v` broadcast from the last axis to `shape`. */
const lastAxis = (v: Node, shape: Shape): Node => b.broadcast(v, shape, [shape.length - 1]);

export interface LayerNormalizationOptions extends CommonOptions {
  /** The feature axis; only -1 (channels last). */
  axis?: number;
  epsilon?: number;
  center?: boolean;
  scale?: boolean;
  betaInitializer?: InitializerName;
  gammaInitializer?: InitializerName;
}

export interface BatchNormalizationOptions extends LayerNormalizationOptions {
  momentum?: number;
  movingMeanInitializer?: InitializerName;
  movingVarianceInitializer?: InitializerName;
}

/** (x - mean) * gamma / sqrt(var + eps) + beta over the last axis; mean and var of shape [features]. */
function normalize(x: Node, mean: Node, variance: Node, a: Affine, gamma: Node | null, beta: Node | null): Node {
  // The per-feature factor is computed once, before it is broadcast.
  let factor = b.recip(b.sqrt(b.add(variance, b.scalarLike(a.epsilon, variance))));
  if (gamma) factor = b.mul(factor, gamma);
  const y = b.mul(b.sub(x, lastAxis(mean, x.shape)), lastAxis(factor, x.shape));
  return beta ? b.add(y, lastAxis(beta, x.shape)) : y;
}

class BatchNormalizationLayer extends UnaryLayer implements Affine {
  // Acts on each time step alone, so a Keras mask passes through (Keras: supports_masking).
  override readonly supportsMasking = true;
  readonly className = 'BatchNormalization';
  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly gammaInit: InitializerName;
  readonly betaInit: InitializerName;
  private readonly meanInit: InitializerName;
  private readonly varianceInit: InitializerName;
  constructor(opts: BatchNormalizationOptions = {}) {
    super(opts, 'batch_normalization');
    const where = 'BatchNormalization';
    ({ epsilon: this.epsilon, center: this.center, scale: this.scale, gammaInit: this.gammaInit, betaInit: this.betaInit } = affineOptions(opts, where));
    const m = opts.momentum ?? 0.99;
    if (typeof m !== 'number' || !(m >= 0 && m <= 1)) fail(`${where}: momentum must be in [0, 1], got ${String(opts.momentum)}`);
    this.momentum = m;
    this.meanInit = checkInitializer(opts.movingMeanInitializer ?? 'zeros', `${where} movingMeanInitializer`);
    this.varianceInit = checkInitializer(opts.movingVarianceInitializer ?? 'ones', `${where} movingVarianceInitializer`);
  }
  buildOne(s: Shape): Built {
    if (s.length < 1) this.error(`expects an input of rank >= 1 per sample, got ${fmtShape(s)}`);
    const c = [s[s.length - 1]];
    // Keras 3's variable order: gamma, beta, moving_mean, moving_variance.
    const weights: WeightSpec[] = [
      ...affineWeights(this, s),
      { name: 'moving_mean', shape: c, init: this.meanInit, trainable: false },
      { name: 'moving_variance', shape: c, init: this.varianceInit, trainable: false },
    ];
    return { outputShape: s, weights };
  }
  callOne(x: Node, ws: readonly Node[], ctx: CallContext): Node {
    let k = 0;
    const gamma = this.scale ? ws[k++] : null;
    const beta = this.center ? ws[k++] : null;
    const iMean = k++;
    const iVar = k++;
    const [movingMean, movingVar] = [ws[iMean], ws[iVar]];
    if (!(ctx.training && ctx.layerTrainable)) return normalize(x, movingMean, movingVar, this, gamma, beta);
    // Batch statistics over every axis but the last, each sample weighted by the mask (1 for real
    // rows, 0 for the padding of a short final batch).
    const axes = x.shape.slice(0, -1).map((_, i) => i);
    const w = ctx.mask ? b.broadcast(ctx.mask, x.shape, [0]) : b.scalarLike(1, x);
    const perSample = x.shape.slice(1, -1).reduce((a, d) => a * d, 1);
    const count = ctx.mask ? b.max(b.mul(b.reduceSum(ctx.mask, [0]), b.constant(perSample, [])), b.constant(1, [])) : b.constant(x.shape[0] * perSample, []);
    const n = b.broadcast(count, [x.shape[x.shape.length - 1]], []);
    const mean = b.div(b.reduceSum(b.mul(x, w), axes), n);
    const d = b.sub(x, lastAxis(mean, x.shape));
    const variance = b.div(b.reduceSum(b.mul(b.mul(d, d), w), axes), n);
    const ema = (moving: Node, batch: Node) => b.add(b.mul(moving, b.scalarLike(this.momentum, moving)), b.mul(batch, b.scalarLike(1 - this.momentum, batch)));
    ctx.update(iMean, ema(movingMean, mean));
    ctx.update(iVar, ema(movingVar, variance));
    return normalize(x, mean, variance, this, gamma, beta);
  }
}

class LayerNormalizationLayer extends UnaryLayer implements Affine {
  // Acts on each time step alone, so a Keras mask passes through (Keras: supports_masking).
  override readonly supportsMasking = true;
  readonly className = 'LayerNormalization';
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  readonly gammaInit: InitializerName;
  readonly betaInit: InitializerName;
  constructor(opts: LayerNormalizationOptions = {}) {
    super(opts, 'layer_normalization');
    ({ epsilon: this.epsilon, center: this.center, scale: this.scale, gammaInit: this.gammaInit, betaInit: this.betaInit } = affineOptions(opts, 'LayerNormalization'));
  }
  buildOne(s: Shape): Built {
    if (s.length < 1) this.error(`expects an input of rank >= 1 per sample, got ${fmtShape(s)}`);
    return { outputShape: s, weights: affineWeights(this, s) };
  }
  callOne(x: Node, ws: readonly Node[]): Node {
    let k = 0;
    const gamma = this.scale ? ws[k++] : null;
    const beta = this.center ? ws[k++] : null;
    // Statistics per position over the feature axis (kept as [..., 1]), not per feature as in
    // batch normalization, so `normalize` does not apply; gamma and beta are still per feature.
    const last = x.shape.length - 1;
    const n = b.constant(x.shape[last], [...x.shape.slice(0, -1), 1]);
    const mean = b.div(b.sumKeep(x, [last]), n);
    const d = b.sub(x, b.broadcastTo(mean, x.shape));
    const variance = b.div(b.sumKeep(b.mul(d, d), [last]), n);
    let y = b.mul(d, b.broadcastTo(b.recip(b.sqrt(b.add(variance, b.scalarLike(this.epsilon, variance)))), x.shape));
    if (gamma) y = b.mul(y, lastAxis(gamma, x.shape));
    if (beta) y = b.add(y, lastAxis(beta, x.shape));
    return y;
  }
}

export const BatchNormalization = (opts?: BatchNormalizationOptions): Layer => new BatchNormalizationLayer(opts);
export const LayerNormalization = (opts?: LayerNormalizationOptions): Layer => new LayerNormalizationLayer(opts);
