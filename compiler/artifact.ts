/**
 * @file The compiled artifact (`dlc compile MODEL -o OUT`): builds every file of the folder in
 * memory, then writes it atomically. The format is read by runtime/artifact.ts, which also owns the
 * manifest types.
 *
 * Layout of OUT:
 *   manifest.json                       format, version, model shapes, state; per entry its inputs and
 *                                       outputs with arena offsets, the buffer plan and kernel schedule
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
import { ARTIFACT_FORMAT, ARTIFACT_VERSION } from '../runtime/artifact.ts';
import { emitWasm, wasmMemoryBytes } from './codegen/wasm.ts';
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
}

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

/** Compile `model` into the artifact's files (nothing is written). */
export function buildArtifact(model: Model, opts: ArtifactOptions): Artifact {
  const batch = opts.batchSize ?? 32;
  const targets = (['wasm', 'webgpu'] as const).filter((t) => (opts.targets ?? ['wasm', 'webgpu']).includes(t));
  if (targets.length === 0) fail('compile: no target; use wasm, webgpu or both');
  const kinds = (['predict', 'train'] as const).filter((k) => (opts.entries ?? (model.compiled ? ['predict', 'train'] : ['predict'])).includes(k));
  if (kinds.length === 0) fail('compile: no entry point; use predict, train or both');
  if (kinds.includes('train') && !model.compiled) fail("compile --entry train: the model has no optimizer and loss; call model.compile({optimizer, loss}) in the model file");
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    fail(`compile: artifacts carry one input and one output today; model '${model.name}' has ${model.inputs.length} inputs (${model.inputNames.join(', ')}) and ${model.outputs.length} outputs (${model.outputNames.join(', ')}). Use the library (fit/predictMany) for it`);
  }
  const weights = initialWeights(model, opts.weights);

  const files = new Map<string, string | Uint8Array>();
  const entries: ArtifactEntry[] = [];
  const manifestEntries: Partial<Record<EntryName, EntryManifest>> = {};
  for (const kind of kinds) {
    const name: EntryName = kind === 'train' ? 'train_step' : 'predict';
    const step = model.stepFunction(kind, batch);
    const compiled = compileStep(model, kind, batch);
    const { program: p, plan } = compiled;
    const roleOf = (i: number): EntryInput['role'] => (i === step.xs[0] ? 'x' : i === step.ys[0] ? 'y' : i === step.mask ? 'mask' : 'state');
    const inputs = p.inputs.map((id, i) => {
      const b = p.buffers[id];
      const expected = step.func.inputs[i].params.name;
      // The runtime finds buffers by these names; a mismatch would silently load the wrong tensor.
      if (b.name !== expected) throw new Error(`artifact: program input ${i} is '${b.name}', the step function's is '${expected}'`);
      return { name: b.name, role: roleOf(i), dtype: b.dtype, shape: [...b.shape], offset: plan.offsets[id] };
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
    };
    let wgsl: WgslKernel[] | null = null;
    if (targets.includes('wasm')) {
      const t = performance.now();
      const bytes = emitWasm(p, plan, { relaxedSimd: false });
      codegenMs.wasm = performance.now() - t;
      const file = `${name}.wasm`;
      files.set(file, bytes);
      entry = { ...entry, wasm: { file, sha256: createHash('sha256').update(bytes).digest('hex'), memoryBytes: wasmMemoryBytes(p, plan) } };
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
  const state: StateSpec[] = model.stateInfo(stateKind).map((s) => ({ name: s.name, dtype: s.dtype, shape: [...s.shape], init: weightNames.has(s.name) ? 'weights' : 'zeros' }));
  const manifest: Manifest = {
    format: ARTIFACT_FORMAT,
    version: ARTIFACT_VERSION,
    model: { name: model.name, inputShape: [...model.inputShape], outputShape: [...model.outputShape] },
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
export function stepWat(c: Compiled, relaxedSimd = false): Promise<string> {
  return wasmText(emitWasm(c.program, c.plan, { relaxedSimd }));
}

/** A compiled step's WGSL kernels for WebGPU's default limits, as the artifact has them. */
export function stepWgsl(c: Compiled): WgslKernel[] {
  return emitWgsl(c.program, c.plan, PORTABLE_WGSL_LIMITS).kernels;
}

// ---- index.js / index.d.ts ----

function indexJs(m: Manifest): string {
  return `/**
 * @file Loader of the dlc artifact for model "${m.model.name}" (generated by \`dlc compile\`; do not edit).
 * Usage: import { load } from './index.js'; const m = await load({ backend: 'wasm' }); await m.predict(x);
 */
import { loadArtifact } from './dlc-runtime.js';

export const modelName = ${JSON.stringify(m.model.name)};
export const inputShape = Object.freeze(${JSON.stringify(m.model.inputShape)});
export const outputShape = Object.freeze(${JSON.stringify(m.model.outputShape)});
export const batchSize = ${m.batchSize};
export const targets = Object.freeze(${JSON.stringify(m.targets)});

/** Load this artifact (the files next to this one) on a backend: 'wasm' (default) or 'webgpu'. */
export function load(options = {}) {
  return loadArtifact(new URL('./', import.meta.url), options);
}
`;
}

function indexDts(m: Manifest): string {
  const inPer = numel(m.model.inputShape);
  const outPer = numel(m.model.outputShape);
  const tuple = (s: readonly number[]) => `readonly [${s.join(', ')}]`;
  const train = m.entries.train_step;
  const weightNames = m.state.filter((s) => s.init === 'weights').map((s) => s.name);
  const lines = [
    `/**`,
    ` * @file Types of the dlc artifact for model "${m.model.name}" (generated by \`dlc compile\`; do not edit).`,
    ` * One sample is f32${shapeOf(m.model.inputShape)} (${inPer} values, row-major); the model outputs f32${shapeOf(m.model.outputShape)} (${outPer} values) per sample.`,
    ` * Compiled for batches of ${m.batchSize}; targets: ${m.targets.join(', ')}.`,
    ` */`,
    '',
    `export type Backend = ${m.targets.map((t) => `'${t}'`).join(' | ')};`,
    `/** Weight names, as in weights.safetensors and getWeights(). */`,
    `export type WeightName = ${weightNames.map((n) => JSON.stringify(n)).join(' | ') || 'never'};`,
    '',
    `export declare const modelName: ${JSON.stringify(m.model.name)};`,
    `/** Shape of one input sample. */`,
    `export declare const inputShape: ${tuple(m.model.inputShape)};`,
    `/** Shape of one output sample. */`,
    `export declare const outputShape: ${tuple(m.model.outputShape)};`,
    `export declare const batchSize: ${m.batchSize};`,
    `export declare const targets: readonly Backend[];`,
    '',
    `export interface LoadOptions {`,
    `  /** Where the steps run (default 'wasm'). */`,
    `  readonly backend?: Backend;`,
    `  /** Safetensors bytes (e.g. from saveWeights()) to start from instead of weights.safetensors. */`,
    `  readonly weights?: Uint8Array;`,
    `  /** WebGPU only: a GPUDevice to use instead of requesting one. */`,
    `  readonly device?: unknown;`,
    `}`,
    '',
  ];
  const predictDoc = [
    `export interface Model {`,
    `  readonly backend: Backend;`,
    `  /**`,
    `   * Outputs for N >= 1 samples: x is f32[N, ${m.model.inputShape.join(', ')}] (N * ${inPer} values); the result is`,
    `   * f32[N, ${m.model.outputShape.join(', ')}] (N * ${outPer} values). Runs in batches of ${m.batchSize}.`,
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
      `   * One optimizer step on n <= ${m.batchSize} samples: x is f32[n, ${m.model.inputShape.join(', ')}], y is ${y.dtype}[n${y.shape.length > 1 ? `, ${y.shape.slice(1).join(', ')}` : ''}]`,
      `   * (${yPer} value${yPer === 1 ? '' : 's'} per sample), mask (default all ones) weights each sample's loss.`,
      `   */`,
      `  trainStep(x: Float32Array, y: Int32Array | Float32Array, mask?: Float32Array): Promise<TrainResult>;`,
    );
  } else {
    lines.push(...predictDoc);
  }
  lines.push(
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
  );
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
