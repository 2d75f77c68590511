/**
 * @file Loading a compiled artifact (the folder `dlc compile` writes) and running it: the manifest
 * format, verification, and a small model object with predict / trainStep / weights.
 *
 * Files come through `fetch` in a browser and through `fs` in Node when the base URL's scheme is
 * `file:` (Node's fetch does not read files), or from `LoadOptions.readFile`. Before anything runs
 * the loader checks, and refuses with an ArtifactError naming the file: the manifest's format and
 * version, then every field the runtime uses against its schema (type and range; offsets and sizes
 * inside the entry's arena; state shapes as the state list says), naming the field by its JSON path
 * (`manifest.json: entries.predict.inputs[2].offset: ...`); each Wasm module's sha256 against the
 * manifest (WebCrypto, so the same code runs in a page and in Node 20) and its memory against the
 * arena; and that the weights file holds every weight of the right dtype and shape. A damaged or
 * hostile artifact is refused by name (ArtifactError, or SafetensorsError for the weights file),
 * never with a TypeError or a view out of bounds (test/artifact-fuzz.test.ts). Optimizer state (slots, `step`)
 * starts at zero, as the manifest's `init: "zeros"` says.
 *
 * A model has any number of named inputs and outputs (`manifest.model.inputs`/`outputs`); each entry
 * input of role `x` or `y` names the model input or output it `feeds`. `predict` and `trainStep` take
 * one Float32Array for a one-input/one-output model, and for any model a list in input (output) order
 * or an object keyed by name; `predictMany` returns one array per output. Every bad argument is an
 * ArtifactError naming the input or output, thrown before anything runs.
 *
 * Execution mirrors the library's backends: one program per entry point (`predict`, `train_step`),
 * each with its own arena at the offsets the manifest lists. The newest state lives in whichever
 * program ran last: a train step leaves it in `train_step` (its `X.next` outputs copied onto the `X`
 * inputs unless the plan already aliased them), and `predict` copies the weights over before it runs
 * when it is behind. Calls on one model are serialised, since they share those arenas.
 *
 * Invariant: imports nothing from compiler/ (the runtime bundle must not carry the compiler).
 */
import { readSafetensors, writeSafetensors } from './safetensors.ts';
import type { SafeTensor } from './safetensors.ts';
import { instantiateProgram } from './wasm.ts';
import type { ByteCopy, ScheduleLoop } from './schedule.ts';
import { checkLoops } from './schedule.ts';
import type { ArenaCopy, GpuProgram } from './webgpu.ts';
import { copyBetween, createProgram, requestGpuDevice } from './webgpu.ts';

export const ARTIFACT_FORMAT = 'dlc-artifact';
/**
 * The newest manifest version this runtime reads; it reads every version from 1. A manifest carries
 * the lowest version whose loaders read it: 1 for a model of one input and one output (the fields
 * added since, named inputs/outputs and `feeds`, are extra to a version-1 loader), 2 for a model of
 * several inputs or outputs, which has no `inputShape`/`outputShape`, so that version-1 loaders
 * refuse it by its version rather than fail on the missing shapes; 3 for a model with loops (recurrent
 * layers: entries carry `loops`), which older loaders would run without repeating the loop body, or
 * with state that starts at a value (`init: 'fill'`: a train step's learning rate), which older
 * loaders would start at zero.
 */
export const ARTIFACT_VERSION = 3;
/** The version of manifests of one-input/one-output models (see ARTIFACT_VERSION). */
export const ARTIFACT_VERSION_SINGLE_IO = 1;
/** The version of manifests of models of several inputs or outputs, without loops. */
export const ARTIFACT_VERSION_NAMED_IO = 2;
/** The version of manifests whose entries have loops or whose state has `init: 'fill'`. */
export const ARTIFACT_VERSION_LOOPS = 3;

export type ArtifactBackend = 'wasm' | 'webgpu';
export type EntryName = 'predict' | 'train_step';
export type InputRole = 'x' | 'y' | 'mask' | 'weight' | 'state';
export type ArtifactDType = 'f32' | 'i32' | 'bool';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
}

export interface EntryInput extends TensorSpec {
  readonly role: InputRole;
  /** Role `x`: the model input this buffer carries; role `y`: the model output whose labels it holds. */
  readonly feeds?: string;
  /** Byte offset of the buffer in the entry's arena (Wasm memory or the WebGPU storage buffer). */
  readonly offset: number;
}

export interface EntryOutput extends TensorSpec {
  readonly offset: number;
}

export interface EntryManifest {
  readonly inputs: readonly EntryInput[];
  readonly outputs: readonly EntryOutput[];
  /**
   * Named results by output index: for predict each model output (`output` when the model has one,
   * else the output's name); for the train step `loss`, metrics, and `<output>_loss` when the model
   * has several outputs.
   */
  readonly results: Readonly<Record<string, number>>;
  /** Output `output` is the next value of input `input` (train step state). */
  readonly updates: readonly { readonly output: number; readonly input: number }[];
  readonly arenaBytes: number;
  /**
   * The memory plan: every buffer of the program with its arena offset (temporaries share bytes by
   * liveness, so their ranges may overlap). Informational: the runtime needs only inputs/outputs.
   */
  readonly buffers: readonly PlannedBuffer[];
  /**
   * The kernel schedule, in run order; the same for every target (the Wasm module runs these as one
   * call, WebGPU dispatches `webgpu.kernels[i]` for `schedule[i]`). Runtime traces use the names.
   */
  readonly schedule: readonly ScheduledKernel[];
  /**
   * Loops over ranges of the schedule (recurrent layers), in bytes; version 3. The Wasm module runs
   * them inside `run()`; WebGPU and traced Wasm runs repeat the kernels and make the copies.
   */
  readonly loops?: readonly ScheduleLoop<ByteCopy>[];
  readonly wasm?: {
    readonly file: string;
    readonly sha256: string;
    readonly memoryBytes: number;
    /**
     * The same entry built for up to `count` threads (it imports a shared memory of `memoryBytes`).
     * Optional and ignored by loaders from before it, which run `file`.
     */
    readonly threads?: { readonly file: string; readonly sha256: string; readonly memoryBytes: number; readonly count: number };
  };
  readonly webgpu?: { readonly dir: string; readonly kernels: readonly { readonly name: string; readonly file: string; readonly workgroups: readonly [number, number, number] }[] };
}

export interface PlannedBuffer {
  readonly id: number;
  readonly role: 'input' | 'state' | 'output' | 'temp' | 'const';
  /** Input, state or output name; empty for temporaries. */
  readonly name: string;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly bytes: number;
}

export interface ScheduledKernel {
  readonly name: string;
  readonly kind: string;
  /** Graph ops fused into the kernel. */
  readonly ops: readonly string[];
  /** Buffer ids read, and the one written. */
  readonly inputs: readonly number[];
  readonly output: number;
}

export interface StateSpec extends TensorSpec {
  /**
   * `weights`: from the weights file; `zeros`: optimizer state, starts at zero; `fill`: optimizer
   * state that starts at `value` (the learning rate; version 3).
   */
  readonly init: 'weights' | 'zeros' | 'fill';
  readonly value?: number;
}

/** A model input or output: its name in the model and the shape of one sample (f32). */
export interface ModelTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface ModelSpec {
  readonly name: string;
  /** The model's inputs, in order. */
  readonly inputs: readonly ModelTensor[];
  /** The model's outputs, in order. */
  readonly outputs: readonly ModelTensor[];
  /** One-input/one-output models only (version 1): `inputs[0].shape`, `outputs[0].shape`. */
  readonly inputShape?: readonly number[];
  readonly outputShape?: readonly number[];
}

export interface Manifest {
  readonly format: typeof ARTIFACT_FORMAT;
  /** The lowest manifest version whose loaders read this file (see ARTIFACT_VERSION). */
  readonly version: number;
  readonly model: ModelSpec;
  readonly batchSize: number;
  readonly entries: { readonly predict?: EntryManifest; readonly train_step?: EntryManifest };
  readonly state: readonly StateSpec[];
  readonly weightsFile: string;
  readonly targets: readonly ArtifactBackend[];
}

/** A refused or broken artifact; the message names the file. */
export class ArtifactError extends Error {
  override name = 'ArtifactError';
}

export interface LoadOptions {
  /** Where the steps run (default `wasm`); it must be one of the manifest's targets. */
  readonly backend?: ArtifactBackend;
  /** Safetensors bytes to start from instead of the artifact's weights file (e.g. from saveWeights). */
  readonly weights?: Uint8Array;
  /** What to call `weights` in error messages (e.g. its file name). */
  readonly weightsName?: string;
  /**
   * Wasm only: threads per step (default: `navigator.hardwareConcurrency` or Node's
   * `os.availableParallelism()`, at most the count the artifact's threaded modules were built for).
   * Threads need SharedArrayBuffer: in a page, cross-origin isolation (COOP/COEP headers). Where
   * they are not possible the model runs on one thread and `threadsNote` says why.
   */
  readonly threads?: number;
  /** WebGPU only: a device to use instead of the one requested from the host's adapter. */
  readonly device?: GPUDevice;
  /**
   * Read the artifact's files from here instead of `base` (`fetch`, or `fs` for `file:`): called with
   * each file's path relative to the artifact folder (`manifest.json`, `predict.wasm`, ...). A rejection
   * becomes an ArtifactError naming the file.
   */
  readonly readFile?: (file: string) => Promise<Uint8Array>;
}

/**
 * Model inputs: one Float32Array for a one-input model, else (or also) one per input, in input order
 * or keyed by input name. Each holds N samples, row-major.
 */
export type ArtifactInputs = Float32Array | readonly Float32Array[] | Readonly<Record<string, Float32Array>>;
/** Labels: one array for a one-output model, else (or also) one per output, in output order or keyed by output name. */
export type ArtifactLabels = Int32Array | Float32Array | readonly (Int32Array | Float32Array)[] | Readonly<Record<string, Int32Array | Float32Array>>;

export interface ArtifactModel {
  readonly manifest: Manifest;
  readonly backend: ArtifactBackend;
  /** Threads each step runs on (1 on WebGPU, or where threads are not possible). */
  readonly threads: number;
  /** Why the model runs on fewer threads than asked for (e.g. a page without cross-origin isolation), or null. */
  readonly threadsNote: string | null;
  /**
   * The one output for N samples (any N >= 1; run in batches of `manifest.batchSize`, the last one
   * padded). A model of several outputs refuses it: use predictMany.
   */
  predict(x: ArtifactInputs): Promise<Float32Array>;
  /** One Float32Array per model output, in output order, for N samples of every input. */
  predictMany(x: ArtifactInputs): Promise<Float32Array[]>;
  /**
   * One optimizer step on n <= batchSize samples (a short batch is padded and masked); loss and
   * metrics (and `<output>_loss`, `<output>_<metric>` for a model of several outputs). `mask`
   * (default ones) takes samples out of the loss and its count; `sampleWeight` (Keras's
   * sample_weight, default ones) scales each sample's loss: Σ loss·w·mask / Σ mask.
   */
  trainStep(x: ArtifactInputs, y: ArtifactLabels, mask?: Float32Array, sampleWeight?: Float32Array): Promise<Record<string, number> & { loss: number }>;
  /** The current weights by name (not the optimizer state). */
  getWeights(): Promise<Record<string, Float32Array>>;
  /** The current weights as safetensors bytes (what `dlc compile --weights` and `load({weights})` read). */
  saveWeights(): Promise<Uint8Array>;
  dispose(): void;
}

// ---- files ----

type Reader = (file: string) => Promise<Uint8Array>;

const isNode = () => !!(globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
/** Node built-ins through a computed specifier, so bundlers leave them out of the neutral bundle. */
const nodeImport = <T>(name: string): Promise<T> => import(/* @vite-ignore */ ['node', name].join(':')) as Promise<T>;

async function baseUrl(base: string | URL): Promise<URL> {
  let u: URL;
  if (base instanceof URL) u = new URL(base.href);
  else if (/^[a-z][a-z0-9+.-]+:/i.test(base)) u = new URL(base);
  else if (isNode()) u = (await nodeImport<{ pathToFileURL(p: string): URL }>('url')).pathToFileURL(base);
  else u = new URL(base, (globalThis as { location?: { href: string } }).location?.href);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u;
}

function reader(base: URL): Reader {
  return async (file) => {
    const url = new URL(file, base);
    try {
      if (url.protocol === 'file:') {
        const fs = await nodeImport<{ readFile(p: URL): Promise<Uint8Array> }>('fs/promises');
        const b = await fs.readFile(url);
        return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
      }
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
      return new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new ArtifactError(`artifact: cannot read ${file} (${url.href}): ${(e as Error).message}`);
    }
  };
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** Refuse NaN or infinite inputs, naming the sample: a step would spread them through the weights. */
function checkFinite(what: string, a: Float32Array | Int32Array, per: number): void {
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) throw new ArtifactError(`${what}: value ${a[i]} at sample ${Math.floor(i / per)}, element ${i % per} (inputs must be finite)`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isShape = (v: unknown): v is number[] => Array.isArray(v) && v.every((d) => Number.isInteger(d) && d >= 0);
const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** The largest arena (and buffer) a manifest may describe: a 32-bit Wasm memory's 4 GiB. */
const MAX_ARENA_BYTES = 2 ** 32;
/** The largest batch size a manifest may name. */
const MAX_BATCH = 2 ** 20;

/**
 * Typed field checks for checkManifest: each refuses with `manifest.json: <JSON path>: <why>`, so a
 * damaged or hostile manifest is named by the field (e.g. `entries.predict.inputs[2].offset`) before
 * any of its values sizes an allocation or a view.
 */
function fieldChecks(bad: (why: string) => never) {
  const show = (v: unknown) => {
    const j = v === undefined ? 'missing' : typeof v === 'number' && !Number.isFinite(v) ? String(v) : JSON.stringify(v);
    return j.length > 60 ? `${j.slice(0, 57)}...` : j;
  };
  const fail = (at: string, v: unknown, want: string): never => bad(`${at}: ${show(v)}, expected ${want}`);
  const c = {
    fail,
    obj: (v: unknown, at: string): Record<string, unknown> => (isObject(v) ? v : fail(at, v, 'an object')),
    arr: (v: unknown, at: string): unknown[] => (Array.isArray(v) ? v : fail(at, v, 'a list')),
    str: (v: unknown, at: string): string => (typeof v === 'string' ? v : fail(at, v, 'a string')),
    int: (v: unknown, at: string, lo: number, hi: number): number => (Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi ? (v as number) : fail(at, v, `an integer in [${lo}, ${hi}]`)),
    oneOf: <T extends string>(v: unknown, at: string, of: readonly T[]): T => (of.includes(v as T) ? (v as T) : fail(at, v, `one of ${of.join(', ')}`)),
    shape: (v: unknown, at: string): number[] => {
      const s = c.arr(v, at);
      s.forEach((d, i) => c.int(d, `${at}[${i}]`, 0, MAX_ARENA_BYTES));
      if (numel(s as number[]) > MAX_ARENA_BYTES / 4) bad(`${at}: ${fmt(s as number[])} has more than ${MAX_ARENA_BYTES / 4} elements`);
      return s as number[];
    },
    /** A file inside the artifact: relative, no `..`, no scheme (the loader resolves it against the artifact's folder). */
    file: (v: unknown, at: string, empty = false): string => {
      const f = c.str(v, at);
      if ((!empty && f === '') || /^[a-z][a-z0-9+.-]*:/i.test(f) || f.startsWith('/') || f.includes('\\') || f.includes('\0') || f.split('/').includes('..')) {
        fail(at, v, 'a relative path inside the artifact folder');
      }
      return f;
    },
  };
  return c;
}

/**
 * Check format and version before trusting any other field, then that the entries carry every model
 * input, output and state buffer the runtime will use (so a hand-edited manifest is refused here,
 * naming the field, rather than failing later). Returns the manifest with the named inputs and
 * outputs filled in for version-1 files written before they existed (named `input` and `output`).
 */
export function checkManifest(m: unknown): Manifest {
  const bad = (why: string): never => {
    throw new ArtifactError(`manifest.json: ${why}`);
  };
  if (!m || typeof m !== 'object') bad('not a JSON object');
  const o = m as Partial<Manifest>;
  if (o.format !== ARTIFACT_FORMAT) bad(`format is ${JSON.stringify(o.format)}, expected "${ARTIFACT_FORMAT}" (is this a dlc artifact?)`);
  if (!Number.isInteger(o.version) || o.version! < 1 || o.version! > ARTIFACT_VERSION) {
    bad(`artifact format version ${JSON.stringify(o.version)}, but this runtime reads versions 1 to ${ARTIFACT_VERSION}; recompile the model with a matching dlc`);
  }
  if (!isObject(o.model) || !Array.isArray(o.state) || !isObject(o.entries) || !Number.isInteger(o.batchSize) || typeof o.weightsFile !== 'string' || !Array.isArray(o.targets)) bad('missing fields (model, batchSize, entries, state, weightsFile, targets)');
  const model = modelSpec(o.model as unknown as Record<string, unknown>, bad);
  const c = fieldChecks(bad);
  const B = c.int(o.batchSize, 'batchSize', 1, MAX_BATCH);
  c.file(o.weightsFile, 'weightsFile');
  o.targets!.forEach((t, i) => c.oneOf(t, `targets[${i}]`, ['wasm', 'webgpu'] as const));
  const stateSpec = new Map<string, StateSpec>();
  o.state!.forEach((s: unknown, i) => {
    const at = `state[${i}]`;
    const v = c.obj(s, at);
    const name = c.str(v.name, `${at}.name`);
    c.oneOf(v.dtype, `${at}.dtype`, ['f32', 'i32', 'bool'] as const);
    c.shape(v.shape, `${at}.shape`);
    if (c.oneOf(v.init, `${at}.init`, ['weights', 'zeros', 'fill'] as const) === 'fill') {
      if (o.version! < 3) bad(`${at}.init: 'fill' needs manifest version 3, the file says ${o.version}`);
      if (typeof v.value !== 'number' || !Number.isFinite(v.value)) c.fail(`${at}.value`, v.value, 'a finite number');
    }
    if (stateSpec.has(name)) bad(`${at}.name: '${name}' is listed twice`);
    stateSpec.set(name, v as unknown as StateSpec);
  });
  model.inputs.forEach((t, i) => c.shape(t.shape, `model.inputs[${i}].shape`));
  model.outputs.forEach((t, i) => c.shape(t.shape, `model.outputs[${i}].shape`));
  const stateNames = new Set(stateSpec.keys());
  const entries: { predict?: EntryManifest; train_step?: EntryManifest } = {};
  for (const name of ['predict', 'train_step'] as const) {
    const e = o.entries![name] as EntryManifest | undefined;
    if (e === undefined) continue;
    const where = `entry '${name}'`;
    if (!isObject(e) || !Array.isArray(e.inputs) || !Array.isArray(e.outputs) || !isObject(e.results) || !Array.isArray(e.updates)) bad(`${where}: missing fields (inputs, outputs, results, updates)`);
    const badAt = e.inputs.findIndex((i) => !isObject(i) || typeof i.name !== 'string' || !isShape(i.shape) || !Number.isInteger(i.offset));
    const badBuf = e.inputs[badAt];
    if (badAt >= 0) bad(`${where}: input ${JSON.stringify(badBuf)} needs a name, shape and offset`);
    if (e.outputs.some((i) => !isObject(i) || !isShape(i.shape) || !Number.isInteger(i.offset))) bad(`${where}: every output needs a shape and offset`);
    const ep = `entries.${name}`;
    const arena = c.int(e.arenaBytes, `${ep}.arenaBytes`, 0, MAX_ARENA_BYTES);
    const buffer = (v: Record<string, unknown>, at: string) => {
      c.str(v.name, `${at}.name`);
      c.oneOf(v.dtype, `${at}.dtype`, ['f32', 'i32', 'bool'] as const);
      const bytes = numel(c.shape(v.shape, `${at}.shape`)) * 4;
      const off = c.int(v.offset, `${at}.offset`, 0, MAX_ARENA_BYTES);
      if (off % 4 !== 0 || off + bytes > arena) bad(`${at}.offset: [${off}, +${bytes}) is not a 4-byte aligned range inside the ${arena}-byte arena`);
    };
    e.inputs.forEach((v, k) => {
      const at = `${ep}.inputs[${k}]`;
      buffer(v as unknown as Record<string, unknown>, at);
      c.oneOf(v.role, `${at}.role`, ['x', 'y', 'mask', 'weight', 'state'] as const);
      if (v.feeds !== undefined) c.str(v.feeds, `${at}.feeds`);
      const st = v.role === 'state' ? stateSpec.get(v.name) : undefined;
      if (st && (st.dtype !== v.dtype || !sameShape(st.shape, v.shape))) bad(`${at}: state '${v.name}' is ${v.dtype}${fmt(v.shape)}, the state list says ${st.dtype}${fmt(st.shape)}`);
    });
    e.outputs.forEach((v, k) => buffer(v as unknown as Record<string, unknown>, `${ep}.outputs[${k}]`));
    for (const [k, r] of Object.entries(e.results)) c.int(r, `${ep}.results.${k}`, 0, e.outputs.length - 1);
    e.updates.forEach((u: unknown, k) => {
      const at = `${ep}.updates[${k}]`;
      const v = c.obj(u, at);
      const out = e.outputs[c.int(v.output, `${at}.output`, 0, e.outputs.length - 1)];
      const inp = e.inputs[c.int(v.input, `${at}.input`, 0, e.inputs.length - 1)];
      if (inp.role !== 'state' || out.dtype !== inp.dtype || !sameShape(out.shape, inp.shape)) bad(`${at}: output '${out.name}' (${out.dtype}${fmt(out.shape)}) cannot update input '${inp.name}' (${inp.role} ${inp.dtype}${fmt(inp.shape)})`);
    });
    if (e.buffers !== undefined) c.arr(e.buffers, `${ep}.buffers`);
    const schedule = c.arr(e.schedule, `${ep}.schedule`);
    schedule.forEach((k, i) => c.str(c.obj(k, `${ep}.schedule[${i}]`).name, `${ep}.schedule[${i}].name`));
    if (e.loops !== undefined) {
      if (o.version! < 3) bad(`${ep}.loops: loops need manifest version 3, the file says ${o.version}`);
      c.arr(e.loops, `${ep}.loops`).forEach((l, i) => {
        const at = `${ep}.loops[${i}]`;
        const v = c.obj(l, at);
        const start = c.int(v.start, `${at}.start`, 0, schedule.length - 1);
        c.int(v.end, `${at}.end`, start + 1, schedule.length);
        c.int(v.length, `${at}.length`, 1, MAX_ARENA_BYTES);
        if (typeof v.reverse !== 'boolean') c.fail(`${at}.reverse`, v.reverse, 'true or false');
        for (const list of ['init', 'enter', 'exit'] as const) {
          c.arr(v[list], `${at}.${list}`).forEach((cp, j) => {
            const ca = `${at}.${list}[${j}]`;
            const w = c.obj(cp, ca);
            for (const k of ['from', 'to', 'bytes'] as const) c.int(w[k], `${ca}.${k}`, 0, MAX_ARENA_BYTES);
            for (const k of ['fromStep', 'toStep'] as const) if (typeof w[k] !== 'boolean') c.fail(`${ca}.${k}`, w[k], 'true or false');
          });
        }
      });
      try {
        checkLoops(e.loops, schedule.length, arena, `${ep}.loops`);
      } catch (err) {
        bad((err as Error).message);
      }
    }
    if (e.wasm !== undefined) {
      const w = c.obj(e.wasm, `${ep}.wasm`);
      c.file(w.file, `${ep}.wasm.file`);
      if (!/^[0-9a-f]{64}$/.test(c.str(w.sha256, `${ep}.wasm.sha256`))) c.fail(`${ep}.wasm.sha256`, w.sha256, '64 hex digits');
      c.int(w.memoryBytes, `${ep}.wasm.memoryBytes`, 0, MAX_ARENA_BYTES);
      if (w.threads !== undefined) {
        const t = c.obj(w.threads, `${ep}.wasm.threads`);
        c.file(t.file, `${ep}.wasm.threads.file`);
        if (!/^[0-9a-f]{64}$/.test(c.str(t.sha256, `${ep}.wasm.threads.sha256`))) c.fail(`${ep}.wasm.threads.sha256`, t.sha256, '64 hex digits');
        const mb = c.int(t.memoryBytes, `${ep}.wasm.threads.memoryBytes`, 65536, MAX_ARENA_BYTES);
        if (mb % 65536 !== 0) c.fail(`${ep}.wasm.threads.memoryBytes`, t.memoryBytes, 'a whole number of 64 KiB pages');
        c.int(t.count, `${ep}.wasm.threads.count`, 2, 64);
      }
    }
    if (e.webgpu !== undefined) {
      const g = c.obj(e.webgpu, `${ep}.webgpu`);
      c.file(g.dir, `${ep}.webgpu.dir`, true);
      c.arr(g.kernels, `${ep}.webgpu.kernels`).forEach((k, i) => {
        const at = `${ep}.webgpu.kernels[${i}]`;
        const v = c.obj(k, at);
        c.str(v.name, `${at}.name`);
        c.file(v.file, `${at}.file`);
        const wg = c.arr(v.workgroups, `${at}.workgroups`);
        if (wg.length !== 3) c.fail(`${at}.workgroups`, wg, 'three workgroup counts');
        wg.forEach((n, j) => c.int(n, `${at}.workgroups[${j}]`, 0, 65535));
      });
    }
    // Version-1 files written before `feeds` existed: the one x and y feed the one input and output.
    const inputs = e.inputs.map((i) => {
      if ((i.role !== 'x' && i.role !== 'y') || typeof i.feeds === 'string') return i;
      const of = i.role === 'x' ? model.inputs : model.outputs;
      if (of.length !== 1) bad(`${where}: input '${i.name}' (role ${i.role}) does not say which model ${i.role === 'x' ? 'input' : 'output'} it feeds`);
      return { ...i, feeds: of[0].name };
    });
    const fed = (role: 'x' | 'y', t: ModelTensor, what: string) => {
      const found = inputs.filter((i) => i.role === role && i.feeds === t.name);
      if (found.length !== 1) bad(`${where}: ${found.length === 0 ? 'no' : 'more than one'} input of role ${role} feeds model ${what} '${t.name}'`);
      return found[0];
    };
    for (const t of model.inputs) {
      const i = fed('x', t, 'input');
      if (i.dtype !== 'f32' || !sameShape(i.shape, [B, ...t.shape])) bad(`${where}: input '${i.name}' for model input '${t.name}' is ${i.dtype}${fmt(i.shape)}, expected f32${fmt([B, ...t.shape])}`);
    }
    for (const i of inputs) {
      if (i.role === 'x' && !model.inputs.some((t) => t.name === i.feeds)) bad(`${where}: input '${i.name}' feeds '${i.feeds}', which is not a model input (${model.inputs.map((t) => t.name).join(', ')})`);
      if (i.role === 'y' && !model.outputs.some((t) => t.name === i.feeds)) bad(`${where}: input '${i.name}' holds labels of '${i.feeds}', which is not a model output (${model.outputs.map((t) => t.name).join(', ')})`);
      if (i.role === 'state' && !stateNames.has(i.name)) bad(`${where}: state input '${i.name}' is not in the state list`);
    }
    const resultAt = (k: string) => {
      const r = e.results[k];
      if (!Number.isInteger(r) || r < 0 || r >= e.outputs.length) bad(`${where}: no result '${k}'`);
      return e.outputs[r];
    };
    if (name === 'predict') {
      model.outputs.forEach((t) => {
        const out = resultAt(model.outputs.length === 1 ? 'output' : t.name);
        if (out.dtype !== 'f32' || !sameShape(out.shape, [B, ...t.shape])) bad(`${where}: the output for '${t.name}' is ${out.dtype}${fmt(out.shape)}, expected f32${fmt([B, ...t.shape])}`);
      });
    } else {
      for (const t of model.outputs) {
        const y = fed('y', t, 'output');
        if (y.shape[0] !== B || y.dtype === 'bool') bad(`${where}: the labels of '${t.name}' are ${y.dtype}${fmt(y.shape)}, expected ${B} samples of f32 or i32`);
      }
      const mask = inputs.filter((i) => i.role === 'mask');
      if (mask.length !== 1 || mask[0].dtype !== 'f32' || !sameShape(mask[0].shape, [B])) bad(`${where}: needs one mask input, f32[${B}]`);
      // Sample weights came with version 3; a train step without them still loads (weights refused at trainStep).
      const weight = inputs.filter((i) => i.role === 'weight');
      if (weight.length > 1 || (weight.length === 1 && (weight[0].dtype !== 'f32' || !sameShape(weight[0].shape, [B])))) bad(`${where}: a sample weight input must be one, f32[${B}]`);
      for (const k of Object.keys(e.results)) resultAt(k);
      resultAt('loss');
      for (const u of e.updates) {
        if (!isObject(u) || !e.outputs[u.output] || e.inputs[u.input]?.role !== 'state') bad(`${where}: update ${JSON.stringify(u)} does not pair an output with a state input`);
      }
    }
    entries[name] = { ...e, inputs };
  }
  // (Found by test/artifact-fuzz.test.ts: a manifest with neither entry used to load and fail later on a TypeError.)
  if (!entries.predict && !entries.train_step) bad("entries: no 'predict' or 'train_step' entry; the artifact has nothing to run");
  if (entries.predict && entries.train_step) {
    const trained = new Set(entries.train_step.inputs.filter((i) => i.role === 'state').map((i) => i.name));
    entries.predict.inputs.forEach((i, k) => {
      if (i.role === 'state' && !trained.has(i.name)) bad(`entries.predict.inputs[${k}]: state '${i.name}' is not a state input of entries.train_step`);
    });
  }
  return { ...(o as Manifest), model, entries };
}

/** The model's named inputs and outputs; a version-1 file without them has `inputShape`/`outputShape`. */
function modelSpec(m: Record<string, unknown>, bad: (why: string) => never): ModelSpec {
  if (typeof m.name !== 'string') bad('model.name is missing');
  const list = (v: unknown, what: string): ModelTensor[] => {
    if (!Array.isArray(v) || v.length === 0) return bad(`model.${what} must be a non-empty list of {name, shape}`);
    const ts = v.map((t) => (isObject(t) && typeof t.name === 'string' && isShape(t.shape) ? { name: t.name, shape: t.shape } : bad(`model.${what}: ${JSON.stringify(t)} is not {name, shape}`)));
    if (new Set(ts.map((t) => t.name)).size !== ts.length) bad(`model.${what}: two have one name`);
    return ts;
  };
  const spec = m as unknown as ModelSpec;
  if (m.inputs === undefined && m.outputs === undefined) {
    if (!isShape(m.inputShape) || !isShape(m.outputShape)) bad('model has neither inputs/outputs nor inputShape/outputShape');
    return { ...spec, inputs: [{ name: 'input', shape: spec.inputShape! }], outputs: [{ name: 'output', shape: spec.outputShape! }] };
  }
  return { ...spec, inputs: list(m.inputs, 'inputs'), outputs: list(m.outputs, 'outputs') };
}

// ---- execution: one program per entry, behind a small interface both backends implement ----

interface Range {
  readonly offset: number;
  readonly count: number;
  readonly dtype: 'f32' | 'i32';
}

interface Exec {
  write(offset: number, data: Float32Array | Int32Array): void;
  /** Run every kernel, then the in-arena copies (state updates). */
  run(copies: readonly ArenaCopy[]): void;
  read(ranges: readonly Range[]): Promise<(Float32Array | Int32Array)[]>;
  /** Copy byte ranges from this program's arena into `to`'s (same backend). */
  copyTo(to: Exec, copies: readonly ArenaCopy[]): Promise<void>;
  destroy(): void;
}

/**
 * A Wasm program as an Exec. With threads (`threads`: the count and the shared memory's bytes) a
 * worker can fail mid-step after some state was updated in place, so the state byte ranges `state`
 * are copied aside before each run and put back if it throws (the program then refuses to run again).
 */
async function wasmExec(
  bytes: Uint8Array,
  label: string,
  kernels: readonly string[],
  loops: readonly ScheduleLoop<ByteCopy>[] = [],
  threads?: { readonly count: number; readonly memoryBytes: number },
  state: readonly { readonly offset: number; readonly bytes: number }[] = [],
): Promise<Exec> {
  const p = await instantiateProgram(bytes, { label, kernels, loops, threads });
  const view = (r: Range) => (r.dtype === 'i32' ? p.i32(r.offset, r.count) : p.f32(r.offset, r.count));
  const shadow = threads ? state.map((r) => new Uint8Array(r.bytes)) : [];
  const exec: Exec & { p: typeof p } = {
    p,
    write: (offset, data) => (data instanceof Int32Array ? p.i32(offset, data.length) : p.f32(offset, data.length)).set(data),
    run(copies) {
      const mem = () => new Uint8Array(p.memory.buffer);
      state.forEach((r, i) => shadow[i]?.set(mem().subarray(r.offset, r.offset + r.bytes)));
      try {
        p.run();
      } catch (e) {
        state.forEach((r, i) => shadow[i] && mem().set(shadow[i], r.offset));
        throw new ArtifactError(`${label}: the step failed and was undone (the model's state is as before it); load() the artifact again to continue: ${(e as Error).message}`);
      }
      const m = mem();
      for (const c of copies) m.copyWithin(c.dst, c.src, c.src + c.bytes);
    },
    read: async (ranges) => ranges.map((r) => view(r).slice()),
    async copyTo(to, copies) {
      const src = new Uint8Array(p.memory.buffer);
      const dst = new Uint8Array((to as typeof exec).p.memory.buffer);
      for (const c of copies) dst.set(src.subarray(c.src, c.src + c.bytes), c.dst);
    },
    destroy: () => p.dispose(),
  };
  return exec;
}

function gpuExec(prog: GpuProgram): Exec & { prog: GpuProgram } {
  return {
    prog,
    write: (offset, data) => prog.write(offset, data),
    run: (copies) => prog.run(copies),
    read: (ranges) => prog.readMany(ranges),
    async copyTo(to, copies) {
      copyBetween(prog, (to as ReturnType<typeof gpuExec>).prog, copies);
    },
    destroy: () => prog.destroy(),
  };
}

let sharedDevice: Promise<GPUDevice> | null = null;

function gpuDevice(): Promise<GPUDevice> {
  sharedDevice ??= requestGpuDevice().catch((e: unknown) => {
    sharedDevice = null;
    throw new ArtifactError(`artifact: backend 'webgpu' is not available: ${(e as Error).message}; load with { backend: 'wasm' } instead`);
  });
  return sharedDevice;
}

// ---- loading ----

/** Read, verify and instantiate the artifact at `base` (a folder URL or, in Node, a path). */
export async function loadArtifact(base: string | URL, opts: LoadOptions = {}): Promise<ArtifactModel> {
  const custom = opts.readFile;
  const read: Reader = custom
    ? async (file) => {
        let b: unknown;
        try {
          b = await custom(file);
        } catch (e) {
          throw new ArtifactError(`artifact: cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (!(b instanceof Uint8Array)) throw new ArtifactError(`artifact: cannot read ${file}: readFile returned ${typeof b}, not a Uint8Array`);
        return b;
      }
    : reader(await baseUrl(base));
  const backend = opts.backend ?? 'wasm';
  if (backend !== 'wasm' && backend !== 'webgpu') throw new ArtifactError(`artifact: unknown backend '${String(backend)}'; use 'wasm' or 'webgpu'`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(await read('manifest.json')));
  } catch (e) {
    if (e instanceof ArtifactError) throw e;
    throw new ArtifactError(`manifest.json: not valid JSON (${(e as Error).message})`);
  }
  const manifest = checkManifest(raw);
  if (!manifest.targets.includes(backend)) throw new ArtifactError(`manifest.json: the artifact was compiled for ${manifest.targets.join(', ')}, not '${backend}' (dlc compile --target ${backend})`);

  // The initial state: weights from the file (or opts.weights), optimizer state zero.
  const wfile = opts.weights ? (opts.weightsName ?? 'the weights passed to load()') : manifest.weightsFile;
  const weights = readSafetensors(opts.weights ?? (await read(manifest.weightsFile)), wfile).tensors;
  const host = new Map<string, Float32Array | Int32Array>();
  for (const s of manifest.state) {
    // Zero state is made when a program is given it (makeModel), sized by an arena that exists.
    if (s.init === 'zeros') continue;
    if (s.init === 'fill') {
      host.set(s.name, s.dtype === 'f32' ? new Float32Array(numel(s.shape)).fill(s.value!) : new Int32Array(numel(s.shape)).fill(s.value!));
      continue;
    }
    const t = weights.get(s.name);
    if (!t) throw new ArtifactError(`${wfile}: missing tensor '${s.name}' (${s.dtype}[${s.shape.join(', ')}])`);
    if (!sameShape(t.shape, s.shape) || (t.dtype === 'F32') !== (s.dtype === 'f32')) {
      throw new ArtifactError(`${wfile}: tensor '${s.name}' is ${t.dtype}[${t.shape.join(', ')}], the model expects ${s.dtype}[${s.shape.join(', ')}]`);
    }
    host.set(s.name, t.data);
  }

  const names = (['predict', 'train_step'] as const).filter((n) => manifest.entries[n]);
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1 && opts.threads <= 64)) throw new ArtifactError(`load: threads must be an integer from 1 to 64, got ${String(opts.threads)}`);
  let threadCount = 1;
  let threadsNote: string | null = null;
  const wantThreads = backend === 'wasm' ? (opts.threads ?? (await coresHere())) : 1;
  const device = backend === 'webgpu' ? (opts.device ?? (await gpuDevice())) : null;
  const execs = new Map<EntryName, Exec>();
  try {
    for (const name of names) {
      const e = manifest.entries[name]!;
      if (backend === 'wasm') {
        if (!e.wasm) throw new ArtifactError(`manifest.json: entry '${name}' has no wasm module`);
        const plan = threadPlan(e.wasm.threads, wantThreads);
        threadCount = plan.count;
        threadsNote = plan.note;
        const mod = plan.count > 1 ? e.wasm.threads! : e.wasm;
        const bytes = await read(mod.file);
        const sum = await sha256(bytes);
        if (sum !== mod.sha256) throw new ArtifactError(`${mod.file}: sha256 ${sum} does not match manifest.json (${mod.sha256}); the file is damaged or from another compile`);
        let exec: Exec;
        const stateRanges = e.inputs.filter((i) => i.role === 'state').map((i) => ({ offset: i.offset, bytes: numel(i.shape) * 4 }));
        try {
          exec = await wasmExec(bytes, `${manifest.model.name}.${name}`, e.schedule.map((k) => k.name), e.loops ?? [], plan.count > 1 ? { count: plan.count, memoryBytes: e.wasm.threads!.memoryBytes } : undefined, stateRanges);
        } catch (err) {
          throw new ArtifactError(`${mod.file}: cannot instantiate: ${(err as Error).message}`);
        }
        execs.set(name, exec);
        const mem = (exec as Exec & { p: { memory: WebAssembly.Memory } }).p.memory.buffer.byteLength;
        if (mem < e.arenaBytes) throw new ArtifactError(`manifest.json: entries.${name}.arenaBytes: ${e.arenaBytes}, but ${mod.file}'s memory has only ${mem} bytes`);
      } else {
        if (!e.webgpu) throw new ArtifactError(`manifest.json: entry '${name}' has no webgpu kernels`);
        const dir = e.webgpu.dir.endsWith('/') ? e.webgpu.dir : `${e.webgpu.dir}/`;
        const kernels = await Promise.all(
          e.webgpu.kernels.map(async (k) => ({ name: k.name, workgroups: k.workgroups, code: new TextDecoder().decode(await read(dir + k.file)) })),
        );
        let prog: GpuProgram;
        try {
          prog = await createProgram(device!, kernels, e.arenaBytes, `${manifest.model.name}.${name}`, e.loops ?? []);
        } catch (err) {
          throw new ArtifactError(`${dir}: entry '${name}': ${(err as Error).message}`);
        }
        execs.set(name, gpuExec(prog));
      }
    }
  } catch (err) {
    for (const x of execs.values()) x.destroy();
    throw err;
  }
  if (backend === 'webgpu' && opts.threads !== undefined && opts.threads > 1) threadsNote = 'threads apply to the wasm backend only';
  if (threadsNote) console.info(`dlc: ${manifest.model.name}: ${threadsNote}`);
  return makeModel(manifest, backend, execs, host, threadCount, threadsNote);
}

/** Cores here: `navigator.hardwareConcurrency`, or Node's `os.availableParallelism()`, else 1. */
async function coresHere(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (nav?.hardwareConcurrency) return nav.hardwareConcurrency;
  if (isNode()) return (await nodeImport<{ availableParallelism(): number }>('os')).availableParallelism();
  return 1;
}

/**
 * How many threads an entry runs on, and why fewer than asked if so: the asked count (default the
 * cores here), at most what its threaded module was built for, and 1 without one or without
 * SharedArrayBuffer (a page that is not cross-origin isolated).
 */
function threadPlan(mt: { readonly count: number } | undefined, want: number): { count: number; note: string | null } {
  if (want <= 1) return { count: 1, note: null };
  if (!mt) return { count: 1, note: `this artifact has no threaded Wasm modules (compiled with --threads 1 or by an older dlc); running on one thread` };
  const g = globalThis as { crossOriginIsolated?: boolean; SharedArrayBuffer?: unknown };
  if (g.crossOriginIsolated === false || typeof g.SharedArrayBuffer !== 'function') {
    return { count: 1, note: 'threads need SharedArrayBuffer, which a page has only when cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp); running on one thread' };
  }
  const count = Math.min(want, mt.count);
  return { count, note: count < want ? `the artifact's threaded modules were built for at most ${mt.count} threads (dlc compile --threads N); running on ${count}` : null };
}

function makeModel(
  manifest: Manifest,
  backend: ArtifactBackend,
  execs: ReadonlyMap<EntryName, Exec>,
  host: ReadonlyMap<string, Float32Array | Int32Array>,
  threads: number,
  threadsNote: string | null,
): ArtifactModel {
  const dt = (s: TensorSpec): 'f32' | 'i32' => (s.dtype === 'f32' ? 'f32' : 'i32');
  const stateOf = (name: EntryName) => manifest.entries[name]!.inputs.filter((i) => i.role === 'state');
  // Every program gets the initial state; from then on `fresh` says which hold the newest.
  const initial = (i: EntryInput) => host.get(i.name) ?? (i.dtype === 'f32' ? new Float32Array(numel(i.shape)) : new Int32Array(numel(i.shape)));
  for (const [name, exec] of execs) for (const i of stateOf(name)) exec.write(i.offset, initial(i));
  const fresh = new Set<EntryName>(execs.keys());
  let disposed = false;

  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    if (disposed) return Promise.reject(new ArtifactError('artifact: model used after dispose()'));
    const r = chain.then(f);
    chain = r.catch(() => undefined);
    return r;
  };

  const entry = (name: EntryName) => {
    const spec = manifest.entries[name];
    const exec = execs.get(name);
    if (!spec || !exec) throw new ArtifactError(`artifact: this artifact has no '${name}' entry (dlc compile --entry ${name === 'train_step' ? 'train' : name})`);
    return { spec, exec };
  };

  /** Bring `name`'s state up to date from a program that holds the newest (only train_step can be ahead). */
  async function sync(name: EntryName): Promise<void> {
    if (fresh.has(name)) return;
    const from = [...fresh][0];
    const src = new Map(stateOf(from).map((i) => [i.name, i]));
    const copies = stateOf(name).map((i) => ({ src: src.get(i.name)!.offset, dst: i.offset, bytes: numel(i.shape) * 4 }));
    await execs.get(from)!.copyTo(execs.get(name)!, copies);
    fresh.add(name);
  }

  const B = manifest.batchSize;
  const ins = manifest.model.inputs;
  const outs = manifest.model.outputs;
  const inPer = ins.map((t) => numel(t.shape));
  const outPer = outs.map((t) => numel(t.shape));
  /** The entry input of role x (y) that carries model input (the labels of output) `name`; checkManifest made sure there is one. */
  const fed = (spec: EntryManifest, r: 'x' | 'y', name: string) => spec.inputs.find((i) => i.role === r && i.feeds === name)!;
  const role = (spec: EntryManifest, r: InputRole) => spec.inputs.find((i) => i.role === r)!;
  // Argument names in messages: `x`/`y` for the one input/output, else `x input 'a'`, `y output 'b'`.
  const xName = (i: number) => (ins.length === 1 ? 'x' : `x input '${ins[i].name}'`);
  const yName = (j: number) => (outs.length === 1 ? 'y' : `y output '${outs[j].name}'`);

  async function weightsNow(): Promise<Record<string, Float32Array>> {
    const from = fresh.has('train_step') ? 'train_step' : [...fresh][0];
    const st = stateOf(from).filter((i) => manifest.state.some((s) => s.name === i.name && s.init === 'weights'));
    const data = await execs.get(from)!.read(st.map((i) => ({ offset: i.offset, count: numel(i.shape), dtype: dt(i) })));
    return Object.fromEntries(st.map((i, k) => [i.name, data[k] as Float32Array]));
  }

  /**
   * Split `v` into one value per model input (output): one array for a single one, or a list in order,
   * or an object keyed by name. The values are checked by the caller. For a single input (output)
   * anything but `[array]` or `{ name: array }` is passed on as the value itself, so the messages
   * about it stay those of the one-array form.
   */
  function split(what: string, arg: 'x' | 'y', v: unknown, of: readonly ModelTensor[]): unknown[] {
    const kind = arg === 'x' ? 'input' : 'output';
    const names = of.map((t) => t.name);
    if (of.length === 1) {
      if (Array.isArray(v) && v.length === 1 && ArrayBuffer.isView(v[0])) return v;
      if (isObject(v) && !ArrayBuffer.isView(v) && Object.keys(v).length === 1 && ArrayBuffer.isView(v[names[0]])) return [v[names[0]]];
      return [v];
    }
    if (Array.isArray(v)) {
      if (v.length !== of.length) throw new ArtifactError(`${what}: ${arg} must hold ${of.length} array${of.length === 1 ? '' : 's'}, one per model ${kind} (${names.join(', ')}), got ${v.length}`);
      return v;
    }
    if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) if (!names.includes(k)) throw new ArtifactError(`${what}: ${arg} names '${k}', which is not a model ${kind}; the ${kind}s are ${names.join(', ')}`);
      return names.map((n) => {
        if (o[n] === undefined) throw new ArtifactError(`${what}: ${arg} has no array for model ${kind} '${n}' (the ${kind}s are ${names.join(', ')})`);
        return o[n];
      });
    }
    const got = v === null ? 'null' : ArrayBuffer.isView(v) ? `one ${v.constructor.name}` : typeof v;
    throw new ArtifactError(`${what}: the model has ${of.length} ${kind}s (${names.join(', ')}); pass ${arg} as a list of ${of.length} arrays in that order or an object keyed by ${kind} name, got ${got}`);
  }

  const valuesOf = (a: unknown) => (a instanceof Float32Array || a instanceof Int32Array ? a.length : typeof a);

  /** Model inputs for predict: N >= 1 samples, the same N for every input, all finite. */
  function predictInputs(what: string, x: unknown): { xs: Float32Array[]; n: number } {
    const xs = split(what, 'x', x, ins).map((a, i) => {
      if (!(a instanceof Float32Array) || a.length === 0 || a.length % inPer[i] !== 0) {
        throw new ArtifactError(`${what}: ${xName(i)} must be a Float32Array of shape [N, ${ins[i].shape.join(', ')}] (a multiple of ${inPer[i]} values), got ${valuesOf(a)} values`);
      }
      return a;
    });
    const n = xs[0].length / inPer[0];
    xs.forEach((a, i) => {
      if (a.length / inPer[i] !== n) throw new ArtifactError(`${what}: ${xName(i)} has ${a.length / inPer[i]} samples, ${xName(0)} has ${n}; every input needs the same number`);
    });
    xs.forEach((a, i) => checkFinite(`${what}: ${xName(i)}`, a, inPer[i]));
    return { xs, n };
  }

  /** Run predict on N samples of every input, in batches of B; one array per model output. */
  async function predictAll(xs: readonly Float32Array[], n: number): Promise<Float32Array[]> {
    const { spec, exec } = entry('predict');
    await sync('predict');
    const xin = ins.map((t) => fed(spec, 'x', t.name));
    const outBufs = outs.map((t) => spec.outputs[spec.results[outs.length === 1 ? 'output' : t.name]]);
    const result = outPer.map((p) => new Float32Array(n * p));
    const bufs = inPer.map((p) => new Float32Array(B * p));
    for (let s = 0; s < n; s += B) {
      const m = Math.min(B, n - s);
      bufs.forEach((buf, i) => {
        buf.fill(0);
        buf.set(xs[i].subarray(s * inPer[i], (s + m) * inPer[i]));
        exec.write(xin[i].offset, buf);
      });
      exec.run([]);
      const got = await exec.read(outBufs.map((o, j) => ({ offset: o.offset, count: m * outPer[j], dtype: 'f32' as const })));
      got.forEach((o, j) => result[j].set(o, s * outPer[j]));
    }
    return result;
  }

  return {
    manifest,
    backend,
    threads,
    threadsNote,
    predict: (x) =>
      serial(async () => {
        entry('predict');
        if (outs.length !== 1) throw new ArtifactError(`predict: model '${manifest.model.name}' has ${outs.length} outputs (${outs.map((t) => t.name).join(', ')}); use predictMany, which returns one Float32Array per output`);
        const { xs, n } = predictInputs('predict', x);
        return (await predictAll(xs, n))[0];
      }),
    predictMany: (x) =>
      serial(async () => {
        entry('predict');
        const { xs, n } = predictInputs('predictMany', x);
        return predictAll(xs, n);
      }),
    trainStep: (x, y, mask, sampleWeight) =>
      serial(async () => {
        const { spec, exec } = entry('train_step');
        const xs = split('trainStep', 'x', x, ins).map((a, i) => {
          const n = a instanceof Float32Array ? a.length / inPer[i] : NaN;
          if (!Number.isInteger(n) || n < 1 || n > B) throw new ArtifactError(`trainStep: ${xName(i)} must be a Float32Array of 1 to ${B} samples of shape [${ins[i].shape.join(', ')}] (${inPer[i]} values each), got ${valuesOf(a)} values`);
          return a as Float32Array;
        });
        const n = xs[0].length / inPer[0];
        xs.forEach((a, i) => {
          if (a.length / inPer[i] !== n) throw new ArtifactError(`trainStep: ${xName(i)} has ${a.length / inPer[i]} samples, ${xName(0)} has ${n}; every input needs the same number`);
        });
        const yin = outs.map((t) => fed(spec, 'y', t.name));
        const yPer = yin.map((b) => numel(b.shape) / B);
        const ys = split('trainStep', 'y', y, outs).map((a, j) => {
          if (!(a instanceof Int32Array || a instanceof Float32Array) || a.length !== n * yPer[j]) {
            throw new ArtifactError(`trainStep: ${yName(j)} must hold ${n * yPer[j]} labels (${yin[j].dtype}[${[n, ...yin[j].shape.slice(1)].join(', ')}]), got ${valuesOf(a)}`);
          }
          return a;
        });
        if (mask !== undefined && (!(mask instanceof Float32Array) || mask.length !== n)) throw new ArtifactError(`trainStep: mask must be a Float32Array of ${n} values`);
        const weightIn = spec.inputs.find((i) => i.role === 'weight');
        if (sampleWeight !== undefined) {
          if (!(sampleWeight instanceof Float32Array) || sampleWeight.length !== n) throw new ArtifactError(`trainStep: sampleWeight must be a Float32Array of ${n} values, got ${valuesOf(sampleWeight)}`);
          const at = sampleWeight.findIndex((v) => !(Number.isFinite(v) && v >= 0));
          if (at >= 0) throw new ArtifactError(`trainStep: sampleWeight[${at}] is ${sampleWeight[at]}; sample weights must be finite and >= 0`);
          if (!weightIn) throw new ArtifactError('trainStep: this artifact has no sample weight input (compiled by an older dlc); compile it again to use sampleWeight');
        }
        xs.forEach((a, i) => checkFinite(`trainStep: ${xName(i)}`, a, inPer[i]));
        ys.forEach((a, j) => {
          if (yin[j].dtype !== 'f32') {
            // Integer class labels index the output: one outside [0, classes) would silently read garbage.
            const classes = outPer[j];
            const bad = a.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= classes);
            if (bad >= 0) throw new ArtifactError(`trainStep: ${outs.length === 1 ? '' : `${yName(j)}: `}label ${a[bad]} of sample ${bad} is outside [0, ${classes})`);
          } else checkFinite(`trainStep: ${yName(j)}`, a, yPer[j]);
        });
        await sync('train_step');
        xs.forEach((a, i) => {
          const xb = new Float32Array(B * inPer[i]);
          xb.set(a);
          exec.write(fed(spec, 'x', ins[i].name).offset, xb);
        });
        ys.forEach((a, j) => {
          const yb = yin[j].dtype === 'f32' ? new Float32Array(B * yPer[j]) : new Int32Array(B * yPer[j]);
          yb.set(a);
          exec.write(yin[j].offset, yb);
        });
        const mb = new Float32Array(B);
        if (mask) mb.set(mask);
        else mb.fill(1, 0, n);
        exec.write(role(spec, 'mask').offset, mb);
        if (weightIn) {
          const wb = new Float32Array(B).fill(1);
          if (sampleWeight) wb.set(sampleWeight);
          exec.write(weightIn.offset, wb);
        }
        const copies = spec.updates
          .map((u) => ({ src: spec.outputs[u.output].offset, dst: spec.inputs[u.input].offset, bytes: numel(spec.outputs[u.output].shape) * 4 }))
          .filter((c) => c.src !== c.dst);
        exec.run(copies);
        fresh.clear();
        fresh.add('train_step');
        const names = Object.keys(spec.results);
        const vals = await exec.read(names.map((k) => ({ offset: spec.outputs[spec.results[k]].offset, count: 1, dtype: dt(spec.outputs[spec.results[k]]) })));
        return Object.fromEntries(names.map((k, i) => [k, vals[i][0]])) as Record<string, number> & { loss: number };
      }),
    getWeights: () => serial(weightsNow),
    saveWeights: () =>
      serial(async () => {
        const w = await weightsNow();
        const tensors: Record<string, SafeTensor> = {};
        for (const s of manifest.state) if (s.init === 'weights') tensors[s.name] = { dtype: 'F32', shape: s.shape, data: w[s.name] };
        return writeSafetensors(tensors, { format: 'dlc' });
      }),
    dispose() {
      if (disposed) return;
      disposed = true;
      void chain.then(() => {
        for (const e of execs.values()) e.destroy();
      });
    },
  };
}
