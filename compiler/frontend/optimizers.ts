/**
 * @file Optimizers as graph builders: given a weight, its gradient, its slots (optimizer state) and
 * the step counter, build the updated weight and slots. They become part of the train-step graph, so
 * the update fuses with the gradient computation and runs on the device with no host round trip.
 *
 * Update rules follow Keras: SGD with momentum (v = m*v - lr*g; w += v), Adam with bias correction
 * folded into the step size, RMSprop without momentum. `step` is the number of updates already
 * applied (i32 scalar), so Adam's first update uses t = 1.
 */
import * as b from '../../ir/builders.ts';
import type { Node } from '../../ir/types.ts';
import { fail } from './errors.ts';

export type Optimizer =
  | { readonly kind: 'sgd'; readonly learningRate: number; readonly momentum: number }
  | { readonly kind: 'adam'; readonly learningRate: number; readonly beta1: number; readonly beta2: number; readonly epsilon: number }
  | { readonly kind: 'rmsprop'; readonly learningRate: number; readonly rho: number; readonly epsilon: number };

function lr(v: number | undefined, dflt: number, who: string): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)) fail(`${who}: learningRate must be a positive number, got ${String(v)}`);
  return x;
}

function inRange(v: number | undefined, dflt: number, lo: number, hi: number, name: string, who: string): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !(x >= lo && x < hi)) fail(`${who}: ${name} must be in [${lo}, ${hi}), got ${String(v)}`);
  return x;
}

export const SGD = (o: { learningRate?: number; momentum?: number } = {}): Optimizer => ({
  kind: 'sgd',
  learningRate: lr(o.learningRate, 0.01, 'SGD'),
  momentum: inRange(o.momentum, 0, 0, 1, 'momentum', 'SGD'),
});
export const Adam = (o: { learningRate?: number; beta1?: number; beta2?: number; epsilon?: number } = {}): Optimizer => ({
  kind: 'adam',
  learningRate: lr(o.learningRate, 0.001, 'Adam'),
  beta1: inRange(o.beta1, 0.9, 0, 1, 'beta1', 'Adam'),
  beta2: inRange(o.beta2, 0.999, 0, 1, 'beta2', 'Adam'),
  epsilon: inRange(o.epsilon, 1e-7, Number.MIN_VALUE, Infinity, 'epsilon', 'Adam'),
});
export const RMSprop = (o: { learningRate?: number; rho?: number; epsilon?: number } = {}): Optimizer => ({
  kind: 'rmsprop',
  learningRate: lr(o.learningRate, 0.001, 'RMSprop'),
  rho: inRange(o.rho, 0.9, 0, 1, 'rho', 'RMSprop'),
  epsilon: inRange(o.epsilon, 1e-7, Number.MIN_VALUE, Infinity, 'epsilon', 'RMSprop'),
});

const NAMED: Record<string, () => Optimizer> = { sgd: SGD, adam: Adam, rmsprop: RMSprop, SGD, Adam, RMSprop, RMSProp: RMSprop };

export function checkOptimizer(o: unknown): Optimizer {
  if (typeof o === 'string') {
    const make = NAMED[o];
    if (!make) fail(`compile: unknown optimizer '${o}'; expected one of sgd, adam, rmsprop (or SGD(), Adam(), RMSprop())`);
    return make();
  }
  if (o && typeof o === 'object' && 'kind' in o && ['sgd', 'adam', 'rmsprop'].includes((o as Optimizer).kind)) return o as Optimizer;
  return fail(`compile: optimizer must be a name or an optimizer object, got ${JSON.stringify(o)}`);
}

/** Names of the per-weight state slots, in the order `update` takes and returns them. */
export function slotNames(o: Optimizer): readonly string[] {
  switch (o.kind) {
    case 'sgd':
      return o.momentum ? ['momentum'] : [];
    case 'adam':
      return ['m', 'v'];
    case 'rmsprop':
      return ['ms'];
    default:
      return o satisfies never;
  }
}

const c = (v: number, like: Node) => b.scalarLike(v, like);

export function update(o: Optimizer, w: Node, g: Node, slots: readonly Node[], step: Node): { w: Node; slots: Node[] } {
  switch (o.kind) {
    case 'sgd': {
      if (!o.momentum) return { w: b.sub(w, b.mul(c(o.learningRate, g), g)), slots: [] };
      const v = b.sub(b.mul(c(o.momentum, slots[0]), slots[0]), b.mul(c(o.learningRate, g), g));
      return { w: b.add(w, v), slots: [v] };
    }
    case 'adam': {
      const [m0, v0] = slots;
      const m = b.add(b.mul(c(o.beta1, m0), m0), b.mul(c(1 - o.beta1, g), g));
      const v = b.add(b.mul(c(o.beta2, v0), v0), b.mul(c(1 - o.beta2, g), b.mul(g, g)));
      const t = b.cast(b.add(step, b.constant(1, [], 'i32')), 'f32');
      const one = b.constant(1, [], 'f32');
      const bc1 = b.sub(one, b.pow(b.constant(o.beta1, []), t));
      const bc2 = b.sub(one, b.pow(b.constant(o.beta2, []), t));
      const stepSize = b.div(b.mul(b.constant(o.learningRate, []), b.sqrt(bc2)), bc1);
      const upd = b.div(m, b.add(b.sqrt(v), c(o.epsilon, v)));
      return { w: b.sub(w, b.mul(b.broadcastTo(stepSize, w.shape), upd)), slots: [m, v] };
    }
    case 'rmsprop': {
      const ms = b.add(b.mul(c(o.rho, slots[0]), slots[0]), b.mul(c(1 - o.rho, g), b.mul(g, g)));
      const upd = b.div(g, b.add(b.sqrt(ms), c(o.epsilon, ms)));
      return { w: b.sub(w, b.mul(c(o.learningRate, upd), upd)), slots: [ms] };
    }
    default:
      return o satisfies never;
  }
}
