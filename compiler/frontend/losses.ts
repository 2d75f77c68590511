/**
 * @file Losses and metrics as graph builders, per sample (shape [batch]); the model averages them
 * under the batch mask so a padded final batch counts only its real samples.
 *
 * Cross-entropies after a final softmax or sigmoid are computed from the logits in the stable forms
 * (log-softmax; max(z,0) - z*y + log(1 + exp(-|z|))), never as log of a probability, so they stay
 * finite for confident predictions. Without such an activation they clip probabilities to
 * [1e-7, 1 - 1e-7] as Keras does.
 */
import * as b from '../../ir/builders.ts';
import type { Node, Shape, TensorType } from '../../ir/types.ts';
import { fmtShape } from '../../ir/types.ts';
import type { ActivationName } from './activations.ts';
import { logSoftmax } from './activations.ts';
import { fail } from './errors.ts';

export type LossName = 'sparse_categorical_crossentropy' | 'categorical_crossentropy' | 'binary_crossentropy' | 'mean_squared_error';
const LOSS_ALIASES: Record<string, LossName> = {
  sparse_categorical_crossentropy: 'sparse_categorical_crossentropy',
  sparseCategoricalCrossentropy: 'sparse_categorical_crossentropy',
  categorical_crossentropy: 'categorical_crossentropy',
  categoricalCrossentropy: 'categorical_crossentropy',
  binary_crossentropy: 'binary_crossentropy',
  binaryCrossentropy: 'binary_crossentropy',
  mean_squared_error: 'mean_squared_error',
  meanSquaredError: 'mean_squared_error',
  mse: 'mean_squared_error',
};

export function checkLoss(name: unknown): LossName {
  const n = typeof name === 'string' ? LOSS_ALIASES[name] : undefined;
  if (!n) fail(`compile: unknown loss '${String(name)}'; expected one of ${Object.keys(LOSS_ALIASES).join(', ')}`);
  return n;
}

export type MetricName = 'accuracy';
export function checkMetric(name: unknown): MetricName {
  if (name === 'accuracy' || name === 'acc') return 'accuracy';
  return fail(`compile: unknown metric '${String(name)}'; expected accuracy`);
}

/** The type of the label tensor for a batch, given the model's per-sample output shape. */
export function labelType(loss: LossName, outShape: Shape, batch: number): TensorType {
  switch (loss) {
    case 'sparse_categorical_crossentropy':
      if (outShape.length !== 1) fail(`loss sparse_categorical_crossentropy needs a model output of rank 1 per sample [classes], got ${fmtShape(outShape)}`);
      return { dtype: 'i32', shape: [batch] };
    case 'categorical_crossentropy':
    case 'binary_crossentropy':
    case 'mean_squared_error':
      return { dtype: 'f32', shape: [batch, ...outShape] };
    default:
      return loss satisfies never;
  }
}

const EPS = 1e-7;
const clip = (p: Node) => b.min(b.max(p, b.scalarLike(EPS, p)), b.scalarLike(1 - EPS, p));
const abs = (x: Node) => b.max(x, b.neg(x));
const rest = (x: Node) => x.shape.map((_, i) => i).slice(1);
const numel = (s: readonly number[]) => s.reduce((a, c) => a * c, 1);

/** One-hot f32 [batch, classes] from i32 labels [batch]. */
export function oneHot(y: Node, classes: number): Node {
  const shape = [y.shape[0], classes];
  return b.cast(b.equal(b.broadcast(y, shape, [0]), b.iota(shape, 1, 'i32')), 'f32');
}

/**
 * Per-sample loss [batch]. `logits` is the pre-activation output when `act` is softmax/sigmoid.
 * `keep` leading axes are kept (2 gives a loss per sample and time step, for masked sequences).
 */
export function perSampleLoss(loss: LossName, out: Node, logits: Node, act: ActivationName, y: Node, keep = 1): Node {
  const rest = (x: Node) => x.shape.map((_, i) => i).slice(keep);
  const n = numel(out.shape.slice(keep));
  switch (loss) {
    case 'sparse_categorical_crossentropy':
      if (keep !== 1) fail('sparse_categorical_crossentropy on a masked sequence output is not supported yet');
      return categorical(out, logits, act, oneHot(y, out.shape[1]));
    case 'categorical_crossentropy':
      if (keep !== 1) fail('categorical_crossentropy on a masked sequence output is not supported yet');
      return categorical(out, logits, act, y);
    case 'binary_crossentropy': {
      let l: Node;
      if (act === 'sigmoid') {
        const z = logits;
        l = b.add(b.sub(b.max(z, b.scalarLike(0, z)), b.mul(z, y)), b.log(b.add(b.scalarLike(1, z), b.exp(b.neg(abs(z))))));
      } else {
        const p = clip(out);
        const one = b.scalarLike(1, p);
        l = b.neg(b.add(b.mul(y, b.log(p)), b.mul(b.sub(one, y), b.log(b.sub(one, p)))));
      }
      return b.reduceSum(b.div(l, b.scalarLike(n, l)), rest(l));
    }
    case 'mean_squared_error': {
      const d = b.sub(out, y);
      return b.reduceSum(b.div(b.mul(d, d), b.scalarLike(n, d)), rest(d));
    }
    default:
      return loss satisfies never;
  }
}

function categorical(out: Node, logits: Node, act: ActivationName, yOneHot: Node): Node {
  const logp = act === 'softmax' ? logSoftmax(logits) : b.log(clip(out));
  return b.neg(b.reduceSum(b.mul(yOneHot, logp), rest(logp)));
}

/** Index of the first maximum along the last axis of a rank-2 tensor, as f32 [batch]. */
export function argmaxF32(x: Node): Node {
  const C = x.shape[1];
  const isMax = b.equal(x, b.broadcastTo(b.maxKeep(x, [1]), x.shape));
  const negIdx = b.neg(b.iota(x.shape, 1, 'f32'));
  // max of -index over the maxima = -(smallest index holding the maximum)
  return b.neg(b.reduceMax(b.select(isMax, negIdx, b.scalarLike(-C, negIdx)), [1]));
}

/** Per-sample correctness (1 or 0, f32 [batch]) for the accuracy metric matching the loss. */
export function perSampleAccuracy(loss: LossName, out: Node, y: Node): Node {
  switch (loss) {
    case 'sparse_categorical_crossentropy':
      return b.cast(b.equal(argmaxF32(out), b.cast(y, 'f32')), 'f32');
    case 'categorical_crossentropy':
      if (out.shape.length !== 2) fail(`accuracy with categorical_crossentropy needs a model output of rank 1 per sample, got ${fmtShape(out.shape.slice(1))}`);
      return b.cast(b.equal(argmaxF32(out), argmaxF32(y)), 'f32');
    case 'binary_crossentropy':
    case 'mean_squared_error': {
      // Keras's binary accuracy: a prediction above 0.5 counts as 1.
      const pred = b.cast(b.less(b.scalarLike(0.5, out), out), 'f32');
      const hit = b.cast(b.equal(pred, y), 'f32');
      const n = b.scalarLike(out.shape.slice(1).reduce((a, c) => a * c, 1), hit);
      return b.reduceSum(b.div(hit, n), rest(hit));
    }
    default:
      return loss satisfies never;
  }
}
