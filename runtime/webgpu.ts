/**
 * @file WebGPU runtime: get a device (Node or browser), turn a program's WGSL kernels into pipelines
 * over one arena buffer, run a whole step as one command buffer, and move bytes in and out.
 *
 * The program contract (see compiler/codegen/wgsl.ts; this file imports nothing from compiler/):
 * every kernel is a compute shader with entry point `main` whose only binding is
 * `@group(0) @binding(0) var<storage, read_write> mem: array<f32>`, the whole arena; buffer offsets
 * are baked into the shaders. Each kernel comes with its dispatch size. Every element of the arena is
 * 4 bytes (f32, i32, or bool as i32 0/1), so offsets and sizes here are in bytes, multiples of 4.
 *
 * Invariants:
 *  - pipelines, the bind group and the arena are created once, in `createProgram`; `run` only encodes
 *    dispatches (all kernels of a step in one compute pass, one command buffer, one submit), except
 *    while a dispatch trace is on (runtime/trace.ts): then one submit per kernel, each timed;
 *  - nothing is read back unless the caller asks (`read`/`readMany`, one staging copy and one map
 *    per call, however many ranges);
 *  - a shader that fails to compile is reported with its kernel name, the WGSL line and column, the
 *    compiler's message and the offending source line; validation errors raised while a step runs
 *    are captured and rethrown by the next read, naming the program;
 *  - in Node the `webgpu` package (Dawn) is loaded with a computed specifier (bundlers leave it out,
 *    so this file also loads in a page) and the object its `create()` returns is kept in a
 *    module-level variable for the life of the process: dawn.node crashes if it is collected.
 */

import type { ByteCopy, ScheduleLoop } from './schedule.ts';
import { byteCopyAt, checkLoops, walkSchedule } from './schedule.ts';
import type { DispatchSink } from './trace.ts';
import { dispatchTrace } from './trace.ts';

/** A WGSL kernel as the code generator hands it over. */
export interface GpuKernelSource {
  readonly name: string;
  readonly code: string;
  readonly workgroups: readonly [number, number, number];
}

/** One contiguous byte range to copy inside the arena (`src` and `dst` must not overlap). */
export interface ArenaCopy {
  readonly src: number;
  readonly dst: number;
  readonly bytes: number;
}

export interface GpuProgram {
  readonly device: GPUDevice;
  readonly arena: GPUBuffer;
  readonly arenaBytes: number;
  /** Kernel names in dispatch order (labels of the pipelines). */
  readonly kernels: readonly string[];
  /**
   * Encode every kernel in order, then the given in-arena copies (e.g. `X.next` onto `X` after a
   * train step), in one command buffer, and submit it. Returns without waiting for the GPU.
   */
  run(copies?: readonly ArenaCopy[]): void;
  /** Write `data` at byte `offset` of the arena (queued; ordered before the next `run`). */
  write(offset: number, data: Float32Array | Int32Array): void;
  /** Copy ranges inside the arena (through a scratch buffer: WebGPU forbids same-buffer copies). */
  copyWithin(copies: readonly ArenaCopy[]): void;
  /** `count` elements at byte `offset`, after every submitted step has finished. */
  read(offset: number, count: number, dtype?: 'f32' | 'i32'): Promise<Float32Array | Int32Array>;
  /** Several ranges with one staging copy and one map. */
  readMany(ranges: readonly { offset: number; count: number; dtype?: 'f32' | 'i32' }[]): Promise<(Float32Array | Int32Array)[]>;
  /** Wait until every submitted step has run. */
  finish(): Promise<void>;
  destroy(): void;
}

/** Thrown when there is no WebGPU implementation or no adapter; callers turn it into a user error. */
export class GpuUnavailableError extends Error {
  override name = 'GpuUnavailableError';
}

// GPUBufferUsage / GPUMapMode values are fixed by the spec; spelled out so this file does not depend
// on the globals being installed (Node installs them only once the package is loaded).
const USAGE = { MAP_READ: 0x1, COPY_SRC: 0x4, COPY_DST: 0x8, STORAGE: 0x80 } as const;
const MAP_READ = 0x1;
const SHADER_STAGE_COMPUTE = 0x4;

/** dawn.node's GPU object: must stay reachable for the whole process (see the file comment). */
let nodeGpu: GPU | null = null;
let gpuPromise: Promise<GPU | null> | null = null;

function isNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !!proc?.versions?.node;
}

async function loadGpu(): Promise<GPU | null> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (!isNode()) return null;
  // A computed specifier: bundlers and vite's import analysis do not follow it.
  const spec = ['web', 'gpu'].join('');
  let mod: { create(options: string[]): GPU; globals: Record<string, unknown> };
  try {
    mod = (await import(/* @vite-ignore */ spec)) as typeof mod;
  } catch (e) {
    throw new GpuUnavailableError(`webgpu: the 'webgpu' npm package (Dawn for Node) could not be loaded: ${(e as Error).message}`);
  }
  // Dawn's objects expect the WebGPU globals (GPUBufferUsage, ...) to exist; add only missing ones.
  const g = globalThis as Record<string, unknown>;
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in g)) g[k] = v;
  nodeGpu = mod.create([]);
  return nodeGpu;
}

/** The WebGPU entry point of this host (navigator.gpu, or Dawn in Node), or null if there is none. */
export function getGpu(): Promise<GPU | null> {
  gpuPromise ??= loadGpu();
  return gpuPromise;
}

export interface DeviceRequest {
  /**
   * Bytes the largest arena needs. Omitted: ask for the adapter's maximum storage binding and buffer
   * sizes, so that any program that fits the adapter fits the device.
   */
  readonly arenaBytes?: number;
}

/** An adapter and a device with the buffer limits the programs need. */
export async function requestGpuDevice(req: DeviceRequest = {}): Promise<GPUDevice> {
  const gpu = await getGpu();
  if (!gpu) throw new GpuUnavailableError('webgpu: this host has no WebGPU (navigator.gpu is missing and this is not Node)');
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GpuUnavailableError('webgpu: no WebGPU adapter found (requestAdapter returned null)');
  const al = adapter.limits;
  const need = req.arenaBytes;
  if (need !== undefined) {
    for (const lim of ['maxStorageBufferBindingSize', 'maxBufferSize'] as const) {
      if (al[lim] < need) {
        throw new GpuUnavailableError(`webgpu: the program's arena needs ${lim} >= ${need} bytes, but the adapter allows at most ${al[lim]}`);
      }
    }
  }
  // Spec defaults: a request at or below them is pointless; above the adapter's value it would fail.
  const defaults = { maxStorageBufferBindingSize: 134217728, maxBufferSize: 268435456 };
  const requiredLimits: Record<string, number> = {};
  for (const lim of ['maxStorageBufferBindingSize', 'maxBufferSize'] as const) {
    const v = Math.min(al[lim], need ?? al[lim]);
    if (v > defaults[lim]) requiredLimits[lim] = v;
  }
  const device = await adapter.requestDevice({ requiredLimits });
  return device;
}

/** Limits a code generator needs to size workgroups and tiles for this device. */
export function kernelLimits(device: GPUDevice): { maxWorkgroupSize: number; maxWorkgroupStorage: number } {
  const l = device.limits;
  return {
    maxWorkgroupSize: Math.min(l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX),
    maxWorkgroupStorage: l.maxComputeWorkgroupStorageSize,
  };
}

function checkArena(device: GPUDevice, arenaBytes: number): void {
  for (const lim of ['maxStorageBufferBindingSize', 'maxBufferSize'] as const) {
    if (device.limits[lim] < arenaBytes) {
      throw new GpuUnavailableError(
        `webgpu: the program's arena is ${arenaBytes} bytes but the device's ${lim} is ${device.limits[lim]} ` +
          `(request a device with requestGpuDevice({ arenaBytes: ${arenaBytes} }), or use a smaller batch)`,
      );
    }
  }
}

async function compileModule(device: GPUDevice, k: GpuKernelSource): Promise<GPUShaderModule> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ label: k.name, code: k.code });
  const info = await module.getCompilationInfo();
  const scopeError = await device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length) {
    const lines = k.code.split('\n');
    const detail = errors
      .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}\n    ${(lines[m.lineNum - 1] ?? '').trim()}`)
      .join('\n');
    throw new Error(`webgpu: kernel '${k.name}' failed to compile:\n${detail}`);
  }
  if (scopeError) throw new Error(`webgpu: kernel '${k.name}' failed to compile: ${scopeError.message}`);
  return module;
}

/** Per device: the one `uncapturederror` listener dlc adds, and the programs it tells. */
const errorWatch = new WeakMap<GPUDevice, { readonly listener: (ev: Event) => void; readonly sinks: Set<(message: string) => void> }>();

/**
 * Tell `sink` about the device's uncaptured errors until the returned function is called. Every
 * program on a device shares one listener, added with the first and removed with the last, so a
 * process with many programs (many models) adds one listener, not one each (Node warns past 10).
 */
function watchErrors(device: GPUDevice, sink: (message: string) => void): () => void {
  let w = errorWatch.get(device);
  if (!w) {
    const sinks = new Set<(message: string) => void>();
    const listener = (ev: Event) => {
      const message = (ev as GPUUncapturedErrorEvent).error?.message ?? 'unknown GPU error';
      for (const f of sinks) f(message);
    };
    device.addEventListener('uncapturederror', listener);
    w = { listener, sinks };
    errorWatch.set(device, w);
  }
  const watch = w;
  watch.sinks.add(sink);
  return () => {
    watch.sinks.delete(sink);
    if (watch.sinks.size === 0 && errorWatch.get(device) === watch) {
      device.removeEventListener('uncapturederror', watch.listener);
      errorWatch.delete(device);
    }
  };
}

/**
 * Create the arena, one pipeline per kernel (all sharing one layout, so one bind group serves them
 * all) and the bind group. Throws naming the kernel if a shader does not compile or validate.
 */
export async function createProgram(
  device: GPUDevice,
  kernels: readonly GpuKernelSource[],
  arenaBytes: number,
  label = 'dlc',
  loops: readonly ScheduleLoop<ByteCopy>[] = [],
): Promise<GpuProgram> {
  const bytes = Math.max(16, Math.ceil(arenaBytes / 16) * 16);
  checkArena(device, bytes);
  checkLoops(loops, kernels.length, bytes, `webgpu: ${label}`);
  const bindLayout = device.createBindGroupLayout({
    label: `${label}.layout`,
    entries: [{ binding: 0, visibility: SHADER_STAGE_COMPUTE, buffer: { type: 'storage' } }],
  });
  const layout = device.createPipelineLayout({ label: `${label}.pipelineLayout`, bindGroupLayouts: [bindLayout] });
  for (const k of kernels) {
    for (const w of k.workgroups) {
      if (!Number.isInteger(w) || w < 0 || w > device.limits.maxComputeWorkgroupsPerDimension) {
        throw new Error(`webgpu: kernel '${k.name}' dispatches [${k.workgroups}] workgroups; each must be an integer in [0, ${device.limits.maxComputeWorkgroupsPerDimension}]`);
      }
    }
  }
  // Compile every module, then make every pipeline, all concurrently: a driver that compiles
  // pipelines on worker threads (Chrome's does) overlaps them instead of paying one after another.
  const modules = await Promise.all(kernels.map((k) => compileModule(device, k)));
  const pipelines = await Promise.all(
    kernels.map(async (k, i) => {
      try {
        const pipeline = await device.createComputePipelineAsync({ label: k.name, layout, compute: { module: modules[i], entryPoint: 'main' } });
        return { pipeline, workgroups: k.workgroups, name: k.name };
      } catch (e) {
        throw new Error(`webgpu: kernel '${k.name}': pipeline creation failed: ${(e as Error).message}`);
      }
    }),
  );
  device.pushErrorScope('validation');
  const arena = device.createBuffer({ label: `${label}.arena`, size: bytes, usage: USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST });
  const bindGroup = device.createBindGroup({ label: `${label}.bind`, layout: bindLayout, entries: [{ binding: 0, resource: { buffer: arena } }] });
  const setupErr = await device.popErrorScope();
  if (setupErr) {
    arena.destroy();
    throw new Error(`webgpu: ${label}: arena of ${bytes} bytes could not be created: ${setupErr.message}`);
  }

  let scratch: GPUBuffer | null = null;
  let pendingError: string | null = null;
  const unwatch = watchErrors(device, (message) => {
    pendingError ??= message;
  });
  /** Staging buffers free for reuse (MAP_READ); a read takes one and gives it back after unmap. */
  const staging: GPUBuffer[] = [];
  let destroyed = false;

  const checkRange = (offset: number, n: number, what: string) => {
    if (offset % 4 !== 0 || n % 4 !== 0 || offset < 0 || n < 0 || offset + n > bytes) {
      throw new Error(`webgpu: ${label}: ${what} [${offset}, +${n}) is outside the ${bytes}-byte arena or not 4-byte aligned`);
    }
  };

  /**
   * Make the scratch buffer at least `total` bytes. Called before anything is encoded: a scratch
   * buffer replaced while a command buffer still refers to it would make that command buffer invalid.
   */
  const ensureScratch = (total: number) => {
    if (total && (!scratch || scratch.size < total)) {
      scratch?.destroy();
      scratch = device.createBuffer({ label: `${label}.scratch`, size: Math.ceil(total / 16) * 16, usage: USAGE.COPY_SRC | USAGE.COPY_DST });
    }
  };
  const copyBytes = (copies: readonly ArenaCopy[]) => copies.reduce((s, c) => s + c.bytes, 0);

  const encodeCopies = (enc: GPUCommandEncoder, copies: readonly ArenaCopy[]) => {
    if (!copies.length) return;
    // Same-buffer copies are invalid in WebGPU: stage every source in a scratch buffer, then copy back.
    if (!scratch || scratch.size < copyBytes(copies)) throw new Error(`webgpu: ${label}: scratch buffer too small (ensureScratch was not called)`);
    let at = 0;
    for (const c of copies) {
      checkRange(c.src, c.bytes, 'copy source');
      checkRange(c.dst, c.bytes, 'copy destination');
      if (c.bytes) enc.copyBufferToBuffer(arena, c.src, scratch, at, c.bytes);
      at += c.bytes;
    }
    at = 0;
    for (const c of copies) {
      if (c.bytes) enc.copyBufferToBuffer(scratch, at, arena, c.dst, c.bytes);
      at += c.bytes;
    }
  };

  /**
   * What a step records, worked out once: runs of dispatches that share a compute pass, and batches
   * of in-arena copies (loop slices) between them. A copy ends the pass; consecutive copies share a
   * batch through scratch unless one reads what an earlier one in the batch writes. A program
   * without loops is one pass.
   */
  type Segment = { readonly k: 'pass'; readonly pipelines: (typeof pipelines)[number][] } | { readonly k: 'copies'; readonly copies: ArenaCopy[] };
  const recording: Segment[] = [];
  walkSchedule(pipelines.length, loops, (e) => {
    const last = recording[recording.length - 1];
    if (e.k === 'copy') {
      const c = byteCopyAt(e.copy, e.step);
      if (last?.k === 'copies' && !last.copies.some((d) => c.src < d.dst + d.bytes && d.dst < c.src + c.bytes)) last.copies.push(c);
      else recording.push({ k: 'copies', copies: [c] });
      return;
    }
    const p = pipelines[e.index];
    if (p.workgroups[0] * p.workgroups[1] * p.workgroups[2] === 0) return;
    if (last?.k === 'pass') last.pipelines.push(p);
    else recording.push({ k: 'pass', pipelines: [p] });
  });
  // The largest batch of loop copies, staged through scratch at once.
  const loopScratch = Math.max(0, ...recording.map((r) => (r.k === 'copies' ? copyBytes(r.copies) : 0)));

  const encodeStep = (enc: GPUCommandEncoder) => {
    for (const r of recording) {
      if (r.k === 'copies') {
        encodeCopies(enc, r.copies);
        continue;
      }
      const pass = enc.beginComputePass({ label: `${label}.kernels` });
      pass.setBindGroup(0, bindGroup);
      for (const p of r.pipelines) {
        pass.setPipeline(p.pipeline);
        pass.dispatchWorkgroups(...p.workgroups);
      }
      pass.end();
    }
  };

  let runs = 0;
  /**
   * The traced form of `run`: one submit per dispatch, each timed from the completion of the one
   * before (the queue runs them in order), reported when the GPU says it is done. A loop's copies
   * are submitted on their own between them.
   */
  const runTraced = (trace: DispatchSink, copies: readonly ArenaCopy[]) => {
    const n = runs++;
    let prev = performance.now();
    walkSchedule(pipelines.length, loops, (e) => {
      if (e.k === 'copy') {
        const enc = device.createCommandEncoder({ label: `${label}.loopcopy` });
        encodeCopies(enc, [byteCopyAt(e.copy, e.step)]);
        device.queue.submit([enc.finish()]);
        return;
      }
      const i = e.index;
      const p = pipelines[i];
      const [x, y, z] = p.workgroups;
      const enc = device.createCommandEncoder({ label: `${label}.${p.name}` });
      if (x * y * z > 0) {
        const pass = enc.beginComputePass({ label: p.name });
        pass.setBindGroup(0, bindGroup);
        pass.setPipeline(p.pipeline);
        pass.dispatchWorkgroups(x, y, z);
        pass.end();
      }
      device.queue.submit([enc.finish()]);
      void device.queue.onSubmittedWorkDone().then(() => {
        const now = performance.now();
        trace({ backend: 'webgpu', program: label, run: n, index: i, kernel: p.name, start: prev, ms: now - prev });
        prev = now;
      });
    });
    const enc = device.createCommandEncoder({ label: `${label}.copies` });
    encodeCopies(enc, copies);
    device.queue.submit([enc.finish()]);
  };

  const prog: GpuProgram = {
    device,
    arena,
    arenaBytes: bytes,
    kernels: pipelines.map((p) => p.name),
    run(copies = []) {
      ensureScratch(Math.max(loopScratch, copyBytes(copies)));
      const trace = dispatchTrace();
      if (trace) return runTraced(trace, copies);
      runs++;
      const enc = device.createCommandEncoder({ label: `${label}.step` });
      encodeStep(enc);
      encodeCopies(enc, copies);
      device.queue.submit([enc.finish()]);
    },
    write(offset, data) {
      checkRange(offset, data.byteLength, 'write');
      device.queue.writeBuffer(arena, offset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    },
    copyWithin(copies) {
      ensureScratch(copyBytes(copies));
      const enc = device.createCommandEncoder({ label: `${label}.copy` });
      encodeCopies(enc, copies);
      device.queue.submit([enc.finish()]);
    },
    async read(offset, count, dtype = 'f32') {
      return (await prog.readMany([{ offset, count, dtype }]))[0];
    },
    async readMany(ranges) {
      if (destroyed) throw new Error(`webgpu: ${label}: read after destroy()`);
      let total = 0;
      for (const r of ranges) {
        checkRange(r.offset, r.count * 4, 'read');
        total += r.count * 4;
      }
      const size = Math.max(16, Math.ceil(total / 16) * 16);
      const si = staging.findIndex((b) => b.size >= size);
      const buf = si >= 0 ? staging.splice(si, 1)[0] : device.createBuffer({ label: `${label}.staging`, size, usage: USAGE.MAP_READ | USAGE.COPY_DST });
      const enc = device.createCommandEncoder({ label: `${label}.read` });
      let at = 0;
      for (const r of ranges) {
        if (r.count) enc.copyBufferToBuffer(arena, r.offset, buf, at, r.count * 4);
        at += r.count * 4;
      }
      device.queue.submit([enc.finish()]);
      let bytesOut: ArrayBuffer;
      try {
        await buf.mapAsync(MAP_READ, 0, size);
        bytesOut = buf.getMappedRange(0, size).slice(0);
        buf.unmap();
      } catch (e) {
        buf.destroy();
        throw e;
      }
      // A program destroyed while this read was in flight frees its buffer here.
      if (destroyed) buf.destroy();
      else staging.push(buf);
      if (pendingError) {
        const e = pendingError;
        pendingError = null;
        throw new Error(`webgpu: ${label}: a GPU error occurred while running: ${e}`);
      }
      at = 0;
      return ranges.map((r) => {
        const out = r.dtype === 'i32' ? new Int32Array(bytesOut, at, r.count) : new Float32Array(bytesOut, at, r.count);
        at += r.count * 4;
        return out;
      });
    },
    async finish() {
      await device.queue.onSubmittedWorkDone();
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      unwatch();
      arena.destroy();
      scratch?.destroy();
      for (const b of staging) b.destroy();
      staging.length = 0;
    },
  };
  return prog;
}

/**
 * Copy byte ranges from one program's arena to another's on the GPU (different buffers, so a plain
 * buffer copy): how a session moves weights from its train program to its eval program.
 */
export function copyBetween(src: GpuProgram, dst: GpuProgram, copies: readonly ArenaCopy[]): void {
  if (src.device !== dst.device) throw new Error('webgpu: copyBetween needs two programs on the same device');
  const enc = src.device.createCommandEncoder({ label: 'dlc.copyBetween' });
  for (const c of copies) {
    if (c.src + c.bytes > src.arenaBytes || c.dst + c.bytes > dst.arenaBytes) throw new Error(`webgpu: copyBetween range [${c.src}, +${c.bytes}) -> [${c.dst}) is outside an arena`);
    if (c.bytes) enc.copyBufferToBuffer(src.arena, c.src, dst.arena, c.dst, c.bytes);
  }
  src.device.queue.submit([enc.finish()]);
}
