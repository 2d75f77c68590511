/**
 * @file The Keras-like `Sequential` model: layer stack, shape inference with clear errors, weights
 * and optimizer state, `compile`, `summary`, and the three step functions it lowers to graph IR.
 *
 * A model is built when it is constructed (the first layer must carry `inputShape`), so a bad stack
 * fails at once with the layer's name and the shapes that do not fit. The persistent state (weights,
 * optimizer slots, the step counter) lives here as host arrays between runs; backends copy it in and
 * hand it back (`engine.ts`). Step functions are pure graphs: the train step takes the state as
 * inputs and returns its next value as outputs, paired up by `StepFunction.updates`.
 */
import { grad } from '../autodiff.ts';
import * as b from '../../ir/builders.ts';
import { makeFunc } from '../../ir/graph.ts';
import { input } from '../../ir/node.ts';
import type { DType, Func, InputNode, Node, Shape } from '../../ir/types.ts';
import { fmtShape, numel } from '../../ir/types.ts';
import { activate } from './activations.ts';
import { DlcError, fail } from './errors.ts';
import { initialize } from './initializers.ts';
import type { CallContext, Layer, WeightSpec } from './layers.ts';
import type { LossName, MetricName } from './losses.ts';
import { checkLoss, checkMetric, labelType, perSampleAccuracy, perSampleLoss } from './losses.ts';
import type { Optimizer } from './optimizers.ts';
import { checkOptimizer, slotNames, update } from './optimizers.ts';
import type { Tensor } from './tensor.ts';
import { tensor } from './tensor.ts';

export interface CompileConfig {
  optimizer: string | Optimizer;
  loss: string;
  metrics?: readonly string[];
}

export interface Compiled {
  readonly optimizer: Optimizer;
  readonly loss: LossName;
  readonly metrics: readonly MetricName[];
}

export interface WeightInfo {
  /** `layer.local`, e.g. `conv2d_1.kernel`: the name in dumps, artifacts and safetensors files. */
  readonly name: string;
  readonly layer: string;
  readonly shape: Shape;
  readonly init: WeightSpec['init'];
}

/** One persistent buffer: a weight, an optimizer slot or the step counter. */
export interface StateInfo {
  readonly name: string;
  readonly dtype: 'f32' | 'i32';
  readonly shape: Shape;
}

export type StepKind = 'train' | 'eval' | 'predict';

/** A step function with the roles of its inputs and outputs. */
export interface StepFunction {
  readonly kind: StepKind;
  readonly batch: number;
  readonly func: Func;
  /** Input indices of the per-batch data. */
  readonly x: number;
  readonly y: number | null;
  readonly mask: number | null;
  /** Input index of each persistent state buffer, by state name. */
  readonly state: ReadonlyMap<string, number>;
  /** Output `output` is the next value of input `input` (train step only). */
  readonly updates: readonly { readonly output: number; readonly input: number }[];
  /** Scalar results by name (`loss`, `accuracy`) or the prediction (`output`). */
  readonly results: ReadonlyMap<string, number>;
}

export interface ModelOptions {
  /** Seed for weight initialization (default 0): the same seed gives the same weights. */
  seed?: number;
  name?: string;
}

export class Model {
  readonly name: string;
  readonly layers: readonly Layer[];
  readonly inputShape: Shape;
  readonly outputShape: Shape;
  /** Per-sample output shape of each layer. */
  readonly layerShapes: readonly Shape[];
  readonly weightInfo: readonly WeightInfo[];
  /** Index into weightInfo of each layer's first weight, and how many it has. */
  private readonly layerWeights: readonly (readonly [number, number])[];
  readonly seed: number;
  compiled: Compiled | null = null;
  /** Persistent state by name: weights, then (after compile) optimizer slots and `step`. */
  readonly state = new Map<string, Float32Array | Int32Array>();
  /** Bumped on every change of the state layout or host-side values; engines use it to resync. */
  version = 0;

  constructor(layers: readonly Layer[], opts: ModelOptions = {}) {
    if (!Array.isArray(layers) || layers.length === 0) fail('Sequential: expected a non-empty array of layers');
    this.name = opts.name ?? 'sequential';
    this.seed = opts.seed ?? 0;
    this.layers = [...layers];
    // Keras naming: the first conv2d is `conv2d`, the next `conv2d_1`, and so on, per model.
    const counts = new Map<string, number>();
    const used = new Set<string>();
    for (const l of this.layers) {
      if (!l.name) {
        const k = counts.get(l.defaultName) ?? 0;
        counts.set(l.defaultName, k + 1);
        l.name = k === 0 ? l.defaultName : `${l.defaultName}_${k}`;
      }
      if (used.has(l.name)) fail(`Sequential: two layers are named '${l.name}'`);
      used.add(l.name);
    }
    const first = this.layers[0];
    if (!first.inputShape) {
      fail(`Sequential: the first layer (${first.className} '${first.name}') needs an inputShape option, e.g. inputShape: [28, 28, 1]`);
    }
    if (!first.inputShape.every((d) => Number.isInteger(d) && d > 0)) fail(`${first.className} '${first.name}': inputShape must be positive integers, got ${fmtShape(first.inputShape)}`);
    this.layers.slice(1).forEach((l) => {
      if (l.inputShape) fail(`${l.className} '${l.name}': only the first layer of a Sequential model takes inputShape`);
    });
    this.inputShape = first.inputShape;
    let s = this.inputShape;
    const shapes: Shape[] = [];
    const infos: WeightInfo[] = [];
    const lw: [number, number][] = [];
    for (const l of this.layers) {
      const built = l.build(s);
      lw.push([infos.length, built.weights.length]);
      for (const w of built.weights) infos.push({ name: `${l.name}.${w.name}`, layer: l.name, shape: w.shape, init: w.init });
      s = built.outputShape;
      shapes.push(s);
    }
    this.outputShape = s;
    this.layerShapes = shapes;
    this.weightInfo = infos;
    this.layerWeights = lw;
    infos.forEach((w, i) => this.state.set(w.name, initialize(w.init, w.shape, this.seed, i)));
  }

  compile(cfg: CompileConfig): void {
    if (!cfg || typeof cfg !== 'object') fail('compile: expected {optimizer, loss, metrics?}');
    const optimizer = checkOptimizer(cfg.optimizer);
    const loss = checkLoss(cfg.loss);
    const metrics = (cfg.metrics ?? []).map(checkMetric);
    labelType(loss, this.outputShape, 1); // rejects a loss that cannot apply to this output
    if (metrics.includes('accuracy') && loss === 'categorical_crossentropy' && this.outputShape.length !== 1) {
      fail(`compile: accuracy with categorical_crossentropy needs a model output of rank 1 per sample, got ${fmtShape(this.outputShape)}`);
    }
    this.compiled = { optimizer, loss, metrics: [...new Set(metrics)] };
    // Fresh optimizer state, as Keras does when a model is compiled again.
    for (const k of [...this.state.keys()]) if (!this.weightInfo.some((w) => w.name === k)) this.state.delete(k);
    for (const st of this.optimizerState()) this.state.set(st.name, st.dtype === 'i32' ? new Int32Array(numel(st.shape)) : new Float32Array(numel(st.shape)));
    this.version++;
  }

  /** Optimizer slots and the step counter, after compile. */
  optimizerState(): StateInfo[] {
    const c = this.requireCompiled('optimizerState');
    const out: StateInfo[] = [];
    for (const slot of slotNames(c.optimizer)) for (const w of this.weightInfo) out.push({ name: `${c.optimizer.kind}.${slot}.${w.name}`, dtype: 'f32', shape: w.shape });
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

  /** The forward pass on a batch: output, and the pre-activation of the last layer. */
  forward(x: Node, weights: readonly Node[], ctx: Omit<CallContext, 'layerIndex'>): { out: Node; logits: Node; act: Layer['activation'] } {
    let h = x;
    let pre = x;
    this.layers.forEach((l, i) => {
      const [at, n] = this.layerWeights[i];
      pre = l.call(h, weights.slice(at, at + n), { ...ctx, layerIndex: i });
      h = activate(l.activation, pre);
    });
    // The last layer's pre-activation are the logits that stable losses start from.
    const act = this.layers[this.layers.length - 1].activation;
    return { out: h, logits: act === 'linear' ? h : pre, act };
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
    const x = mk('x', 'f32', [batch, ...this.inputShape]);
    const c = kind === 'predict' ? null : this.requireCompiled(kind === 'train' ? 'fit' : 'evaluate');
    const lt = c ? labelType(c.loss, this.outputShape, batch) : null;
    const y = lt ? mk('y', lt.dtype, lt.shape) : null;
    const mask = c ? mk('mask', 'f32', [batch]) : null;
    const stateInputs = this.stateInfo(kind).map((s) => mk(s.name, s.dtype, s.shape));
    const state = new Map(stateInputs.map((n) => [n.params.name, inputs.indexOf(n)]));
    const weights = stateInputs.slice(0, this.weightInfo.length);
    const step = kind === 'train' ? stateInputs[stateInputs.length - 1] : b.constant(0, [], 'i32');
    const { out, logits, act } = this.forward(x, weights, { training: kind === 'train', key: step });

    if (kind === 'predict' || !c || !y || !mask) {
      const func = makeFunc(`${this.name}_predict`, inputs, [out], ['output']);
      return { kind, batch, func, x: 0, y: null, mask: null, state, updates: [], results: new Map([['output', 0]]) };
    }
    // Masked mean: padded rows of a short final batch have mask 0 and do not count.
    const count = b.max(b.reduceSum(mask, [0]), b.constant(1, []));
    const mean = (perSample: Node) => b.div(b.reduceSum(b.mul(perSample, mask), [0]), count);
    const outputs: Node[] = [mean(perSampleLoss(c.loss, out, logits, act, y))];
    const names = ['loss'];
    for (const m of c.metrics) {
      outputs.push(mean(perSampleAccuracy(c.loss, out, y)));
      names.push(m);
    }
    const results = new Map(names.map((n, i) => [n, i]));
    const updates: { output: number; input: number }[] = [];
    if (kind === 'train') {
      const grads = grad(outputs[0], weights);
      const slots = slotNames(c.optimizer);
      const nW = weights.length;
      const slotInputs = (wi: number) => slots.map((_, si) => stateInputs[nW + si * nW + wi]);
      const nextW: Node[] = [];
      const nextSlots: Node[][] = slots.map(() => []);
      weights.forEach((w, wi) => {
        const r = update(c.optimizer, w, grads[wi], slotInputs(wi), step);
        nextW.push(r.w);
        r.slots.forEach((s, si) => nextSlots[si].push(s));
      });
      const nextStep = b.add(step, b.constant(1, [], 'i32'));
      const nexts = [...nextW, ...nextSlots.flat(), nextStep];
      nexts.forEach((n, i) => {
        updates.push({ output: outputs.length, input: inputs.indexOf(stateInputs[i]) });
        outputs.push(n);
        names.push(`${stateInputs[i].params.name}.next`);
      });
    }
    const func = makeFunc(`${this.name}_${kind === 'train' ? 'train_step' : 'eval_step'}`, inputs, outputs, names);
    return { kind, batch, func, x: 0, y: 1, mask: 2, state, updates, results };
  }

  getWeights(): Tensor[] {
    return this.weightInfo.map((w) => tensor(Float32Array.from(this.state.get(w.name)!), w.shape, 'f32'));
  }

  setWeights(ws: readonly (Tensor | Float32Array)[]): void {
    if (!Array.isArray(ws) || ws.length !== this.weightInfo.length) fail(`setWeights: expected ${this.weightInfo.length} tensors, got ${Array.isArray(ws) ? ws.length : typeof ws}`);
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

  /** The Keras layer table: name (type), output shape, parameter count. Printed and returned. */
  summary(print: (line: string) => void = console.log): string {
    const rows = this.layers.map((l, i) => {
      const [at, n] = this.layerWeights[i];
      const params = this.weightInfo.slice(at, at + n).reduce((a, w) => a + numel(w.shape), 0);
      return [`${l.name} (${l.className})`, `(None, ${this.layerShapes[i].join(', ')})`, String(params)];
    });
    const head = ['Layer (type)', 'Output Shape', 'Param #'];
    const wd = [0, 1, 2].map((k) => Math.max(head[k].length, ...rows.map((r) => r[k].length)) + 2);
    const line = (r: string[]) => r[0].padEnd(wd[0]) + r[1].padEnd(wd[1]) + r[2].padStart(wd[2] - 2);
    const total = wd[0] + wd[1] + wd[2] - 2;
    const out = [
      `Model: "${this.name}"`,
      '_'.repeat(total),
      line(head),
      '='.repeat(total),
      ...rows.flatMap((r, i) => [line(r), i < rows.length - 1 ? '_'.repeat(total) : '='.repeat(total)]),
      `Total params: ${this.countParams().toLocaleString('en-US')}`,
      `Trainable params: ${this.countParams().toLocaleString('en-US')}`,
      'Non-trainable params: 0',
      '_'.repeat(total),
    ].join('\n');
    print(out);
    return out;
  }
}
