/**
 * @file End-to-end tests of `dlc compile` and the runtime bundle: the reference model is compiled
 * through the CLI (`node bin/dlc.js compile`), then a CHILD node process that imports only the
 * artifact's `index.js` (hence only dist/dlc-runtime.js, no compiler) runs predict and a train step
 * on Wasm and WebGPU. Outputs are compared with the library's own `model.predict` / `trainOnBatch` on
 * Wasm in this process. Also: byte-identical recompiles, refusal of damaged artifacts (naming the
 * file), `--weights` round trips, the runtime bundle's size and contents, CLI usage errors, dumps,
 * and that a failed compile writes nothing. A model of two inputs and two outputs runs the same way
 * (predictMany, trainStep by name or in order, named refusals, typed index.d.ts), a BatchNormalization
 * model's train step updates its moving statistics as the library does, and version-1 manifests
 * written before named inputs/outputs still load.
 *
 * Artifacts are written under `.tmp/` in the repository (git-ignored) rather than the OS temp
 * folder: in Node the runtime loads Dawn (`webgpu`) by a bare import, which resolves from the
 * artifact's location, as it would inside a user's project.
 *
 * On a host without a WebGPU adapter the WebGPU half is skipped with a banner, or fails when
 * DLC_TEST_REQUIRE names webgpu (test/helpers/requirements.ts); the Wasm half runs either way.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, node, root } from './run-node.ts';
import { needWebGpu } from './helpers/requirements.ts';
import { Activation, BatchNormalization, buildArtifact, DEFAULT_ARTIFACT_THREADS, Dense, GRU, Input, loadMnist, LSTM, Model, Sequential, SimpleRNN, tensor, writeArtifact } from '../compiler/index.ts';
import type { LayersModel, SequentialModel } from '../compiler/index.ts';
import type { Manifest } from '../runtime/artifact.ts';
import { ArtifactError, checkManifest, loadArtifact } from '../runtime/index.ts';
import { readSafetensors, writeSafetensors } from '../runtime/safetensors.ts';
import { failNextWorkerStepForTest } from '../runtime/wasm.ts';

const example = 'examples/mnist-cnn.ts';

const dlc = (...args: string[]) => node([bin, ...args]);

/** Whether this host has a WebGPU adapter; when not, reported once for the file and the WebGPU checks are left out. */
const gpu = !!(await needWebGpu('test/artifact.test.ts: the WebGPU half (index.js and loadArtifact on webgpu; the Wasm half still runs)'));

/** Run `script` as an ES module in a fresh node process; its last stdout line is JSON. */
async function child(script: string): Promise<Record<string, unknown>> {
  const r = await node(['--input-type=module', '-e', script]);
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !last.startsWith('{')) throw new Error(`child failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(last) as Record<string, unknown>;
}

/** sha256 of every file under `dir`, by relative path. */
function hashTree(dir: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(path.join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${f}` : f;
    if (statSync(path.join(dir, r)).isDirectory()) Object.assign(out, hashTree(dir, r));
    else out[r] = createHash('sha256').update(readFileSync(path.join(dir, r))).digest('hex');
  }
  return out;
}

let tmp = '';
/** Wasm predictions after the child's train step (first child test), for the --weights round trip. */
let trainedAfter: number[] | null = null;
let outA = '';
let outB = '';
const N = 8;
const data = loadMnist(64, 0).train;
const x8 = (data.x.data as Float32Array).slice(0, N * 784);
const y8 = (data.y.data as Int32Array).slice(0, N);

beforeAll(async () => {
  // dist/ is built (when stale) by the global setup, test/build-dist.ts.
  mkdirSync(path.join(root, '.tmp'), { recursive: true });
  tmp = mkdtempSync(path.join(root, '.tmp', 'artifact-test-'));
  outA = path.join(tmp, 'a');
  outB = path.join(tmp, 'b');
  writeFileSync(path.join(tmp, 'x8.f32'), x8);
  writeFileSync(path.join(tmp, 'y8.i32'), y8);
  const [a, b] = await Promise.all([dlc('compile', example, '-o', outA), dlc('compile', example, '-o', outB)]);
  for (const r of [a, b]) if (r.code !== 0) throw new Error(`compile failed:\n${r.stdout}${r.stderr}`);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A child script: load the artifact at `dir` on each backend, predict N digits, one train step, save the weights. */
function runScript(dir: string, backends: readonly string[], saveTo: string | null, train = true): string {
  return `
import { readFileSync, writeFileSync } from 'node:fs';
import { load } from ${JSON.stringify(`${pathToUrl(dir)}/index.js`)};
// Copy out of Node's pooled Buffer memory into arrays of their own.
const bytes = (f) => { const b = readFileSync(f); return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength); };
const x = new Float32Array(bytes(${JSON.stringify(path.join(tmp, 'x8.f32'))}));
const y = new Int32Array(bytes(${JSON.stringify(path.join(tmp, 'y8.i32'))}));
const out = {};
for (const backend of ${JSON.stringify(backends)}) {
  let m;
  try { m = await load({ backend }); } catch (e) {
    if (backend === 'webgpu' && /not available|adapter/.test(e.message)) { out[backend] = { unavailable: e.message }; continue; }
    throw e;
  }
  const r = { predict: Array.from(await m.predict(x)) };
  if (${train}) {
    r.train = await m.trainStep(x, y);
    r.after = Array.from(await m.predict(x));
    const bytes = await m.saveWeights();
    if (${JSON.stringify(saveTo)} && backend === 'wasm') writeFileSync(${JSON.stringify(saveTo)}, bytes);
    const w = await m.getWeights();
    r.weights = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, v.length]));
  }
  m.dispose();
  out[backend] = r;
}
console.log(JSON.stringify(out));
process.exit(0);
`;
}

const pathToUrl = (p: string) => new URL(`file://${path.resolve(p)}`).href;

/** Relative error at most `rel`, relative to max(|want|, floor) (values near 0 come from cancellation of larger terms). */
function expectClose(got: readonly number[], want: ArrayLike<number>, rel: number, what = '', floor = 1e-3): void {
  expect(got.length, what).toBe(want.length);
  let worst = 0;
  let at = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), floor);
    if (e > worst) [worst, at] = [e, i];
  }
  expect(worst, `${what}[${at}]: got ${got[at]}, want ${want[at]}`).toBeLessThanOrEqual(rel);
}

describe('dlc compile', () => {
  it('writes the artifact layout with a manifest that describes it', () => {
    const files = Object.keys(hashTree(outA));
    for (const f of ['manifest.json', 'predict.wasm', 'train_step.wasm', 'weights.safetensors', 'index.js', 'index.d.ts', 'dlc-runtime.js']) expect(files).toContain(f);
    const m = JSON.parse(readFileSync(path.join(outA, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.format).toBe('dlc-artifact');
    // The train step's learning rate is state that starts at its value (`init: 'fill'`), which only
    // version-3 loaders fill: version 3. A one-input/one-output model keeps its shapes.
    expect(m.version).toBe(3);
    expect(m.state.find((s) => s.name === 'adam.learning_rate')).toEqual({ name: 'adam.learning_rate', dtype: 'f32', shape: [], init: 'fill', value: 0.001 });
    expect(m.model).toEqual({
      name: 'sequential',
      inputs: [{ name: 'input_layer', shape: [28, 28, 1] }],
      outputs: [{ name: 'dense_1', shape: [10] }],
      inputShape: [28, 28, 1],
      outputShape: [10],
    });
    expect(m.batchSize).toBe(32);
    expect(m.targets).toEqual(['wasm', 'webgpu']);
    expect(Object.keys(m.entries).sort()).toEqual(['predict', 'train_step']);
    const t = m.entries.train_step!;
    expect(t.inputs.slice(0, 3).map((i) => [i.name, i.role, i.dtype, i.feeds])).toEqual([['x', 'x', 'f32', 'input_layer'], ['y', 'y', 'i32', 'dense_1'], ['mask', 'mask', 'f32', undefined]]);
    expect(Object.keys(t.results).sort()).toEqual(['accuracy', 'loss']);
    expect(t.updates.length).toBe(31);
    expect(t.wasm!.file).toBe('train_step.wasm');
    expect(t.wasm!.sha256).toBe(createHash('sha256').update(readFileSync(path.join(outA, 'train_step.wasm'))).digest('hex'));
    // Optimizer state starts at zero; weights come from the weights file.
    expect(m.state.find((s) => s.name === 'step')).toEqual({ name: 'step', dtype: 'i32', shape: [], init: 'zeros' });
    expect(m.state.find((s) => s.name === 'adam.m.conv2d.kernel')?.init).toBe('zeros');
    expect(m.state.filter((s) => s.init === 'weights').map((s) => s.name)).toContain('conv2d.kernel');
    // Every shader names its kernel and fused ops first.
    for (const k of m.entries.predict!.webgpu!.kernels) {
      const code = readFileSync(path.join(outA, m.entries.predict!.webgpu!.dir, k.file), 'utf8');
      expect(code.startsWith(`// kernel ${k.name}: `)).toBe(true);
      expect(k.file).toMatch(/^\d\d-.+\.wgsl$/);
    }
    // The schedule lines up with the shaders; the plan places every input inside the arena.
    for (const e of [m.entries.predict!, t]) {
      expect(e.schedule.map((k) => k.name)).toEqual(e.webgpu!.kernels.map((k) => k.name));
      for (const i of e.inputs) {
        const b = e.buffers.find((x) => x.name === i.name && x.role !== 'temp')!;
        expect(b.offset).toBe(i.offset);
        expect(b.offset + b.bytes).toBeLessThanOrEqual(e.arenaBytes);
      }
    }
    // (conv2 and its kernel gradient are Winograd: test/winograd.test.ts)
    expect(t.schedule.length).toBe(96);
    expect(m.entries.predict!.schedule.length).toBe(16);
    const w = readSafetensors(readFileSync(path.join(outA, 'weights.safetensors')));
    expect(w.metadata).toEqual({ format: 'dlc' });
    expect(w.tensors.get('conv2d.kernel')?.shape).toEqual([3, 3, 1, 32]);
    expect(readFileSync(path.join(outA, 'index.d.ts'), 'utf8')).toContain('inputShape: readonly [28, 28, 1]');
    expect(readFileSync(path.join(outA, 'dlc-runtime.js'))).toEqual(readFileSync(path.join(root, 'dist', 'dlc-runtime.js')));
  });

  it('compiling twice gives byte-identical files', () => {
    expect(hashTree(outB)).toEqual(hashTree(outA));
  });

  it('runs in a child process from index.js alone, on wasm and webgpu, matching the library', async () => {
    const saved = path.join(tmp, 'trained.safetensors');
    const r = (await child(runScript(outA, ['wasm', 'webgpu'], saved))) as Record<string, { predict: number[]; train: Record<string, number>; after: number[]; weights: Record<string, number>; unavailable?: string }>;
    const model = (await import('../examples/mnist-cnn.ts')).default as SequentialModel;
    const x = tensor(x8, [N, 28, 28, 1]);
    const want = (await model.predict(x, { backend: 'wasm', batchSize: 32 })).data as Float32Array;
    expectClose(r.wasm.predict, want, 1e-5);
    expect(r.wasm.weights['conv2d.kernel']).toBe(288);
    trainedAfter = r.wasm.after;
    // One train step on the same 8 digits (padded to 32 and masked), as the library runs it.
    const lib = await model.trainOnBatch(x, tensor(y8, [N]), { backend: 'wasm', batchSize: 32 });
    expect(Math.abs(r.wasm.train.loss - lib.loss)).toBeLessThan(1e-5 * Math.abs(lib.loss));
    expect(r.wasm.train.accuracy).toBeCloseTo(lib.accuracy, 6);
    const wantAfter = (await model.predict(x, { backend: 'wasm', batchSize: 32 })).data as Float32Array;
    expectClose(r.wasm.after, wantAfter, 1e-4);
    if (!gpu) return; // no adapter: reported once for this file (see `gpu`)
    expect(r.webgpu.unavailable, 'this process has a WebGPU adapter, but the artifact in its child found none').toBeUndefined();
    expectClose(r.webgpu.predict, want, 1e-4);
    expect(Math.abs(r.webgpu.train.loss - lib.loss)).toBeLessThan(1e-4 * Math.abs(lib.loss));
    expectClose(r.webgpu.after, wantAfter, 1e-3);
  });

  it('--weights starts from a saveWeights() file and round-trips it', async () => {
    const saved = path.join(tmp, 'trained.safetensors');
    if (!existsSync(saved) || !trainedAfter) trainedAfter = ((await child(runScript(outA, ['wasm'], saved))) as Record<string, { after: number[] }>).wasm.after;
    const outC = path.join(tmp, 'c');
    const c = await dlc('compile', example, '-o', outC, '--weights', saved, '--target', 'wasm', '--entry', 'predict');
    expect(c.stderr).not.toContain('error');
    expect(c.code).toBe(0);
    expect(readFileSync(path.join(outC, 'weights.safetensors'))).toEqual(readFileSync(saved));
    const fromC = (await child(runScript(outC, ['wasm'], null, false))) as Record<string, { predict: number[] }>;
    expectClose(fromC.wasm.predict, trainedAfter, 1e-6);
  });

  it('--weights with a missing tensor or a wrong shape names the tensor and writes nothing', async () => {
    const w = readSafetensors(readFileSync(path.join(outA, 'weights.safetensors'))).tensors;
    const all = Object.fromEntries(w);
    const { ['dense.bias']: _drop, ...missing } = all;
    const badShape = { ...all, 'dense.bias': { dtype: 'F32' as const, shape: [64, 2], data: new Float32Array(128) } };
    for (const [tensors, re] of [
      [missing, /missing tensor 'dense\.bias'/],
      [badShape, /tensor 'dense\.bias' is F32\[64, 2\], the model expects F32\[128\]/],
    ] as const) {
      const f = path.join(tmp, 'bad.safetensors');
      writeFileSync(f, writeSafetensors(tensors));
      const out = path.join(tmp, 'never');
      const r = await dlc('compile', example, '-o', out, '--weights', f);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
      expect(r.stderr).toMatch(re);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('refuses NaN inputs and out-of-range labels before running, naming the sample', async () => {
    const m = await loadArtifact(outA, { backend: 'wasm' });
    try {
      const x = x8.slice();
      x[784 * 3 + 5] = NaN;
      await expect(m.predict(x)).rejects.toThrow('predict: x: value NaN at sample 3, element 5 (inputs must be finite)');
      await expect(m.trainStep(x8, Int32Array.from([1, 2, 3, 10, 0, 0, 0, 0]))).rejects.toThrow('trainStep: label 10 of sample 3 is outside [0, 10)');
      // Refused calls leave the model usable.
      expect((await m.trainStep(x8, y8)).loss).toBeGreaterThan(0);
    } finally {
      m.dispose();
    }
  });

  it('carries modules built for threads; 2 threads give the 1-thread results to the bit, and a failed worker undoes its step', async () => {
    const man = JSON.parse(readFileSync(path.join(outA, 'manifest.json'), 'utf8')) as Manifest;
    for (const e of [man.entries.predict!, man.entries.train_step!]) {
      expect(e.wasm!.threads).toMatchObject({ count: DEFAULT_ARTIFACT_THREADS });
      expect(existsSync(path.join(outA, e.wasm!.threads!.file))).toBe(true);
    }
    const one = await loadArtifact(outA, { backend: 'wasm', threads: 1 });
    const two = await loadArtifact(outA, { backend: 'wasm', threads: 2 });
    try {
      expect([one.threads, one.threadsNote, two.threads, two.threadsNote]).toEqual([1, null, 2, null]);
      expect(Array.from(await two.predict(x8))).toEqual(Array.from(await one.predict(x8)));
      for (let s = 0; s < 2; s++) expect(await two.trainStep(x8, y8)).toEqual(await one.trainStep(x8, y8));
      expect(await two.getWeights()).toEqual(await one.getWeights());
      const before = await two.getWeights();
      failNextWorkerStepForTest(1);
      await expectRefused(two.trainStep(x8, y8), /the step failed and was undone \(the model's state is as before it\); load\(\) the artifact again/);
      expect(await two.getWeights()).toEqual(before);
      await expectRefused(two.trainStep(x8, y8), /a worker failed in an earlier step/);
      await expect(loadArtifact(outA, { backend: 'wasm', threads: 0 })).rejects.toThrow('load: threads must be an integer from 1 to 64, got 0');
    } finally {
      one.dispose();
      two.dispose();
    }
    const capped = await loadArtifact(outA, { backend: 'wasm', threads: 9 });
    expect([capped.threads, capped.threadsNote]).toEqual([DEFAULT_ARTIFACT_THREADS, `the artifact's threaded modules were built for at most ${DEFAULT_ARTIFACT_THREADS} threads (dlc compile --threads N); running on ${DEFAULT_ARTIFACT_THREADS}`]);
    capped.dispose();
  });

  it('a one-input model also takes [x] and { name: x }; anything else keeps the one-array messages', async () => {
    const m = await loadArtifact(outA, { backend: 'wasm' });
    try {
      const x = x8.slice(0, 2 * 784);
      const want = Array.from(await m.predict(x));
      expect(Array.from(await m.predict([x]))).toEqual(want);
      expect(Array.from(await m.predict({ input_layer: x }))).toEqual(want);
      const many = await m.predictMany(x);
      expect(many.length).toBe(1);
      expect(Array.from(many[0])).toEqual(want);
      const shape = /^predict: x must be a Float32Array of shape \[N, 28, 28, 1\] \(a multiple of 784 values\), got object values$/;
      await expectRefused(m.predict(Array.from(x) as never), shape);
      await expectRefused(m.predict({ digits: x } as never), shape);
      await expectRefused(m.predict([x, x]), shape);
      await expectRefused(m.trainStep(x8, [y8, y8] as never), /^trainStep: y must hold 8 labels \(i32\[8\]\), got object$/);
      const r = await m.trainStep([x8], { dense_1: y8 });
      expect(r.loss).toBeGreaterThan(0);
    } finally {
      m.dispose();
    }
  });

  it('refuses a damaged artifact, naming the file', async () => {
    const dirs = { trunc: path.join(tmp, 'trunc'), truncMt: path.join(tmp, 'trunc-mt'), version: path.join(tmp, 'version'), noweights: path.join(tmp, 'noweights') };
    for (const d of Object.values(dirs)) cpSync(outA, d, { recursive: true });
    // The loader reads only the module it runs: predict.wasm on one thread, predict.mt.wasm on several.
    for (const [d, f] of [[dirs.trunc, 'predict.wasm'], [dirs.truncMt, 'predict.mt.wasm']]) {
      const wasm = readFileSync(path.join(d, f));
      writeFileSync(path.join(d, f), wasm.subarray(0, wasm.length >> 1));
    }
    const mf = JSON.parse(readFileSync(path.join(dirs.version, 'manifest.json'), 'utf8')) as { version: number };
    mf.version = 4;
    writeFileSync(path.join(dirs.version, 'manifest.json'), JSON.stringify(mf));
    rmSync(path.join(dirs.noweights, 'weights.safetensors'));
    const script = `
const out = {};
for (const [k, d] of Object.entries(${JSON.stringify(Object.fromEntries(Object.entries(dirs).map(([k, d]) => [k, `${pathToUrl(d)}/index.js`])))})) {
  try { const { load } = await import(d); await load({ backend: 'wasm', threads: k === 'truncMt' ? 2 : 1 }); out[k] = 'loaded'; } catch (e) { out[k] = e.message; }
}
console.log(JSON.stringify(out));
`;
    const r = (await child(script)) as Record<keyof typeof dirs, string>;
    expect(r.trunc).toMatch(/^predict\.wasm: sha256 [0-9a-f]{64} does not match manifest\.json/);
    expect(r.truncMt).toMatch(/^predict\.mt\.wasm: sha256 [0-9a-f]{64} does not match manifest\.json/);
    expect(r.version).toMatch(/^manifest\.json: artifact format version 4, but this runtime reads versions 1 to 3; recompile/);
    expect(r.noweights).toMatch(/cannot read weights\.safetensors/);
  });

  it('the runtime bundle is small and carries no compiler', () => {
    const js = readFileSync(path.join(root, 'dist', 'dlc-runtime.js'));
    const gz = gzipSync(js, { level: 9 }).length;
    console.log(`dist/dlc-runtime.js: ${js.length} bytes, ${gz} bytes gzipped`);
    expect(gz).toBeLessThan(25 * 1024);
    const meta = JSON.parse(readFileSync(path.join(root, 'dist', 'dlc-runtime.meta.json'), 'utf8')) as { inputs: Record<string, unknown> };
    const inputs = Object.keys(meta.inputs);
    expect(inputs).toContain('runtime/artifact.ts');
    expect(inputs.filter((f) => /^(compiler|ir)\//.test(f) || f.includes('node_modules'))).toEqual([]);
    expect(js.toString()).not.toMatch(/binaryen|wabt/);
  });

  it('compile --help lists its flags', async () => {
    const r = await dlc('compile', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: dlc compile MODEL -o OUT');
    for (const f of ['-o, --output', '--target', '--batch-size', '--entry', '--weights', '--dump-after', '--dump-dir', '--debug']) expect(r.stdout).toContain(f);
    expect(r.stdout).toMatch(/Debug levels[\s\S]*4 {2}and the generated code/);
  });

  it('usage mistakes (unknown flag, target or entry; no -o) are one-line errors, exit 2', async () => {
    const cases = [
      ['compile', example, '-o', 'x', '--bogus'],
      ['compile', example, '-o', 'x', '--target', 'wasm,cuda'],
      ['compile', example, '-o', 'x', '--entry', 'eval'],
      ['compile', example],
    ];
    for (const r of await Promise.all(cases.map((c) => dlc(...c)))) {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
    }
    expect(existsSync(path.join(root, 'x'))).toBe(false);
  });

  it('a model file that throws leaves no output', async () => {
    const f = path.join(tmp, 'throws.ts');
    writeFileSync(f, "import { Dense, Sequential } from 'dlc';\nexport default Sequential([Dense(10, { inputShape: [4] })]);\nthrow new Error('boom');\n");
    const out = path.join(tmp, 'out-throws');
    const r = await dlc('compile', f, '-o', out);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('boom');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('a compile that fails late keeps the previous artifact; a non-artifact folder is refused', async () => {
    const f = path.join(tmp, 'uncompiled.ts');
    writeFileSync(f, "import { Dense, Sequential } from 'dlc';\nexport default Sequential([Dense(10, { inputShape: [4] })]);\n");
    const keep = path.join(tmp, 'keep');
    cpSync(outA, keep, { recursive: true });
    const r = await dlc('compile', f, '-o', keep, '--entry', 'train');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: [^\n]*model\.compile[^\n]*\n$/);
    expect(hashTree(keep)).toEqual(hashTree(outA));
    expect(readdirSync(tmp).filter((n) => n.includes('.tmp-'))).toEqual([]);
    // A small model replaces a previous artifact.
    const ok = await dlc('compile', f, '-o', keep, '--target', 'wasm');
    expect(ok.code).toBe(0);
    expect(existsSync(path.join(keep, 'train_step.wasm'))).toBe(false);
    expect(existsSync(path.join(keep, 'predict.wasm'))).toBe(true);
    const other = path.join(tmp, 'other');
    mkdirSync(other);
    writeFileSync(path.join(other, 'notes.txt'), 'mine');
    const no = await dlc('compile', f, '-o', other);
    expect(no.code).toBe(1);
    expect(no.stderr).toMatch(/^error: [^\n]*not a dlc artifact[^\n]*\n$/);
    expect(readdirSync(other)).toEqual(['notes.txt']);
  });

  it('--dump-after all --dump-dir writes every pass, the kernels, the Wasm text and the WGSL; --debug reports', async () => {
    const f = path.join(tmp, 'small.ts');
    writeFileSync(f, "import { Dense, Sequential } from 'dlc';\nconst m = Sequential([Dense(8, { activation: 'relu', inputShape: [4] }), Dense(3, { activation: 'softmax' })]);\nm.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });\nexport default m;\n");
    const dump = path.join(tmp, 'dump');
    const r = await node([bin, 'compile', f, '-o', path.join(tmp, 'small-out'), '--dump-after', 'all', '--dump-dir', dump], { DLC_DEBUG: '3' });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[dlc\] predict: frontend [\d.]+ ms, .*fuse [\d.]+ ms; .*\d+ kernels/);
    expect(r.stderr).toContain('// ----- IR after simplify (3/4) (train_step) -----');
    expect(r.stderr).toContain('// ----- kernel IR: train_step -----');
    const files = Object.keys(hashTree(dump));
    for (const e of ['predict', 'train_step']) {
      for (const p of ['01-frontend', '02-autodiff', '03-simplify', '04-fuse']) expect(files).toContain(`${e}/${p}.txt`);
      expect(files).toContain(`${e}/kernels.txt`);
      expect(files).toContain(`${e}/${e}.wat`);
      expect(files.some((x) => x.startsWith(`${e}/webgpu/00-`) && x.endsWith('.wgsl'))).toBe(true);
    }
    expect(readFileSync(path.join(dump, 'train_step', '02-autodiff.txt'), 'utf8').split('\n')[0]).toBe('// ----- IR after autodiff (2/4) -----');
    // Printed by wabt from the emitted bytes; the name section names every kernel function.
    const wat = readFileSync(path.join(dump, 'predict', 'predict.wat'), 'utf8');
    expect(wat).toMatch(/^\(module/);
    expect(wat).toMatch(/\(func \$k0_m_1_32_8_4_dot_add_max \(type/);
    expect(wat).toContain('v128.load');
    const changed = await dlc('compile', f, '-o', path.join(tmp, 'small-out'), '--entry', 'predict', '--target', 'wasm', '--dump-after', 'changed');
    expect(changed.code).toBe(0);
    // For predict, autodiff changes nothing, so it is not dumped.
    expect(changed.stdout).toContain('IR after frontend (1/4) (predict)');
    expect(changed.stdout).not.toContain('IR after autodiff');
  });
});

// ---- models of several inputs and outputs, and non-trainable state ----

/** A deterministic pseudo-random Float32Array in [-1, 1). */
function uniform(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Await `p`, which must be refused with an ArtifactError (never a TypeError) whose message matches `re`. */
async function expectRefused(p: Promise<unknown>, re: RegExp): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected a refusal matching ${re}`).toBeInstanceOf(ArtifactError);
  expect((e as Error).name).toBe('ArtifactError');
  expect((e as Error).message).toMatch(re);
}

/** Two inputs (a [4], b [3]) → a Dense(2) regression head and a Dense(3, softmax) class head. */
const TWO_IO_MODEL = `import { Concatenate, Dense, Input, Model } from 'dlc';
const a = Input({ shape: [4], name: 'a' });
const b = Input({ shape: [3], name: 'b' });
const h = Dense(6, { activation: 'tanh', name: 'hidden' }).apply(Concatenate({ name: 'cat' }).apply([Dense(5, { activation: 'relu', name: 'da' }).apply(a), b]));
const outReg = Dense(2, { name: 'out_reg' }).apply(h);
const outCls = Dense(3, { activation: 'softmax', name: 'out_cls' }).apply(h);
const m = Model({ inputs: [a, b], outputs: [outReg, outCls], name: 'two_io', seed: 7 });
m.compile({ optimizer: 'adam', loss: { out_reg: 'mse', out_cls: 'sparse_categorical_crossentropy' }, lossWeights: { out_reg: 0.5, out_cls: 1 }, metrics: { out_cls: ['accuracy'] } });
export default m;
`;
const N2 = 6;
const B2 = 8;
const xa = uniform(N2 * 4, 1);
const xb = uniform(N2 * 3, 2);
const yr = uniform(N2 * 2, 3);
const yc = Int32Array.from([0, 2, 1, 1, 0, 2]);

describe('artifacts of models with several inputs and outputs', () => {
  let dir = '';
  let modelFile = '';
  beforeAll(async () => {
    dir = path.join(tmp, 'two-io');
    modelFile = path.join(tmp, 'two-io.ts');
    writeFileSync(modelFile, TWO_IO_MODEL);
    const r = await dlc('compile', modelFile, '-o', dir, '--batch-size', String(B2));
    if (r.code !== 0) throw new Error(`compile failed:\n${r.stdout}${r.stderr}`);
  });

  it('the manifest names the inputs and outputs, and which model input or output each x and y feeds', () => {
    const m = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Manifest;
    // Version 3 for the learning rate's fill (see above); without a train step it would be 2, as a
    // version-1 loader would need inputShape/outputShape, which this model has no single value for.
    expect(m.version).toBe(3);
    expect(m.model).toEqual({ name: 'two_io', inputs: [{ name: 'a', shape: [4] }, { name: 'b', shape: [3] }], outputs: [{ name: 'out_reg', shape: [2] }, { name: 'out_cls', shape: [3] }] });
    const io = (e: Manifest['entries']['predict']) => e!.inputs.filter((i) => i.role === 'x' || i.role === 'y' || i.role === 'mask').map((i) => [i.name, i.role, i.feeds, i.dtype, i.shape]);
    expect(io(m.entries.predict)).toEqual([['x.a', 'x', 'a', 'f32', [8, 4]], ['x.b', 'x', 'b', 'f32', [8, 3]]]);
    expect(io(m.entries.train_step)).toEqual([
      ['x.a', 'x', 'a', 'f32', [8, 4]],
      ['x.b', 'x', 'b', 'f32', [8, 3]],
      ['y.out_reg', 'y', 'out_reg', 'f32', [8, 2]],
      ['y.out_cls', 'y', 'out_cls', 'i32', [8]],
      ['mask', 'mask', undefined, 'f32', [8]],
    ]);
    expect(m.entries.predict!.results).toEqual({ out_reg: 0, out_cls: 1 });
    expect(Object.keys(m.entries.train_step!.results).sort()).toEqual(['loss', 'out_cls_accuracy', 'out_cls_loss', 'out_reg_loss']);
  });

  it('index.js and index.d.ts name every input, output and label array; recompiling is byte-identical', async () => {
    const js = readFileSync(path.join(dir, 'index.js'), 'utf8');
    expect(js).toContain('export const inputs = Object.freeze([Object.freeze({ name: "a", shape: Object.freeze([4]) }), Object.freeze({ name: "b", shape: Object.freeze([3]) })]);');
    expect(js).not.toContain('inputShape');
    const dts = readFileSync(path.join(dir, 'index.d.ts'), 'utf8');
    for (const line of [
      ' * Inputs, f32 per sample (row-major): a [4] (4 values), b [3] (3 values).',
      'export type InputName = "a" | "b";',
      'export type OutputName = "out_reg" | "out_cls";',
      'export declare const inputs: readonly [{ readonly name: "a"; readonly shape: readonly [4] }, { readonly name: "b"; readonly shape: readonly [3] }];',
      '  /** f32[N, 4] (N * 4 values). */\n  readonly a: Float32Array;',
      'export type InputList = readonly [a: Float32Array, b: Float32Array];',
      'export type Outputs = [out_reg: Float32Array, out_cls: Float32Array];',
      '  /** f32[n, 2] (2 values per sample). */\n  readonly out_reg: Float32Array;',
      '  /** i32[n]: one class in [0, 3) per sample. */\n  readonly out_cls: Int32Array | Float32Array;',
      'export type LabelList = readonly [out_reg: Float32Array, out_cls: Int32Array | Float32Array];',
      '  readonly out_cls_loss: number;',
      '   * Outputs for N >= 1 samples of every input (a f32[N, 4], b f32[N, 3]; by name or in that order):\n   * out_reg f32[N, 2], out_cls f32[N, 3], in that order. Runs in batches of 8.',
      '  predictMany(x: Inputs | InputList): Promise<Outputs>;',
      '  trainStep(x: Inputs | InputList, y: Labels | LabelList, mask?: Float32Array, sampleWeight?: Float32Array): Promise<TrainResult>;',
    ]) {
      expect(dts).toContain(line);
    }
    // Two outputs: no single-array predict in the types (the runtime refuses it too).
    expect(dts).not.toContain('predict(x');
    // A strict TypeScript program type-checks against them, and wrong calls do not.
    const use = path.join(tmp, 'use-two-io.ts');
    writeFileSync(
      use,
      `import { load, inputs } from './two-io/index.js';
const m = await load({ backend: 'wasm' });
const a = new Float32Array(8), b = new Float32Array(6);
const [reg, cls] = await m.predictMany({ a, b });
const [r2] = await m.predictMany([a, b]);
const r = await m.trainStep([a, b], { out_reg: new Float32Array(4), out_cls: new Int32Array(2) });
export const used: number = r.out_cls_loss + reg.length + cls.length + r2.length + inputs[0].shape[0];
// @ts-expect-error input b is missing
await m.predictMany({ a });
// @ts-expect-error a model of two outputs has no predict
await m.predict([a, b]);
// @ts-expect-error the regression output's labels are f32
await m.trainStep({ a, b }, [new Int32Array(4), new Int32Array(2)]);
`,
    );
    const tsc = await node([path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '--ignoreConfig', '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', use]);
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
    const again = path.join(tmp, 'two-io-again');
    const r = await dlc('compile', modelFile, '-o', again, '--batch-size', String(B2));
    expect(r.code).toBe(0);
    expect(hashTree(again)).toEqual(hashTree(dir));
  });

  it('runs from index.js on wasm and webgpu: predictMany and 3 train steps (the last with sample weights) match the library', async () => {
    const sw = Float32Array.from({ length: N2 }, (_, i) => [0.5, 2, 0, 1.5][i % 4]);
    const script = `
import { load } from ${JSON.stringify(`${pathToUrl(dir)}/index.js`)};
const xa = new Float32Array(${JSON.stringify(Array.from(xa))});
const xb = new Float32Array(${JSON.stringify(Array.from(xb))});
const yr = new Float32Array(${JSON.stringify(Array.from(yr))});
const yc = new Int32Array(${JSON.stringify(Array.from(yc))});
const sw = new Float32Array(${JSON.stringify(Array.from(sw))});
const out = {};
for (const backend of ['wasm', 'webgpu']) {
  let m;
  try { m = await load({ backend }); } catch (e) {
    if (backend === 'webgpu' && /not available|adapter/.test(e.message)) { out[backend] = { unavailable: e.message }; continue; }
    throw e;
  }
  const r = {};
  r.predict = (await m.predictMany({ b: xb, a: xa })).map((o) => Array.from(o));
  r.predictList = (await m.predictMany([xa, xb])).map((o) => Array.from(o));
  r.train = [];
  r.train.push(await m.trainStep([xa, xb], [yr, yc]));
  r.train.push(await m.trainStep({ a: xa, b: xb }, { out_cls: yc, out_reg: yr }));
  r.train.push(await m.trainStep([xa, xb], { out_reg: yr, out_cls: yc }, undefined, sw));
  r.weights = Object.fromEntries(Object.entries(await m.getWeights()).map(([k, v]) => [k, Array.from(v)]));
  r.after = (await m.predictMany([xa, xb])).map((o) => Array.from(o));
  m.dispose();
  out[backend] = r;
}
console.log(JSON.stringify(out));
process.exit(0);
`;
    type Run = { predict: number[][]; predictList: number[][]; train: Record<string, number>[]; weights: Record<string, number[]>; after: number[][]; unavailable?: string };
    const r = (await child(script)) as Record<'wasm' | 'webgpu', Run>;
    // The library, on the same initial weights (the model file builds them from its seed).
    const lib = (await import(modelFile)).default as LayersModel;
    const opts = { backend: 'wasm' as const, batchSize: B2 };
    const X = [tensor(xa, [N2, 4]), tensor(xb, [N2, 3])];
    const Y = [tensor(yr, [N2, 2]), tensor(yc, [N2], 'i32')];
    const want = (await lib.predictMany(X, opts)).map((t) => t.data as Float32Array);
    const libTrain: Record<string, number>[] = [];
    for (let s = 0; s < 3; s++) libTrain.push(await lib.trainOnBatch(X, Y, s === 2 ? { ...opts, sampleWeight: sw } : opts));
    const wantWeights = Object.fromEntries(lib.weightInfo.map((w, i) => [w.name, lib.getWeights()[i].data as Float32Array]));
    const wantAfter = (await lib.predictMany(X, opts)).map((t) => t.data as Float32Array);
    const check = (backend: string, got: Run, tol: { predict: number; train: number }) => {
      // The regression head's outputs are O(1) terms that cancel to near 0 for some samples: errors are
      // relative to max(|value|, 0.01) there (0.001 for the mnist model's probabilities above).
      got.predict.forEach((o, j) => expectClose(o, want[j], tol.predict, `${backend} predict ${j}`, 1e-2));
      expect(got.predictList).toEqual(got.predict);
      got.train.forEach((t, s) => {
        expect(Object.keys(t).sort()).toEqual(Object.keys(libTrain[s]).sort());
        for (const k of ['loss', 'out_reg_loss', 'out_cls_loss']) expectClose([t[k]], [libTrain[s][k]], tol.train, `${backend} step ${s} ${k}`, 1e-2);
        expect(t.out_cls_accuracy).toBeCloseTo(libTrain[s].out_cls_accuracy, 6);
      });
      expect(Object.keys(got.weights).sort()).toEqual(Object.keys(wantWeights).sort());
      for (const [k, v] of Object.entries(got.weights)) expectClose(v, wantWeights[k], tol.train, `${backend} ${k}`, 1e-2);
      got.after.forEach((o, j) => expectClose(o, wantAfter[j], tol.train, `${backend} predict after ${j}`, 1e-2));
    };
    // The losses really differ step to step (the optimizer ran) and are weighted as compiled.
    expect(libTrain[1].loss).toBeLessThan(libTrain[0].loss);
    expectClose([libTrain[0].loss], [0.5 * libTrain[0].out_reg_loss + libTrain[0].out_cls_loss], 1e-6);
    check('wasm', r.wasm, { predict: 1e-5, train: 1e-4 });
    if (!gpu) return; // no adapter: reported once for this file (see `gpu`)
    expect(r.webgpu.unavailable, 'this process has a WebGPU adapter, but the artifact in its child found none').toBeUndefined();
    check('webgpu', r.webgpu, { predict: 1e-5, train: 1e-4 });
  });

  it('refuses bad calls with an ArtifactError naming the input or output, and stays usable', async () => {
    const m = await loadArtifact(dir, { backend: 'wasm' });
    try {
      const xbNaN = xb.slice();
      xbNaN[3 * 2 + 1] = NaN;
      const yrInf = yr.slice();
      yrInf[5] = Infinity;
      const cases: [() => Promise<unknown>, RegExp][] = [
        [() => m.predictMany([xa]), /^predictMany: x must hold 2 arrays, one per model input \(a, b\), got 1$/],
        [() => m.predictMany({ a: xa, c: xb }), /^predictMany: x names 'c', which is not a model input; the inputs are a, b$/],
        [() => m.predictMany({ a: xa }), /^predictMany: x has no array for model input 'b' \(the inputs are a, b\)$/],
        [() => m.predictMany(xa), /^predictMany: the model has 2 inputs \(a, b\); pass x as a list of 2 arrays in that order or an object keyed by input name, got one Float32Array$/],
        [() => m.predictMany(null as never), /^predictMany: the model has 2 inputs .* got null$/],
        [() => m.predictMany([xa, xb.subarray(0, 5)]), /^predictMany: x input 'b' must be a Float32Array of shape \[N, 3\] \(a multiple of 3 values\), got 5 values$/],
        [() => m.predictMany([xa, Int32Array.from(yc, (v) => v) as never]), /^predictMany: x input 'b' must be a Float32Array/],
        [() => m.predictMany([xa, xb.subarray(0, 9)]), /^predictMany: x input 'b' has 3 samples, x input 'a' has 6; every input needs the same number$/],
        [() => m.predictMany([xa, xbNaN]), /^predictMany: x input 'b': value NaN at sample 2, element 1 \(inputs must be finite\)$/],
        [() => m.predict([xa, xb]), /^predict: model 'two_io' has 2 outputs \(out_reg, out_cls\); use predictMany, which returns one Float32Array per output$/],
        [() => m.trainStep([xa, xb], [yr, yc], undefined, new Float32Array(5)), /^trainStep: sampleWeight must be a Float32Array of 6 values, got 5$/],
        [() => m.trainStep([xa, xb], [yr, yc], undefined, Float32Array.from([1, 1, -1, 1, 1, 1])), /^trainStep: sampleWeight\[2\] is -1; sample weights must be finite and >= 0$/],
        [() => m.trainStep([xa, xb], [yr]), /^trainStep: y must hold 2 arrays, one per model output \(out_reg, out_cls\), got 1$/],
        [() => m.trainStep([xa, xb], { out_reg: yr, out_cat: yc }), /^trainStep: y names 'out_cat', which is not a model output; the outputs are out_reg, out_cls$/],
        [() => m.trainStep([xa, xb], yr), /^trainStep: the model has 2 outputs \(out_reg, out_cls\); pass y as a list/],
        [() => m.trainStep([uniform(9 * 4, 5), uniform(9 * 3, 6)], [yr, yc]), /^trainStep: x input 'a' must be a Float32Array of 1 to 8 samples of shape \[4\] \(4 values each\), got 36 values$/],
        [() => m.trainStep([xa, xb.subarray(0, 12)], [yr, yc]), /^trainStep: x input 'b' has 4 samples, x input 'a' has 6; every input needs the same number$/],
        [() => m.trainStep([xa, xb], [yr, yc.subarray(0, 5)]), /^trainStep: y output 'out_cls' must hold 6 labels \(i32\[6\]\), got 5$/],
        [() => m.trainStep([xa, xb], [yr.subarray(0, 10), yc]), /^trainStep: y output 'out_reg' must hold 12 labels \(f32\[6, 2\]\), got 10$/],
        [() => m.trainStep([xa, xb], [yr, Int32Array.from([0, 3, 1, 1, 0, 2])]), /^trainStep: y output 'out_cls': label 3 of sample 1 is outside \[0, 3\)$/],
        [() => m.trainStep([xa, xb], [yrInf, yc]), /^trainStep: y output 'out_reg': value Infinity at sample 2, element 1 \(inputs must be finite\)$/],
        [() => m.trainStep([xa, xbNaN], [yr, yc]), /^trainStep: x input 'b': value NaN at sample 2, element 1/],
        [() => m.trainStep([xa, xb], [yr, yc], new Float32Array(5)), /^trainStep: mask must be a Float32Array of 6 values$/],
        [() => m.trainStep([xa, xb], undefined as never), /^trainStep: the model has 2 outputs .* got undefined$/],
      ];
      for (const [call, re] of cases) await expectRefused(call(), re);
      // Refused calls leave the model usable.
      const [reg, cls] = await m.predictMany({ a: xa, b: xb });
      expect([reg.length, cls.length]).toEqual([N2 * 2, N2 * 3]);
      expect((await m.trainStep([xa, xb], [yr, yc])).loss).toBeGreaterThan(0);
    } finally {
      m.dispose();
    }
  });

  it('dlc train/eval/predict refuse it: they feed MNIST to one input', async () => {
    for (const args of [['eval', dir], ['predict', dir, '--samples', '2'], ['train', dir, '--epochs', '1', '--train-samples', '32']]) {
      const r = await dlc(...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: [^\n]*one input and one output; 'two_io' has 2 inputs \(a \[4\], b \[3\]\) and 2 outputs \(out_reg \[2\], out_cls \[3\]\)\. Load it from a program \(its index\.js\) and call predictMany\/trainStep\n$/);
    }
  });
});

describe('artifacts with non-trainable state', () => {
  it('BatchNormalization: the train step updates the moving statistics as the library does; saveWeights has them', async () => {
    const x = Input({ shape: [5], name: 'x_in' });
    // No bias before the normalization (as usual): its gradient is 0 up to rounding, which Adam would
    // turn into steps of +-learningRate that differ between any two engines.
    const h = BatchNormalization({ name: 'bn', momentum: 0.8 }).apply(Dense(6, { name: 'dense', useBias: false }).apply(x));
    const out = Dense(3, { activation: 'softmax', name: 'head' }).apply(Activation('relu').apply(h));
    const model = Model({ inputs: x, outputs: out, name: 'bn_model', seed: 3 });
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    const dir = path.join(tmp, 'bn');
    const art = await buildArtifact(model, { batchSize: 8, runtime: readFileSync(path.join(root, 'dist', 'dlc-runtime.js')) });
    writeArtifact(dir, art.files);
    const man = art.manifest;
    expect(man.version).toBe(3);
    for (const name of ['bn.moving_mean', 'bn.moving_variance']) {
      expect(man.state.find((s) => s.name === name)).toEqual({ name, dtype: 'f32', shape: [6], init: 'weights' });
      // The train step writes their next value back (they have no optimizer slots).
      const t = man.entries.train_step!;
      const input = t.inputs.findIndex((i) => i.name === name);
      expect(t.updates.some((u) => u.input === input)).toBe(true);
      // Not trained by the optimizer: no Adam slots.
      expect(man.state.some((s) => s.name.startsWith('adam.') && s.name.endsWith(`.${name}`))).toBe(false);
      expect(man.state.some((s) => s.name === 'adam.m.bn.gamma')).toBe(true);
    }
    const n = 5;
    const xs = uniform(n * 5, 11).map((v) => 3 * v + 1);
    const ys = Int32Array.from([0, 1, 2, 1, 0]);
    // The library, from the same initial weights.
    const libTrain: Record<string, number>[] = [];
    for (let s = 0; s < 2; s++) libTrain.push(await model.trainOnBatch(tensor(xs, [n, 5]), tensor(ys, [n], 'i32'), { backend: 'wasm', batchSize: 8 }));
    const want = Object.fromEntries(model.weightInfo.map((w, i) => [w.name, model.getWeights()[i].data as Float32Array]));
    // The moving statistics moved: mean away from 0, variance away from 1.
    expect(Math.max(...Array.from(want['bn.moving_mean'], Math.abs))).toBeGreaterThan(0.05);
    expect(Math.max(...Array.from(want['bn.moving_variance'], (v) => Math.abs(v - 1)))).toBeGreaterThan(0.05);
    for (const backend of ['wasm', 'webgpu'] as const) {
      if (backend === 'webgpu' && !gpu) continue; // no adapter: reported once for this file (see `gpu`)
      const m = await loadArtifact(dir, { backend });
      try {
        for (let s = 0; s < 2; s++) {
          const r = await m.trainStep(xs, ys);
          expectClose([r.loss], [libTrain[s].loss], 1e-4, `${backend} step ${s} loss`);
          expect(r.accuracy).toBeCloseTo(libTrain[s].accuracy, 6);
        }
        const got = await m.getWeights();
        expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
        for (const [k, v] of Object.entries(got)) expectClose(Array.from(v), want[k], 1e-4, `${backend} ${k}`);
        const saved = readSafetensors(await m.saveWeights()).tensors;
        for (const k of ['bn.moving_mean', 'bn.moving_variance']) expectClose(Array.from(saved.get(k)!.data), want[k], 1e-4);
        // predict runs in inference mode on the updated statistics, as the library's does.
        const wantPred = (await model.predict(tensor(xs, [n, 5]), { backend: 'wasm', batchSize: 8 })).data as Float32Array;
        expectClose(Array.from(await m.predict(xs)), wantPred, 1e-4);
      } finally {
        m.dispose();
      }
    }
  });
});

describe('artifacts of recurrent models', () => {
  it('carry their loops (version 3) and run them on wasm and webgpu as the library does', async () => {
    const x = Input({ shape: [7, 4], name: 'seq' });
    const h = GRU(5, { returnSequences: true, name: 'gru' }).apply(x);
    const out = Dense(3, { activation: 'softmax', name: 'head' }).apply(LSTM(6, { name: 'lstm' }).apply(h));
    const model = Model({ inputs: x, outputs: out, name: 'rnn_model', seed: 5 });
    model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
    const dir = path.join(tmp, 'rnn');
    const art = await buildArtifact(model, { batchSize: 4, runtime: readFileSync(path.join(root, 'dist', 'dlc-runtime.js')) });
    writeArtifact(dir, art.files);
    const man = art.manifest;
    expect(man.version).toBe(3);
    expect(man.entries.predict!.loops!.length).toBe(2);
    expect(man.entries.train_step!.loops!.length).toBe(4);
    const n = 3;
    const xs = uniform(n * 28, 17).map((v) => 2 * v - 1);
    const ys = Int32Array.from([0, 2, 1]);
    const wantPred0 = (await model.predict(tensor(xs, [n, 7, 4]), { backend: 'wasm', batchSize: 4 })).data as Float32Array;
    const libTrain: Record<string, number>[] = [];
    for (let s = 0; s < 3; s++) libTrain.push(await model.trainOnBatch(tensor(xs, [n, 7, 4]), tensor(ys, [n], 'i32'), { backend: 'wasm', batchSize: 4 }));
    const wantPred = (await model.predict(tensor(xs, [n, 7, 4]), { backend: 'wasm', batchSize: 4 })).data as Float32Array;
    for (const backend of ['wasm', 'webgpu'] as const) {
      if (backend === 'webgpu' && !gpu) continue; // no adapter: reported once for this file (see `gpu`)
      const m = await loadArtifact(dir, { backend });
      try {
        expectClose(Array.from(await m.predict(xs)), wantPred0, 1e-4, `${backend} predict before training`);
        for (let s = 0; s < 3; s++) expectClose([(await m.trainStep(xs, ys)).loss], [libTrain[s].loss], 1e-4, `${backend} step ${s} loss`);
        expectClose(Array.from(await m.predict(xs)), wantPred, 1e-3, `${backend} predict after training`);
      } finally {
        m.dispose();
      }
    }
  });

  it('a manifest whose loop leaves the arena or the schedule is refused, naming the field', async () => {
    const model = Sequential([SimpleRNN(3, { inputShape: [4, 2], name: 'rnn' })], { name: 'tiny_rnn' });
    model.compile({ optimizer: 'sgd', loss: 'mse' });
    const man = (await buildArtifact(model, { batchSize: 2, entries: ['predict'], runtime: readFileSync(path.join(root, 'dist', 'dlc-runtime.js')) })).manifest;
    const e = man.entries.predict!;
    const withLoop = (l: object) => ({ ...man, entries: { predict: { ...e, loops: [{ ...e.loops![0], ...l }] } } });
    expect(() => checkManifest(withLoop({ end: e.schedule.length + 1 }))).toThrow(/entries\.predict\.loops\[0\]\.end/);
    expect(() => checkManifest(withLoop({ reverse: 'no' }))).toThrow(/entries\.predict\.loops\[0\]\.reverse/);
    const exit = e.loops![0].exit;
    expect(() => checkManifest(withLoop({ exit: [{ ...exit[0], to: e.arenaBytes }] }))).toThrow(/entries\.predict\.loops: loop 0: copy .* leaves the \d+-byte arena/);
    expect(() => checkManifest({ ...man, version: 2 })).toThrow(/entries\.predict\.loops: loops need manifest version 3, the file says 2/);
  });
});

describe('manifests', () => {
  it('a version-1 manifest written before named inputs and outputs still loads (as input / output)', async () => {
    const old = path.join(tmp, 'v1-old');
    cpSync(outA, old, { recursive: true });
    const mf = JSON.parse(readFileSync(path.join(old, 'manifest.json'), 'utf8')) as Record<string, unknown> & { model: Record<string, unknown>; entries: Record<string, { inputs: Record<string, unknown>[] }> };
    delete mf.model.inputs;
    delete mf.model.outputs;
    for (const e of Object.values(mf.entries)) for (const i of e.inputs) delete i.feeds;
    writeFileSync(path.join(old, 'manifest.json'), JSON.stringify(mf));
    const checked = checkManifest(mf);
    expect(checked.model.inputs).toEqual([{ name: 'input', shape: [28, 28, 1] }]);
    expect(checked.model.outputs).toEqual([{ name: 'output', shape: [10] }]);
    expect(checked.entries.train_step!.inputs.filter((i) => i.feeds).map((i) => [i.name, i.feeds])).toEqual([['x', 'input'], ['y', 'output']]);
    const [a, b] = await Promise.all([loadArtifact(old, { backend: 'wasm' }), loadArtifact(outA, { backend: 'wasm' })]);
    try {
      const x = x8.slice(0, 2 * 784);
      expect(Array.from(await a.predict(x))).toEqual(Array.from(await b.predict(x)));
      expect(Array.from((await a.predictMany({ input: x }))[0])).toEqual(Array.from(await b.predict(x)));
      expect(Array.from((await b.predictMany([x]))[0])).toEqual(Array.from(await b.predict(x)));
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('refuses a manifest whose entries miss a model input, naming it', () => {
    const mf = JSON.parse(readFileSync(path.join(outA, 'manifest.json'), 'utf8')) as { model: { inputs: { name: string }[] }; entries: { predict: { inputs: { feeds?: string; role: string }[] } } };
    const unnamed = structuredClone(mf);
    unnamed.model.inputs = [...unnamed.model.inputs, { name: 'extra', shape: [2] } as never];
    delete (unnamed as { model: { inputShape?: unknown } }).model.inputShape;
    expect(() => checkManifest(unnamed)).toThrow(/^manifest\.json: entry 'predict': no input of role x feeds model input 'extra'$/);
    const wrong = structuredClone(mf);
    wrong.entries.predict.inputs.find((i) => i.role === 'x')!.feeds = 'nope';
    expect(() => checkManifest(wrong)).toThrow(/^manifest\.json: entry 'predict': no input of role x feeds model input 'input_layer'$/);
    const noModel = structuredClone(mf) as { model: Record<string, unknown> };
    noModel.model = { name: 'm' };
    expect(() => checkManifest(noModel)).toThrow(ArtifactError);
  });
});
