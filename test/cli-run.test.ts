/**
 * @file End-to-end tests of `dlc train`, `dlc eval` and `dlc predict` on a model file and on a
 * compiled artifact, through `node bin/dlc.js` as a user runs them: weights saved by one command
 * (`--save`) are read by the others (`--weights`) and by `dlc compile`, the two kinds of source agree,
 * `--input`/`--output` take .npy and .json, `--debug 5` traces every dispatch, and mistakes are
 * one-line errors with the documented exit codes.
 *
 * Sizes are small (a few hundred digits) so the file runs in tens of seconds. The model file runs
 * on the library's Wasm backend (relaxed-SIMD FMA where the engine has it), the artifact on plain
 * SIMD: the same f32 math with different rounding, so their losses are compared to 1e-4 and their
 * classes exactly (a class flip would need two outputs within ~1e-6 of each other).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Run } from './run-node.ts';
import { bin, node, root } from './run-node.ts';
import { writeNpy, readNpy } from '../cli/npy.ts';
import { loadMnist } from '../compiler/index.ts';
import type { Manifest } from '../runtime/artifact.ts';
import { readSafetensors, writeSafetensors } from '../runtime/safetensors.ts';

const example = 'examples/mnist-cnn.ts';

const dlc = (args: readonly string[], env: Record<string, string> = {}) => node([bin, ...args], env);

async function ok(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const r = await dlc(args, env);
  if (r.code !== 0) throw new Error(`dlc ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** `test loss: L - test accuracy: A` from a train/eval report. */
function report(stdout: string): { loss?: number; accuracy: number } {
  const acc = /test accuracy: ([\d.]+)/.exec(stdout);
  if (!acc) throw new Error(`no test accuracy in:\n${stdout}`);
  const loss = /test loss: ([\d.]+)/.exec(stdout);
  return { accuracy: Number(acc[1]), ...(loss ? { loss: Number(loss[1]) } : {}) };
}

let tmp = '';
let trained = '';
let art = '';

beforeAll(async () => {
  // Under the repository (git-ignored .tmp/): artifacts load Dawn by a bare import from their folder.
  mkdirSync(path.join(root, '.tmp'), { recursive: true });
  tmp = mkdtempSync(path.join(root, '.tmp', 'cli-run-'));
  trained = path.join(tmp, 'trained.safetensors');
  art = path.join(tmp, 'art');
  await ok(['train', example, '--train-samples', '320', '--test-samples', '0', '--save', trained]);
  await ok(['compile', example, '-o', art, '--weights', trained]);
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('dlc train/eval/predict', () => {
  it('train --save writes every weight as safetensors', () => {
    const f = readSafetensors(new Uint8Array(readFileSync(trained)), trained);
    expect([...f.tensors.keys()].sort()).toEqual(
      ['conv2d', 'conv2d_1', 'conv2d_2', 'dense', 'dense_1'].flatMap((l) => [`${l}.bias`, `${l}.kernel`]),
    );
    expect(f.tensors.get('conv2d.kernel')!.shape).toEqual([3, 3, 1, 32]);
  });

  it('eval of the model file with --weights and of the artifact compiled from them agree', async () => {
    const [m, a, fresh] = await Promise.all([
      ok(['eval', example, '--weights', trained, '--test-samples', '200']),
      ok(['eval', art, '--test-samples', '200']),
      ok(['eval', example, '--test-samples', '200']),
    ]);
    const rm = report(m.stdout);
    const ra = report(a.stdout);
    expect(ra.accuracy).toBe(rm.accuracy);
    expect(Math.abs(ra.loss! - rm.loss!)).toBeLessThan(1e-4);
    // 320 training digits take the untrained ~10% well above chance: the weights really were loaded.
    expect(rm.accuracy).toBeGreaterThan(report(fresh.stdout).accuracy + 0.3);
  });

  it('predict on MNIST digits and on the same digits from --input .npy/.json; --output writes every row', async () => {
    const n = 5;
    const x = loadMnist(0, n).test.x.data as Float32Array;
    const npyIn = path.join(tmp, 'x.npy');
    const jsonIn = path.join(tmp, 'x.json');
    writeFileSync(npyIn, writeNpy([n, 28, 28, 1], x));
    writeFileSync(jsonIn, JSON.stringify(Array.from({ length: n }, (_, i) => Array.from({ length: 28 }, (_, r) => Array.from({ length: 28 }, (_, c) => [x[i * 784 + r * 28 + c]])))));
    const outs = ['m.npy', 'a.npy', 'a-in.json', 'm-in.npy'].map((f) => path.join(tmp, f));
    const runs = await Promise.all([
      ok(['predict', example, '--weights', trained, '--samples', String(n), '-o', outs[0]]),
      ok(['predict', art, '--samples', String(n), '--output', outs[1]]),
      ok(['predict', art, '--input', jsonIn, '-o', outs[2]]),
      ok(['predict', example, '--weights', trained, '--input', npyIn, '-o', outs[3]]),
    ]);
    expect(runs[0].stdout).toMatch(/accuracy: [\d.]+ \(\d\/5\)/);
    const classes = (s: string) => s.split('\n').filter((l) => /^\d+\s+\d+\s+[\d.]+/.test(l)).map((l) => Number(l.trim().split(/\s+/)[1]));
    const want = classes(runs[0].stdout);
    expect(want).toHaveLength(n);
    for (const r of runs.slice(1)) expect(classes(r.stdout)).toEqual(want);
    const rows = [readNpy(new Uint8Array(readFileSync(outs[0])), outs[0]), readNpy(new Uint8Array(readFileSync(outs[1])), outs[1]), readNpy(new Uint8Array(readFileSync(outs[3])), outs[3])];
    const json = (JSON.parse(readFileSync(outs[2], 'utf8')) as number[][]).flat();
    for (const r of rows) expect(r.shape).toEqual([n, 10]);
    for (const got of [rows[1].data, rows[2].data, json]) {
      for (let i = 0; i < n * 10; i++) expect(Math.abs(got[i] - rows[0].data[i])).toBeLessThan(1e-4);
    }
  });

  it('train on the artifact continues from its weights and --save feeds eval of the model file', async () => {
    const saved = path.join(tmp, 'after-artifact.safetensors');
    const t = await ok(['train', art, '--train-samples', '320', '--test-samples', '200', '--save', saved]);
    expect(t.stdout).toMatch(/10\/10 \[=+\]/);
    const after = report(t.stdout);
    const e = report((await ok(['eval', example, '--weights', saved, '--test-samples', '200'])).stdout);
    expect(e.accuracy).toBe(after.accuracy);
    expect(Math.abs(e.loss! - after.loss!)).toBeLessThan(1e-4);
  });

  it('--debug 5 and DLC_DEBUG=5 trace every kernel of every run', async () => {
    const manifest = JSON.parse(readFileSync(path.join(art, 'manifest.json'), 'utf8')) as Manifest;
    const kernels = manifest.entries.predict!.schedule.map((k) => k.name);
    for (const r of [await ok(['predict', art, '--samples', '40', '--debug', '5']), await ok(['predict', art, '--samples', '40'], { DLC_DEBUG: '5' })]) {
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('[dlc trace] wasm sequential.predict'));
      // 40 samples are two runs of the batch-32 program.
      expect(lines).toHaveLength(2 * kernels.length);
      expect(lines.slice(0, kernels.length).map((l) => l.split(' ')[7])).toEqual(kernels);
      expect(lines.every((l) => / \d+\.\d{3} ms$/.test(l))).toBe(true);
    }
    const m = await ok(['eval', example, '--test-samples', '32', '--debug', '5']);
    expect(m.stderr).toMatch(/\[dlc trace\] wasm sequential\.eval run 0 #000 \S+ [\d.]+ ms/);
  });

  it('--trace writes a Chrome trace: one complete event per dispatch, one named track per program', async () => {
    const manifest = JSON.parse(readFileSync(path.join(art, 'manifest.json'), 'utf8')) as Manifest;
    const kernels = manifest.entries.predict!.schedule.map((k) => k.name);
    const file = path.join(tmp, 'trace.json');
    const r = await ok(['predict', art, '--samples', '40', '--trace', file]);
    expect(r.stderr).toContain(`wrote ${2 * kernels.length} dispatches to ${file}`);
    const t = JSON.parse(readFileSync(file, 'utf8')) as { traceEvents: { name: string; ph: string; tid: number; ts: number; dur: number; args: Record<string, unknown> }[] };
    const spans = t.traceEvents.filter((e) => e.ph === 'X');
    expect(spans.map((e) => e.name)).toEqual([...kernels, ...kernels]);
    expect(t.traceEvents.filter((e) => e.ph === 'M').map((e) => e.args.name)).toEqual(['wasm sequential.predict']);
    // Kernels of one run follow each other on the clock.
    for (let i = 1; i < kernels.length; i++) expect(spans[i].ts).toBeGreaterThanOrEqual(spans[i - 1].ts + spans[i - 1].dur - 1e-3);
  });

  it('eval --help and predict --help list their flags', async () => {
    const e = await ok(['eval', '--help']);
    for (const f of ['--test-samples', '--backend', '--weights', '--debug']) expect(e.stdout).toContain(f);
    const p = await ok(['predict', '--help']);
    for (const f of ['--input', '--samples', '--output', '--weights']) expect(p.stdout).toContain(f);
    expect(p.stdout).toContain('ARTIFACT is a folder');
  });

  it.each([
    ['summary of an artifact', () => ['summary', art], 2, /needs a model file/],
    ['an artifact on interp', () => ['eval', art, '--backend', 'interp'], 2, /'interp' needs the model file/],
    ['a batch size the artifact was not compiled for', () => ['train', art, '--batch-size', '16'], 2, /compiled for batches of 32, got 16/],
    ['a missing --weights file', () => ['eval', example, '--weights', path.join(tmp, 'nope.safetensors')], 2, /--weights: file not found/],
    ['a missing --input file', () => ['predict', art, '--input', path.join(tmp, 'nope.npy')], 2, /--input: file not found/],
    ['--input and --samples together', () => ['predict', art, '--input', path.join(tmp, 'x.npy'), '--samples', '3'], 2, /cannot be used with --input/],
    ['--save into a folder that does not exist (refused before training)', () => ['train', example, '--save', path.join(tmp, 'no', 'w.safetensors')], 2, /--save: folder .* does not exist/],
    ['--output or --trace naming a folder', () => ['predict', art, '--trace', tmp], 2, /--trace: .* is a folder/],
  ])('%s: one-line error with its exit code', async (_what, args, code, msg) => {
    const r = await dlc(args());
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
    expect(r.stderr).toMatch(msg);
  });

  it('input of the wrong shape and weights missing a tensor are refused, naming the file', async () => {
    const badIn = path.join(tmp, 'bad.npy');
    writeFileSync(badIn, writeNpy([2, 27, 28, 1], new Float32Array(2 * 27 * 28)));
    const r1 = await dlc(['predict', art, '--input', badIn]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain(`${badIn}: expected samples of shape [N, 28, 28, 1], got [2, 27, 28, 1]`);
    const f = readSafetensors(new Uint8Array(readFileSync(trained)), trained);
    const partial = path.join(tmp, 'partial.safetensors');
    writeFileSync(partial, writeSafetensors(Object.fromEntries([...f.tensors].filter(([k]) => k !== 'dense.bias'))));
    for (const src of [example, art]) {
      const r = await dlc(['eval', src, '--weights', partial]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/missing tensor 'dense\.bias'/);
    }
    expect(existsSync(path.join(tmp, 'nope.safetensors'))).toBe(false);
  });
});

describe('dlc train on functional models', () => {
  it("an autoencoder file (target = 'input') trains on its own input, reports the test loss and writes the PNG grid", async () => {
    const png = path.join(tmp, 'recon.png');
    const r = await ok(['train', 'examples/mnist-autoencoder.ts', '--train-samples', '96', '--test-samples', '32', '--png', png]);
    const m = /epoch 1: .* - loss: ([\d.]+) - val_loss: ([\d.]+)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    // Binary cross-entropy of a reconstruction starts near ln 2 (sigmoid outputs near 0.5) and falls.
    expect(Number(m![2])).toBeLessThan(0.7);
    expect(r.stdout).toMatch(/^test loss: [\d.]+ \(32 test samples\)$/m);
    expect(r.stdout).not.toMatch(/accuracy/);
    const bytes = readFileSync(png);
    expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(r.stderr).toMatch(/wrote 32 test digits beside their reconstructions/);
  }, 180_000);

  it('the ResNet example (BatchNormalization, Add, GlobalAveragePooling2D) trains from the command line', async () => {
    const r = await ok(['train', 'examples/mnist-resnet.ts', '--train-samples', '64', '--test-samples', '32']);
    expect(report(r.stdout).accuracy).toBeGreaterThanOrEqual(0);
    expect(r.stdout).toMatch(/val_accuracy/);
  }, 180_000);

  it.each([
    ['--png on a model trained against labels', () => ['train', example, '--png', path.join(tmp, 'x.png')], 2, /--png: .* trains against labels/],
    ['a bad target export', () => {
      const f = path.join(tmp, 'bad-target.ts');
      writeFileSync(f, "import { Dense, Sequential } from 'dlc';\nexport const target = 'labelz';\nexport default Sequential([Dense(2, { inputShape: [4] })]);\n");
      return ['summary', f];
    }, 1, /export 'target' must be 'labels' .* or 'input' .*, got "labelz"/],
    ['a dataset export that is not a function', () => {
      const f = path.join(tmp, 'bad-dataset.ts');
      writeFileSync(f, "import { Dense, Sequential } from 'dlc';\nexport const dataset = 3;\nexport default Sequential([Dense(2, { inputShape: [4] })]);\n");
      return ['summary', f];
    }, 1, /export 'dataset' must be a function \(train: number, test: number\) => .*, got number/],
    ['a dataset of the wrong size', () => {
      const f = path.join(tmp, 'short-dataset.ts');
      writeFileSync(f, "import { Dense, Sequential } from 'dlc';\nconst m = Sequential([Dense(2, { inputShape: [4] })], { name: 'tiny' });\nm.compile({ optimizer: 'sgd', loss: 'sparse_categorical_crossentropy' });\nexport default m;\nexport const dataset = (a: number, b: number) => ({ train: { x: new Float32Array(4 * a), y: new Int32Array(a) }, test: { x: new Float32Array(3), y: new Int32Array(b) } });\n");
      return ['eval', f, '--test-samples', '5'];
    }, 1, /tiny: dataset\(0, 5\)\.test has x of 3 values and y of 5 labels; expected 5 samples of \[4\] \(20 values\) and 5 labels/],
  ])('%s: one-line error with its exit code', async (_what, args, code, msg) => {
    const r = await dlc(args());
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
    expect(r.stderr).toMatch(msg);
  });
});

describe('dlc train: learning rate, early stopping, checkpoints', () => {
  it('train with --learning-rate, --early-stopping and --checkpoint writes the best weights', async () => {
    const ck = path.join(tmp, 'best.safetensors');
    const r = await dlc(['train', 'examples/digit-sum-gru.ts', '--train-samples', '320', '--test-samples', '96', '--epochs', '3', '--learning-rate', '0.005', '--early-stopping', '1', '--checkpoint', ck]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/test loss: [\d.]+ - test accuracy: [\d.]+ \(96 test samples\)/);
    const saved = readSafetensors(readFileSync(ck)).tensors;
    expect([...saved.keys()].sort()).toContain('gru.gru_cell.kernel');
  }, 120_000);

  it.each([
    ['--learning-rate that is not a positive number', ['train', 'examples/mnist-cnn.ts', '--learning-rate', '-1'], /--learning-rate: expected a positive number, got '-1'/],
    ['--checkpoint into a missing folder', ['train', 'examples/mnist-cnn.ts', '--checkpoint', '/nonexistent-dir/x.safetensors'], /--checkpoint: folder \/nonexistent-dir does not exist/],
  ])('%s: exit 2 before any work', async (_what, args, msg) => {
    const r = await dlc(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(msg);
  });
});

describe('a model file with its own data', () => {
  it('dlc train takes the samples from its dataset export (a GRU over masked digit sequences)', async () => {
    const r = await dlc(['train', 'examples/digit-sum-gru.ts', '--train-samples', '960', '--test-samples', '200', '--epochs', '2']);
    expect(r.code, r.stderr).toBe(0);
    const m = /test loss: ([\d.]+) - test accuracy: ([\d.]+) \(200 test samples\)/.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    // 11 classes: chance is about 0.09 and the loss about 2.4; two short epochs already beat both.
    expect(Number(m![2])).toBeGreaterThan(0.3);
    expect(Number(m![1])).toBeLessThan(2);
  }, 120_000);
});
