/**
 * @file The layer base class and the symbolic tensors that layer graphs are made of: `Input`,
 * `SymbolicTensor`, `Layer.apply`, and the context a layer's `call` receives.
 *
 * A layer is configured by its factory, then applied to symbolic tensors (`layer.apply(x)`, or
 * `layer.apply([a, b])` for merge layers). The first application builds it: `build` receives the
 * per-sample input shapes (no batch axis) and returns the output shape and the weights it owns, or
 * throws a DlcError naming the layer and the shapes that do not fit. A later application shares those
 * weights and must see the same input shapes. Applying records a `LayerCall`; a symbolic tensor knows
 * the call that produced it, so `Model({inputs, outputs})` recovers the whole graph by walking back.
 * Nothing here touches the graph IR: `call` maps batched IR nodes and the layer's weight nodes to its
 * pre-activation output when a model builds a step function, and the model applies `activation`, so
 * losses can see a final softmax/sigmoid and work from its logits.
 */
import type { Node, Shape } from '../../ir/types.ts';
import { fmtShape } from '../../ir/types.ts';
import type { ActivationName } from './activations.ts';
import { DlcError, fail } from './errors.ts';
import type { InitializerName } from './initializers.ts';

export interface WeightSpec {
  /** Local name within the layer, Keras's: `kernel`, `bias`, `gamma`, `moving_mean`, ... */
  readonly name: string;
  readonly shape: Shape;
  readonly init: InitializerName;
  /** False for state the train step updates without gradients (BatchNormalization's moving statistics). */
  readonly trainable?: boolean;
}

export interface Built {
  readonly outputShape: Shape;
  readonly weights: readonly WeightSpec[];
  /**
   * A layer of several outputs (a recurrent layer with `returnState`) lists every output's shape
   * (the first is `outputShape`) and a name suffix for each after the first (`h`, `c`): a model output
   * taken from output k is named `<layer>_<suffix>`.
   */
  readonly outputs?: readonly { readonly shape: Shape; readonly suffix: string }[];
}

export interface CallContext {
  readonly training: boolean;
  /** i32 scalar that changes every step; keys the random generator for dropout. */
  readonly key: Node;
  /** Position of the layer in the model, so each dropout layer draws its own numbers. */
  readonly layerIndex: number;
  /**
   * Whether the layer's weights train in this model (its `trainable` flag as of compile). A frozen
   * BatchNormalization runs in inference mode, as in Keras 3.
   */
  readonly layerTrainable: boolean;
  /** f32 [batch]: 1 for real samples, 0 for the padding of a short final batch; null in predict. */
  readonly mask: Node | null;
  /**
   * Record the next value of one of this layer's non-trainable weights (by its index in `weights`).
   * Only called in training; the train step writes the value back after the step.
   */
  readonly update: (weightIndex: number, next: Node) => void;
  /**
   * Keras's masks of the call's inputs (f32 [batch, time], 1 for a real step), null for an input
   * without one: made by `Embedding(maskZero)` and `Masking`, passed on by layers that support
   * masking, used by recurrent layers and by the loss.
   */
  readonly inputMasks: readonly (Node | null)[];
}

export interface CommonOptions {
  /** Per-sample input shape; on the first layer of a Sequential model it stands for an `Input`. */
  inputShape?: readonly number[];
  name?: string;
  /** False freezes the layer's weights (takes effect at the next `compile`, as in Keras). */
  trainable?: boolean;
}

/** One application of a layer to symbolic tensors. */
export interface LayerCall {
  readonly layer: AnyLayer;
  readonly inputs: readonly SymbolicTensor[];
  /** The first output (the only one for most layers). */
  readonly output: SymbolicTensor;
  readonly outputs: readonly SymbolicTensor[];
}

/** What `apply` returns: one tensor, or a list for layers of several outputs. */
export type LayerOutput = SymbolicTensor | SymbolicTensor[];
/** A layer of any output arity, as models hold them. */
export type AnyLayer = Layer<LayerOutput>;

/**
 * A placeholder for a batch of values flowing between layers: per-sample shape and the call that
 * produces it. Made by `Input` and by `Layer.apply`; models turn them into IR nodes.
 */
export class SymbolicTensor {
  /** Set once by the call that produces this tensor. */
  producer!: LayerCall;
  constructor(
    readonly shape: Shape,
    readonly dtype: 'f32',
    /** Which output of its layer call this is. */
    readonly index = 0,
  ) {}
  get name(): string {
    const l = this.producer.layer;
    const base = l.name || l.defaultName;
    return this.index === 0 ? base : `${base}_${l.built?.outputs?.[this.index]?.suffix ?? this.index}`;
  }
}

export abstract class Layer<Out extends LayerOutput = SymbolicTensor> {
  /** Keras class name, e.g. `Conv2D`; the default layer name is its snake_case form. */
  abstract readonly className: string;
  readonly activation: ActivationName = 'linear';
  readonly inputShape: Shape | undefined;
  /** Set by the model (unique within it) unless given in the options. */
  name: string;
  /** False freezes every weight of the layer at the next `compile`. */
  trainable: boolean;
  /** What the first application built; later applications share it. */
  private builtWith: { readonly inputShapes: readonly Shape[]; readonly built: Built } | null = null;
  readonly calls: LayerCall[] = [];

  constructor(opts: CommonOptions | undefined, readonly defaultName: string) {
    this.inputShape = opts?.inputShape ? [...opts.inputShape] : undefined;
    this.name = opts?.name ?? '';
    this.trainable = opts?.trainable ?? true;
    if (opts?.name !== undefined && (typeof opts.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(opts.name))) {
      fail(`${this.constructor.name}: name must start with a letter or _ and hold only letters, digits, _ and -, got ${JSON.stringify(opts.name)}`);
    }
  }

  /**
   * Whether the layer passes its first input's mask on unchanged (Keras's `supports_masking`, for
   * layers that act on each time step alone: Dense, activations, Dropout, normalization). Any other
   * layer drops a mask it receives unless it overrides `computeMask`.
   */
  readonly supportsMasking: boolean = false;

  /** The mask of the call's (first) output given its inputs and their masks. */
  computeMask(_xs: readonly Node[], masks: readonly (Node | null)[]): Node | null {
    return this.supportsMasking ? (masks[0] ?? null) : null;
  }

  /** Per-sample input shapes in, output shape and weights out; throws a DlcError naming the mismatch. */
  abstract build(inputShapes: readonly Shape[]): Built;
  /**
   * The pre-activation output for batched inputs (one node per output for a layer of several);
   * `weights` in the order `build` listed them.
   */
  abstract call(xs: readonly Node[], weights: readonly Node[], ctx: CallContext): Node | readonly Node[];

  /** The weights and output shape, once the layer has been applied. */
  get built(): Built | null {
    return this.builtWith?.built ?? null;
  }

  /** Name for messages: the given or assigned name, or the class while the layer has none yet. */
  get label(): string {
    return this.name ? `${this.className} '${this.name}'` : `${this.className} (unnamed)`;
  }

  /**
   * Apply the layer to one symbolic tensor (or several, for merge layers) and return its output.
   * The first application builds the layer; a later one shares its weights.
   */
  apply(x: SymbolicTensor | readonly SymbolicTensor[]): Out {
    const xs = Array.isArray(x) ? [...(x as readonly SymbolicTensor[])] : [x as SymbolicTensor];
    xs.forEach((t, i) => {
      if (!(t instanceof SymbolicTensor)) {
        fail(`${this.label}: apply() expects symbolic tensors (from Input() or another layer's apply()), got ${t === null ? 'null' : typeof t} at position ${i}`);
      }
    });
    const shapes = xs.map((t) => t.shape);
    if (this.builtWith) {
      const prev = this.builtWith.inputShapes;
      const same = prev.length === shapes.length && prev.every((s, i) => s.length === shapes[i].length && s.every((d, k) => d === shapes[i][k]));
      if (!same) {
        this.error(`is already built for inputs ${prev.map(fmtShape).join(', ')} and shares its weights, so it cannot be applied to ${shapes.map(fmtShape).join(', ')}`);
      }
    } else {
      this.builtWith = { inputShapes: shapes, built: this.build(shapes) };
    }
    const b = this.builtWith.built;
    const outs = (b.outputs ?? [{ shape: b.outputShape, suffix: '' }]).map((o, k) => new SymbolicTensor(o.shape, 'f32', k));
    const call: LayerCall = { layer: this as Layer<LayerOutput>, inputs: xs, output: outs[0], outputs: outs };
    for (const t of outs) t.producer = call;
    this.calls.push(call);
    return (b.outputs ? outs : outs[0]) as Out;
  }

  protected error(msg: string): never {
    throw new DlcError(`${this.label}: ${msg}`);
  }
}

/**
 * A layer of one input: `buildOne`/`callOne` see that input alone; applying it to several tensors is
 * refused with the layer's name.
 */
export abstract class UnaryLayer extends Layer {
  abstract buildOne(inputShape: Shape): Built;
  abstract callOne(x: Node, weights: readonly Node[], ctx: CallContext): Node;
  build(inputShapes: readonly Shape[]): Built {
    if (inputShapes.length !== 1) this.error(`expects one input, got ${inputShapes.length}`);
    return this.buildOne(inputShapes[0]);
  }
  call(xs: readonly Node[], weights: readonly Node[], ctx: CallContext): Node {
    return this.callOne(xs[0], weights, ctx);
  }
}

/** The source of a model input: produces the tensor `Input()` returns; it has no weights. */
export class InputLayer extends Layer {
  readonly className = 'InputLayer';
  constructor(readonly shape: Shape, name: string | undefined) {
    super({ name }, 'input_layer');
  }
  build(): Built {
    return { outputShape: this.shape, weights: [] };
  }
  call(): Node {
    throw new Error(`InputLayer '${this.name}': inputs are fed by the model, never called`);
  }
}

export interface InputOptions {
  /** Per-sample shape (no batch axis), e.g. [28, 28, 1]. */
  shape: readonly number[];
  /** Only 'float32' today (integer inputs come with Embedding). */
  dtype?: 'float32';
  name?: string;
}

/** A model input: a symbolic tensor of per-sample shape `shape` (Keras `keras.Input`). */
export function Input(opts: InputOptions): SymbolicTensor {
  if (!opts || typeof opts !== 'object') fail('Input: expected {shape, dtype?, name?}');
  const { shape } = opts;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    fail(`Input${opts.name ? ` '${opts.name}'` : ''}: shape must be a list of positive integers (per sample, no batch axis), got ${JSON.stringify(shape)}`);
  }
  if (opts.dtype !== undefined && opts.dtype !== 'float32') {
    fail(`Input${opts.name ? ` '${opts.name}'` : ''}: dtype must be 'float32', got ${JSON.stringify(opts.dtype)}`);
  }
  // An input is the output of its InputLayer applied to nothing.
  return new InputLayer([...shape], opts.name).apply([]);
}
