/**
 * @file The Keras-like model: a graph of layers from inputs to outputs, its weights and optimizer
 * state, `compile`, `summary`, and the three step functions it lowers to graph IR.
 *
 * A model is built when it is constructed: `Model({inputs, outputs})` walks back from the outputs
 * through the layer calls that made them, so an output not reachable from the inputs, an unused
 * input or two layers with one name fail at once, naming the layer. `Sequential` is the same class
 * built from a chain. The persistent state (weights trainable or not, optimizer slots for trainable
 * weights only, the step counter) lives here as host arrays between runs; backends copy it in and
 * hand it back. Step functions are pure graphs: the train step takes the state as inputs and returns
 * its next value as outputs, paired up by `StepFunction.updates`; non-trainable weights (batch-norm
 * statistics) get their next value from the layer, trainable ones from the optimizer.
 */
import * as b from '../../ir/builders.ts';
import { makeFunc } from '../../ir/graph.ts';
import { input } from '../../ir/node.ts';
import type { DType, Func, InputNode, Node, Shape } from '../../ir/types.ts';
import { fmtShape, numel } from '../../ir/types.ts';
import { activate } from './activations.ts';
import { grad } from '../../ir/autodiff.ts';
import { DlcError, fail } from './errors.ts';
import { initialize } from './initializers.ts';
import type { AnyLayer, CallContext, Layer, LayerCall, WeightSpec } from './layer.ts';
import { Input, InputLayer, SymbolicTensor } from './layer.ts';
import type { Loss, LossName, LossSpec, MetricSpec, ResolvedMetric } from './losses.ts';
import { batchLoss, checkLoss, checkLossFits, checkMetric, isLossObject, isMetricObject, labelType, perSampleLoss, perSampleMetric, resolveMetric } from './losses.ts';
import type { Optimizer } from './optimizers.ts';
import { advanceGlobals, checkOptimizer, clipGradients, globalState, learningRateAt, slotNames, update } from './optimizers.ts';
import type { Tensor } from './tensor.ts';
import { tensor } from './tensor.ts';

/** One value per model output: a single value for all, a list in output order, or by output name. */
export type PerOutput<T> = T | readonly T[] | Readonly<Record<string, T>>;

export interface CompileConfig {
  optimizer: string | Optimizer;
  /**
   * One loss for every output, a list in output order, or an object keyed by output name. A loss is
   * a name (`'huber'`, `'mse'`, ...) or a loss object with options (`Huber({ delta: 0.5 })`).
   */
  loss: PerOutput<LossSpec>;
  /** Weights of the outputs' losses in the total (default 1 each). */
  lossWeights?: readonly number[] | Readonly<Record<string, number>>;
  /**
   * Metrics for every output (a list), or per output (a list of lists, or keyed by output name). A
   * metric is a name (logged under that name, as Keras does) or a metric object
   * (`TopKCategoricalAccuracy({ k: 3 })`, logged under its `name`).
   */
  metrics?: readonly MetricSpec[] | readonly (readonly MetricSpec[])[] | Readonly<Record<string, readonly MetricSpec[]>>;
  /**
   * Metrics weighted by `fit`'s `sampleWeight`/`classWeight` (Σ v·w / Σ w), given like `metrics`;
   * logged under their name, or `weighted_<name>` where a plain metric has that name, as Keras
   * does. Plain `metrics` ignore sample weights.
   */
  weightedMetrics?: readonly MetricSpec[] | readonly (readonly MetricSpec[])[] | Readonly<Record<string, readonly MetricSpec[]>>;
}

export interface Compiled {
  readonly optimizer: Optimizer;
  /** Loss of each output, in output order, with its options. */
  readonly losses: readonly Loss[];
  readonly lossWeights: readonly number[];
  /** Metrics of each output, in output order (`accuracy` resolved to the kind that fits the output). */
  readonly metrics: readonly (readonly ResolvedMetric[])[];
  /** Metrics weighted by sample weights, per output (named `weighted_<name>` where a plain metric has the name). */
  readonly weightedMetrics: readonly (readonly ResolvedMetric[])[];
  /** Names of the weights the optimizer updates: trainable weights of trainable layers, as of compile. */
  readonly trainable: ReadonlySet<string>;
  /** Names of the layers whose `trainable` flag was set at compile (a frozen BatchNormalization runs in inference mode). */
  readonly trainableLayers: ReadonlySet<string>;
  /** The first output's loss name, kept for callers of one-output models (`losses` has the options). */
  readonly loss: LossName;
}

export interface WeightInfo {
  /** `layer.local`, e.g. `conv2d_1.kernel`: the name in dumps, artifacts and safetensors files. */
  readonly name: string;
  readonly layer: string;
  readonly shape: Shape;
  readonly init: WeightSpec['init'];
  /** False for state updated without gradients (moving statistics); the layer's flag is separate. */
  readonly trainable: boolean;
}

/** One persistent buffer: a weight, an optimizer slot, optimizer-wide state or the step counter. */
export interface StateInfo {
  readonly name: string;
  readonly dtype: 'f32' | 'i32';
  readonly shape: Shape;
  /** The value every element starts at when not a weight (default 0; the learning rate's is its value). */
  readonly init?: number;
}

export type StepKind = 'train' | 'eval' | 'predict';

/** A step function with the roles of its inputs and outputs. */
export interface StepFunction {
  readonly kind: StepKind;
  readonly batch: number;
  readonly func: Func;
  /** Input index of each model input's batch, in model input order. */
  readonly xs: readonly number[];
  /** Input index of each output's labels, in model output order (train and eval only). */
  readonly ys: readonly number[];
  readonly mask: number | null;
  /**
   * Input index of the per-sample loss weights (f32 [batch], train and eval only): Keras's
   * `sample_weight`, ones when none are given. The loss is Σ loss·w·mask / Σ mask (the number of
   * real samples, not Σ w, as Keras's default reduction); weighted metrics are Σ v·w·mask / Σ w·mask.
   */
  readonly weight: number | null;
  /** Input index of each persistent state buffer, by state name. */
  readonly state: ReadonlyMap<string, number>;
  /** Output `output` is the next value of input `input` (train step only). */
  readonly updates: readonly { readonly output: number; readonly input: number }[];
  /**
   * Results by name: scalars (`loss`, `accuracy`, `<output>_loss`, ...) for train and eval; for
   * predict each model output, named `output` in a one-output model and by output name otherwise.
   */
  readonly results: ReadonlyMap<string, number>;
  /** Output index of each model output's prediction, in output order (predict only). */
  readonly predictions: readonly number[];
}

export interface ModelOptions {
  /** Seed for weight initialization (default 0): the same seed gives the same weights. */
  seed?: number;
  name?: string;
}

export interface ModelConfig extends ModelOptions {
  inputs: SymbolicTensor | readonly SymbolicTensor[];
  outputs: SymbolicTensor | readonly SymbolicTensor[];
}

interface Lowered {
  readonly out: Node;
  /** The producing layer's pre-activation, the logits stable losses start from. */
  readonly logits: Node;
  readonly act: Layer['activation'];
  /** Keras's mask of this value (f32 [batch, time]), or null. */
  readonly mask: Node | null;
}

const list = <T>(v: T | readonly T[]): T[] => (Array.isArray(v) ? [...(v as readonly T[])] : [v as T]);

/** Keras naming: the first conv2d is `conv2d`, the next `conv2d_1`, and so on, skipping names in use. */
function assignNames(layers: readonly AnyLayer[], where: string): void {
  const used = new Set<string>();
  for (const l of layers) {
    if (!l.name) continue;
    if (used.has(l.name)) fail(`${where}: two layers are named '${l.name}'; layer names must be unique within a model`);
    used.add(l.name);
  }
  for (const l of layers) {
    if (l.name) continue;
    let k = 0;
    while (used.has(k === 0 ? l.defaultName : `${l.defaultName}_${k}`)) k++;
    l.name = k === 0 ? l.defaultName : `${l.defaultName}_${k}`;
    used.add(l.name);
  }
}

/** Turn per-output settings into a list in output order, naming what is wrong. */
function perOutput<T>(v: PerOutput<T> | undefined, names: readonly string[], what: string, isValue: (x: unknown) => x is T, dflt?: T): T[] {
  if (v === undefined) {
    if (dflt === undefined) fail(`compile: ${what} is required`);
    return names.map(() => dflt);
  }
  if (isValue(v)) return names.map(() => v);
  if (Array.isArray(v)) {
    if (v.length !== names.length) fail(`compile: ${what} has ${v.length} entries, the model has ${names.length} outputs (${names.join(', ')})`);
    return v.map((x, i) => (isValue(x) ? x : fail(`compile: ${what}[${i}] (output '${names[i]}') is ${JSON.stringify(x)}`)));
  }
  if (v && typeof v === 'object') {
    const o = v as Record<string, T>;
    for (const k of Object.keys(o)) if (!names.includes(k)) fail(`compile: ${what} names output '${k}', the model's outputs are ${names.join(', ')}`);
    return names.map((n) => {
      if (o[n] !== undefined) return isValue(o[n]) ? o[n] : fail(`compile: ${what}.${n} is ${JSON.stringify(o[n])}`);
      if (dflt === undefined) fail(`compile: ${what} has no entry for output '${n}'`);
      return dflt;
    });
  }
  return fail(`compile: ${what} must be one value, a list per output or an object keyed by output name, got ${JSON.stringify(v)}`);
}

export class GraphModel {
  readonly name: string;
  readonly seed: number;
  /** A chain built by `Sequential`, or any graph of layers. */
  readonly kind: 'sequential' | 'functional';
  readonly inputs: readonly SymbolicTensor[];
  readonly outputs: readonly SymbolicTensor[];
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Layers in graph order (functional models list their InputLayers too, as Keras does). */
  readonly layers: readonly AnyLayer[];
  /** Per-sample output shape of each layer in `layers` (its first application). */
  readonly layerShapes: readonly Shape[];
  /** Every weight, trainable or not, in layer order. */
  readonly weightInfo: readonly WeightInfo[];
  /** Layer calls in evaluation order (inputs excluded). */
  private readonly order: readonly LayerCall[];
  /** Index into weightInfo of each layer's first weight, and how many it has. */
  private readonly layerWeights: ReadonlyMap<AnyLayer, readonly [number, number]>;
  compiled: Compiled | null = null;
  /** Persistent state by name: weights, then (after compile) optimizer slots and `step`. */
  readonly state = new Map<string, Float32Array | Int32Array>();
  /** Bumped on every change of the state layout or host-side values; engines use it to resync. */
  version = 0;

  constructor(cfg: ModelConfig, kind: 'sequential' | 'functional' = 'functional') {
    if (!cfg || typeof cfg !== 'object') fail('Model: expected {inputs, outputs, name?}');
    this.kind = kind;
    this.name = cfg.name ?? (kind === 'sequential' ? 'sequential' : 'functional');
    this.seed = cfg.seed ?? 0;
    const where = `Model '${this.name}'`;
    const inputs = list(cfg.inputs);
    const outputs = list(cfg.outputs);
    if (inputs.length === 0) fail(`${where}: inputs is empty; pass the tensors made by Input()`);
    if (outputs.length === 0) fail(`${where}: outputs is empty; pass the tensors the last layers returned`);
    inputs.forEach((t, i) => {
      if (!(t instanceof SymbolicTensor) || !(t.producer.layer instanceof InputLayer)) fail(`${where}: inputs[${i}] must be a tensor made by Input(), got ${t instanceof SymbolicTensor ? `the output of ${t.producer.layer.label}` : typeof t}`);
    });
    outputs.forEach((t, i) => {
      if (!(t instanceof SymbolicTensor)) fail(`${where}: outputs[${i}] must be a symbolic tensor (a layer's apply() result), got ${typeof t}`);
    });
    if (new Set(inputs).size !== inputs.length) fail(`${where}: the same Input is listed twice in inputs`);

    // Walk back from the outputs: depth-first, inputs of a call in order, so the order is stable.
    const order: LayerCall[] = [];
    const seen = new Set<LayerCall>();
    const reached = new Set<SymbolicTensor>();
    const visit = (t: SymbolicTensor, from: string) => {
      const c = t.producer;
      if (seen.has(c)) return;
      seen.add(c);
      if (c.layer instanceof InputLayer) {
        if (!inputs.includes(t)) {
          fail(`${where}: ${from} depends on Input ${c.layer.name ? `'${c.layer.name}' ` : ''}of shape ${fmtShape(t.shape)}, which is not among the model's inputs (a tensor of another model, or a missing input)`);
        }
        reached.add(t);
        return;
      }
      for (const x of c.inputs) visit(x, from);
      order.push(c);
    };
    outputs.forEach((t, i) => visit(t, `output ${i} (${t.producer.layer.label})`));
    inputs.forEach((t, i) => {
      if (!reached.has(t)) fail(`${where}: input ${i} (${t.producer.layer.label}, shape ${fmtShape(t.shape)}) is not used by any output`);
    });
    this.order = order;
    this.inputs = inputs;
    this.outputs = outputs;

    const layers: AnyLayer[] = kind === 'sequential' ? [] : inputs.map((t) => t.producer.layer);
    for (const c of order) if (!layers.includes(c.layer)) layers.push(c.layer);
    assignNames(kind === 'sequential' ? layers : [...inputs.map((t) => t.producer.layer), ...layers.filter((l) => !(l instanceof InputLayer))], where);
    this.layers = layers;
    this.layerShapes = layers.map((l) => (l instanceof InputLayer ? l.shape : l.calls[0].output.shape));
    this.inputNames = inputs.map((t) => t.producer.layer.name);
    // An output is named by its layer, and a layer's second and later outputs by a suffix (`lstm_h`).
    this.outputNames = outputs.map((t) => t.name);
    if (new Set(this.outputNames).size !== outputs.length) fail(`${where}: two outputs are named '${this.outputNames.find((n, i) => this.outputNames.indexOf(n) !== i)}' (the same tensor twice, or a layer named like another's output); each output needs its own name`);

    const infos: WeightInfo[] = [];
    const lw = new Map<AnyLayer, readonly [number, number]>();
    for (const l of layers) {
      const ws = l.built?.weights ?? [];
      lw.set(l, [infos.length, ws.length]);
      for (const w of ws) infos.push({ name: `${l.name}.${w.name}`, layer: l.name, shape: w.shape, init: w.init, trainable: w.trainable !== false });
    }
    this.weightInfo = infos;
    this.layerWeights = lw;
    infos.forEach((w, i) => this.state.set(w.name, initialize(w.init, w.shape, this.seed, i)));
  }

  /** The one input's per-sample shape; refused for a model of several inputs. */
  get inputShape(): Shape {
    if (this.inputs.length !== 1) fail(`model '${this.name}' has ${this.inputs.length} inputs (${this.inputNames.join(', ')}); use inputShapes`);
    return this.inputs[0].shape;
  }

  /** The one output's per-sample shape; refused for a model of several outputs. */
  get outputShape(): Shape {
    if (this.outputs.length !== 1) fail(`model '${this.name}' has ${this.outputs.length} outputs (${this.outputNames.join(', ')}); use outputShapes`);
    return this.outputs[0].shape;
  }

  get inputShapes(): Shape[] {
    return this.inputs.map((t) => t.shape);
  }

  get outputShapes(): Shape[] {
    return this.outputs.map((t) => t.shape);
  }

  /** The layer called `name` (Keras `get_layer`). */
  getLayer(name: string): AnyLayer {
    const l = this.layers.find((x) => x.name === name);
    if (!l) fail(`getLayer: model '${this.name}' has no layer '${name}'; its layers are ${this.layers.map((x) => x.name).join(', ')}`);
    return l;
  }

  compile(cfg: CompileConfig): void {
    if (!cfg || typeof cfg !== 'object') fail('compile: expected {optimizer, loss, lossWeights?, metrics?, weightedMetrics?}');
    const optimizer = checkOptimizer(cfg.optimizer);
    const names = this.outputNames;
    const isStr = (x: unknown): x is string => typeof x === 'string';
    // Where a message happens: the argument, and the output when there are several.
    const at = (i: number) => (names.length > 1 ? `compile: output '${names[i]}'` : 'compile');
    const isLoss = (x: unknown): x is LossSpec => isStr(x) || isLossObject(x);
    const losses = perOutput<LossSpec>(cfg.loss, names, 'loss', isLoss).map((l, i) => checkLoss(l, at(i)));
    const isNum = (x: unknown): x is number => typeof x === 'number';
    const lossWeights = perOutput<number>(cfg.lossWeights as PerOutput<number> | undefined, names, 'lossWeights', isNum, 1);
    lossWeights.forEach((w, i) => {
      if (!Number.isFinite(w) || w < 0) fail(`compile: lossWeights for output '${names[i]}' must be a finite number >= 0, got ${w}`);
    });
    const isList = (x: unknown): x is readonly MetricSpec[] => Array.isArray(x) && x.every((m) => isStr(m) || isMetricObject(m));
    losses.forEach((loss, i) => {
      const producer = this.outputs[i].producer.layer as { activation?: Layer['activation'] };
      checkLossFits(loss, this.outputs[i].shape, producer.activation ?? 'linear', at(i));
    });
    const logged = names.map(() => new Map<string, ResolvedMetric>());
    // Keras names a weighted metric `weighted_<name>` only when a plain metric of the output has its name.
    const resolveAll = (m: CompileConfig['metrics'], arg: string, prefixIfTaken: string) => {
      const lists: (readonly MetricSpec[])[] =
        m === undefined ? names.map(() => []) : isList(m) ? names.map(() => m) : perOutput<readonly MetricSpec[]>(m as PerOutput<readonly MetricSpec[]>, names, arg, isList, []);
      return lists.map((ms, i) => {
        const out: ResolvedMetric[] = [];
        for (const spec of ms) {
          const r0 = resolveMetric(checkMetric(spec, at(i)), losses[i], this.outputs[i].shape, at(i));
          const r = prefixIfTaken && logged[i].has(r0.name) ? { ...r0, name: prefixIfTaken + r0.name } : r0;
          if (r.name === 'loss') fail(`${at(i)}: a metric cannot be named 'loss' (the log's name for the loss); give it another name`);
          const same = logged[i].get(r.name);
          // The same metric twice is logged once; two different metrics under one name are refused.
          if (same && JSON.stringify(same) !== JSON.stringify(r)) fail(`${at(i)}: two different metrics are logged as '${r.name}'; give one another name ({ name: '...' })`);
          if (!same) {
            out.push(r);
            logged[i].set(r.name, r);
          }
        }
        return out;
      });
    };
    const metrics = resolveAll(cfg.metrics, 'metrics', '');
    const weightedMetrics = resolveAll(cfg.weightedMetrics, 'weightedMetrics', 'weighted_');
    const trainableLayers = new Set(this.layers.filter((l) => l.trainable).map((l) => l.name));
    const trainable = new Set(this.weightInfo.filter((w) => w.trainable && trainableLayers.has(w.layer)).map((w) => w.name));
    this.compiled = { optimizer, losses, lossWeights, metrics, weightedMetrics, trainable, trainableLayers, loss: losses[0].kind };
    // Fresh optimizer state, as Keras does when a model is compiled again.
    for (const k of [...this.state.keys()]) if (!this.weightInfo.some((w) => w.name === k)) this.state.delete(k);
    for (const st of this.optimizerState()) this.state.set(st.name, st.dtype === 'i32' ? new Int32Array(numel(st.shape)) : new Float32Array(numel(st.shape)).fill(st.init ?? 0));
    this.version++;
  }

  /** Weights the optimizer updates: as of the last compile, or the layers' flags before it. */
  trainableWeights(): WeightInfo[] {
    const c = this.compiled;
    return this.weightInfo.filter((w) => (c ? c.trainable.has(w.name) : w.trainable && this.getLayer(w.layer).trainable));
  }

  /** Optimizer slots (for trainable weights only) and the step counter, after compile. */
  optimizerState(): StateInfo[] {
    const c = this.requireCompiled('optimizerState');
    const out: StateInfo[] = [];
    const tw = this.trainableWeights();
    for (const slot of slotNames(c.optimizer)) for (const w of tw) out.push({ name: `${c.optimizer.kind}.${slot}.${w.name}`, dtype: 'f32', shape: w.shape });
    for (const g of globalState(c.optimizer)) out.push({ name: `${c.optimizer.kind}.${g.name}`, dtype: 'f32', shape: [], init: g.init });
    out.push({ name: 'step', dtype: 'i32', shape: [] });
    return out;
  }

  stateInfo(kind: StepKind): StateInfo[] {
    const weights = this.weightInfo.map((w) => ({ name: w.name, dtype: 'f32' as const, shape: w.shape }));
    return kind === 'train' ? [...weights, ...this.optimizerState()] : weights;
  }

  private requireCompiled(what: string): Compiled {
    if (!this.compiled) throw new DlcError(`${what}: call model.compile({optimizer, loss}) first`);
    return this.compiled;
  }

  /**
   * The forward pass on a batch: each output with its logits, and the next values of non-trainable
   * weights the layers asked for (training only), by weight name.
   */
  forward(
    xs: readonly Node[],
    weights: readonly Node[],
    ctx: { readonly training: boolean; readonly key: Node; readonly mask?: Node | null },
  ): { outputs: Lowered[]; updates: Map<string, Node> } {
    if (xs.length !== this.inputs.length) throw new Error(`forward: ${xs.length} inputs for a model of ${this.inputs.length}`);
    const values = new Map<SymbolicTensor, Lowered>();
    this.inputs.forEach((t, i) => values.set(t, { out: xs[i], logits: xs[i], act: 'linear', mask: null }));
    const updates = new Map<string, Node>();
    const layerIndex = new Map(this.layers.filter((l) => !(l instanceof InputLayer)).map((l, i) => [l, i]));
    for (const c of this.order) {
      const l = c.layer;
      const [at, n] = this.layerWeights.get(l)!;
      const ws = weights.slice(at, at + n);
      const callCtx: CallContext = {
        training: ctx.training,
        key: ctx.key,
        layerIndex: layerIndex.get(l)!,
        mask: ctx.mask ?? null,
        layerTrainable: this.compiled ? this.compiled.trainableLayers.has(l.name) : l.trainable,
        inputMasks: c.inputs.map((t) => values.get(t)!.mask),
        update: (wi, next) => {
          if (!ctx.training) throw new Error(`${l.label}: state update outside training`);
          // A layer applied twice in one step updates its state twice; the later call's value wins.
          updates.set(this.weightInfo[at + wi].name, next);
        },
      };
      const ins = c.inputs.map((t) => values.get(t)!.out);
      const pre = l.call(ins, ws, callCtx);
      const pres = Array.isArray(pre) ? (pre as readonly Node[]) : [pre as Node];
      if (pres.length !== c.outputs.length) throw new Error(`${l.label}: call gave ${pres.length} outputs, build declared ${c.outputs.length}`);
      const outMask = l.computeMask(ins, callCtx.inputMasks);
      pres.forEach((p, k) => values.set(c.outputs[k], { out: activate(l.activation, p), logits: p, act: l.activation, mask: k === 0 ? outMask : null }));
    }
    const outputs = this.outputs.map((t) => {
      const v = values.get(t)!;
      return v.act === 'linear' ? { ...v, logits: v.out } : v;
    });
    return { outputs, updates };
  }

  /** Build one of the three step functions for a fixed batch size. */
  stepFunction(kind: StepKind, batch: number): StepFunction {
    if (!Number.isInteger(batch) || batch < 1) fail(`batchSize must be a positive integer, got ${String(batch)}`);
    const inputs: InputNode[] = [];
    const mk = (name: string, dtype: DType, shape: Shape) => {
      const n = input(name, dtype, shape) as InputNode;
      inputs.push(n);
      return n;
    };
    const single = this.inputs.length === 1;
    const xs = this.inputs.map((t, i) => mk(single ? 'x' : `x.${this.inputNames[i]}`, 'f32', [batch, ...t.shape]));
    const c = kind === 'predict' ? null : this.requireCompiled(kind === 'train' ? 'fit' : 'evaluate');
    const oneOut = this.outputs.length === 1;
    const ys = c ? this.outputs.map((t, i) => {
      const lt = labelType(c.losses[i], t.shape, batch);
      return mk(oneOut ? 'y' : `y.${this.outputNames[i]}`, lt.dtype, lt.shape);
    }) : [];
    const mask = c ? mk('mask', 'f32', [batch]) : null;
    const sampleWeight = c ? mk('sample_weight', 'f32', [batch]) : null;
    const stateInputs = this.stateInfo(kind).map((s) => mk(s.name, s.dtype, s.shape));
    const state = new Map(stateInputs.map((n) => [n.params.name, inputs.indexOf(n)]));
    const weights = stateInputs.slice(0, this.weightInfo.length);
    const step = kind === 'train' ? stateInputs[stateInputs.length - 1] : b.constant(0, [], 'i32');
    const fwd = this.forward(xs, weights, { training: kind === 'train', key: step, mask });
    const xIdx = xs.map((n) => inputs.indexOf(n));

    if (kind === 'predict' || !c || !mask || !sampleWeight) {
      const names = oneOut ? ['output'] : [...this.outputNames];
      const func = makeFunc(`${this.name}_predict`, inputs, fwd.outputs.map((o) => o.out), names);
      return { kind, batch, func, xs: xIdx, ys: [], mask: null, weight: null, state, updates: [], results: new Map(names.map((n, i) => [n, i])), predictions: names.map((_, i) => i) };
    }
    // Masked mean: padded rows of a short final batch have mask 0 and do not count.
    const count = b.max(b.reduceSum(mask, [0]), b.constant(1, []));
    const mean = (perSample: Node) => b.div(b.reduceSum(b.mul(perSample, mask), [0]), count);
    // Padded rows have weight 0 whatever the caller put there.
    const w = b.mul(sampleWeight, mask);
    // Keras's divide_no_nan: a batch whose weights are all zero has weighted metrics 0.
    const weightedMean = (perSample: Node) => b.div(b.reduceSum(b.mul(perSample, w), [0]), b.max(b.reduceSum(w, [0]), b.constant(1e-30, [])));
    const outputs: Node[] = [];
    const names: string[] = [];
    // An output with a Keras mask (a sequence from masked steps) averages its loss over the real
    // steps of the real samples, as Keras does: Σ loss·mask / Σ mask.
    const perLoss = fwd.outputs.map((o, i) => {
      if (!o.mask) return batchLoss(c.losses[i], perSampleLoss(c.losses[i], o.out, o.logits, o.act, ys[i]), ys[i], mask, count, sampleWeight);
      const m = o.mask;
      if (m.shape.length > o.out.shape.length - 1 || !m.shape.every((d, k) => d === o.out.shape[k])) {
        throw new Error(`loss of output '${this.outputNames[i]}': its mask ${fmtShape(m.shape)} does not fit the output ${fmtShape(o.out.shape)}`);
      }
      // Keras: Σ loss·m·sw / Σ m, the sample weight broadcast over the steps.
      const real = b.mul(m, b.broadcast(mask, m.shape, [0]));
      const l = perSampleLoss(c.losses[i], o.out, o.logits, o.act, ys[i], m.shape.length);
      const all = m.shape.map((_, k) => k);
      return b.div(b.reduceSum(b.mul(l, b.mul(real, b.broadcast(sampleWeight, m.shape, [0]))), all), b.max(b.reduceSum(real, all), b.constant(1, [])));
    });
    // Keras's total: the loss-weighted sum over outputs; logs name each output's own loss too.
    const total = perLoss.map((l, i) => (c.lossWeights[i] === 1 ? l : b.mul(l, b.constant(c.lossWeights[i], [])))).reduce((a, l) => b.add(a, l));
    outputs.push(total);
    names.push('loss');
    if (!oneOut) perLoss.forEach((l, i) => {
      outputs.push(l);
      names.push(`${this.outputNames[i]}_loss`);
    });
    fwd.outputs.forEach((o, i) => {
      for (const m of c.metrics[i]) {
        outputs.push(mean(perSampleMetric(m, o.out, ys[i])));
        names.push(oneOut ? m.name : `${this.outputNames[i]}_${m.name}`);
      }
      for (const m of c.weightedMetrics[i]) {
        outputs.push(weightedMean(perSampleMetric(m, o.out, ys[i])));
        names.push(oneOut ? m.name : `${this.outputNames[i]}_${m.name}`);
      }
    });
    const results = new Map(names.map((n, i) => [n, i]));
    const updates: { output: number; input: number }[] = [];
    if (kind === 'train') {
      const trainIdx = this.weightInfo.flatMap((w, i) => (c.trainable.has(w.name) ? [i] : []));
      const tw = trainIdx.map((i) => weights[i]);
      const o = c.optimizer;
      const grads = clipGradients(o, grad(outputs[0], tw));
      const slots = slotNames(o);
      const nT = tw.length;
      const slotBase = this.weightInfo.length;
      const slotInputs = (ti: number) => slots.map((_, si) => stateInputs[slotBase + si * nT + ti]);
      const next = new Map<number, Node>(); // state input position -> next value
      // Optimizer-wide state: after the slots, before the step counter.
      const globalBase = slotBase + slots.length * nT;
      const gs = globalState(o);
      const t = b.cast(b.add(step, b.constant(1, [], 'i32')), 'f32');
      // Each step advances the optimizer-wide state first (Nadam's momentum product); the per-weight
      // updates read the advanced values.
      const globals = advanceGlobals(o, new Map(gs.map((g, i) => [g.name, stateInputs[globalBase + i] as Node])), t);
      gs.forEach((g, i) => {
        if (globals.get(g.name) !== stateInputs[globalBase + i]) next.set(globalBase + i, globals.get(g.name)!);
      });
      const lr = learningRateAt(o, globals, step);
      tw.forEach((w, ti) => {
        const r = update(o, w, grads[ti], slotInputs(ti), lr, t, globals);
        next.set(trainIdx[ti], r.w);
        r.slots.forEach((s, si) => next.set(slotBase + si * nT + ti, s));
      });
      this.weightInfo.forEach((w, i) => {
        const u = fwd.updates.get(w.name);
        if (u && !c.trainable.has(w.name)) next.set(i, u);
      });
      next.set(stateInputs.length - 1, b.add(step, b.constant(1, [], 'i32')));
      [...next.keys()].sort((p, q) => p - q).forEach((i) => {
        updates.push({ output: outputs.length, input: inputs.indexOf(stateInputs[i]) });
        outputs.push(next.get(i)!);
        names.push(`${stateInputs[i].params.name}.next`);
      });
    }
    const func = makeFunc(`${this.name}_${kind === 'train' ? 'train_step' : 'eval_step'}`, inputs, outputs, names);
    return { kind, batch, func, xs: xIdx, ys: ys.map((n) => inputs.indexOf(n)), mask: inputs.indexOf(mask), weight: inputs.indexOf(sampleWeight), state, updates, results, predictions: [] };
  }

  /** Every weight (trainable and not), in `weightInfo` order. */
  getWeights(): Tensor[] {
    return this.weightInfo.map((w) => tensor(Float32Array.from(this.state.get(w.name)!), w.shape, 'f32'));
  }

  setWeights(ws: readonly (Tensor | Float32Array)[]): void {
    if (!Array.isArray(ws) || ws.length !== this.weightInfo.length) fail(`setWeights: expected ${this.weightInfo.length} tensors, got ${Array.isArray(ws) ? ws.length : typeof ws} (the model's weights: ${this.weightInfo.map((w) => w.name).join(', ')})`);
    ws.forEach((t, i) => {
      const info = this.weightInfo[i];
      const data = t instanceof Float32Array ? t : t.data;
      if (!(data instanceof Float32Array)) fail(`setWeights: ${info.name} must be f32`);
      if (!(t instanceof Float32Array) && t.shape.join() !== info.shape.join()) fail(`setWeights: ${info.name} expects shape ${fmtShape(info.shape)}, got ${fmtShape(t.shape)}`);
      if (data.length !== numel(info.shape)) fail(`setWeights: ${info.name} expects ${numel(info.shape)} values, got ${data.length}`);
    });
    ws.forEach((t, i) => this.state.set(this.weightInfo[i].name, Float32Array.from(t instanceof Float32Array ? t : t.data)));
    this.version++;
  }

  countParams(): number {
    return this.weightInfo.reduce((a, w) => a + numel(w.shape), 0);
  }

  /**
   * The Keras layer table: name (type), output shape, parameter count, and for graphs the layers
   * each one is connected to. Printed and returned.
   */
  summary(print: (line: string) => void = console.log): string {
    const graph = this.kind === 'functional';
    const callIndex = (c: LayerCall) => c.layer.calls.indexOf(c);
    const rows = this.layers.map((l, i) => {
      const [at, n] = this.layerWeights.get(l)!;
      const params = this.weightInfo.slice(at, at + n).reduce((a, w) => a + numel(w.shape), 0);
      const row = [`${l.name} (${l.className})`, `(None, ${this.layerShapes[i].join(', ')})`, String(params)];
      if (graph) {
        const from = l.calls.filter((c) => this.order.includes(c)).flatMap((c) => c.inputs.map((t) => `${t.producer.layer.name}[${callIndex(t.producer)}][0]`));
        row.push(from.length ? from.join(', ') : '-');
      }
      return row;
    });
    const head = ['Layer (type)', 'Output Shape', 'Param #', ...(graph ? ['Connected to'] : [])];
    const cols = head.map((_, k) => k);
    const wd = cols.map((k) => Math.max(head[k].length, ...rows.map((r) => r[k].length)) + 2);
    const line = (r: string[]) => r[0].padEnd(wd[0]) + r[1].padEnd(wd[1]) + r[2].padStart(wd[2] - 2) + (graph ? `  ${r[3]}` : '');
    const total = wd.reduce((a, w) => a + w, 0) - 2;
    const trainable = this.trainableWeights().reduce((a, w) => a + numel(w.shape), 0);
    const fmt = (v: number) => v.toLocaleString('en-US');
    const out = [
      `Model: "${this.name}"`,
      '_'.repeat(total),
      line(head),
      '='.repeat(total),
      ...rows.flatMap((r, i) => [line(r), i < rows.length - 1 ? '_'.repeat(total) : '='.repeat(total)]),
      `Total params: ${fmt(this.countParams())}`,
      `Trainable params: ${fmt(trainable)}`,
      `Non-trainable params: ${fmt(this.countParams() - trainable)}`,
      '_'.repeat(total),
    ].join('\n');
    print(out);
    return out;
  }
}

/** The chain of a Sequential model as a graph: an Input from the first layer's inputShape, then each layer. */
export function chain(layers: readonly Layer[], opts: ModelOptions = {}): ModelConfig {
  if (!Array.isArray(layers) || layers.length === 0) fail('Sequential: expected a non-empty array of layers');
  const first: Layer = layers[0];
  // Name the layers first, so errors while building the chain already say `conv2d_1`.
  assignNames(layers, 'Sequential');
  if (!first.inputShape) {
    fail(`Sequential: the first layer (${first.className} '${first.name}') needs an inputShape option, e.g. inputShape: [28, 28, 1]`);
  }
  if (!first.inputShape.every((d: number) => Number.isInteger(d) && d > 0)) fail(`${first.className} '${first.name}': inputShape must be positive integers, got ${fmtShape(first.inputShape)}`);
  layers.slice(1).forEach((l) => {
    if (l.inputShape) fail(`${l.className} '${l.name}': only the first layer of a Sequential model takes inputShape`);
  });
  const x = Input({ shape: first.inputShape, name: 'input_layer' });
  let h = x;
  for (const l of layers) {
    const next: unknown = l.apply(h);
    if (!(next instanceof SymbolicTensor)) fail(`Sequential: ${l.label} has several outputs; a Sequential model needs layers of one output (use the functional API)`);
    h = next as SymbolicTensor;
  }
  return { ...opts, inputs: x, outputs: h };
}
