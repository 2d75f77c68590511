/**
 * @file Keras recurrent layers: SimpleRNN, LSTM, GRU, the Bidirectional and TimeDistributed
 * wrappers, and Embedding.
 *
 * A recurrent layer lowers to one `scan` (ir/ops/scan.ts), so its forward pass is one compiled loop
 * and its backward pass another, whatever the sequence length. The input projection x·W + b of every
 * step is one matmul before the loop (a [T·B, F] × [F, G] product); the loop body is the recurrent
 * matmul h·U and the gates, which fusion turns into a matmul kernel and a few elementwise kernels.
 *
 * Semantics, defaults and weight layouts are Keras 3's (keras/src/layers/rnn/): weights are named
 * `<cell>.kernel` [F, G·units], `<cell>.recurrent_kernel` [units, G·units] and `<cell>.bias`, with
 * the cell named as Keras names it (`simple_rnn_cell`, `lstm_cell`, `gru_cell`), so Keras weights
 * load by name. LSTM gates are ordered i, f, c, o and `unitForgetBias` (default true) starts the
 * forget bias at 1; GRU gates are z, r, h, and with `resetAfter` (Keras 3's default) its bias is
 * [2, 3·units] (input bias, recurrent bias) and the reset gate multiplies h·U_h after the matmul.
 * `goBackwards` runs from the last step to the first and, as Keras does, returns the sequence in
 * that processing order. Inputs are [batch, time, features]; the first carry is zeros.
 *
 * `returnState` makes `apply` return [output, h] ([output, h, c] for an LSTM), and `apply([x, h0,
 * c0])` starts from given states instead of zeros, both as in Keras.
 *
 * Masks follow Keras: `Embedding(maskZero)` and `Masking` make one ([batch, time], 1 for a real
 * step), layers that act per step pass it on, a recurrent layer keeps its states through masked steps
 * (so their output repeats the last real one) and passes the mask on only with returnSequences, and
 * the loss of a masked output averages over the real steps.
 *
 * `dropout` and `recurrentDropout` draw one mask per sequence (inputs [batch, features], state
 * [batch, units]) and reuse it at every step, as Keras 3's cells do; they apply in training only.
 * One mask serves all gates, as in Keras's default (implementation 2) form; Keras switches to a mask
 * per gate when recurrent dropout is on, which changes which units drop together, not the rate.
 * The random numbers cannot match Keras's anyway.
 *
 * Not yet: masks and returnState through Bidirectional. They are refused, not ignored.
 */
import * as b from '../../../ir/builders.ts';
import type { Node, Shape } from '../../../ir/types.ts';
import { fmtShape, numel } from '../../../ir/types.ts';
import type { ActivationName } from '../activations.ts';
import { activate, checkActivation } from '../activations.ts';
import { fail } from '../errors.ts';
import type { InitializerName } from '../initializers.ts';
import { checkInitializer } from '../initializers.ts';
import type { Built, CallContext, CommonOptions, LayerOutput, SymbolicTensor, WeightSpec } from '../layer.ts';
import { Layer, UnaryLayer } from '../layer.ts';

export interface RNNOptions extends CommonOptions {
  /** The output (candidate) activation, default tanh. */
  activation?: ActivationName;
  /** The gates' activation (LSTM, GRU), default sigmoid. */
  recurrentActivation?: ActivationName;
  useBias?: boolean;
  /** Return the whole output sequence [time, units] instead of the last output [units]. */
  returnSequences?: boolean;
  /** Process the sequence from its last step to its first. */
  goBackwards?: boolean;
  kernelInitializer?: string;
  recurrentInitializer?: string;
  biasInitializer?: string;
  /** LSTM: start the forget gate's bias at 1 (Keras's default: true). */
  unitForgetBias?: boolean;
  /** GRU: apply the reset gate after the recurrent matmul (Keras 3's default: true). */
  resetAfter?: boolean;
  /** Also return the final states: `apply` gives [output, h] ([output, h, c] for an LSTM). */
  returnState?: boolean;
  /** Fraction of input features dropped in training (one mask per sequence, as Keras). */
  dropout?: number;
  /** Fraction of state units dropped before the recurrent matmul in training (one mask per sequence). */
  recurrentDropout?: number;
}

type CellKind = 'SimpleRNN' | 'LSTM' | 'GRU';
const CELL: Readonly<Record<CellKind, { cell: string; gates: number; name: string }>> = {
  SimpleRNN: { cell: 'simple_rnn_cell', gates: 1, name: 'simple_rnn' },
  LSTM: { cell: 'lstm_cell', gates: 4, name: 'lstm' },
  GRU: { cell: 'gru_cell', gates: 3, name: 'gru' },
};

export class RNNLayer<Out extends LayerOutput = SymbolicTensor> extends Layer<Out> {
  readonly className: CellKind;
  readonly returnState: boolean;
  /** Fraction of the input features dropped in training, one mask per sequence (Keras). */
  readonly dropout: number;
  /** Fraction of the recurrent state's units dropped before h·U in training, one mask per sequence. */
  readonly recurrentDropout: number;
  readonly units: number;
  readonly cellActivation: ActivationName;
  readonly recurrentActivation: ActivationName;
  readonly useBias: boolean;
  readonly returnSequences: boolean;
  readonly goBackwards: boolean;
  readonly unitForgetBias: boolean;
  readonly resetAfter: boolean;
  readonly kernelInit: InitializerName;
  readonly recurrentInit: InitializerName;
  readonly biasInit: InitializerName;

  constructor(kind: CellKind, units: number, opts: RNNOptions = {}) {
    super(opts, CELL[kind].name);
    this.className = kind;
    const where = opts.name ? `${kind} '${opts.name}'` : kind;
    if (!Number.isInteger(units) || units < 1) fail(`${where}: units must be a positive integer, got ${String(units)}`);
    this.units = units;
    this.returnState = opts.returnState ?? false;
    for (const k of ['dropout', 'recurrentDropout'] as const) {
      const v = opts[k];
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && v < 1)) fail(`${where}: ${k} must be in [0, 1), got ${String(v)}`);
    }
    this.dropout = opts.dropout ?? 0;
    this.recurrentDropout = opts.recurrentDropout ?? 0;
    this.cellActivation = checkActivation(opts.activation ?? 'tanh', `${where} activation`);
    this.recurrentActivation = checkActivation(opts.recurrentActivation ?? 'sigmoid', `${where} recurrentActivation`);
    this.useBias = opts.useBias ?? true;
    this.returnSequences = opts.returnSequences ?? false;
    this.goBackwards = opts.goBackwards ?? false;
    this.unitForgetBias = kind === 'LSTM' && (opts.unitForgetBias ?? true);
    this.resetAfter = kind === 'GRU' && (opts.resetAfter ?? true);
    this.kernelInit = checkInitializer(opts.kernelInitializer ?? 'glorot_uniform', `${where} kernelInitializer`);
    this.recurrentInit = checkInitializer(opts.recurrentInitializer ?? 'orthogonal', `${where} recurrentInitializer`);
    this.biasInit = checkInitializer(opts.biasInitializer ?? 'zeros', `${where} biasInitializer`);
  }

  get gates(): number {
    return CELL[this.className].gates;
  }

  /** The carries: h, and c for an LSTM (Keras's state order). */
  get states(): readonly string[] {
    return this.className === 'LSTM' ? ['h', 'c'] : ['h'];
  }

  /** One input (the sequence), or the sequence and an initial value for each state (`apply([x, h0, c0])`). */
  build(inputShapes: readonly Shape[]): Built {
    const n = this.states.length;
    if (inputShapes.length !== 1 && inputShapes.length !== 1 + n) {
      this.error(`takes the sequence, or the sequence and its ${n} initial state${n > 1 ? 's' : ''} (${this.states.join(', ')}), got ${inputShapes.length} inputs`);
    }
    inputShapes.slice(1).forEach((st, i) => {
      if (st.length !== 1 || st[0] !== this.units) this.error(`initial state ${this.states[i]} must be [${this.units}] per sample, got ${fmtShape(st)}`);
    });
    const built = this.buildOne(inputShapes[0]);
    if (!this.returnState) return built;
    return { ...built, outputs: [{ shape: built.outputShape, suffix: '' }, ...this.states.map((st) => ({ shape: [this.units], suffix: st }))] };
  }

  buildOne(s: Shape): Built {
    if (s.length !== 2) this.error(`expects sequences of shape [time, features] per sample, got ${fmtShape(s)}${s.length === 1 ? ' (a recurrent layer before it needs returnSequences: true)' : ''}`);
    const G = this.gates * this.units;
    const cell = CELL[this.className].cell;
    const weights: WeightSpec[] = [
      { name: `${cell}.kernel`, shape: [s[1], G], init: this.kernelInit },
      { name: `${cell}.recurrent_kernel`, shape: [this.units, G], init: this.recurrentInit },
    ];
    if (this.useBias) {
      const init = this.unitForgetBias && this.biasInit === 'zeros' ? 'lstm_forget_bias' : this.biasInit;
      weights.push({ name: `${cell}.bias`, shape: this.resetAfter ? [2, G] : [G], init });
    }
    return { outputShape: this.returnSequences ? [s[0], this.units] : [this.units], weights };
  }

  call(xs: readonly Node[], weights: readonly Node[], ctx: CallContext): Node | readonly Node[] {
    const r = this.run(xs[0], weights, this.goBackwards, xs.length > 1 ? xs.slice(1) : null, ctx.inputMasks?.[0] ?? null, ctx);
    return this.returnState ? [r.output, ...r.states] : r.output;
  }

  /** A returned sequence keeps the input's mask (Keras); a last output has none. */
  override computeMask(_xs: readonly Node[], masks: readonly (Node | null)[]): Node | null {
    return this.returnSequences ? (masks[0] ?? null) : null;
  }

  /**
   * The layer over x [B, T, F]: its output and final states. `backwards` as goBackwards
   * (Bidirectional flips it for its second copy); `init` the initial states, zeros when null.
   */
  run(x: Node, [W, U, bias]: readonly Node[], backwards: boolean, init: readonly Node[] | null, mask: Node | null = null, ctx: CallContext | null = null): { output: Node; states: Node[] } {
    const [B, T, F] = x.shape;
    const H = this.units;
    const G = this.gates * H;
    // Dropout as Keras 3's cells do it: one inverted-dropout mask per sequence for the inputs [B, F]
    // and one for the recurrent state [B, H], reused at every step; the input mask can therefore
    // apply before the projection of all steps at once.
    const training = !!ctx?.training;
    const dropMask = (rate: number, shape: readonly number[], salt: number) => {
      const u = b.randomUniform(ctx!.key, shape, 104729 * (ctx!.layerIndex + 1) + salt);
      return b.select(b.less(b.constant(rate, shape), u), b.constant(1 / (1 - rate), shape), b.constant(0, shape));
    };
    if (training && this.dropout > 0) x = b.mul(x, b.broadcast(dropMask(this.dropout, [B, F], backwards ? 3 : 1), x.shape, [0, 2]));
    const recMask = training && this.recurrentDropout > 0 ? dropMask(this.recurrentDropout, [B, H], backwards ? 4 : 2) : null;
    const hU = (h: Node, Um: Node) => b.dot(recMask ? b.mul(h, recMask) : h, Um);
    // The input projection of every step at once, time-major: [T, B, G].
    const xt = b.reshape(b.transpose(x, [1, 0, 2]), [T * B, F]);
    let xw = b.dot(xt, W);
    let recBias: Node | null = null;
    if (bias) {
      const inBias = this.resetAfter ? b.reshape(b.slice(bias, [0, 0], [1, G]), [G]) : bias;
      xw = b.add(xw, b.broadcastTo(inBias, xw.shape));
      if (this.resetAfter) recBias = b.broadcastTo(b.reshape(b.slice(bias, [1, 0], [2, G]), [G]), [B, G]);
    }
    const seq = b.reshape(xw, [T, B, G]);
    const part = (z: Node, k: number) => b.slice(z, [0, k * H], [B, (k + 1) * H]);
    const act = (z: Node) => activate(this.cellActivation, z);
    const gate = (z: Node) => activate(this.recurrentActivation, z);
    const zeros = b.constant(0, [B, H]);
    const one = b.constant(1, [B, H]);
    const kind = this.className;
    const cell = (c: readonly Node[], xz: Node): { carry: Node[]; ys: Node[] } => {
      const h = c[0];
      if (kind === 'SimpleRNN') {
        const h2 = act(b.add(xz, hU(h, U)));
        return { carry: [h2], ys: [h2] };
      }
      if (kind === 'LSTM') {
        const z = b.add(xz, hU(h, U));
        const c2 = b.add(b.mul(gate(part(z, 1)), c[1]), b.mul(gate(part(z, 0)), act(part(z, 2))));
        const h2 = b.mul(gate(part(z, 3)), act(c2));
        return { carry: [h2, c2], ys: [h2] };
      }
      // GRU
      let hh: Node;
      let zr: Node;
      if (this.resetAfter) {
        let inner = hU(h, U);
        if (recBias) inner = b.add(inner, recBias);
        zr = b.add(b.slice(xz, [0, 0], [B, 2 * H]), b.slice(inner, [0, 0], [B, 2 * H]));
        const r = gate(part(zr, 1));
        hh = act(b.add(part(xz, 2), b.mul(r, part(inner, 2))));
      } else {
        const Uzr = b.slice(U, [0, 0], [H, 2 * H]);
        const Uh = b.slice(U, [0, 2 * H], [H, 3 * H]);
        zr = b.add(b.slice(xz, [0, 0], [B, 2 * H]), hU(h, Uzr));
        const r = gate(part(zr, 1));
        hh = act(b.add(part(xz, 2), hU(b.mul(r, h), Uh)));
      }
      const zg = gate(part(zr, 0));
      const h2 = b.add(b.mul(zg, h), b.mul(b.sub(one, zg), hh));
      return { carry: [h2], ys: [h2] };
    };
    // A masked step leaves every state as it was, so its output repeats the last real step's
    // (Keras); m·new + (1−m)·old is exact for m in {0, 1} and differentiates as a select.
    const step = (c: readonly Node[], [xz, mt]: readonly Node[]) => {
      const r = cell(c, xz);
      if (!mt) return r;
      const m = b.broadcast(mt, [B, H], [0]);
      const keep = b.sub(one, m);
      const carry = r.carry.map((n, k) => b.add(b.mul(m, n), b.mul(keep, c[k])));
      return { carry, ys: [carry[0]] };
    };
    const xsIn = mask ? [seq, b.transpose(mask, [1, 0])] : [seq];
    const start = init ?? this.states.map(() => zeros);
    const r = b.scan(step, start, xsIn, { reverse: backwards, name: `${this.name || CELL[kind].name}_cell`, carryNames: [...this.states], xsNames: mask ? ['xw', 'mask'] : ['xw'] });
    if (!this.returnSequences) return { output: r.carry[0], states: r.carry };
    // ys are stacked by input position; Keras returns a backwards layer's outputs in processing order.
    const ys = backwards ? b.reverse(r.ys[0], [0]) : r.ys[0];
    return { output: b.transpose(ys, [1, 0, 2]), states: r.carry };
  }
}

type WithState = RNNOptions & { returnState: true };
/** With `returnState: true`, `apply` returns [output, h] (LSTM: [output, h, c]), as Keras does. */
export function SimpleRNN(units: number, opts: WithState): RNNLayer<SymbolicTensor[]>;
export function SimpleRNN(units: number, opts?: RNNOptions): RNNLayer;
export function SimpleRNN(units: number, opts?: RNNOptions): RNNLayer<LayerOutput> {
  return new RNNLayer('SimpleRNN', units, opts);
}
export function LSTM(units: number, opts: WithState): RNNLayer<SymbolicTensor[]>;
export function LSTM(units: number, opts?: RNNOptions): RNNLayer;
export function LSTM(units: number, opts?: RNNOptions): RNNLayer<LayerOutput> {
  return new RNNLayer('LSTM', units, opts);
}
export function GRU(units: number, opts: WithState): RNNLayer<SymbolicTensor[]>;
export function GRU(units: number, opts?: RNNOptions): RNNLayer;
export function GRU(units: number, opts?: RNNOptions): RNNLayer<LayerOutput> {
  return new RNNLayer('GRU', units, opts);
}

// ---------------------------------------------------------------- Bidirectional

export type MergeMode = 'concat' | 'sum' | 'mul' | 'ave';
export interface BidirectionalOptions extends CommonOptions {
  mergeMode?: MergeMode;
}

class BidirectionalLayer extends UnaryLayer {
  readonly className = 'Bidirectional';
  readonly mergeMode: MergeMode;
  constructor(readonly inner: RNNLayer<LayerOutput>, opts: BidirectionalOptions = {}) {
    super(opts, 'bidirectional');
    const where = `Bidirectional${opts.name ? ` '${opts.name}'` : ''}`;
    if (!(inner instanceof RNNLayer)) fail(`${where}: wraps a recurrent layer (SimpleRNN, LSTM, GRU), got ${(inner as { label?: string })?.label ?? typeof inner}`);
    if (inner.returnState) fail(`${where}: a wrapped layer with returnState is not supported yet`);
    const m = opts.mergeMode ?? 'concat';
    if (!['concat', 'sum', 'mul', 'ave'].includes(m)) fail(`Bidirectional: mergeMode must be concat, sum, mul or ave, got ${String(m)}`);
    this.mergeMode = m;
  }
  private get innerName(): string {
    return this.inner.name || CELL[this.inner.className].name;
  }
  buildOne(s: Shape): Built {
    const one = this.inner.buildOne(s);
    const w = (dir: string) => one.weights.map((ws) => ({ ...ws, name: `${dir}_${this.innerName}.${ws.name}` }));
    const out = one.outputShape;
    const outputShape = this.mergeMode === 'concat' ? [...out.slice(0, -1), 2 * out[out.length - 1]] : out;
    return { outputShape, weights: [...w('forward'), ...w('backward')] };
  }
  callOne(x: Node, weights: readonly Node[], ctx: CallContext): Node {
    if (ctx.inputMasks?.[0]) this.error('masked input is not supported yet (Keras zeroes masked steps of both directions; not implemented)');
    const n = weights.length / 2;
    const fwd = this.inner.run(x, weights.slice(0, n), this.inner.goBackwards, null).output;
    let bwd = this.inner.run(x, weights.slice(n), !this.inner.goBackwards, null).output;
    // Keras aligns the backward sequence with the input steps before merging.
    if (this.inner.returnSequences) bwd = b.reverse(bwd, [1]);
    switch (this.mergeMode) {
      case 'concat':
        return b.concat([fwd, bwd], fwd.shape.length - 1);
      case 'sum':
        return b.add(fwd, bwd);
      case 'mul':
        return b.mul(fwd, bwd);
      case 'ave':
        return b.mul(b.add(fwd, bwd), b.constant(0.5, fwd.shape));
    }
  }
}

export const Bidirectional = (layer: RNNLayer<LayerOutput>, opts?: BidirectionalOptions): UnaryLayer => new BidirectionalLayer(layer, opts);

// ---------------------------------------------------------------- TimeDistributed

class TimeDistributedLayer extends UnaryLayer {
  readonly className = 'TimeDistributed';
  override readonly supportsMasking = true;
  readonly inner: UnaryLayer;
  constructor(inner: Layer, opts: CommonOptions = {}) {
    super(opts, 'time_distributed');
    if (!(inner instanceof UnaryLayer)) fail(`TimeDistributed: wraps a one-input layer, got ${inner instanceof Layer ? inner.label : typeof inner}`);
    this.inner = inner;
  }
  buildOne(s: Shape): Built {
    if (s.length < 2) this.error(`expects [time, ...] per sample, got ${fmtShape(s)}`);
    const one = this.inner.buildOne(s.slice(1));
    const name = this.inner.name || this.inner.defaultName;
    return { outputShape: [s[0], ...one.outputShape], weights: one.weights.map((w) => ({ ...w, name: `${name}.${w.name}` })) };
  }
  callOne(x: Node, weights: readonly Node[], ctx: CallContext): Node {
    const [B, T] = x.shape;
    const flat = b.reshape(x, [B * T, ...x.shape.slice(2)]);
    const y = activate(this.inner.activation, this.inner.callOne(flat, weights, ctx));
    return b.reshape(y, [B, T, ...y.shape.slice(1)]);
  }
}

export const TimeDistributed = (layer: Layer, opts?: CommonOptions): UnaryLayer => new TimeDistributedLayer(layer, opts);

// ---------------------------------------------------------------- Embedding

export interface EmbeddingOptions extends CommonOptions {
  embeddingsInitializer?: string;
  /** Token 0 is padding: the layers after it see a mask (recurrent layers skip those steps). */
  maskZero?: boolean;
}

export class EmbeddingLayer extends UnaryLayer {
  readonly className = 'Embedding';
  readonly init: InitializerName;
  readonly maskZero: boolean;
  constructor(readonly inputDim: number, readonly outputDim: number, opts: EmbeddingOptions = {}) {
    super(opts, 'embedding');
    const where = opts.name ? `Embedding '${opts.name}'` : 'Embedding';
    for (const [k, v] of [['inputDim', inputDim], ['outputDim', outputDim]] as const) {
      if (!Number.isInteger(v) || v < 1) fail(`${where}: ${k} must be a positive integer, got ${String(v)}`);
    }
    this.maskZero = opts.maskZero ?? false;
    this.init = checkInitializer(opts.embeddingsInitializer ?? 'random_uniform', `${where} embeddingsInitializer`);
  }
  buildOne(s: Shape): Built {
    return { outputShape: [...s, this.outputDim], weights: [{ name: 'embeddings', shape: [this.inputDim, this.outputDim], init: this.init }] };
  }
  /**
   * The lookup as a one-hot matmul: token ids (carried as f32, as every model input is) compared with
   * iota over the vocabulary, times the table. Its gradient is the transposed product, a scatter-add
   * into the table rows. Costs O(vocabulary) per token, which suits small vocabularies.
   */
  /** With maskZero, token 0 is padding: f32 [batch, time], 0 where the token is 0. */
  override computeMask(xs: readonly Node[]): Node | null {
    if (!this.maskZero) return null;
    const x = xs[0];
    return b.sub(b.constant(1, x.shape), b.cast(b.equal(x, b.constant(0, x.shape)), 'f32'));
  }
  callOne(x: Node, [E]: readonly Node[]): Node {
    const rows = numel(x.shape);
    const ids = b.broadcast(b.reshape(b.cast(x, 'i32'), [rows]), [rows, this.inputDim], [0]);
    const onehot = b.cast(b.equal(ids, b.iota([rows, this.inputDim], 1)), 'f32');
    return b.reshape(b.dot(onehot, E), [...x.shape, this.outputDim]);
  }
}

export const Embedding = (inputDim: number, outputDim: number, opts?: EmbeddingOptions): UnaryLayer => new EmbeddingLayer(inputDim, outputDim, opts);

// ---------------------------------------------------------------- Masking

export interface MaskingOptions extends CommonOptions {
  /** A time step whose features all equal this value is masked (default 0). */
  maskValue?: number;
}

class MaskingLayer extends UnaryLayer {
  readonly className = 'Masking';
  readonly maskValue: number;
  constructor(opts: MaskingOptions = {}) {
    super(opts, 'masking');
    this.maskValue = opts.maskValue ?? 0;
    if (typeof this.maskValue !== 'number' || !Number.isFinite(this.maskValue)) fail(`Masking: maskValue must be a finite number, got ${String(opts.maskValue)}`);
  }
  buildOne(s: Shape): Built {
    if (s.length < 2) this.error(`expects [time, features] per sample, got ${fmtShape(s)}`);
    return { outputShape: s, weights: [] };
  }
  /** f32 [batch, time]: 1 where some feature of the step differs from maskValue. */
  private stepMask(x: Node): Node {
    const differs = b.sub(b.constant(1, x.shape), b.cast(b.equal(x, b.constant(this.maskValue, x.shape)), 'f32'));
    return b.reduceMax(differs, x.shape.map((_, i) => i).slice(2));
  }
  /** Masked steps become zeros, as in Keras. */
  callOne(x: Node): Node {
    return b.mul(x, b.broadcast(this.stepMask(x), x.shape, [0, 1]));
  }
  override computeMask(xs: readonly Node[]): Node | null {
    return this.stepMask(xs[0]);
  }
}

export const Masking = (opts?: MaskingOptions): UnaryLayer => new MaskingLayer(opts);
