/**
 * @file End-to-end tests of `dlc compile` and the runtime bundle: the reference model is compiled
 * through the CLI (`node bin/dlc.js compile`), then a CHILD node process that imports only the
 * artifact's `index.js` (hence only dist/dlc-runtime.js, no compiler) runs predict and a train step
 * on Wasm and WebGPU. Outputs are compared with the library's own `model.predict` / `trainOnBatch` on
 * Wasm in this process. Also: byte-identical recompiles, refusal of damaged artifacts (naming the
 * file), `--weights` round trips, the runtime bundle's size and contents, CLI usage errors, dumps,
 * and that a failed compile writes nothing.
 *
 * Artifacts are written under `.tmp/` in the repository (git-ignored) rather than the OS temp
 * folder: in Node the runtime loads Dawn (`webgpu`) by a bare import, which resolves from the
 * artifact's location, as it would inside a user's project.
 *
 * A host without a WebGPU adapter fails the WebGPU half, unless DLC_ALLOW_NO_WEBGPU=1, which turns
 * that into a loud warning.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, node, root } from './run-node.ts';
import { loadMnist, tensor } from '../compiler/index.ts';
import type { SequentialModel } from '../compiler/index.ts';
import type { Manifest } from '../runtime/artifact.ts';
import { loadArtifact } from '../runtime/index.ts';
import { readSafetensors, writeSafetensors } from '../runtime/safetensors.ts';

const example = 'examples/mnist-cnn.ts';

const dlc = (...args: string[]) => node([bin, ...args]);

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

function expectClose(got: readonly number[], want: ArrayLike<number>, rel: number): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), 1e-3));
  expect(worst).toBeLessThanOrEqual(rel);
}

describe('dlc compile', () => {
  it('writes the artifact layout with a manifest that describes it', () => {
    const files = Object.keys(hashTree(outA));
    for (const f of ['manifest.json', 'predict.wasm', 'train_step.wasm', 'weights.safetensors', 'index.js', 'index.d.ts', 'dlc-runtime.js']) expect(files).toContain(f);
    const m = JSON.parse(readFileSync(path.join(outA, 'manifest.json'), 'utf8')) as Manifest;
    expect(m.format).toBe('dlc-artifact');
    expect(m.version).toBe(1);
    expect(m.model).toEqual({ name: 'sequential', inputShape: [28, 28, 1], outputShape: [10] });
    expect(m.batchSize).toBe(32);
    expect(m.targets).toEqual(['wasm', 'webgpu']);
    expect(Object.keys(m.entries).sort()).toEqual(['predict', 'train_step']);
    const t = m.entries.train_step!;
    expect(t.inputs.slice(0, 3).map((i) => [i.name, i.role, i.dtype])).toEqual([['x', 'x', 'f32'], ['y', 'y', 'i32'], ['mask', 'mask', 'f32']]);
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
    expect(t.schedule.length).toBe(93);
    expect(m.entries.predict!.schedule.length).toBe(14);
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
    if (r.webgpu.unavailable) {
      const msg = `\n\n!!!!! WebGPU NOT TESTED: ${r.webgpu.unavailable} !!!!!\n\n`;
      if (process.env.DLC_ALLOW_NO_WEBGPU === '1') console.warn(msg);
      else throw new Error(`${msg}(set DLC_ALLOW_NO_WEBGPU=1 to allow this on a host without an adapter)`);
      return;
    }
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

  it('refuses a damaged artifact, naming the file', async () => {
    const dirs = { trunc: path.join(tmp, 'trunc'), version: path.join(tmp, 'version'), noweights: path.join(tmp, 'noweights') };
    for (const d of Object.values(dirs)) cpSync(outA, d, { recursive: true });
    const wasm = readFileSync(path.join(dirs.trunc, 'predict.wasm'));
    writeFileSync(path.join(dirs.trunc, 'predict.wasm'), wasm.subarray(0, wasm.length >> 1));
    const mf = JSON.parse(readFileSync(path.join(dirs.version, 'manifest.json'), 'utf8')) as { version: number };
    mf.version = 2;
    writeFileSync(path.join(dirs.version, 'manifest.json'), JSON.stringify(mf));
    rmSync(path.join(dirs.noweights, 'weights.safetensors'));
    const script = `
const out = {};
for (const [k, d] of Object.entries(${JSON.stringify(Object.fromEntries(Object.entries(dirs).map(([k, d]) => [k, `${pathToUrl(d)}/index.js`])))})) {
  try { const { load } = await import(d); await load({ backend: 'wasm' }); out[k] = 'loaded'; } catch (e) { out[k] = e.message; }
}
console.log(JSON.stringify(out));
`;
    const r = (await child(script)) as Record<keyof typeof dirs, string>;
    expect(r.trunc).toMatch(/^predict\.wasm: sha256 [0-9a-f]{64} does not match manifest\.json/);
    expect(r.version).toMatch(/^manifest\.json: artifact format version 2, but this runtime reads version 1/);
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
