/**
 * @file Activations, written as compositions of primitives so they get gradients and fusion for free.
 *
 * Softmax subtracts the row max before `exp` so it never overflows; the losses module recognises a
 * final softmax/sigmoid and works from the logits instead (see losses.ts).
 */
import * as b from '../../ir/builders.ts';
import type { Node } from '../../ir/types.ts';
import { fail } from './errors.ts';

export type ActivationName = 'relu' | 'sigmoid' | 'tanh' | 'softmax' | 'linear';
export const ACTIVATIONS: readonly ActivationName[] = ['relu', 'sigmoid', 'tanh', 'softmax', 'linear'];

export function checkActivation(name: unknown, where: string): ActivationName {
  if (name === undefined || name === null) return 'linear';
  if (typeof name !== 'string' || !ACTIVATIONS.includes(name as ActivationName)) {
    fail(`${where}: unknown activation '${String(name)}'; expected one of ${ACTIVATIONS.join(', ')}`);
  }
  return name as ActivationName;
}

export const relu = (x: Node): Node => b.max(x, b.scalarLike(0, x));
export const sigmoid = (x: Node): Node => b.recip(b.add(b.scalarLike(1, x), b.exp(b.neg(x))));

/** log(softmax(x)) over the last axis, in the stable form x - max - log(sum(exp(x - max))). */
export function logSoftmax(x: Node): Node {
  const last = x.shape.length - 1;
  const shifted = b.sub(x, b.broadcastTo(b.maxKeep(x, [last]), x.shape));
  const lse = b.log(b.sumKeep(b.exp(shifted), [last]));
  return b.sub(shifted, b.broadcastTo(lse, x.shape));
}

export function softmax(x: Node): Node {
  const last = x.shape.length - 1;
  const e = b.exp(b.sub(x, b.broadcastTo(b.maxKeep(x, [last]), x.shape)));
  return b.div(e, b.broadcastTo(b.sumKeep(e, [last]), x.shape));
}

export function activate(name: ActivationName, x: Node): Node {
  switch (name) {
    case 'relu':
      return relu(x);
    case 'sigmoid':
      return sigmoid(x);
    case 'tanh':
      return b.tanh(x);
    case 'softmax':
      return softmax(x);
    case 'linear':
      return x;
    default:
      return name satisfies never;
  }
}
