/**
 * @file Loading a compiled artifact (the folder `dlc compile` writes) and running it: the manifest
 * format, verification, and a small model object with predict / trainStep / weights.
 *
 * Files come through `fetch` in a browser and through `fs` in Node when the base URL's scheme is
 * `file:` (Node's fetch does not read files). Before anything runs the loader checks, and refuses
 * with a message naming the file: the manifest's format and version, each Wasm module's sha256
 * against the manifest (WebCrypto, so the same code runs in a page and in Node 20), and that the
 * weights file holds every weight of the right dtype and shape. Optimizer state (slots, `step`)
 * starts at zero, as the manifest's `init: "zeros"` says.
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
import type { ArenaCopy, GpuProgram } from './webgpu.ts';
import { copyBetween, createProgram, requestGpuDevice } from './webgpu.ts';

export const ARTIFACT_FORMAT = 'dlc-artifact';
export const ARTIFACT_VERSION = 1;

export type ArtifactBackend = 'wasm' | 'webgpu';
export type EntryName = 'predict' | 'train_step';
export type InputRole = 'x' | 'y' | 'mask' | 'state';
export type ArtifactDType = 'f32' | 'i32' | 'bool';

export interface TensorSpec {
  readonly name: string;
  readonly dtype: ArtifactDType;
  readonly shape: readonly number[];
}

export interface EntryInput extends TensorSpec {
  readonly role: InputRole;
  /** Byte offset of the buffer in the entry's arena (Wasm memory or the WebGPU storage buffer). */
  readonly offset: number;
}

export interface EntryOutput extends TensorSpec {
  readonly offset: number;
}

export interface EntryManifest {
  readonly inputs: readonly EntryInput[];
  readonly outputs: readonly EntryOutput[];
  /** Named results (`output`, `loss`, `accuracy`) by output index. */
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
  readonly wasm?: { readonly file: string; readonly sha256: string; readonly memoryBytes: number };
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
  /** `weights`: from the weights file; `zeros`: optimizer state, starts at zero. */
  readonly init: 'weights' | 'zeros';
}

export interface Manifest {
  readonly format: typeof ARTIFACT_FORMAT;
  readonly version: number;
  readonly model: { readonly name: string; readonly inputShape: readonly number[]; readonly outputShape: readonly number[] };
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
  /** WebGPU only: a device to use instead of the one requested from the host's adapter. */
  readonly device?: GPUDevice;
}

export interface ArtifactModel {
  readonly manifest: Manifest;
  readonly backend: ArtifactBackend;
  /** Outputs for N samples (any N >= 1; run in batches of `manifest.batchSize`, the last one padded). */
  predict(x: Float32Array): Promise<Float32Array>;
  /** One optimizer step on n <= batchSize samples (a short batch is padded and masked); loss and metrics. */
  trainStep(x: Float32Array, y: Int32Array | Float32Array, mask?: Float32Array): Promise<Record<string, number> & { loss: number }>;
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

/** Check format and version before trusting any other field. */
export function checkManifest(m: unknown): Manifest {
  const bad = (why: string): never => {
    throw new ArtifactError(`manifest.json: ${why}`);
  };
  if (!m || typeof m !== 'object') bad('not a JSON object');
  const o = m as Partial<Manifest>;
  if (o.format !== ARTIFACT_FORMAT) bad(`format is ${JSON.stringify(o.format)}, expected "${ARTIFACT_FORMAT}" (is this a dlc artifact?)`);
  if (o.version !== ARTIFACT_VERSION) bad(`artifact format version ${JSON.stringify(o.version)}, but this runtime reads version ${ARTIFACT_VERSION}; recompile the model with a matching dlc`);
  if (!o.model || !Array.isArray(o.state) || !o.entries || !Number.isInteger(o.batchSize) || typeof o.weightsFile !== 'string' || !Array.isArray(o.targets)) bad('missing fields (model, batchSize, entries, state, weightsFile, targets)');
  return o as Manifest;
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

async function wasmExec(bytes: Uint8Array, label: string, kernels: readonly string[]): Promise<Exec> {
  const p = await instantiateProgram(bytes, { label, kernels });
  const view = (r: Range) => (r.dtype === 'i32' ? p.i32(r.offset, r.count) : p.f32(r.offset, r.count));
  const exec: Exec & { p: typeof p } = {
    p,
    write: (offset, data) => (data instanceof Int32Array ? p.i32(offset, data.length) : p.f32(offset, data.length)).set(data),
    run(copies) {
      p.run();
      const mem = new Uint8Array(p.memory.buffer);
      for (const c of copies) mem.copyWithin(c.dst, c.src, c.src + c.bytes);
    },
    read: async (ranges) => ranges.map((r) => view(r).slice()),
    async copyTo(to, copies) {
      const src = new Uint8Array(p.memory.buffer);
      const dst = new Uint8Array((to as typeof exec).p.memory.buffer);
      for (const c of copies) dst.set(src.subarray(c.src, c.src + c.bytes), c.dst);
    },
    destroy() {},
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
  const read = reader(await baseUrl(base));
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
    if (s.init === 'zeros') {
      host.set(s.name, s.dtype === 'f32' ? new Float32Array(numel(s.shape)) : new Int32Array(numel(s.shape)));
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
  const device = backend === 'webgpu' ? (opts.device ?? (await gpuDevice())) : null;
  const execs = new Map<EntryName, Exec>();
  try {
    for (const name of names) {
      const e = manifest.entries[name]!;
      if (backend === 'wasm') {
        if (!e.wasm) throw new ArtifactError(`manifest.json: entry '${name}' has no wasm module`);
        const bytes = await read(e.wasm.file);
        const sum = await sha256(bytes);
        if (sum !== e.wasm.sha256) throw new ArtifactError(`${e.wasm.file}: sha256 ${sum} does not match manifest.json (${e.wasm.sha256}); the file is damaged or from another compile`);
        let exec: Exec;
        try {
          exec = await wasmExec(bytes, `${manifest.model.name}.${name}`, e.schedule.map((k) => k.name));
        } catch (err) {
          throw new ArtifactError(`${e.wasm.file}: cannot instantiate: ${(err as Error).message}`);
        }
        execs.set(name, exec);
      } else {
        if (!e.webgpu) throw new ArtifactError(`manifest.json: entry '${name}' has no webgpu kernels`);
        const dir = e.webgpu.dir.endsWith('/') ? e.webgpu.dir : `${e.webgpu.dir}/`;
        const kernels = await Promise.all(
          e.webgpu.kernels.map(async (k) => ({ name: k.name, workgroups: k.workgroups, code: new TextDecoder().decode(await read(dir + k.file)) })),
        );
        execs.set(name, gpuExec(await createProgram(device!, kernels, e.arenaBytes, `${manifest.model.name}.${name}`)));
      }
    }
  } catch (err) {
    for (const x of execs.values()) x.destroy();
    throw err;
  }
  return makeModel(manifest, backend, execs, host);
}

function makeModel(manifest: Manifest, backend: ArtifactBackend, execs: ReadonlyMap<EntryName, Exec>, host: ReadonlyMap<string, Float32Array | Int32Array>): ArtifactModel {
  const dt = (s: TensorSpec): 'f32' | 'i32' => (s.dtype === 'f32' ? 'f32' : 'i32');
  const stateOf = (name: EntryName) => manifest.entries[name]!.inputs.filter((i) => i.role === 'state');
  // Every program gets the initial state; from then on `fresh` says which hold the newest.
  for (const [name, exec] of execs) for (const i of stateOf(name)) exec.write(i.offset, host.get(i.name)!);
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

  const role = (spec: EntryManifest, r: InputRole) => spec.inputs.find((i) => i.role === r)!;
  const inPer = numel(manifest.model.inputShape);
  const B = manifest.batchSize;
  const shapeText = `[N, ${manifest.model.inputShape.join(', ')}]`;

  async function weightsNow(): Promise<Record<string, Float32Array>> {
    const from = fresh.has('train_step') ? 'train_step' : [...fresh][0];
    const ins = stateOf(from).filter((i) => manifest.state.some((s) => s.name === i.name && s.init === 'weights'));
    const data = await execs.get(from)!.read(ins.map((i) => ({ offset: i.offset, count: numel(i.shape), dtype: dt(i) })));
    return Object.fromEntries(ins.map((i, k) => [i.name, data[k] as Float32Array]));
  }

  return {
    manifest,
    backend,
    predict: (x) =>
      serial(async () => {
        const { spec, exec } = entry('predict');
        if (!(x instanceof Float32Array) || x.length === 0 || x.length % inPer !== 0) {
          throw new ArtifactError(`predict: x must be a Float32Array of shape ${shapeText} (a multiple of ${inPer} values), got ${x instanceof Float32Array ? x.length : typeof x} values`);
        }
        checkFinite('predict: x', x, inPer);
        await sync('predict');
        const n = x.length / inPer;
        const out = spec.outputs[spec.results.output ?? 0];
        const outPer = numel(out.shape) / B;
        const result = new Float32Array(n * outPer);
        const xin = role(spec, 'x');
        const buf = new Float32Array(B * inPer);
        for (let s = 0; s < n; s += B) {
          const m = Math.min(B, n - s);
          buf.fill(0);
          buf.set(x.subarray(s * inPer, (s + m) * inPer));
          exec.write(xin.offset, buf);
          exec.run([]);
          const [o] = await exec.read([{ offset: out.offset, count: m * outPer, dtype: 'f32' }]);
          result.set(o, s * outPer);
        }
        return result;
      }),
    trainStep: (x, y, mask) =>
      serial(async () => {
        const { spec, exec } = entry('train_step');
        const n = x instanceof Float32Array ? x.length / inPer : NaN;
        if (!Number.isInteger(n) || n < 1 || n > B) throw new ArtifactError(`trainStep: x must be a Float32Array of 1 to ${B} samples of shape [${manifest.model.inputShape.join(', ')}] (${inPer} values each), got ${x instanceof Float32Array ? x.length : typeof x} values`);
        const yin = role(spec, 'y');
        const yPer = numel(yin.shape) / B;
        if (!(y instanceof Int32Array || y instanceof Float32Array) || y.length !== n * yPer) {
          throw new ArtifactError(`trainStep: y must hold ${n * yPer} labels (${yin.dtype}[${[n, ...yin.shape.slice(1)].join(', ')}]), got ${y instanceof Int32Array || y instanceof Float32Array ? y.length : typeof y}`);
        }
        if (mask !== undefined && (!(mask instanceof Float32Array) || mask.length !== n)) throw new ArtifactError(`trainStep: mask must be a Float32Array of ${n} values`);
        checkFinite('trainStep: x', x, inPer);
        if (yin.dtype !== 'f32') {
          // Integer class labels index the output: one outside [0, classes) would silently read garbage.
          const classes = numel(manifest.model.outputShape);
          const bad = y.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= classes);
          if (bad >= 0) throw new ArtifactError(`trainStep: label ${y[bad]} of sample ${bad} is outside [0, ${classes})`);
        } else checkFinite('trainStep: y', y, yPer);
        await sync('train_step');
        const xb = new Float32Array(B * inPer);
        xb.set(x);
        const yb = yin.dtype === 'f32' ? new Float32Array(B * yPer) : new Int32Array(B * yPer);
        yb.set(y);
        const mb = new Float32Array(B);
        if (mask) mb.set(mask);
        else mb.fill(1, 0, n);
        exec.write(role(spec, 'x').offset, xb);
        exec.write(yin.offset, yb);
        exec.write(role(spec, 'mask').offset, mb);
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
