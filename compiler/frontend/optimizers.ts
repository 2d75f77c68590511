/**
 * @file Optimizers and learning-rate schedules as graph builders, with Keras 3's exact update rules
 * and defaults (keras/src/optimizers/*.py). Given the weights, their gradients, their slots
 * (optimizer state) and the step counter, they build the updated weights and slots inside the train
 * step, so the update fuses with the gradient computation and runs on the device.
 *
 * One step, in Keras's order (`BaseOptimizer.apply`):
 *  1. clip the gradients: `clipnorm` per tensor (g·c / max(‖g‖, c)), or `globalClipnorm` over all
 *     of them (g·c / max(‖all‖, c)), or `clipvalue` (clamp to [−v, v]); at most one of the three;
 *  2. decoupled weight decay, when `weightDecay` is set: w ← w − w·wd·lr (AdamW is Adam with
 *     weightDecay 0.004 by default);
 *  3. the optimizer's rule, with lr the learning rate of this step.
 * `t` below is Keras's `iterations + 1`: the number of this update, counting from 1.
 *
 * The learning rate is state: a number becomes the f32 scalar `<optimizer>.learning_rate`, which
 * `model.optimizer.learningRate = x` changes between steps without recompiling; a schedule is
 * computed in the step from the step counter (Keras evaluates it at `iterations`, before the
 * increment, so the first update uses schedule(0)).
 *
 * Slots whose Keras initial value is not zero are stored shifted so that every slot starts at zero
 * (artifacts initialize optimizer state to zeros): Adagrad's accumulator holds acc − initial value,
 * Nadam's running momentum product u holds u − 1.
 */
import * as b from '../../ir/builders.ts';
import type { Node } from '../../ir/types.ts';
import { fail } from './errors.ts';

// ---------------------------------------------------------------- learning-rate schedules

/** Keras's `ExponentialDecay`: initial · rate^(step / decaySteps), the exponent floored when staircase. */
export interface ExponentialDecay {
  readonly kind: 'exponential_decay';
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly decayRate: number;
  readonly staircase: boolean;
}
/** Keras's `PiecewiseConstantDecay`: values[0] while step ≤ boundaries[0], …, the last value after the last boundary. */
export interface PiecewiseConstantDecay {
  readonly kind: 'piecewise_constant_decay';
  readonly boundaries: readonly number[];
  readonly values: readonly number[];
}
/**
 * Keras's `CosineDecay`: with a warmup target, a linear ramp from the initial rate to it over
 * warmupSteps, then from it a cosine decay to alpha·(that rate) over decaySteps; the step is capped
 * at warmupSteps + decaySteps.
 */
export interface CosineDecay {
  readonly kind: 'cosine_decay';
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly alpha: number;
  readonly warmupTarget: number | null;
  readonly warmupSteps: number;
}
/** Keras's `InverseTimeDecay`: initial / (1 + rate · step / decaySteps), floored when staircase. */
export interface InverseTimeDecay {
  readonly kind: 'inverse_time_decay';
  readonly initialLearningRate: number;
  readonly decaySteps: number;
  readonly decayRate: number;
  readonly staircase: boolean;
}
export type Schedule = ExponentialDecay | PiecewiseConstantDecay | CosineDecay | InverseTimeDecay;
export type LearningRate = number | Schedule;

const SCHEDULE_KINDS: readonly Schedule['kind'][] = ['exponential_decay', 'piecewise_constant_decay', 'cosine_decay', 'inverse_time_decay'];
const isSchedule = (v: unknown): v is Schedule => !!v && typeof v === 'object' && SCHEDULE_KINDS.includes((v as Schedule).kind);

function positive(v: unknown, name: string, who: string, dflt?: number): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !(x > 0) || !Number.isFinite(x)) fail(`${who}: ${name} must be a positive number, got ${String(v)}`);
  return x;
}
function nonNegative(v: unknown, name: string, who: string, dflt: number): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !(x >= 0) || !Number.isFinite(x)) fail(`${who}: ${name} must be a non-negative number, got ${String(v)}`);
  return x;
}
function inRange(v: unknown, dflt: number, lo: number, hi: number, name: string, who: string): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !(x >= lo && x < hi)) fail(`${who}: ${name} must be in [${lo}, ${hi}), got ${String(v)}`);
  return x;
}

export const ExponentialDecay = (o: { initialLearningRate: number; decaySteps: number; decayRate: number; staircase?: boolean }): ExponentialDecay => ({
  kind: 'exponential_decay',
  initialLearningRate: positive(o?.initialLearningRate, 'initialLearningRate', 'ExponentialDecay'),
  decaySteps: positive(o?.decaySteps, 'decaySteps', 'ExponentialDecay'),
  decayRate: positive(o?.decayRate, 'decayRate', 'ExponentialDecay'),
  staircase: o?.staircase ?? false,
});
export const InverseTimeDecay = (o: { initialLearningRate: number; decaySteps: number; decayRate: number; staircase?: boolean }): InverseTimeDecay => ({
  kind: 'inverse_time_decay',
  initialLearningRate: positive(o?.initialLearningRate, 'initialLearningRate', 'InverseTimeDecay'),
  decaySteps: positive(o?.decaySteps, 'decaySteps', 'InverseTimeDecay'),
  decayRate: nonNegative(o?.decayRate, 'decayRate', 'InverseTimeDecay', 0),
  staircase: o?.staircase ?? false,
});
export function PiecewiseConstantDecay(o: { boundaries: readonly number[]; values: readonly number[] }): PiecewiseConstantDecay {
  const who = 'PiecewiseConstantDecay';
  const bs = o?.boundaries;
  const vs = o?.values;
  if (!Array.isArray(bs) || bs.length === 0 || !bs.every((x) => typeof x === 'number' && Number.isFinite(x))) fail(`${who}: boundaries must be a non-empty list of numbers, got ${JSON.stringify(bs)}`);
  if (!Array.isArray(vs) || vs.length !== bs.length + 1) fail(`${who}: values must have one more entry than boundaries (${bs.length + 1}), got ${Array.isArray(vs) ? vs.length : JSON.stringify(vs)}`);
  vs.forEach((v, i) => positive(v, `values[${i}]`, who));
  bs.forEach((x, i) => {
    if (i > 0 && !(x > bs[i - 1])) fail(`${who}: boundaries must increase, got ${JSON.stringify(bs)}`);
  });
  return { kind: 'piecewise_constant_decay', boundaries: [...bs], values: [...vs] };
}
export const CosineDecay = (o: { initialLearningRate: number; decaySteps: number; alpha?: number; warmupTarget?: number; warmupSteps?: number }): CosineDecay => ({
  kind: 'cosine_decay',
  initialLearningRate: nonNegative(o?.initialLearningRate, 'initialLearningRate', 'CosineDecay', NaN),
  decaySteps: positive(o?.decaySteps, 'decaySteps', 'CosineDecay'),
  alpha: inRange(o?.alpha, 0, 0, 1.0000001, 'alpha', 'CosineDecay'),
  warmupTarget: o?.warmupTarget === undefined ? null : positive(o.warmupTarget, 'warmupTarget', 'CosineDecay'),
  warmupSteps: nonNegative(o?.warmupSteps, 'warmupSteps', 'CosineDecay', 0),
});

/** The schedule's learning rate at step `s` (f32 scalar, the count of updates already applied). */
function scheduleAt(sch: Schedule, s: Node): Node {
  const k = (v: number) => b.constant(v, [], 'f32');
  const floor = (x: Node) => b.cast(b.cast(x, 'i32'), 'f32'); // x ≥ 0 here, so truncation is floor
  switch (sch.kind) {
    case 'exponential_decay': {
      let p = b.div(s, k(sch.decaySteps));
      if (sch.staircase) p = floor(p);
      return b.mul(k(sch.initialLearningRate), b.pow(k(sch.decayRate), p));
    }
    case 'inverse_time_decay': {
      let p = b.div(s, k(sch.decaySteps));
      if (sch.staircase) p = floor(p);
      return b.div(k(sch.initialLearningRate), b.add(k(1), b.mul(k(sch.decayRate), p)));
    }
    case 'piecewise_constant_decay': {
      const { boundaries: bs, values: vs } = sch;
      const leq = (x: number) => b.sub(k(1), b.cast(b.less(k(x), s), 'f32')); // s ≤ x
      let r = b.mul(leq(bs[0]), k(vs[0]));
      r = b.add(r, b.mul(b.sub(k(1), leq(bs[bs.length - 1])), k(vs[vs.length - 1])));
      for (let i = 1; i < bs.length; i++) r = b.add(r, b.mul(b.mul(b.sub(k(1), leq(bs[i - 1])), leq(bs[i])), k(vs[i])));
      return r;
    }
    case 'cosine_decay': {
      const decay = (step: Node, from: Node) => {
        const cos = cosPi(b.div(step, k(sch.decaySteps)));
        const decayed = b.add(b.mul(k(1 - sch.alpha), b.mul(k(0.5), b.add(k(1), cos))), k(sch.alpha));
        return b.mul(from, decayed);
      };
      if (sch.warmupTarget === null) return decay(b.min(s, k(sch.decaySteps)), k(sch.initialLearningRate));
      const capped = b.min(s, k(sch.decaySteps + sch.warmupSteps));
      const warm = b.add(b.mul(k(sch.warmupTarget - sch.initialLearningRate), b.div(capped, k(sch.warmupSteps || 1))), k(sch.initialLearningRate));
      const dec = decay(b.sub(capped, k(sch.warmupSteps)), k(sch.warmupTarget));
      return b.select(b.less(capped, k(sch.warmupSteps)), warm, dec);
    }
    default:
      return sch satisfies never;
  }
}

/**
 * cos(π·p) for p in [0, 1] from IR arithmetic (the IR has no cos): fold to q = min(p, 1 − p) in
 * [0, 1/2], where cos(π(1 − q)) = −cos(πq), and sum the Taylor series of cos(x), x = πq ≤ π/2, to
 * x^20 (truncation error below 1e-17, far under f32 rounding).
 */
export function cosPi(p: Node): Node {
  const k = (v: number) => b.constant(v, p.shape, 'f32');
  const flip = b.less(k(0.5), p);
  const q = b.select(flip, b.sub(k(1), p), p);
  const x = b.mul(q, k(Math.PI));
  const x2 = b.mul(x, x);
  // Horner on x²: Σ (−1)^n x^(2n) / (2n)!, n = 0..10
  let acc = k(0);
  for (let n = 10; n >= 0; n--) {
    let f = 1;
    for (let i = 2; i <= 2 * n; i++) f *= i;
    acc = b.add(b.mul(acc, x2), k((n % 2 ? -1 : 1) / f));
  }
  return b.select(flip, b.neg(acc), acc);
}

// ---------------------------------------------------------------- optimizers

interface Common {
  readonly learningRate: LearningRate;
  readonly clipnorm: number | null;
  readonly clipvalue: number | null;
  readonly globalClipnorm: number | null;
  readonly weightDecay: number | null;
}

export type Optimizer = Common &
  (
    | { readonly kind: 'sgd'; readonly momentum: number; readonly nesterov: boolean }
    | { readonly kind: 'rmsprop'; readonly rho: number; readonly momentum: number; readonly epsilon: number; readonly centered: boolean }
    | { readonly kind: 'adam'; readonly beta1: number; readonly beta2: number; readonly epsilon: number; readonly amsgrad: boolean }
    | { readonly kind: 'adamw'; readonly beta1: number; readonly beta2: number; readonly epsilon: number; readonly amsgrad: boolean }
    | { readonly kind: 'adagrad'; readonly initialAccumulatorValue: number; readonly epsilon: number }
    | { readonly kind: 'adamax'; readonly beta1: number; readonly beta2: number; readonly epsilon: number }
    | { readonly kind: 'nadam'; readonly beta1: number; readonly beta2: number; readonly epsilon: number }
  );
export type OptimizerKind = Optimizer['kind'];

/** Options every optimizer takes (Keras's base optimizer arguments). */
export interface CommonOptions {
  learningRate?: LearningRate;
  clipnorm?: number;
  clipvalue?: number;
  globalClipnorm?: number;
  weightDecay?: number;
}

const COMMON_KEYS = ['learningRate', 'clipnorm', 'clipvalue', 'globalClipnorm', 'weightDecay'];

/** Check the options a user gave: unknown keys, the learning rate, clipping, weight decay. */
function common(opts: object, who: string, keys: readonly string[], dfltLr: number, dfltWd: number | null = null): Common {
  if (opts === null || typeof opts !== 'object') fail(`${who}: options must be an object, got ${String(opts)}`);
  const o = opts as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!COMMON_KEYS.includes(k) && !keys.includes(k)) fail(`${who}: unknown option '${k}'; expected one of ${[...COMMON_KEYS, ...keys].join(', ')}`);
  }
  const lrv = o.learningRate ?? dfltLr;
  const learningRate = isSchedule(lrv) ? lrv : positive(lrv, 'learningRate', who);
  const opt = (k: string) => (o[k] === undefined || o[k] === null ? null : positive(o[k], k, who));
  const clip = { clipnorm: opt('clipnorm'), clipvalue: opt('clipvalue'), globalClipnorm: opt('globalClipnorm') };
  const set = Object.entries(clip).filter(([, v]) => v !== null);
  if (set.length > 1) fail(`${who}: only one of clipnorm, clipvalue and globalClipnorm can be set, got ${set.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  const weightDecay = o.weightDecay === undefined ? dfltWd : nonNegative(o.weightDecay, 'weightDecay', who, 0);
  return { learningRate, ...clip, weightDecay };
}

type Opts<T> = CommonOptions & T;

export const SGD = (o: Opts<{ momentum?: number; nesterov?: boolean }> = {}): Optimizer => ({
  kind: 'sgd',
  ...common(o, 'SGD', ['momentum', 'nesterov'], 0.01),
  momentum: inRange(o.momentum, 0, 0, 1.0000001, 'momentum', 'SGD'),
  nesterov: o.nesterov ?? false,
});
export const RMSprop = (o: Opts<{ rho?: number; momentum?: number; epsilon?: number; centered?: boolean }> = {}): Optimizer => ({
  kind: 'rmsprop',
  ...common(o, 'RMSprop', ['rho', 'momentum', 'epsilon', 'centered'], 0.001),
  rho: inRange(o.rho, 0.9, 0, 1, 'rho', 'RMSprop'),
  momentum: inRange(o.momentum, 0, 0, 1, 'momentum', 'RMSprop'),
  epsilon: positive(o.epsilon, 'epsilon', 'RMSprop', 1e-7),
  centered: o.centered ?? false,
});
type AdamOpts = Opts<{ beta1?: number; beta2?: number; epsilon?: number; amsgrad?: boolean }>;
const adamLike = (kind: 'adam' | 'adamw', who: string, o: AdamOpts, wd: number | null): Optimizer => ({
  kind,
  ...common(o, who, ['beta1', 'beta2', 'epsilon', 'amsgrad'], 0.001, wd),
  beta1: inRange(o.beta1, 0.9, 0, 1, 'beta1', who),
  beta2: inRange(o.beta2, 0.999, 0, 1, 'beta2', who),
  epsilon: positive(o.epsilon, 'epsilon', who, 1e-7),
  amsgrad: o.amsgrad ?? false,
});
export const Adam = (o: AdamOpts = {}): Optimizer => adamLike('adam', 'Adam', o, null);
export const AdamW = (o: AdamOpts = {}): Optimizer => adamLike('adamw', 'AdamW', o, 0.004);
export const Adagrad = (o: Opts<{ initialAccumulatorValue?: number; epsilon?: number }> = {}): Optimizer => ({
  kind: 'adagrad',
  ...common(o, 'Adagrad', ['initialAccumulatorValue', 'epsilon'], 0.001),
  initialAccumulatorValue: nonNegative(o.initialAccumulatorValue, 'initialAccumulatorValue', 'Adagrad', 0.1),
  epsilon: positive(o.epsilon, 'epsilon', 'Adagrad', 1e-7),
});
export const Adamax = (o: Opts<{ beta1?: number; beta2?: number; epsilon?: number }> = {}): Optimizer => ({
  kind: 'adamax',
  ...common(o, 'Adamax', ['beta1', 'beta2', 'epsilon'], 0.001),
  beta1: inRange(o.beta1, 0.9, 0, 1, 'beta1', 'Adamax'),
  beta2: inRange(o.beta2, 0.999, 0, 1, 'beta2', 'Adamax'),
  epsilon: positive(o.epsilon, 'epsilon', 'Adamax', 1e-7),
});
export const Nadam = (o: Opts<{ beta1?: number; beta2?: number; epsilon?: number }> = {}): Optimizer => ({
  kind: 'nadam',
  ...common(o, 'Nadam', ['beta1', 'beta2', 'epsilon'], 0.001),
  beta1: inRange(o.beta1, 0.9, 0, 1, 'beta1', 'Nadam'),
  beta2: inRange(o.beta2, 0.999, 0, 1, 'beta2', 'Nadam'),
  epsilon: positive(o.epsilon, 'epsilon', 'Nadam', 1e-7),
});

const NAMED: Record<string, () => Optimizer> = {
  sgd: SGD, SGD,
  adam: Adam, Adam,
  adamw: AdamW, AdamW,
  rmsprop: RMSprop, RMSprop, RMSProp: RMSprop,
  adagrad: Adagrad, Adagrad,
  adamax: Adamax, Adamax,
  nadam: Nadam, Nadam,
};
const KINDS: readonly OptimizerKind[] = ['sgd', 'rmsprop', 'adam', 'adamw', 'adagrad', 'adamax', 'nadam'];

export function checkOptimizer(o: unknown): Optimizer {
  if (typeof o === 'string') {
    const make = NAMED[o];
    if (!make) fail(`compile: unknown optimizer '${o}'; expected one of ${KINDS.join(', ')} (or SGD(), Adam(), ...)`);
    return make();
  }
  if (o && typeof o === 'object' && 'kind' in o && KINDS.includes((o as Optimizer).kind)) return o as Optimizer;
  return fail(`compile: optimizer must be a name or an optimizer object, got ${JSON.stringify(o)}`);
}

/** Names of the per-weight state slots, in the order `update` takes and returns them. */
export function slotNames(o: Optimizer): readonly string[] {
  switch (o.kind) {
    case 'sgd':
      return o.momentum ? ['momentum'] : [];
    case 'rmsprop':
      return ['velocity', ...(o.momentum > 0 ? ['momentum'] : []), ...(o.centered ? ['average_gradient'] : [])];
    case 'adam':
    case 'adamw':
      return ['m', 'v', ...(o.amsgrad ? ['v_hat'] : [])];
    case 'adagrad':
      return ['accumulator'];
    case 'adamax':
      return ['m', 'u'];
    case 'nadam':
      return ['m', 'v'];
    default:
      return o satisfies never;
  }
}

/** Optimizer-wide scalar state besides the step counter: a numeric learning rate, Nadam's u − 1. */
export function globalState(o: Optimizer): readonly { readonly name: string; readonly init: number }[] {
  const out: { name: string; init: number }[] = [];
  if (typeof o.learningRate === 'number') out.push({ name: 'learning_rate', init: o.learningRate });
  if (o.kind === 'nadam') out.push({ name: 'u_product_minus_1', init: 0 });
  return out;
}

/** The learning rate of this step: the state scalar, or the schedule at `step`. */
export function learningRateAt(o: Optimizer, state: ReadonlyMap<string, Node>, step: Node): Node {
  if (typeof o.learningRate === 'number') return state.get('learning_rate')!;
  return scheduleAt(o.learningRate, b.cast(step, 'f32'));
}

const sumAll = (x: Node) => b.reduceSum(x, x.shape.map((_, i) => i));
const sc = (v: Node, like: Node) => b.broadcast(v, like.shape, []);
const c = (v: number, like: Node) => b.scalarLike(v, like);

/** Step 1: clip the gradients as Keras does (see the file header). */
export function clipGradients(o: Optimizer, grads: readonly Node[]): Node[] {
  if (o.clipnorm !== null) {
    const cn = o.clipnorm;
    return grads.map((g) => b.mul(g, sc(b.div(b.constant(cn, []), b.max(b.sqrt(sumAll(b.mul(g, g))), b.constant(cn, []))), g)));
  }
  if (o.globalClipnorm !== null && grads.length) {
    const cn = o.globalClipnorm;
    const norm = b.sqrt(grads.map((g) => sumAll(b.mul(g, g))).reduce((a, x) => b.add(a, x)));
    const scale = b.div(b.constant(cn, []), b.max(norm, b.constant(cn, [])));
    return grads.map((g) => b.mul(g, sc(scale, g)));
  }
  if (o.clipvalue !== null) return grads.map((g) => b.max(b.min(g, c(o.clipvalue!, g)), c(-o.clipvalue!, g)));
  return [...grads];
}

/**
 * Steps 2 and 3 for one weight: decoupled weight decay, then the rule. `lr` is this step's learning
 * rate (f32 scalar), `t` this update's number from 1 (f32 scalar), `global` the optimizer-wide
 * state already advanced to this step (`advanceGlobals`).
 */
export function update(o: Optimizer, w0: Node, g: Node, slots: readonly Node[], lr: Node, t: Node, global: ReadonlyMap<string, Node>): { w: Node; slots: Node[] } {
  const lrW = sc(lr, w0);
  const w = o.weightDecay ? b.sub(w0, b.mul(b.mul(w0, c(o.weightDecay, w0)), lrW)) : w0;
  const one = b.constant(1, [], 'f32');
  const pow = (base: number) => b.pow(b.constant(base, []), t);
  switch (o.kind) {
    case 'sgd': {
      // m ← μ·m − lr·g; w ← w + m (Nesterov: w ← w + μ·m − lr·g, with the new m).
      if (!o.momentum) return { w: b.sub(w, b.mul(g, lrW)), slots: [] };
      const m = b.sub(b.mul(slots[0], c(o.momentum, g)), b.mul(g, lrW));
      const step = o.nesterov ? b.sub(b.mul(m, c(o.momentum, m)), b.mul(g, lrW)) : m;
      return { w: b.add(w, step), slots: [m] };
    }
    case 'rmsprop': {
      // v ← ρ·v + (1−ρ)·g²; centered: a ← ρ·a + (1−ρ)·g, denominator v − a² + ε, else v + ε;
      // increment = lr·g / sqrt(denominator) (ε inside the square root); momentum: m ← μ·m + increment.
      let k = 0;
      const v = b.add(b.mul(c(o.rho, g), slots[k++]), b.mul(c(1 - o.rho, g), b.mul(g, g)));
      const mom = o.momentum > 0 ? slots[k++] : null;
      const avg = o.centered ? b.add(b.mul(c(o.rho, g), slots[k++]), b.mul(c(1 - o.rho, g), g)) : null;
      const denom = avg ? b.add(b.sub(v, b.mul(avg, avg)), c(o.epsilon, v)) : b.add(v, c(o.epsilon, v));
      const inc = b.div(b.mul(lrW, g), b.sqrt(denom));
      const m = mom ? b.add(b.mul(c(o.momentum, mom), mom), inc) : null;
      return { w: b.sub(w, m ?? inc), slots: [v, ...(m ? [m] : []), ...(avg ? [avg] : [])] };
    }
    case 'adam':
    case 'adamw': {
      // m ← m + (g − m)(1−β1); v ← v + (g² − v)(1−β2); AMSGrad: v̂ ← max(v̂, v), used for v;
      // w ← w − m·α / (sqrt(v) + ε) with α = lr·sqrt(1 − β2^t) / (1 − β1^t) (ε outside the root:
      // Keras's "epsilon hat"; TF.js adds ε to the bias-corrected sqrt(v̂) instead).
      const m = b.add(slots[0], b.mul(b.sub(g, slots[0]), c(1 - o.beta1, g)));
      const v = b.add(slots[1], b.mul(b.sub(b.mul(g, g), slots[1]), c(1 - o.beta2, g)));
      const vHat = o.amsgrad ? b.max(slots[2], v) : null;
      const alpha = b.div(b.mul(lr, b.sqrt(b.sub(one, pow(o.beta2)))), b.sub(one, pow(o.beta1)));
      const upd = b.div(b.mul(m, sc(alpha, m)), b.add(b.sqrt(vHat ?? v), c(o.epsilon, v)));
      return { w: b.sub(w, upd), slots: [m, v, ...(vHat ? [vHat] : [])] };
    }
    case 'adagrad': {
      // acc ← acc + g² (stored as acc − initial value); w ← w − lr·g / sqrt(acc + ε).
      const shifted = b.add(slots[0], b.mul(g, g));
      const acc = b.add(shifted, c(o.initialAccumulatorValue, g));
      return { w: b.sub(w, b.div(b.mul(lrW, g), b.sqrt(b.add(acc, c(o.epsilon, g))))), slots: [shifted] };
    }
    case 'adamax': {
      // m ← m + (g − m)(1−β1); u ← max(β2·u, |g|); w ← w − lr·m / ((1 − β1^t)(u + ε)).
      const m = b.add(slots[0], b.mul(b.sub(g, slots[0]), c(1 - o.beta1, g)));
      const u = b.max(b.mul(c(o.beta2, g), slots[1]), b.abs(g));
      const denom = b.mul(sc(b.sub(one, pow(o.beta1)), u), b.add(u, c(o.epsilon, u)));
      return { w: b.sub(w, b.div(b.mul(lrW, m), denom)), slots: [m, u] };
    }
    case 'nadam': {
      // μ_t = β1(1 − ½·0.96^t), μ_{t+1} likewise; Π_t = Π_{t−1}·μ_t (advanced by advanceGlobals);
      // m, v as Adam; m̂ = μ_{t+1}·m / (1 − Π_t·μ_{t+1}) + (1 − μ_t)·g / (1 − Π_t);
      // v̂ = v / (1 − β2^t); w ← w − lr·m̂ / (sqrt(v̂) + ε).
      const t1 = b.add(t, one);
      const mu = (s: Node) => b.mul(b.constant(o.beta1, []), b.sub(one, b.mul(b.constant(0.5, []), b.pow(b.constant(0.96, []), s))));
      const muT = mu(t);
      const muT1 = mu(t1);
      const prodT = b.add(global.get('u_product_minus_1')!, one);
      const prodT1 = b.mul(prodT, muT1);
      const m = b.add(slots[0], b.mul(b.sub(g, slots[0]), c(1 - o.beta1, g)));
      const v = b.add(slots[1], b.mul(b.sub(b.mul(g, g), slots[1]), c(1 - o.beta2, g)));
      const mHat = b.add(b.div(b.mul(sc(muT1, m), m), sc(b.sub(one, prodT1), m)), b.div(b.mul(sc(b.sub(one, muT), g), g), sc(b.sub(one, prodT), g)));
      const vHat = b.div(v, sc(b.sub(one, pow(o.beta2)), v));
      return { w: b.sub(w, b.div(b.mul(mHat, lrW), b.add(b.sqrt(vHat), c(o.epsilon, v)))), slots: [m, v] };
    }
    default:
      return o satisfies never;
  }
}

/**
 * The optimizer-wide state at this step, advanced before the per-weight updates as Keras does in
 * `_backend_update_step`: Nadam's running momentum product Π_t = Π_{t−1}·β1(1 − ½·0.96^t) (held as
 * Π − 1); the learning rate is read, never written. Values that do not change come back as given.
 */
export function advanceGlobals(o: Optimizer, state: ReadonlyMap<string, Node>, t: Node): Map<string, Node> {
  const out = new Map(state);
  if (o.kind === 'nadam') {
    const one = b.constant(1, [], 'f32');
    const muT = b.mul(b.constant(o.beta1, []), b.sub(one, b.mul(b.constant(0.5, []), b.pow(b.constant(0.96, []), t))));
    out.set('u_product_minus_1', b.sub(b.mul(b.add(state.get('u_product_minus_1')!, one), muT), one));
  }
  return out;
}
