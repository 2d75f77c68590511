/**
 * @file The activation layers with parameters, Keras 3's `ReLU`, `LeakyReLU`, `ELU` and `Softmax`:
 * thin layers over the activation functions of activations.ts (the string activations of other
 * layers need no layer). Their defaults are the layers' own, which differ from the string forms:
 * `LeakyReLU` slopes 0.3 (the `'leaky_relu'` activation 0.2). Softmax takes an axis counted with the
 * batch axis, as Keras's does, and may not normalize over the batch axis.
 */
import type { Node, Shape } from '../../../ir/types.ts';
import { elu, leakyRelu, reluCapped, softmaxAxis } from '../activations.ts';
import { fail } from '../errors.ts';
import type { Built, CommonOptions, Layer } from '../layer.ts';
import { UnaryLayer } from '../layer.ts';

function finite(v: unknown, dflt: number, name: string, where: string, min = -Infinity): number {
  const x = v ?? dflt;
  if (typeof x !== 'number' || !Number.isFinite(x) || x < min) fail(`${where}: ${name} must be a finite number${min > -Infinity ? ` >= ${min}` : ''}, got ${String(v)}`);
  return x;
}

/** A shape-preserving layer applying `f` to its input. */
class ActivationFnLayer extends UnaryLayer {
  // Acts on each time step alone, so a Keras mask passes through (Keras: supports_masking).
  override readonly supportsMasking = true;
  constructor(
    readonly className: string,
    defaultName: string,
    private readonly f: (x: Node) => Node,
    opts: CommonOptions | undefined,
    private readonly check: (s: Shape) => void = () => undefined,
  ) {
    super(opts, defaultName);
  }
  buildOne(s: Shape): Built {
    this.check(s);
    return { outputShape: s, weights: [] };
  }
  callOne(x: Node): Node {
    return this.f(x);
  }
}

export interface ReLUOptions extends CommonOptions {
  /** Upper bound of the output (none by default). */
  maxValue?: number;
  /** Slope below the threshold (default 0). */
  negativeSlope?: number;
  /** Inputs at or below it give 0 (or the negative slope's line); default 0. */
  threshold?: number;
}

export const ReLU = (opts: ReLUOptions = {}): Layer => {
  const maxValue = opts.maxValue === undefined || opts.maxValue === null ? undefined : finite(opts.maxValue, 0, 'maxValue', 'ReLU', 0);
  const slope = finite(opts.negativeSlope, 0, 'negativeSlope', 'ReLU', 0);
  const threshold = finite(opts.threshold, 0, 'threshold', 'ReLU');
  return new ActivationFnLayer('ReLU', 're_lu', (x) => reluCapped(x, maxValue, slope, threshold), opts);
};

export const LeakyReLU = (opts: CommonOptions & { negativeSlope?: number } = {}): Layer => {
  const slope = finite(opts.negativeSlope, 0.3, 'negativeSlope', 'LeakyReLU', 0);
  return new ActivationFnLayer('LeakyReLU', 'leaky_re_lu', (x) => leakyRelu(x, slope), opts);
};

export const ELU = (opts: CommonOptions & { alpha?: number } = {}): Layer => {
  const alpha = finite(opts.alpha, 1, 'alpha', 'ELU');
  return new ActivationFnLayer('ELU', 'elu', (x) => elu(x, alpha), opts);
};

export const Softmax = (opts: CommonOptions & { axis?: number } = {}): Layer => {
  const axis = opts.axis ?? -1;
  if (!Number.isInteger(axis)) fail(`Softmax: axis must be an integer, got ${String(opts.axis)}`);
  const layer: ActivationFnLayer = new ActivationFnLayer('Softmax', 'softmax', (x) => softmaxAxis(x, axis), opts, (s) => {
    // Keras counts the batch axis: for a per-sample rank r, valid axes are 1..r and -r..-1.
    const r = s.length + 1;
    const a = axis < 0 ? axis + r : axis;
    if (a <= 0 || a >= r) fail(`${layer.label}: axis ${axis} ${a === 0 ? 'is the batch axis' : 'is out of range'} for an input of shape (None, ${s.join(', ')}); valid: 1 to ${r - 1} or -${r - 1} to -1`);
  });
  return layer;
};
