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

/** `v` broadcast from the last axis to `shape`. */
const lastAxis = (v: Node, shape: Shape): Node => b.broadcast(v, shape, [shape.length - 1]);

export interface BatchNormalizationOptions extends CommonOptions {
  /** The feature axis; only -1 (channels last). */
  axis?: number;
  momentum?: number;
  epsilon?: number;
  center?: boolean;
  scale?: boolean;
  betaInitializer?: InitializerName;
  gammaInitializer?: InitializerName;
  movingMeanInitializer?: InitializerName;
  movingVarianceInitializer?: InitializerName;
}

class BatchNormalizationLayer extends UnaryLayer {
  readonly className = 'BatchNormalization';
  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  private readonly inits: { gamma: InitializerName; beta: InitializerName; mean: InitializerName; variance: InitializerName };
  constructor(opts: BatchNormalizationOptions = {}) {
    super(opts, 'batch_normalization');
    const where = 'BatchNormalization';
    checkAxis(opts.axis, where);
    const m = opts.momentum ?? 0.99;
    if (typeof m !== 'number' || !(m >= 0 && m <= 1)) fail(`${where}: momentum must be in [0, 1], got ${String(opts.momentum)}`);
    this.momentum = m;
    this.epsilon = positive(opts.epsilon, 1e-3, 'epsilon', where);
    this.center = opts.center ?? true;
    this.scale = opts.scale ?? true;
    this.inits = {
      gamma: checkInitializer(opts.gammaInitializer ?? 'ones', `${where} gammaInitializer`),
      beta: checkInitializer(opts.betaInitializer ?? 'zeros', `${where} betaInitializer`),
      mean: checkInitializer(opts.movingMeanInitializer ?? 'zeros', `${where} movingMeanInitializer`),
      variance: checkInitializer(opts.movingVarianceInitializer ?? 'ones', `${where} movingVarianceInitializer`),
    };
  }
  buildOne(s: Shape): Built {
    if (s.length < 1) this.error(`expects an input of rank >= 1 per sample, got ${fmtShape(s)}`);
    const c = [s[s.length - 1]];
    // Keras 3's variable order: gamma, beta, moving_mean, moving_variance.
    const weights: WeightSpec[] = [];
    if (this.scale) weights.push({ name: 'gamma', shape: c, init: this.inits.gamma });
    if (this.center) weights.push({ name: 'beta', shape: c, init: this.inits.beta });
    weights.push({ name: 'moving_mean', shape: c, init: this.inits.mean, trainable: false });
    weights.push({ name: 'moving_variance', shape: c, init: this.inits.variance, trainable: false });
    return { outputShape: s, weights };
  }
  callOne(x: Node, ws: readonly Node[], ctx: CallContext): Node {
    let k = 0;
    const gamma = this.scale ? ws[k++] : null;
    const beta = this.center ? ws[k++] : null;
    const iMean = k++;
    const iVar = k++;
    const [movingMean, movingVar] = [ws[iMean], ws[iVar]];
    const axes = x.shape.slice(0, -1).map((_, i) => i);
    let mean = movingMean;
    let variance = movingVar;
    if (ctx.training && ctx.layerTrainable) {
      // Per-sample weights: 1 for real rows, 0 for the padding of a short final batch.
      const w = ctx.mask ? b.broadcast(ctx.mask, x.shape, [0]) : b.scalarLike(1, x);
      const perSample = x.shape.slice(1, -1).reduce((a, d) => a * d, 1);
      const count = ctx.mask ? b.max(b.mul(b.reduceSum(ctx.mask, [0]), b.constant(perSample, [])), b.constant(1, [])) : b.constant(x.shape[0] * perSample, []);
      const c = x.shape[x.shape.length - 1];
      const n = b.broadcast(count, [c], []);
      mean = b.div(b.reduceSum(b.mul(x, w), axes), n);
      const d = b.sub(x, lastAxis(mean, x.shape));
      variance = b.div(b.reduceSum(b.mul(b.mul(d, d), w), axes), n);
      const ema = (moving: Node, batch: Node) => b.add(b.mul(moving, b.scalarLike(this.momentum, moving)), b.mul(batch, b.scalarLike(1 - this.momentum, batch)));
      ctx.update(iMean, ema(movingMean, mean));
      ctx.update(iVar, ema(movingVar, variance));
    }
    // y = (x - mean) * gamma / sqrt(var + eps) + beta, with the per-feature factor computed once.
    let factor = b.recip(b.sqrt(b.add(variance, b.scalarLike(this.epsilon, variance))));
    if (gamma) factor = b.mul(factor, gamma);
    let y = b.mul(b.sub(x, lastAxis(mean, x.shape)), lastAxis(factor, x.shape));
    if (beta) y = b.add(y, lastAxis(beta, x.shape));
    return y;
  }
}

export interface LayerNormalizationOptions extends CommonOptions {
  axis?: number;
  epsilon?: number;
  center?: boolean;
  scale?: boolean;
  betaInitializer?: InitializerName;
  gammaInitializer?: InitializerName;
}

class LayerNormalizationLayer extends UnaryLayer {
  readonly className = 'LayerNormalization';
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  private readonly inits: { gamma: InitializerName; beta: InitializerName };
  constructor(opts: LayerNormalizationOptions = {}) {
    super(opts, 'layer_normalization');
    const where = 'LayerNormalization';
    checkAxis(opts.axis, where);
    this.epsilon = positive(opts.epsilon, 1e-3, 'epsilon', where);
    this.center = opts.center ?? true;
    this.scale = opts.scale ?? true;
    this.inits = {
      gamma: checkInitializer(opts.gammaInitializer ?? 'ones', `${where} gammaInitializer`),
      beta: checkInitializer(opts.betaInitializer ?? 'zeros', `${where} betaInitializer`),
    };
  }
  buildOne(s: Shape): Built {
    if (s.length < 1) this.error(`expects an input of rank >= 1 per sample, got ${fmtShape(s)}`);
    const c = [s[s.length - 1]];
    const weights: WeightSpec[] = [];
    if (this.scale) weights.push({ name: 'gamma', shape: c, init: this.inits.gamma });
    if (this.center) weights.push({ name: 'beta', shape: c, init: this.inits.beta });
    return { outputShape: s, weights };
  }
  callOne(x: Node, ws: readonly Node[]): Node {
    let k = 0;
    const gamma = this.scale ? ws[k++] : null;
    const beta = this.center ? ws[k++] : null;
    const last = x.shape.length - 1;
    const n = b.scalarLike(x.shape[last], b.sumKeep(x, [last]));
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
