/**
 * @file Losses and metrics as graph builders, with Keras 3's names, defaults and formulas
 * (keras/src/losses/losses.py, keras/src/metrics/*.py, the JAX backend's nn.py). Each builds a value
 * per sample (shape [batch]); the model averages them under the batch mask so a padded final batch
 * counts only its real samples (Keras's "sum_over_batch_size").
 *
 * A loss is a name (`'huber'`, `'mse'`, ...) or, with options, an object made by a factory named like
 * Keras's class: `CategoricalCrossentropy({ fromLogits: true, labelSmoothing: 0.1 })`,
 * `Huber({ delta: 0.5 })`, `SparseCategoricalCrossentropy({ ignoreClass: -1 })`. A plain object with
 * the same fields (`{ kind: 'huber', delta: 0.5 }`) is checked the same way. Metrics likewise: names
 * (`'accuracy'`, `'mae'`, ...) or `TopKCategoricalAccuracy({ k: 3 })`, `BinaryAccuracy({ threshold })`.
 *
 * Per-sample reductions follow Keras: elementwise losses (mse, mae, huber, log_cosh, hinge, poisson,
 * binary cross-entropy) average over every axis after the batch; losses along the class axis
 * (cross-entropies, kl_divergence, categorical_hinge, cosine_similarity) sum over the last axis and
 * average over any axes between. `ε` is Keras's 1e-7.
 *
 * Numerical care: cross-entropies after a final softmax or sigmoid are computed from the logits in
 * the stable forms (log-softmax; max(z,0) - z·y + log(1 + exp(-|z|))), never as log of a probability,
 * so they stay finite for confident predictions; `fromLogits` uses the same forms on the raw output.
 * Otherwise they take probabilities as Keras does: binary cross-entropy clips them to [ε, 1 - ε];
 * categorical cross-entropy first renormalises each row to sum 1 (p / Σp), then clips. Divisions and
 * square roots are guarded so that a row of zeros (a padded sample) never gives NaN, in values or in
 * gradients, where Keras's own form would (0/0 in p / Σp, 1/0 in cosine similarity's norm).
 */
import * as b from '../../ir/builders.ts';
import type { Node, Shape, TensorType } from '../../ir/types.ts';
import { fmtShape, numel } from '../../ir/types.ts';
import type { ActivationName } from './activations.ts';
import { logSoftmax, softplus } from './activations.ts';
import { fail } from './errors.ts';

// ---------------------------------------------------------------- losses: configuration

export type LossName =
  | 'sparse_categorical_crossentropy'
  | 'categorical_crossentropy'
  | 'binary_crossentropy'
  | 'mean_squared_error'
  | 'mean_absolute_error'
  | 'huber'
  | 'kl_divergence'
  | 'log_cosh'
  | 'hinge'
  | 'categorical_hinge'
  | 'poisson'
  | 'cosine_similarity';

export const LOSS_NAMES: readonly LossName[] = [
  'sparse_categorical_crossentropy',
  'categorical_crossentropy',
  'binary_crossentropy',
  'mean_squared_error',
  'mean_absolute_error',
  'huber',
  'kl_divergence',
  'log_cosh',
  'hinge',
  'categorical_hinge',
  'poisson',
  'cosine_similarity',
];

/** A loss with all its options filled in (what `compile` stores, and what the factories return). */
export type Loss =
  | {
      readonly kind: 'sparse_categorical_crossentropy';
      /** The output is logits, not probabilities (default false). */
      readonly fromLogits: boolean;
      /** Samples with this label count neither in the loss nor in its mean (default null: none). */
      readonly ignoreClass: number | null;
    }
  | {
      readonly kind: 'categorical_crossentropy' | 'binary_crossentropy';
      readonly fromLogits: boolean;
      /** Targets become t·(1 - s) + s/C (categorical, C classes) or t·(1 - s) + s/2 (binary); default 0. */
      readonly labelSmoothing: number;
    }
  | {
      readonly kind: 'huber';
      /** Where the quadratic part becomes linear (default 1). */
      readonly delta: number;
    }
  | { readonly kind: Exclude<LossName, 'sparse_categorical_crossentropy' | 'categorical_crossentropy' | 'binary_crossentropy' | 'huber'> };

/** What `compile` takes for a loss: a name (or alias) with default options, or a loss object. */
export type LossSpec = string | Loss;

const LOSS_OPTIONS: { readonly [K in LossName]: readonly string[] } = {
  sparse_categorical_crossentropy: ['fromLogits', 'ignoreClass'],
  categorical_crossentropy: ['fromLogits', 'labelSmoothing'],
  binary_crossentropy: ['fromLogits', 'labelSmoothing'],
  mean_squared_error: [],
  mean_absolute_error: [],
  huber: ['delta'],
  kl_divergence: [],
  log_cosh: [],
  hinge: [],
  categorical_hinge: [],
  poisson: [],
  cosine_similarity: [],
};

/** Names `compile` accepts: Keras's function names and aliases, TF.js's camelCase, Keras's class names. */
const LOSS_ALIASES: Readonly<Record<string, LossName>> = (() => {
  const t: Record<string, LossName> = {};
  const add = (kind: LossName, ...names: string[]) => [kind, ...names].forEach((n) => (t[n] = kind));
  add('sparse_categorical_crossentropy', 'sparseCategoricalCrossentropy', 'SparseCategoricalCrossentropy');
  add('categorical_crossentropy', 'categoricalCrossentropy', 'CategoricalCrossentropy');
  add('binary_crossentropy', 'binaryCrossentropy', 'BinaryCrossentropy', 'bce', 'BCE');
  add('mean_squared_error', 'meanSquaredError', 'MeanSquaredError', 'mse', 'MSE');
  add('mean_absolute_error', 'meanAbsoluteError', 'MeanAbsoluteError', 'mae', 'MAE');
  add('huber', 'Huber');
  add('kl_divergence', 'klDivergence', 'KLDivergence', 'kld', 'KLD');
  add('log_cosh', 'logCosh', 'LogCosh');
  add('hinge', 'Hinge');
  add('categorical_hinge', 'categoricalHinge', 'CategoricalHinge');
  add('poisson', 'Poisson');
  add('cosine_similarity', 'cosineSimilarity', 'CosineSimilarity');
  return t;
})();

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const show = (v: unknown): string => (typeof v === 'string' ? `'${v}'` : v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v));

/** A loss or metric object (as opposed to an object keyed by output name): it has a string `kind`. */
export const isLossObject = (v: unknown): v is Loss => isObject(v) && typeof v.kind === 'string';

function bool(v: unknown, name: string, who: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') fail(`${who}: ${name} must be true or false, got ${show(v)}`);
  return v;
}

/** Check `opts` for loss `kind` and fill in Keras's defaults. `who` starts every message. */
function makeLoss(kind: LossName, opts: unknown, who: string): Loss {
  const o = opts ?? {};
  if (!isObject(o)) fail(`${who}: options must be an object, got ${show(opts)}`);
  const allowed = LOSS_OPTIONS[kind];
  for (const k of Object.keys(o)) {
    if (allowed.includes(k)) continue;
    const owners = LOSS_NAMES.filter((n) => LOSS_OPTIONS[n].includes(k));
    const hint = owners.length ? ` (${k} is an option of ${owners.join(' and ')})` : '';
    fail(`${who}: unknown option '${k}' for ${kind}; ${allowed.length ? `expected ${allowed.join(', ')}` : 'it takes no options'}${hint}`);
  }
  switch (kind) {
    case 'sparse_categorical_crossentropy': {
      const ic = o.ignoreClass ?? null;
      if (ic !== null && !(typeof ic === 'number' && Number.isInteger(ic))) fail(`${who}: ignoreClass must be an integer class (or null for none), got ${show(ic)}`);
      return { kind, fromLogits: bool(o.fromLogits, 'fromLogits', who), ignoreClass: ic };
    }
    case 'categorical_crossentropy':
    case 'binary_crossentropy': {
      const ls = o.labelSmoothing ?? 0;
      if (typeof ls !== 'number' || !(ls >= 0 && ls < 1)) fail(`${who}: labelSmoothing must be a number in [0, 1), got ${show(o.labelSmoothing)}`);
      return { kind, fromLogits: bool(o.fromLogits, 'fromLogits', who), labelSmoothing: ls };
    }
    case 'huber': {
      const d = o.delta ?? 1;
      if (typeof d !== 'number' || !(d > 0) || !Number.isFinite(d)) fail(`${who}: delta must be a positive number, got ${show(o.delta)}`);
      return { kind, delta: d };
    }
    default:
      return { kind };
  }
}

/**
 * A loss as `compile` takes it: a name or alias (Keras's defaults), or a loss object, whose options
 * are checked again (so a hand-written `{ kind: 'huber', delta: -1 }` is refused like `Huber`'s).
 * `who` names the argument in messages (`compile`, `compile: output 'b'`).
 */
export function checkLoss(spec: unknown, who = 'compile'): Loss {
  const known = () => `expected one of ${LOSS_NAMES.join(', ')} (aliases: mse, mae, bce, kld, the camelCase and Keras class names), or a loss object such as Huber({ delta: 0.5 })`;
  if (typeof spec === 'string') {
    const kind = LOSS_ALIASES[spec];
    if (!kind) fail(`${who}: unknown loss '${spec}'; ${known()}`);
    return makeLoss(kind, {}, `${who}: loss '${kind}'`);
  }
  if (isLossObject(spec)) {
    const { kind: name, ...opts } = spec as { kind: string };
    const kind = LOSS_ALIASES[name];
    if (!kind) fail(`${who}: unknown loss '${name}'; ${known()}`);
    return makeLoss(kind, opts, `${who}: loss '${kind}'`);
  }
  return fail(`${who}: a loss must be a name or a loss object (e.g. CategoricalCrossentropy({ fromLogits: true })), got ${show(spec)}`);
}

// Factories named like Keras's loss classes; each checks its options at once.
type NoOptions = Record<string, never>;
export const SparseCategoricalCrossentropy = (o: { fromLogits?: boolean; ignoreClass?: number | null } = {}): Loss =>
  makeLoss('sparse_categorical_crossentropy', o, 'SparseCategoricalCrossentropy');
export const CategoricalCrossentropy = (o: { fromLogits?: boolean; labelSmoothing?: number } = {}): Loss => makeLoss('categorical_crossentropy', o, 'CategoricalCrossentropy');
export const BinaryCrossentropy = (o: { fromLogits?: boolean; labelSmoothing?: number } = {}): Loss => makeLoss('binary_crossentropy', o, 'BinaryCrossentropy');
export const MeanSquaredError = (o: NoOptions = {}): Loss => makeLoss('mean_squared_error', o, 'MeanSquaredError');
export const MeanAbsoluteError = (o: NoOptions = {}): Loss => makeLoss('mean_absolute_error', o, 'MeanAbsoluteError');
export const Huber = (o: { delta?: number } = {}): Loss => makeLoss('huber', o, 'Huber');
export const KLDivergence = (o: NoOptions = {}): Loss => makeLoss('kl_divergence', o, 'KLDivergence');
export const LogCosh = (o: NoOptions = {}): Loss => makeLoss('log_cosh', o, 'LogCosh');
export const Hinge = (o: NoOptions = {}): Loss => makeLoss('hinge', o, 'Hinge');
export const CategoricalHinge = (o: NoOptions = {}): Loss => makeLoss('categorical_hinge', o, 'CategoricalHinge');
export const Poisson = (o: NoOptions = {}): Loss => makeLoss('poisson', o, 'Poisson');
export const CosineSimilarity = (o: NoOptions = {}): Loss => makeLoss('cosine_similarity', o, 'CosineSimilarity');

/** Losses whose labels are class indices (i32 [batch]) rather than targets of the output's shape. */
export const sparseLabels = (loss: Loss): boolean => loss.kind === 'sparse_categorical_crossentropy';

/**
 * Refuse a loss that cannot apply to an output of per-sample shape `outShape` made by activation
 * `act`: sparse labels need a rank-1 output, cross-entropies at least two classes, and `fromLogits`
 * an output that is not already a softmax or sigmoid.
 */
export function checkLossFits(loss: Loss, outShape: Shape, act: ActivationName, who = 'compile'): void {
  const k = loss.kind;
  if (k === 'sparse_categorical_crossentropy' && outShape.length !== 1) {
    fail(`${who}: loss sparse_categorical_crossentropy needs a model output of rank 1 per sample [classes], got ${fmtShape(outShape)}`);
  }
  const classes = outShape[outShape.length - 1];
  if ((k === 'sparse_categorical_crossentropy' || k === 'categorical_crossentropy') && !(classes >= 2)) {
    fail(`${who}: loss ${k} needs at least 2 classes on the output's last axis, got an output of shape ${fmtShape(outShape)}; for one yes/no output use binary_crossentropy`);
  }
  if ('fromLogits' in loss && loss.fromLogits && (act === 'softmax' || act === 'sigmoid')) {
    fail(
      `${who}: loss ${k} has fromLogits: true, but the output comes out of a ${act} activation (probabilities, not logits); ` +
        `drop fromLogits (dlc then computes the loss from the logits before the ${act}) or make the last activation linear`,
    );
  }
}

/** The type of the label tensor for a batch, given the model's per-sample output shape. */
export function labelType(loss: Loss, outShape: Shape, batch: number): TensorType {
  if (sparseLabels(loss)) {
    if (outShape.length !== 1) fail(`loss sparse_categorical_crossentropy needs a model output of rank 1 per sample [classes], got ${fmtShape(outShape)}`);
    return { dtype: 'i32', shape: [batch] };
  }
  return { dtype: 'f32', shape: [batch, ...outShape] };
}

// ---------------------------------------------------------------- losses: graphs

const EPS = 1e-7;
/** The smallest row sum categorical cross-entropy renormalises by (a zero row would be 0/0). */
const TINY = 1e-30;
const clip = (p: Node) => b.min(b.max(p, b.scalarLike(EPS, p)), b.scalarLike(1 - EPS, p));
const abs = (x: Node) => b.max(x, b.neg(x));
const rest = (x: Node) => x.shape.map((_, i) => i).slice(1);
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** One-hot f32 [batch, classes] from i32 labels [batch]. */
export function oneHot(y: Node, classes: number): Node {
  const shape = [y.shape[0], classes];
  return b.cast(b.equal(b.broadcast(y, shape, [0]), b.iota(shape, 1, 'i32')), 'f32');
}

/**
 * Per-sample loss [batch]. `logits` is the pre-activation output when `act` is softmax/sigmoid.
 * `keep` leading axes are kept (2 gives a loss per sample and time step, for masked sequences).
 */
export function perSampleLoss(loss: Loss, out: Node, logits: Node, act: ActivationName, y: Node, keep = 1): Node {
  const rank = out.shape.length;
  const last = rank - 1;
  const restK = (x: Node) => x.shape.map((_, i) => i).slice(keep);
  // Elementwise losses: the mean over every axis after the kept ones.
  const n = numel(out.shape.slice(keep));
  const meanRest = (l: Node) => b.reduceSum(b.div(l, b.scalarLike(n, l)), restK(l));
  // Losses along the last axis (already summed over it): the mean over the axes between.
  const mid = range(keep, last);
  const meanMid = (l: Node) => {
    if (mid.length === 0) return l;
    const m = numel(mid.map((a) => out.shape[a]));
    return b.reduceSum(m === 1 ? l : b.div(l, b.scalarLike(m, l)), mid);
  };
  switch (loss.kind) {
    case 'sparse_categorical_crossentropy': {
      if (keep !== 1) fail('sparse_categorical_crossentropy on a masked sequence output is not supported yet');
      const l = categorical(loss.fromLogits, out, logits, act, oneHot(y, out.shape[1]));
      if (loss.ignoreClass === null) return l;
      // Keras: an ignored sample's loss is 0 (and `keptSamples` leaves it out of the mean).
      return b.select(b.equal(y, b.scalarLike(loss.ignoreClass, y)), b.scalarLike(0, l), l);
    }
    case 'categorical_crossentropy': {
      const s = loss.labelSmoothing;
      const t = s > 0 ? b.add(b.mul(y, b.scalarLike(1 - s, y)), b.scalarLike(s / out.shape[last], y)) : y;
      return meanMid(categorical(loss.fromLogits, out, logits, act, t));
    }
    case 'binary_crossentropy': {
      const s = loss.labelSmoothing;
      const t = s > 0 ? b.add(b.mul(y, b.scalarLike(1 - s, y)), b.scalarLike(0.5 * s, y)) : y;
      let l: Node;
      if (loss.fromLogits || act === 'sigmoid') {
        // -t·log σ(z) - (1 - t)·log σ(-z), written so that exp never overflows.
        const z = loss.fromLogits ? out : logits;
        l = b.add(b.sub(b.max(z, b.scalarLike(0, z)), b.mul(z, t)), b.log(b.add(b.scalarLike(1, z), b.exp(b.neg(abs(z))))));
      } else {
        const p = clip(out);
        const one = b.scalarLike(1, p);
        l = b.neg(b.add(b.mul(t, b.log(p)), b.mul(b.sub(one, t), b.log(b.sub(one, p)))));
      }
      return meanRest(l);
    }
    case 'mean_squared_error': {
      const d = b.sub(out, y);
      return meanRest(b.mul(d, d));
    }
    case 'mean_absolute_error':
      return meanRest(b.abs(b.sub(out, y)));
    case 'huber': {
      // |e| ≤ δ: e²/2; beyond: δ·|e| - δ²/2.
      const e = b.sub(out, y);
      const a = b.abs(e);
      const d = loss.delta;
      const quad = b.mul(b.scalarLike(0.5, e), b.mul(e, e));
      const lin = b.sub(b.mul(b.scalarLike(d, a), a), b.scalarLike(0.5 * d * d, a));
      return meanRest(b.select(b.less(b.scalarLike(d, a), a), lin, quad));
    }
    case 'kl_divergence': {
      // Σ t·log(t / p), both clipped to [ε, 1].
      const c01 = (x: Node) => b.min(b.max(x, b.scalarLike(EPS, x)), b.scalarLike(1, x));
      const t = c01(y);
      const p = c01(out);
      return meanMid(b.reduceSum(b.mul(t, b.log(b.div(t, p))), [last]));
    }
    case 'log_cosh': {
      // log cosh(e) = e + softplus(-2e) - log 2, finite for any e.
      const e = b.sub(out, y);
      return meanRest(b.sub(b.add(e, softplus(b.mul(e, b.scalarLike(-2, e)))), b.scalarLike(Math.log(2), e)));
    }
    case 'hinge': {
      // Keras turns 0/1 labels into -1/1 when every label of the batch is 0 or 1: t + all01·(t - 1).
      const isBin = b.add(b.cast(b.equal(y, b.scalarLike(0, y)), 'f32'), b.cast(b.equal(y, b.scalarLike(1, y)), 'f32'));
      const others = b.reduceSum(b.sub(b.scalarLike(1, isBin), isBin), y.shape.map((_, i) => i));
      const all01 = b.broadcast(b.cast(b.equal(others, b.constant(0, [])), 'f32'), y.shape, []);
      const t = b.add(y, b.mul(all01, b.sub(y, b.scalarLike(1, y))));
      const m = b.sub(b.scalarLike(1, out), b.mul(t, out));
      return meanRest(b.max(m, b.scalarLike(0, m)));
    }
    case 'categorical_hinge': {
      // max(max((1 - t)·p) - Σ t·p + 1, 0)
      const pos = b.reduceSum(b.mul(y, out), [last]);
      const neg = b.reduceMax(b.mul(b.sub(b.scalarLike(1, y), y), out), [last]);
      const z = b.add(b.sub(neg, pos), b.scalarLike(1, pos));
      return meanMid(b.max(z, b.scalarLike(0, z)));
    }
    case 'poisson':
      return meanRest(b.sub(out, b.mul(y, b.log(b.add(out, b.scalarLike(EPS, out))))));
    case 'cosine_similarity': {
      // -Σ l2n(t)·l2n(p), l2n(x) = x·min(1/‖x‖, 1/ε) = x / sqrt(max(Σx², ε²)): the max keeps a zero
      // row's gradient finite (0, not 0·∞).
      const l2n = (x: Node) => {
        const ss = b.sumKeep(b.mul(x, x), [last]);
        return b.mul(x, b.broadcastTo(b.recip(b.sqrt(b.max(ss, b.scalarLike(EPS * EPS, ss)))), x.shape));
      };
      return meanMid(b.neg(b.reduceSum(b.mul(l2n(y), l2n(out)), [last])));
    }
    default:
      return loss satisfies never;
  }
}

/** -Σ t·log p along the last axis: log-softmax of logits, or of probabilities renormalised and clipped. */
function categorical(fromLogits: boolean, out: Node, logits: Node, act: ActivationName, t: Node): Node {
  const last = out.shape.length - 1;
  let logp: Node;
  if (fromLogits) logp = logSoftmax(out);
  else if (act === 'softmax') logp = logSoftmax(logits);
  else {
    const sum = b.sumKeep(out, [last]);
    logp = b.log(clip(b.div(out, b.broadcastTo(b.max(sum, b.scalarLike(TINY, sum)), out.shape))));
  }
  return b.neg(b.reduceSum(b.mul(t, logp), [last]));
}

/** f32 [batch]: 1 for the samples that count in the loss's mean, or null when all do (no ignoreClass). */
export function keptSamples(loss: Loss, y: Node): Node | null {
  if (loss.kind !== 'sparse_categorical_crossentropy' || loss.ignoreClass === null) return null;
  const ignored = b.cast(b.equal(y, b.scalarLike(loss.ignoreClass, y)), 'f32');
  return b.sub(b.scalarLike(1, ignored), ignored);
}

/**
 * The batch's loss from per-sample values: Σ l·mask / count, count = max(Σ mask, 1) given by the
 * caller (shared with the metrics). With `ignoreClass`, Keras's masked mean: ignored samples weigh
 * 0 and the rest are averaged over their own count. `sampleWeight` (Keras's sample_weight) scales
 * each sample's term of the sum but not the count, as Keras's default reduction does.
 */
export function batchLoss(loss: Loss, perSample: Node, y: Node, mask: Node, count: Node, sampleWeight?: Node): Node {
  const kept = keptSamples(loss, y);
  const weighted = (m: Node) => (sampleWeight ? b.mul(m, sampleWeight) : m);
  if (!kept) return b.div(b.reduceSum(b.mul(perSample, weighted(mask)), [0]), count);
  // Keras: samples of the ignored class leave the denominator; sample weights scale only the sum.
  const real = b.mul(mask, kept);
  return b.div(b.reduceSum(b.mul(perSample, weighted(real)), [0]), b.max(b.reduceSum(real, [0]), b.constant(1, [])));
}

// ---------------------------------------------------------------- metrics

export type MetricName =
  | 'accuracy'
  | 'binary_accuracy'
  | 'categorical_accuracy'
  | 'sparse_categorical_accuracy'
  | 'top_k_categorical_accuracy'
  | 'sparse_top_k_categorical_accuracy'
  | 'mean_absolute_error'
  | 'mean_squared_error';

/**
 * A metric and its name in the logs. `accuracy` is resolved at `compile` (Keras's rule) into the
 * binary, sparse categorical or categorical accuracy that fits the labels and the output.
 */
export type Metric =
  | { readonly kind: 'accuracy'; readonly name: string }
  | { readonly kind: 'categorical_accuracy' | 'sparse_categorical_accuracy' | 'mean_absolute_error' | 'mean_squared_error'; readonly name: string }
  | {
      readonly kind: 'binary_accuracy';
      readonly name: string;
      /** A prediction strictly above it counts as 1 (default 0.5). */
      readonly threshold: number;
    }
  | {
      readonly kind: 'top_k_categorical_accuracy' | 'sparse_top_k_categorical_accuracy';
      readonly name: string;
      /** A hit when fewer than k classes score strictly higher than the label's (default 5). */
      readonly k: number;
    };
/** A metric as `compile` stores it: `accuracy` resolved. */
export type ResolvedMetric = Exclude<Metric, { readonly kind: 'accuracy' }>;
export type MetricSpec = string | Metric;

/** Metric names `compile` takes; the log uses the name as given, as Keras does. */
const METRIC_ALIASES: Readonly<Record<string, MetricName>> = {
  accuracy: 'accuracy',
  acc: 'accuracy',
  binary_accuracy: 'binary_accuracy',
  categorical_accuracy: 'categorical_accuracy',
  sparse_categorical_accuracy: 'sparse_categorical_accuracy',
  top_k_categorical_accuracy: 'top_k_categorical_accuracy',
  sparse_top_k_categorical_accuracy: 'sparse_top_k_categorical_accuracy',
  mean_absolute_error: 'mean_absolute_error',
  mae: 'mean_absolute_error',
  mean_squared_error: 'mean_squared_error',
  mse: 'mean_squared_error',
};
const METRIC_OPTIONS: { readonly [K in MetricName]: readonly string[] } = {
  accuracy: ['name'],
  binary_accuracy: ['name', 'threshold'],
  categorical_accuracy: ['name'],
  sparse_categorical_accuracy: ['name'],
  top_k_categorical_accuracy: ['name', 'k'],
  sparse_top_k_categorical_accuracy: ['name', 'k'],
  mean_absolute_error: ['name'],
  mean_squared_error: ['name'],
};

function makeMetric(kind: MetricName, opts: unknown, who: string): Metric {
  const o = opts ?? {};
  if (!isObject(o)) fail(`${who}: options must be an object, got ${show(opts)}`);
  const allowed = METRIC_OPTIONS[kind];
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${who}: unknown option '${k}' for metric ${kind}; expected ${allowed.join(', ')}`);
  const name = o.name ?? kind;
  if (typeof name !== 'string' || name === '') fail(`${who}: name must be a non-empty string, got ${show(o.name)}`);
  switch (kind) {
    case 'binary_accuracy': {
      const th = o.threshold ?? 0.5;
      if (typeof th !== 'number' || !Number.isFinite(th)) fail(`${who}: threshold must be a finite number, got ${show(o.threshold)}`);
      return { kind, name, threshold: th };
    }
    case 'top_k_categorical_accuracy':
    case 'sparse_top_k_categorical_accuracy': {
      const k = o.k ?? 5;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 1) fail(`${who}: k must be a positive integer, got ${show(o.k)}`);
      return { kind, name, k };
    }
    default:
      return { kind, name };
  }
}

export const isMetricObject = (v: unknown): v is Metric => isObject(v) && typeof v.kind === 'string';

/** A metric as `compile` takes it: a name (logged under that name) or a metric object. */
export function checkMetric(spec: unknown, who = 'compile'): Metric {
  const known = () => `expected one of ${Object.keys(METRIC_ALIASES).join(', ')}, or a metric object such as TopKCategoricalAccuracy({ k: 3 })`;
  if (typeof spec === 'string') {
    const kind = METRIC_ALIASES[spec];
    if (!kind) fail(`${who}: unknown metric '${spec}'; ${known()}`);
    return makeMetric(kind, { name: spec }, `${who}: metric '${spec}'`);
  }
  if (isMetricObject(spec)) {
    const { kind: name, ...opts } = spec as { kind: string };
    const kind = METRIC_ALIASES[name];
    if (!kind) fail(`${who}: unknown metric '${name}'; ${known()}`);
    return makeMetric(kind, opts, `${who}: metric '${kind}'`);
  }
  return fail(`${who}: a metric must be a name or a metric object, got ${show(spec)}`);
}

// Factories named like Keras's metric classes (their default names are Keras's too).
export const BinaryAccuracy = (o: { threshold?: number; name?: string } = {}): Metric => makeMetric('binary_accuracy', o, 'BinaryAccuracy');
export const CategoricalAccuracy = (o: { name?: string } = {}): Metric => makeMetric('categorical_accuracy', o, 'CategoricalAccuracy');
export const SparseCategoricalAccuracy = (o: { name?: string } = {}): Metric => makeMetric('sparse_categorical_accuracy', o, 'SparseCategoricalAccuracy');
export const TopKCategoricalAccuracy = (o: { k?: number; name?: string } = {}): Metric => makeMetric('top_k_categorical_accuracy', o, 'TopKCategoricalAccuracy');
export const SparseTopKCategoricalAccuracy = (o: { k?: number; name?: string } = {}): Metric =>
  makeMetric('sparse_top_k_categorical_accuracy', o, 'SparseTopKCategoricalAccuracy');

/**
 * Fit a metric to an output and its loss's labels. `accuracy` becomes Keras's choice: binary when
 * the output's last axis has size 1, sparse categorical for class-index labels, categorical
 * otherwise. Metrics on class indices need sparse labels and the others targets of the output's
 * shape; top-k needs k ≤ the number of classes.
 */
export function resolveMetric(m: Metric, loss: Loss, outShape: Shape, who = 'compile'): ResolvedMetric {
  const sparse = sparseLabels(loss);
  const classes = outShape[outShape.length - 1];
  const w = `${who}: metric '${m.name}'`;
  let r: ResolvedMetric;
  if (m.kind === 'accuracy') {
    if (classes === 1) r = { kind: 'binary_accuracy', name: m.name, threshold: 0.5 };
    else r = { kind: sparse ? 'sparse_categorical_accuracy' : 'categorical_accuracy', name: m.name };
  } else r = m;
  const wantsSparse = r.kind === 'sparse_categorical_accuracy' || r.kind === 'sparse_top_k_categorical_accuracy';
  if (wantsSparse && !sparse) {
    fail(`${w} compares class indices, but loss ${loss.kind} takes targets of the output's shape ${fmtShape(outShape)}; use ${r.kind.replace('sparse_', '')}`);
  }
  if (!wantsSparse && sparse) {
    const alt = r.kind === 'categorical_accuracy' || r.kind === 'top_k_categorical_accuracy' ? `; use sparse_${r.kind}` : '';
    fail(`${w} needs targets of the output's shape ${fmtShape(outShape)}, but loss sparse_categorical_crossentropy takes class indices${alt}`);
  }
  if ((r.kind === 'top_k_categorical_accuracy' || r.kind === 'sparse_top_k_categorical_accuracy') && r.k > classes) {
    const make = r.kind === 'top_k_categorical_accuracy' ? 'TopKCategoricalAccuracy' : 'SparseTopKCategoricalAccuracy';
    fail(`${w}: k is ${r.k}, more than the ${classes} classes of the output ${fmtShape(outShape)}; pass ${make}({ k }) with k <= ${classes}`);
  }
  return r;
}

/** Index of the first maximum along the last axis, as f32 (shape without the last axis). */
export function argmaxF32(x: Node): Node {
  const a = x.shape.length - 1;
  const C = x.shape[a];
  const isMax = b.equal(x, b.broadcastTo(b.maxKeep(x, [a]), x.shape));
  const negIdx = b.neg(b.iota(x.shape, a, 'f32'));
  // max of -index over the maxima = -(smallest index holding the maximum)
  return b.neg(b.reduceMax(b.select(isMax, negIdx, b.scalarLike(-C, negIdx)), [a]));
}

/** Per-sample value (f32 [batch]) of a metric; elementwise ones average over the axes after the batch. */
export function perSampleMetric(m: ResolvedMetric, out: Node, y: Node): Node {
  const meanRest = (v: Node) => {
    const n = numel(v.shape.slice(1));
    return n === 1 && v.shape.length <= 1 ? v : b.reduceSum(b.div(v, b.scalarLike(n, v)), rest(v));
  };
  const last = out.shape.length - 1;
  switch (m.kind) {
    case 'sparse_categorical_accuracy':
      return b.cast(b.equal(argmaxF32(out), b.cast(y, 'f32')), 'f32');
    case 'categorical_accuracy':
      return meanRest(b.cast(b.equal(argmaxF32(out), argmaxF32(y)), 'f32'));
    case 'binary_accuracy': {
      // Keras's binary accuracy: a prediction strictly above the threshold counts as 1.
      const pred = b.cast(b.less(b.scalarLike(m.threshold, out), out), 'f32');
      const hit = b.cast(b.equal(pred, y), 'f32');
      const n = b.scalarLike(out.shape.slice(1).reduce((a, c) => a * c, 1), hit);
      return b.reduceSum(b.div(hit, n), rest(hit));
    }
    case 'sparse_top_k_categorical_accuracy':
    case 'top_k_categorical_accuracy': {
      // In the top k iff fewer than k classes score strictly more than the label (ties favour the label).
      const label = m.kind === 'sparse_top_k_categorical_accuracy' ? oneHot(y, out.shape[last]) : b.cast(b.equal(b.iota(y.shape, last, 'f32'), b.broadcast(argmaxF32(y), y.shape, range(0, last))), 'f32');
      const atLabel = b.broadcast(b.reduceSum(b.mul(label, out), [last]), out.shape, range(0, last));
      const above = b.reduceSum(b.cast(b.less(atLabel, out), 'f32'), [last]);
      return meanRest(b.cast(b.less(above, b.scalarLike(m.k, above)), 'f32'));
    }
    case 'mean_absolute_error':
      return meanRest(b.abs(b.sub(out, y)));
    case 'mean_squared_error': {
      const d = b.sub(out, y);
      return meanRest(b.mul(d, d));
    }
    default:
      return m satisfies never;
  }
}
