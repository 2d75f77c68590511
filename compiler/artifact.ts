/**
 * @file The compiled artifact (`dlc compile MODEL -o OUT`): builds every file of the folder in
 * memory, then writes it atomically. The format is read by runtime/artifact.ts, which also owns the
 * manifest types.
 *
 * Layout of OUT:
 *   manifest.json                       format, version, the model's named inputs and outputs, state; per
 *                                       entry its inputs (each x/y saying which model input/output it
 *                                       feeds) and outputs with arena offsets, buffer plan, kernel schedule
 *   predict.wasm, train_step.wasm       one module per entry point (exports `memory` and `run`)
 *   webgpu/<entry>/NN-<kernel>.wgsl     one shader per kernel, in dispatch order
 *   weights.safetensors                 the initial (or `--weights`) weights, F32, by weight name
 *   index.js, index.d.ts                a typed `load()` over the runtime bundle
 *   dlc-runtime.js                      the runtime bundle (a copy of dist/dlc-runtime.js)
 *
 * Invariants:
 *  - deterministic: the same model and options give byte-identical files (sorted manifest keys, no
 *    timestamps, deterministic codegen, Wasm without relaxed SIMD so it runs on every engine);
 *  - portable: WGSL is generated for WebGPU's default limits, so it runs on any adapter;
 *  - atomic: everything is written into a temporary folder next to OUT and renamed at the end, so a
 *    failed compile leaves no partial output; an existing OUT is replaced only when it is empty or a
 *    previous artifact (a manifest.json of this format), never when it holds anything else.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { numel } from '../ir/types.ts';
import type { ArtifactBackend, EntryInput, EntryManifest, EntryName, Manifest, StateSpec } from '../runtime/artifact.ts';
import { ARTIFACT_FORMAT, ARTIFACT_VERSION_LOOPS, ARTIFACT_VERSION_NAMED_IO, ARTIFACT_VERSION_SINGLE_IO } from '../runtime/artifact.ts';
import { byteLoops } from './kernel/schedule.ts';
import { emitWasm, loadBinaryen, wasmMemoryBytes } from './codegen/wasm.ts';
import { wasmText } from './codegen/wat.ts';
import { bufferBytes } from './kernel/plan.ts';
import type { WgslKernel, WgslLimits } from './codegen/wgsl.ts';
import { emitWgsl } from './codegen/wgsl.ts';
import { DlcError, fail } from './frontend/errors.ts';
import { weightsFromSafetensors, weightsToSafetensors } from './weights.ts';
import type { GraphModel as Model, StepKind } from './frontend/model.ts';
import type { Compiled } from './pipeline.ts';
import { compileStep } from './pipeline.ts';

/** WebGPU's default limits: every adapter offers at least these. */
export const PORTABLE_WGSL_LIMITS: WgslLimits = { maxWorkgroupSize: 256, maxWorkgroupStorage: 16384 };

export type { ArtifactBackend, EntryName };

export interface ArtifactOptions {
  /** Backends to emit code for (default both). */
  readonly targets?: readonly ArtifactBackend[];
  readonly batchSize?: number;
  /** Step kinds to compile (default predict, plus train when the model is compiled). */
  readonly entries?: readonly ('predict' | 'train')[];
  /** Safetensors bytes of weights to start from, and the name to blame in errors. */
  readonly weights?: { readonly bytes: Uint8Array; readonly file: string };
  /** The runtime bundle's text (dist/dlc-runtime.js), copied into the artifact. */
  readonly runtime: string | Uint8Array;
  /**
   * Also emit each Wasm entry built for up to this many threads (`<entry>.mt.wasm`; default
   * DEFAULT_ARTIFACT_THREADS; 1 emits none). The loader uses it where threads are possible (Node, a
   * cross-origin-isolated page) and the single-threaded module elsewhere.
   */
  readonly threads?: number;
}

/** Threads the threaded Wasm modules of an artifact are built for, unless told otherwise. */
export const DEFAULT_ARTIFACT_THREADS = 4;

/** What was compiled for one entry: the pipeline's records (for dumps) and the generated code. */
export interface ArtifactEntry {
  readonly name: EntryName;
  readonly kind: StepKind;
  readonly compiled: Compiled;
  readonly wgsl: readonly WgslKernel[] | null;
  /** Milliseconds spent in each code generator. */
  readonly codegenMs: Readonly<Partial<Record<ArtifactBackend, number>>>;
}

export interface Artifact {
  readonly manifest: Manifest;
  /** Relative path -> contents, in sorted path order. */
  readonly files: ReadonlyMap<string, string | Uint8Array>;
  readonly entries: readonly ArtifactEntry[];
}

/**
 * JSON with object keys sorted at every level, two-space indent, arrays of numbers or strings on one
 * line (shapes stay readable): the same manifest always prints the same bytes.
 */
export function stableJson(v: unknown): string {
  const fmt = (x: unknown, ind: string): string => {
    const inner = `${ind}  `;
    if (Array.isArray(x)) {
      if (x.every((e) => e === null || typeof e !== 'object')) return `[${x.map((e) => JSON.stringify(e)).join(', ')}]`;
      return `[\n${x.map((e) => inner + fmt(e, inner)).join(',\n')}\n${ind}]`;
    }
    if (x && typeof x === 'object') {
      const keys = Object.keys(x).filter((k) => (x as Record<string, unknown>)[k] !== undefined).sort();
      if (keys.length === 0) return '{}';
      return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${fmt((x as Record<string, unknown>)[k], inner)}`).join(',\n')}\n${ind}}`;
    }
    return JSON.stringify(x);
  };
  return `${fmt(v, '')}\n`;
}

const fileSafe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
const shapeOf = (s: readonly number[]) => `[${s.join(', ')}]`;

/** The step's weights as the artifact starts from them: the model's, or `--weights` by name. */
function initialWeights(model: Model, weights: ArtifactOptions['weights']): Map<string, Float32Array> {
  const values = weights ? weightsFromSafetensors(model.weightInfo, weights.bytes, weights.file) : model.getWeights().map((t) => Float32Array.from(t.data));
  return new Map(model.weightInfo.map((w, i) => [w.name, values[i]]));
}

/**
 * Compile `model` into the artifact's files (nothing is written). Async because the Wasm target
 * loads binaryen on first use (codegen/wasm/binaryen.ts); a WebGPU-only artifact never loads it.
 */
export async function buildArtifact(model: Model, opts: ArtifactOptions): Promise<Artifact> {
  const batch = opts.batchSize ?? 32;
  const threads = opts.threads ?? DEFAULT_ARTIFACT_THREADS;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) fail(`compile: threads must be an integer from 1 to 64, got ${String(opts.threads)}`);
  const targets = (['wasm', 'webgpu'] as const).filter((t) => (opts.targets ?? ['wasm', 'webgpu']).includes(t));
  if (targets.length === 0) fail('compile: no target; use wasm, webgpu or both');
  const kinds = (['predict', 'train'] as const).filter((k) => (opts.entries ?? (model.compiled ? ['predict', 'train'] : ['predict'])).includes(k));
  if (kinds.length === 0) fail('compile: no entry point; use predict, train or both');
  if (kinds.includes('train') && !model.compiled) fail("compile --entry train: the model has no optimizer and loss; call model.compile({optimizer, loss}) in the model file");
  const weights = initialWeights(model, opts.weights);
  if (targets.includes('wasm')) await loadBinaryen();

  const files = new Map<string, string | Uint8Array>();
  const entries: ArtifactEntry[] = [];
  const manifestEntries: Partial<Record<EntryName, EntryManifest>> = {};
  for (const kind of kinds) {
    const name: EntryName = kind === 'train' ? 'train_step' : 'predict';
    const step = model.stepFunction(kind, batch);
    const compiled = compileStep(model, kind, batch);
    const { program: p, plan } = compiled;
    // Model inputs (`x`) and labels (`y`) say which model input or output they belong to.
    const roleOf = (i: number): Pick<EntryInput, 'role' | 'feeds'> => {
      const x = step.xs.indexOf(i);
      if (x >= 0) return { role: 'x', feeds: model.inputNames[x] };
      const y = step.ys.indexOf(i);
      if (y >= 0) return { role: 'y', feeds: model.outputNames[y] };
      return { role: i === step.mask ? 'mask' : i === step.weight ? 'weight' : 'state' };
    };
    const inputs = p.inputs.map((id, i): EntryInput => {
      const b = p.buffers[id];
      const expected = step.func.inputs[i].params.name;
      // The runtime finds buffers by these names; a mismatch would silently load the wrong tensor.
      if (b.name !== expected) throw new Error(`artifact: program input ${i} is '${b.name}', the step function's is '${expected}'`);
      return { name: b.name, ...roleOf(i), dtype: b.dtype, shape: [...b.shape], offset: plan.offsets[id] };
    });
    const outputs = p.outputs.map((id, i) => ({ name: p.outputNames[i], dtype: p.buffers[id].dtype, shape: [...p.buffers[id].shape], offset: plan.offsets[id] }));
    const codegenMs: Partial<Record<ArtifactBackend, number>> = {};
    const buffers = p.buffers.map((b) => ({ id: b.id, role: b.role, name: b.name, dtype: b.dtype, shape: [...b.shape], offset: plan.offsets[b.id], bytes: bufferBytes(b.shape) }));
    const schedule = p.kernels.map((k) => ({ name: k.name, kind: k.kind, ops: [...k.ops], inputs: [...k.inputs], output: k.output }));
    let entry: EntryManifest = {
      inputs,
      outputs,
      results: Object.fromEntries(step.results),
      updates: step.updates.map((u) => ({ output: u.output, input: u.input })),
      arenaBytes: plan.totalBytes,
      buffers,
      schedule,
      ...(p.loops.length ? { loops: byteLoops(p, plan) } : {}),
    };
    let wgsl: WgslKernel[] | null = null;
    if (targets.includes('wasm')) {
      const t = performance.now();
      const bytes = emitWasm(p, plan, { relaxedSimd: false });
      codegenMs.wasm = performance.now() - t;
      const file = `${name}.wasm`;
      files.set(file, bytes);
      const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
      entry = { ...entry, wasm: { file, sha256: sha(bytes), memoryBytes: wasmMemoryBytes(p, plan) } };
      if (threads > 1) {
        const mt = emitWasm(p, plan, { relaxedSimd: false, threads });
        const mtFile = `${name}.mt.wasm`;
        files.set(mtFile, mt);
        entry = { ...entry, wasm: { ...entry.wasm!, threads: { file: mtFile, sha256: sha(mt), memoryBytes: wasmMemoryBytes(p, plan, threads), count: threads } } };
      }
    }
    if (targets.includes('webgpu')) {
      const t = performance.now();
      wgsl = stepWgsl(compiled);
      codegenMs.webgpu = performance.now() - t;
      const dir = `webgpu/${name}`;
      const width = Math.max(2, String(wgsl.length - 1).length);
      const kernels = wgsl.map((k, i) => {
        const file = `${String(i).padStart(width, '0')}-${fileSafe(k.name)}.wgsl`;
        files.set(`${dir}/${file}`, k.code);
        return { name: k.name, file, workgroups: k.workgroups };
      });
      entry = { ...entry, webgpu: { dir, kernels } };
    }
    manifestEntries[name] = entry;
    entries.push({ name, kind, compiled, wgsl, codegenMs });
  }

  const stateKind: StepKind = kinds.includes('train') ? 'train' : 'predict';
  const weightNames = new Set(model.weightInfo.map((w) => w.name));
  const state: StateSpec[] = model.stateInfo(stateKind).map((s): StateSpec => {
    const base = { name: s.name, dtype: s.dtype, shape: [...s.shape] };
    if (weightNames.has(s.name)) return { ...base, init: 'weights' };
    return s.init ? { ...base, init: 'fill', value: s.init } : { ...base, init: 'zeros' };
  });
  // A one-input/one-output model keeps inputShape/outputShape and version 1, so every loader reads it;
  // any other model needs a loader that knows named inputs and outputs (version 2).
  const single = model.inputs.length === 1 && model.outputs.length === 1;
  // Loops (recurrent layers) need a loader that repeats the loop body, and state that starts at a
  // value (the learning rate) one that fills it: version 3.
  const needsV3 = Object.values(manifestEntries).some((e) => e.loops) || state.some((s) => s.init === 'fill');
  const manifest: Manifest = {
    format: ARTIFACT_FORMAT,
    version: needsV3 ? ARTIFACT_VERSION_LOOPS : single ? ARTIFACT_VERSION_SINGLE_IO : ARTIFACT_VERSION_NAMED_IO,
    model: {
      name: model.name,
      inputs: model.inputNames.map((name, i) => ({ name, shape: [...model.inputShapes[i]] })),
      outputs: model.outputNames.map((name, i) => ({ name, shape: [...model.outputShapes[i]] })),
      ...(single ? { inputShape: [...model.inputShape], outputShape: [...model.outputShape] } : {}),
    },
    batchSize: batch,
    entries: manifestEntries,
    state,
    weightsFile: 'weights.safetensors',
    targets,
  };
  files.set('manifest.json', stableJson(manifest));
  files.set(
    'weights.safetensors',
    weightsToSafetensors(model.weightInfo, model.weightInfo.map((w) => weights.get(w.name)!)),
  );
  files.set('index.js', indexJs(manifest));
  files.set('index.d.ts', indexDts(manifest));
  files.set('dlc-runtime.js', opts.runtime);
  return { manifest, files: new Map([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), entries };
}

/**
 * A compiled step's Wasm module as text, printed by wabt from the bytes (dumps and `--debug 4`);
 * by default with the artifact's options (no relaxed SIMD).
 */
export async function stepWat(c: Compiled, relaxedSimd = false): Promise<string> {
  await loadBinaryen();
  return wasmText(emitWasm(c.program, c.plan, { relaxedSimd }));
}

/** A compiled step's WGSL kernels for WebGPU's default limits, as the artifact has them. */
export function stepWgsl(c: Compiled): WgslKernel[] {
  return emitWgsl(c.program, c.plan, PORTABLE_WGSL_LIMITS).kernels;
}

// ---- index.js / index.d.ts ----
// A one-input/one-output model's loader exports inputShape/outputShape and types predict/trainStep on
// single arrays (as before named inputs existed, so those files did not change); any other model's
// exports `inputs`/`outputs` and types each input, output and label array by name.

const isSingleIO = (m: Manifest) => m.model.inputs.length === 1 && m.model.outputs.length === 1;

function indexJs(m: Manifest): string {
  const frozen = (ts: Manifest['model']['inputs']) => `Object.freeze([${ts.map((t) => `Object.freeze({ name: ${JSON.stringify(t.name)}, shape: Object.freeze(${JSON.stringify(t.shape)}) })`).join(', ')}])`;
  const shapes = isSingleIO(m)
    ? [`export const inputShape = Object.freeze(${JSON.stringify(m.model.inputs[0].shape)});`, `export const outputShape = Object.freeze(${JSON.stringify(m.model.outputs[0].shape)});`]
    : [`export const inputs = ${frozen(m.model.inputs)};`, `export const outputs = ${frozen(m.model.outputs)};`];
  return `/**
 * @file Loader of the dlc artifact for model "${m.model.name}" (generated by \`dlc compile\`; do not edit).
 * Usage: import { load } from './index.js'; const m = await load({ backend: 'wasm' }); await m.${isSingleIO(m) ? 'predict' : 'predictMany'}(x);
 */
import { loadArtifact } from './dlc-runtime.js';

export const modelName = ${JSON.stringify(m.model.name)};
${shapes.join('\n')}
export const batchSize = ${m.batchSize};
export const targets = Object.freeze(${JSON.stringify(m.targets)});

/** Load this artifact (the files next to this one) on a backend: 'wasm' (default) or 'webgpu'. */
export function load(options = {}) {
  return loadArtifact(new URL('./', import.meta.url), options);
}
`;
}

const RESERVED = new Set(
  'break case catch class const continue debugger default delete do else enum export extends false finally for function if import in instanceof new null return super switch this throw true try typeof var void while with'.split(' '),
);
/** A property key: the name itself when it is an identifier, else quoted. */
const propKey = (n: string) => (/^[A-Za-z_$][\w$]*$/.test(n) ? n : JSON.stringify(n));
/** A labelled tuple type when every name can be a label, else a plain one. */
function tupleType(names: readonly string[], types: readonly string[], readonly: boolean): string {
  const labelled = names.every((n) => /^[A-Za-z_$][\w$]*$/.test(n) && !RESERVED.has(n));
  return `${readonly ? 'readonly ' : ''}[${types.map((t, i) => (labelled ? `${names[i]}: ${t}` : t)).join(', ')}]`;
}

function loadOptionsDts(m: Manifest, weightNames: readonly string[]): string[] {
  return [
    `export type Backend = ${m.targets.map((t) => `'${t}'`).join(' | ')};`,
    `/** Weight names, as in weights.safetensors and getWeights(). */`,
    `export type WeightName = ${weightNames.map((n) => JSON.stringify(n)).join(' | ') || 'never'};`,
  ];
}

const LOAD_OPTIONS_DTS = [
  `export interface LoadOptions {`,
  `  /** Where the steps run (default 'wasm'). */`,
  `  readonly backend?: Backend;`,
  `  /** Safetensors bytes (e.g. from saveWeights()) to start from instead of weights.safetensors. */`,
  `  readonly weights?: Uint8Array;`,
  `  /** WebGPU only: a GPUDevice to use instead of requesting one. */`,
  `  readonly device?: unknown;`,
  `  /**`,
  `   * Wasm only: threads per step (default: the machine's cores, at most what the artifact was compiled`,
  `   * for). A page needs cross-origin isolation (COOP/COEP headers) for threads; without it the model`,
  `   * runs on one thread and says so (model.threadsNote).`,
  `   */`,
  `  readonly threads?: number;`,
  `}`,
  '',
];

const MODEL_TAIL_DTS = [
  `  /** Threads each step runs on (1 on WebGPU, or where threads are not possible). */`,
  `  readonly threads: number;`,
  `  /** Why the model runs on fewer threads than asked for, or null. */`,
  `  readonly threadsNote: string | null;`,
  `  /** The current weights by name. */`,
  `  getWeights(): Promise<Record<WeightName, Float32Array>>;`,
  `  /** The current weights as safetensors bytes (for load({ weights }) or dlc compile --weights). */`,
  `  saveWeights(): Promise<Uint8Array>;`,
  `  /** Release the programs (GPU buffers). */`,
  `  dispose(): void;`,
  `}`,
  '',
  `/** Load this artifact; refuses a damaged or mismatched one with a message naming the file. */`,
  `export declare function load(options?: LoadOptions): Promise<Model>;`,
  '',
];

function indexDts(m: Manifest): string {
  return isSingleIO(m) ? indexDtsSingle(m) : indexDtsMany(m);
}

function indexDtsSingle(m: Manifest): string {
  const inShape = m.model.inputs[0].shape;
  const outShape = m.model.outputs[0].shape;
  const inPer = numel(inShape);
  const outPer = numel(outShape);
  const tuple = (s: readonly number[]) => `readonly [${s.join(', ')}]`;
  const train = m.entries.train_step;
  const weightNames = m.state.filter((s) => s.init === 'weights').map((s) => s.name);
  const lines = [
    `/**`,
    ` * @file Types of the dlc artifact for model "${m.model.name}" (generated by \`dlc compile\`; do not edit).`,
    ` * One sample is f32${shapeOf(inShape)} (${inPer} values, row-major); the model outputs f32${shapeOf(outShape)} (${outPer} values) per sample.`,
    ` * Compiled for batches of ${m.batchSize}; targets: ${m.targets.join(', ')}.`,
    ` */`,
    '',
    ...loadOptionsDts(m, weightNames),
    '',
    `export declare const modelName: ${JSON.stringify(m.model.name)};`,
    `/** Shape of one input sample. */`,
    `export declare const inputShape: ${tuple(inShape)};`,
    `/** Shape of one output sample. */`,
    `export declare const outputShape: ${tuple(outShape)};`,
    `export declare const batchSize: ${m.batchSize};`,
    `export declare const targets: readonly Backend[];`,
    '',
    ...LOAD_OPTIONS_DTS,
  ];
  const predictDoc = [
    `export interface Model {`,
    `  readonly backend: Backend;`,
    `  /**`,
    `   * Outputs for N >= 1 samples: x is f32[N, ${inShape.join(', ')}] (N * ${inPer} values); the result is`,
    `   * f32[N, ${outShape.join(', ')}] (N * ${outPer} values). Runs in batches of ${m.batchSize}.`,
    `   */`,
    `  predict(x: Float32Array): Promise<Float32Array>;`,
  ];
  if (train) {
    const y = train.inputs.find((i) => i.role === 'y')!;
    const yPer = numel(y.shape) / m.batchSize;
    const results = Object.keys(train.results);
    lines.push(
      `/** Loss and metrics of one train step (means over the unmasked samples). */`,
      `export interface TrainResult {`,
      ...results.map((r) => `  readonly ${r}: number;`),
      `}`,
      '',
      ...predictDoc,
      `  /**`,
      `   * One optimizer step on n <= ${m.batchSize} samples: x is f32[n, ${inShape.join(', ')}], y is ${y.dtype}[n${y.shape.length > 1 ? `, ${y.shape.slice(1).join(', ')}` : ''}]`,
      `   * (${yPer} value${yPer === 1 ? '' : 's'} per sample); mask (default all ones) takes samples out of the loss and its count;`,
      `   * sampleWeight (default all ones) scales each sample's loss: Σ loss·w·mask / Σ mask.`,
      `   */`,
      `  trainStep(x: Float32Array, y: Int32Array | Float32Array, mask?: Float32Array, sampleWeight?: Float32Array): Promise<TrainResult>;`,
    );
  } else {
    lines.push(...predictDoc);
  }
  lines.push(...MODEL_TAIL_DTS);
  return lines.join('\n');
}

function indexDtsMany(m: Manifest): string {
  const { inputs, outputs } = m.model;
  const B = m.batchSize;
  const train = m.entries.train_step;
  const weightNames = m.state.filter((s) => s.init === 'weights').map((s) => s.name);
  const f32 = (n: string, s: readonly number[]) => `f32[${[n, ...s].join(', ')}]`;
  const listed = (ts: typeof inputs, n: string) => ts.map((t) => `${t.name} ${f32(n, t.shape)}`).join(', ');
  const names = (ts: typeof inputs) => ts.map((t) => JSON.stringify(t.name)).join(' | ');
  const consts = (ts: typeof inputs) => `readonly [${ts.map((t) => `{ readonly name: ${JSON.stringify(t.name)}; readonly shape: readonly [${t.shape.join(', ')}] }`).join(', ')}]`;
  const xType = 'Inputs | InputList';
  const lines = [
    `/**`,
    ` * @file Types of the dlc artifact for model "${m.model.name}" (generated by \`dlc compile\`; do not edit).`,
    ` * Inputs, f32 per sample (row-major): ${inputs.map((t) => `${t.name} ${shapeOf(t.shape)} (${numel(t.shape)} values)`).join(', ')}.`,
    ` * Outputs, f32 per sample: ${outputs.map((t) => `${t.name} ${shapeOf(t.shape)} (${numel(t.shape)} values)`).join(', ')}.`,
    ` * Compiled for batches of ${B}; targets: ${m.targets.join(', ')}.`,
    ` */`,
    '',
    ...loadOptionsDts(m, weightNames),
    `/** The model's input names, in order. */`,
    `export type InputName = ${names(inputs)};`,
    `/** The model's output names, in order. */`,
    `export type OutputName = ${names(outputs)};`,
    '',
    `export declare const modelName: ${JSON.stringify(m.model.name)};`,
    `/** The model's inputs in order: name and shape of one sample. */`,
    `export declare const inputs: ${consts(inputs)};`,
    `/** The model's outputs in order: name and shape of one sample. */`,
    `export declare const outputs: ${consts(outputs)};`,
    `export declare const batchSize: ${B};`,
    `export declare const targets: readonly Backend[];`,
    '',
    `/** One Float32Array per model input, by name; each holds the same N samples, row-major. */`,
    `export interface Inputs {`,
    ...inputs.flatMap((t) => [`  /** ${f32('N', t.shape)} (N * ${numel(t.shape)} values). */`, `  readonly ${propKey(t.name)}: Float32Array;`]),
    `}`,
    `/** The same arrays as a list, in input order (${inputs.map((t) => t.name).join(', ')}). */`,
    `export type InputList = ${tupleType(inputs.map((t) => t.name), inputs.map(() => 'Float32Array'), true)};`,
    `/** What predictMany returns: one Float32Array per model output, in output order (${outputs.map((t) => t.name).join(', ')}). */`,
    `export type Outputs = ${tupleType(outputs.map((t) => t.name), outputs.map(() => 'Float32Array'), false)};`,
    '',
  ];
  if (train) {
    const labels = outputs.map((t) => {
      const y = train.inputs.find((i) => i.role === 'y' && i.feeds === t.name)!;
      const per = numel(y.shape) / B;
      return y.dtype === 'f32'
        ? { type: 'Float32Array', doc: `${f32('n', y.shape.slice(1))} (${per} value${per === 1 ? '' : 's'} per sample).` }
        : { type: 'Int32Array | Float32Array', doc: `${y.dtype}[n]: one class in [0, ${numel(t.shape)}) per sample.` };
    });
    lines.push(
      `/** Labels of a train step: one array per model output, by name, each for the same n samples as x. */`,
      `export interface Labels {`,
      ...outputs.flatMap((t, j) => [`  /** ${labels[j].doc} */`, `  readonly ${propKey(t.name)}: ${labels[j].type};`]),
      `}`,
      `/** The same arrays as a list, in output order (${outputs.map((t) => t.name).join(', ')}). */`,
      `export type LabelList = ${tupleType(outputs.map((t) => t.name), labels.map((l) => l.type), true)};`,
      `/** Loss and metrics of one train step (means over the unmasked samples). */`,
      `export interface TrainResult {`,
      ...Object.keys(train.results).map((r) => `  readonly ${propKey(r)}: number;`),
      `}`,
      '',
    );
  }
  lines.push(
    ...LOAD_OPTIONS_DTS,
    `export interface Model {`,
    `  readonly backend: Backend;`,
    `  /**`,
    `   * Outputs for N >= 1 samples of every input (${listed(inputs, 'N')}; by name or in that order):`,
    `   * ${listed(outputs, 'N')}, in that order. Runs in batches of ${B}.`,
    `   */`,
    `  predictMany(x: ${xType}): Promise<Outputs>;`,
  );
  if (outputs.length === 1) {
    lines.push(`  /** The one output, ${f32('N', outputs[0].shape)}, for N >= 1 samples of every input (as predictMany). */`, `  predict(x: ${xType}): Promise<Float32Array>;`);
  }
  if (train) {
    lines.push(
      `  /**`,
      `   * One optimizer step on n <= ${B} samples: x holds n samples of every input (as predictMany), y their labels`,
      `   * (Labels, by name or in output order); mask (default all ones) takes samples out of the loss and its count;`,
      `   * sampleWeight (default all ones) scales each sample's loss: Σ loss·w·mask / Σ mask.`,
      `   */`,
      `  trainStep(x: ${xType}, y: Labels | LabelList, mask?: Float32Array, sampleWeight?: Float32Array): Promise<TrainResult>;`,
    );
  }
  lines.push(...MODEL_TAIL_DTS);
  return lines.join('\n');
}

// ---- writing ----

function isArtifactDir(dir: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { format?: unknown }).format === ARTIFACT_FORMAT;
  } catch {
    return false;
  }
}

/** Throws a DlcError if `out` exists and is neither empty nor a previous artifact (checked before compiling, and again when writing). */
export function checkArtifactTarget(out: string): void {
  const st = statSync(out, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) fail(`compile: output ${out} exists and is not a directory; refusing to replace it`);
  if (readdirSync(out).length > 0 && !isArtifactDir(out)) fail(`compile: output ${out} exists and is not a dlc artifact (no manifest.json of format ${ARTIFACT_FORMAT}); refusing to replace it`);
}

/**
 * Write `files` as the folder `out`: into a fresh temporary folder next to it, then one rename. An
 * existing artifact (or empty folder) at `out` is moved aside first and removed after the swap.
 */
export function writeArtifact(out: string, files: ReadonlyMap<string, string | Uint8Array>): void {
  const abs = path.resolve(out);
  checkArtifactTarget(abs);
  const parent = path.dirname(abs);
  mkdirSync(parent, { recursive: true });
  const tmp = mkdtempSync(path.join(parent, `.${path.basename(abs)}.tmp-`));
  try {
    // mkdtemp makes the folder private (0700); an artifact is meant to be served and shared.
    chmodSync(tmp, 0o755);
    for (const [rel, data] of files) {
      const f = path.join(tmp, rel);
      mkdirSync(path.dirname(f), { recursive: true });
      writeFileSync(f, data);
    }
    if (existsSync(abs)) {
      const old = `${tmp}.old`;
      renameSync(abs, old);
      try {
        renameSync(tmp, abs);
      } catch (e) {
        renameSync(old, abs);
        throw e;
      }
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(tmp, abs);
    }
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (e instanceof DlcError) throw e;
    throw new DlcError(`compile: cannot write ${out}: ${(e as Error).message}`);
  }
}
