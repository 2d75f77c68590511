/**
 * @file A dlc model as plain data, so a peer can rebuild the same model without loading dlc's
 * compiler (each bench child process holds only its own system): the layer graph (each layer's
 * class, its configuration as the dlc layer holds it, and the layers it is applied to), the
 * optimizer and loss it was compiled with, its initial weights (`model.getWeights()`, in
 * `model.weightInfo` order, named `<layer>.<var>`), and its forward multiply-adds per sample.
 *
 * `modelSpec` walks `model.layers` (graph order, InputLayers first; a Sequential model's InputLayer,
 * which its `layers` leave out as Keras's do, is added from `model.inputs`) and reads each layer's config
 * fields by class (compiler/frontend/layers.ts and layers/*.ts); a class it does not know, a layer
 * applied more than once (shared weights), or an option it cannot pass on is refused by name, so a
 * change to the example model cannot silently make the peer train a different network.
 *
 * The parent process writes the spec once (`saveModelSpec`); the dlc, TF.js, jax-js and ONNX Runtime
 * children read it (bench/onnx.ts turns it into an ONNX model).
 * Only types are imported from dlc here.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { AnyLayer, GraphModel, Layer } from '../compiler/index.ts';

/** Where the parent leaves the ResNet example's spec for the children. */
export const RESNET_SPEC_FILE = path.resolve('.tmp', 'bench-resnet-model.bin');
/**
 * Where the parent leaves the reference CNN's (examples/mnist-cnn.ts) spec for the ONNX Runtime rows,
 * with bench/common.ts's `initialWeights()` (the weights every CNN row starts from) in place of the
 * model's own, and its reference outputs (dlc wasm, at those weights), which each ORT row must match
 * within `maxAbsDiff` before it is timed.
 */
export const CNN_SPEC_FILE = path.resolve('.tmp', 'bench-cnn-model.bin');
export const CNN_REFERENCE = { file: path.resolve('.tmp', 'bench-cnn-reference.json'), maxAbsDiff: 1e-4 } as const;
/** Where the parent leaves the LSTM example's (examples/mnist-lstm.ts) spec for the children. */
export const LSTM_SPEC_FILE = path.resolve('.tmp', 'bench-lstm-model.bin');
/**
 * The LSTM's reference outputs (dlc wasm, in the parent, at the spec's initial weights) and how far
 * each LSTM row's may differ before it is refused untimed (bench/common.ts, `SystemDef.reference`).
 */
export const LSTM_REFERENCE = { file: path.resolve('.tmp', 'bench-lstm-reference.json'), maxAbsDiff: 1e-4 } as const;

export type LayerConfig =
  | { readonly className: 'InputLayer'; readonly shape: number[] }
  | {
      readonly className: 'Conv2D';
      readonly filters: number;
      readonly kernel: number[];
      readonly strides: number[];
      readonly dilation: number[];
      readonly padding: 'valid' | 'same';
      readonly useBias: boolean;
      readonly activation: string;
    }
  | { readonly className: 'BatchNormalization'; readonly momentum: number; readonly epsilon: number; readonly center: boolean; readonly scale: boolean }
  | { readonly className: 'Activation'; readonly activation: string }
  | { readonly className: 'Add' }
  | { readonly className: 'MaxPooling2D' | 'AveragePooling2D'; readonly window: number[]; readonly strides: number[]; readonly padding: 'valid' | 'same' }
  | { readonly className: 'GlobalAveragePooling2D' | 'GlobalMaxPooling2D' }
  | { readonly className: 'Flatten' }
  | { readonly className: 'Dense'; readonly units: number; readonly useBias: boolean; readonly activation: string }
  | {
      readonly className: 'LSTM';
      readonly units: number;
      /** The cell (candidate and output) activation, and the gates' (Keras 3: tanh and sigmoid). */
      readonly activation: string;
      readonly recurrentActivation: string;
      readonly useBias: boolean;
      readonly returnSequences: boolean;
      readonly goBackwards: boolean;
    };

export interface LayerSpec {
  readonly name: string;
  readonly config: LayerConfig;
  /** Names of the layers whose outputs this layer is applied to, in order. */
  readonly inputs: string[];
  /** Per-sample input shapes and output shape (no batch axis). */
  readonly inputShapes: number[][];
  readonly outputShape: number[];
  /** This layer's weights, full names (`<layer>.<var>`) in dlc's (Keras's) order. */
  readonly weights: string[];
}

export interface ModelSpec {
  readonly name: string;
  readonly layers: LayerSpec[];
  readonly input: string;
  readonly output: string;
  readonly optimizer: { readonly kind: 'adam'; readonly learningRate: number; readonly beta1: number; readonly beta2: number; readonly epsilon: number };
  readonly loss: 'sparse_categorical_crossentropy';
  /** Multiply-adds per sample of the forward pass in the convs and dense layers. */
  readonly fwdMacsPerSample: number;
  readonly params: number;
}

export interface SpecWeight {
  readonly name: string;
  readonly shape: number[];
  readonly data: Float32Array;
}

/** A field of a dlc layer, read by name (the frontend keeps these on the layer objects). */
function field<T>(l: AnyLayer, key: string): T {
  const v = (l as unknown as Record<string, unknown>)[key];
  if (v === undefined) throw new Error(`bench model spec: ${l.className} '${l.name}' has no field '${key}' (did compiler/frontend rename it?)`);
  return v as T;
}

function layerConfig(l: AnyLayer): LayerConfig {
  const noAct = () => {
    if (l.activation !== 'linear') throw new Error(`bench model spec: ${l.className} '${l.name}' has activation '${l.activation}', which the peer cannot attach to this layer class`);
  };
  switch (l.className) {
    case 'InputLayer':
      return { className: 'InputLayer', shape: [...field<number[]>(l, 'shape')] };
    case 'Conv2D':
      return {
        className: 'Conv2D',
        filters: field(l, 'filters'),
        kernel: [...field<number[]>(l, 'kernel')],
        strides: [...field<number[]>(l, 'strides')],
        dilation: [...field<number[]>(l, 'dilation')],
        padding: field(l, 'padding'),
        useBias: field(l, 'useBias'),
        activation: l.activation,
      };
    case 'BatchNormalization':
      noAct();
      return { className: 'BatchNormalization', momentum: field(l, 'momentum'), epsilon: field(l, 'epsilon'), center: field(l, 'center'), scale: field(l, 'scale') };
    case 'Activation':
      return { className: 'Activation', activation: l.activation };
    case 'Add':
      noAct();
      return { className: 'Add' };
    case 'MaxPooling2D':
    case 'AveragePooling2D':
      noAct();
      return { className: l.className, window: [...field<number[]>(l, 'window')], strides: [...field<number[]>(l, 'strides')], padding: field(l, 'padding') };
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D':
      noAct();
      if (field<boolean>(l, 'keepdims')) throw new Error(`bench model spec: ${l.className} '${l.name}' has keepdims: true, which TF.js 4.22's global pooling layers do not take`);
      return { className: l.className };
    case 'Flatten':
      return { className: 'Flatten' };
    case 'Dense':
      return { className: 'Dense', units: field(l, 'units'), useBias: field(l, 'useBias'), activation: l.activation };
    case 'LSTM':
      noAct();
      if ((l as unknown as Record<string, unknown>).returnState === true) throw new Error(`bench model spec: LSTM '${l.name}' has returnState: true; only one output is translated`);
      if (l.calls.some((c) => c.inputs.length !== 1)) throw new Error(`bench model spec: LSTM '${l.name}' is given initial states; not translated`);
      // unitForgetBias and the initializers only shape the initial weights, which the peers copy.
      return {
        className: 'LSTM',
        units: field(l, 'units'),
        activation: field(l, 'cellActivation'),
        recurrentActivation: field(l, 'recurrentActivation'),
        useBias: field(l, 'useBias'),
        returnSequences: field(l, 'returnSequences'),
        goBackwards: field(l, 'goBackwards'),
      };
    default:
      throw new Error(`bench model spec: layer class ${l.className} ('${l.name}') is not translated for the peers; add it to bench/model-spec.ts and bench/peers/tfjs.ts`);
  }
}

const numel = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);

function macs(c: LayerConfig, inShape: readonly number[], outShape: readonly number[]): number {
  if (c.className === 'Conv2D') return numel(outShape) * c.kernel[0] * c.kernel[1] * inShape[inShape.length - 1];
  if (c.className === 'Dense') return numel(outShape) * inShape[inShape.length - 1];
  // Per time step: the input projection x·W [F, 4U] and the recurrent h·U [U, 4U] (gates not counted).
  if (c.className === 'LSTM') return inShape[0] * (inShape[1] + c.units) * 4 * c.units;
  return 0;
}

/** Walk a compiled dlc model into a spec plus its current weights; throws on anything not translated. */
export function modelSpec(model: GraphModel): { spec: ModelSpec; weights: SpecWeight[] } {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new Error(`bench model spec: '${model.name}' has ${model.inputs.length} inputs and ${model.outputs.length} outputs; only one of each is translated`);
  const c = model.compiled;
  if (!c) throw new Error(`bench model spec: '${model.name}' is not compiled`);
  const opt = c.optimizer;
  if (opt.kind !== 'adam') throw new Error(`bench model spec: '${model.name}' is compiled with ${opt.kind}; only adam is translated`);
  if (typeof opt.learningRate !== 'number' || opt.amsgrad || opt.clipnorm !== null || opt.clipvalue !== null || opt.globalClipnorm !== null || opt.weightDecay !== null) {
    throw new Error(`bench model spec: '${model.name}' uses Adam options the TF.js translation does not carry (a schedule, amsgrad, clipping or weight decay)`);
  }
  const learningRate = opt.learningRate;
  if (c.loss !== 'sparse_categorical_crossentropy') throw new Error(`bench model spec: '${model.name}' uses loss ${c.loss}; only sparse_categorical_crossentropy is translated`);
  if (c.trainable.size !== model.weightInfo.filter((w) => w.trainable).length) throw new Error(`bench model spec: '${model.name}' has frozen layers; not translated`);
  const byLayer = new Map<string, string[]>();
  for (const w of model.weightInfo) byLayer.set(w.layer, [...(byLayer.get(w.layer) ?? []), w.name]);
  let fwd = 0;
  // A Sequential model's layers leave out its InputLayer (as Keras's do); the spec starts from it.
  const inputLayers = model.inputs
    .map((t) => t.producer.layer)
    .filter((l) => !model.layers.includes(l))
    .map((l): LayerSpec => {
      if (l.className !== 'InputLayer') throw new Error(`bench model spec: '${model.name}' input comes from ${l.className} '${l.name}', not an InputLayer`);
      return { name: l.name, config: layerConfig(l), inputs: [], inputShapes: [], outputShape: [...field<number[]>(l, 'shape')], weights: [] };
    });
  const layers = [...inputLayers, ...model.layers.map((l): LayerSpec => {
    if (l.calls.length !== 1) throw new Error(`bench model spec: ${l.className} '${l.name}' is applied ${l.calls.length} times (shared weights); not translated`);
    const config = layerConfig(l);
    const call = l.calls[0];
    const inputShapes = call.inputs.map((t) => [...t.shape]);
    const outputShape = [...call.output.shape];
    if (inputShapes.length) fwd += macs(config, inputShapes[0], outputShape);
    return { name: l.name, config, inputs: call.inputs.map((t) => t.producer.layer.name), inputShapes, outputShape, weights: byLayer.get(l.name) ?? [] };
  })];
  const ws = model.getWeights();
  const weights = model.weightInfo.map((w, i) => ({ name: w.name, shape: [...w.shape], data: Float32Array.from(ws[i].data as Float32Array) }));
  const spec: ModelSpec = {
    name: model.name,
    layers,
    input: model.inputs[0].producer.layer.name,
    output: model.outputs[0].producer.layer.name,
    optimizer: { kind: 'adam', learningRate, beta1: opt.beta1, beta2: opt.beta2, epsilon: opt.epsilon },
    loss: 'sparse_categorical_crossentropy',
    fwdMacsPerSample: fwd,
    params: model.countParams(),
  };
  return { spec, weights };
}

/** One line describing the architecture, for the bench's header. */
export function describeSpec(spec: ModelSpec): string {
  const counts = new Map<string, number>();
  for (const l of spec.layers) if (l.config.className !== 'InputLayer') counts.set(l.config.className, (counts.get(l.config.className) ?? 0) + 1);
  const convs = spec.layers.flatMap((l) => (l.config.className === 'Conv2D' ? [l.config.filters] : []));
  const bn = spec.layers.flatMap((l) => (l.config.className === 'BatchNormalization' ? [l.config.momentum] : []));
  const parts = [...counts].map(([k, n]) => `${n} ${k}`);
  const details = [
    ...(convs.length ? [`conv filters ${convs.join('/')}`] : []),
    ...(bn.length ? [`BatchNormalization momentum ${[...new Set(bn)].join('/')}`] : []),
    ...spec.layers.flatMap((l) => (l.config.className === 'LSTM' ? [`${l.name}: ${l.config.units} units over [${l.inputShapes[0].join(', ')}] (time, features), ${l.config.activation}/${l.config.recurrentActivation}`] : [])),
  ];
  return `${parts.join(', ')}; ${details.length ? `${details.join(', ')}; ` : ''}${spec.params.toLocaleString('en-US')} parameters`;
}

/** [u32 JSON length][JSON][pad to 4][f32 weights, in spec order]. */
export function saveModelSpec(file: string, spec: ModelSpec, weights: readonly SpecWeight[]): void {
  const json = new TextEncoder().encode(JSON.stringify({ spec, weights: weights.map((w) => ({ name: w.name, shape: w.shape })) }));
  const head = 4 + json.length + ((4 - (json.length % 4)) % 4);
  const total = head + weights.reduce((a, w) => a + w.data.byteLength, 0);
  const bytes = new Uint8Array(total);
  new DataView(bytes.buffer).setUint32(0, json.length, true);
  bytes.set(json, 4);
  let at = head;
  for (const w of weights) {
    bytes.set(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength), at);
    at += w.data.byteLength;
  }
  writeFileSync(file, bytes);
}

export function loadModelSpec(file: string): { spec: ModelSpec; weights: SpecWeight[] } {
  const buf = readFileSync(file);
  const bytes = new Uint8Array(buf.byteLength);
  bytes.set(buf);
  const n = new DataView(bytes.buffer).getUint32(0, true);
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n))) as { spec: ModelSpec; weights: { name: string; shape: number[] }[] };
  let at = 4 + n + ((4 - (n % 4)) % 4);
  const weights = meta.weights.map((w) => {
    const k = numel(w.shape);
    const data = new Float32Array(bytes.buffer, at, k);
    at += k * 4;
    return { name: w.name, shape: w.shape, data };
  });
  return { spec: meta.spec, weights };
}
