/**
 * @file End-to-end tests of the `dlc` command line: each test spawns `node bin/dlc.js` as a user
 * would, against the built dist/ (rebuilt when stale by the global setup, test/build-dist.ts), and
 * checks exit codes and output. They guard the build's promise that the CLI and a model file share
 * one library instance. train/eval/predict on artifacts are in test/cli-run.test.ts.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { bin, node, root } from './run-node.ts';

const example = 'examples/mnist-cnn.ts';

const run = (args: readonly string[], script = bin) => node([script, ...args]);

describe('dlc', () => {
  it('summary prints the Keras layer table', async () => {
    const r = await run(['summary', example]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('conv2d (Conv2D)');
    expect(r.stdout).toContain('Total params: 241,546');
  });

  it('summary and ir load neither binaryen nor wabt (they load on the first Wasm emission)', async () => {
    // A resolve hook that refuses both packages: a command that imports either fails.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dlc-lazy-'));
    try {
      writeFileSync(path.join(dir, 'hooks.mjs'), "export async function resolve(s, c, next) {\n  if (s === 'binaryen' || s === 'wabt') throw new Error(`${s} was imported`);\n  return next(s, c);\n}\n");
      writeFileSync(path.join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister(new URL('./hooks.mjs', import.meta.url));\n");
      const hook = ['--import', pathToFileURL(path.join(dir, 'register.mjs')).href];
      for (const args of [['summary', example], ['ir', example, '--batch-size', '4']]) {
        const r = await node([...hook, bin, ...args]);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
      // The hook does refuse: compiling to Wasm needs binaryen.
      const c = await node([...hook, bin, 'compile', example, '-o', path.join(dir, 'out'), '--target', 'wasm']);
      expect(c.code).not.toBe(0);
      expect(c.stderr).toContain('binaryen was imported');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ir prints the train step, byte-identical across runs', async () => {
    const [a, b] = await Promise.all([run(['ir', example]), run(['ir', example])]);
    expect(a.code).toBe(0);
    expect(a.stdout.startsWith('func @')).toBe(true);
    expect(a.stdout).toBe(b.stdout);
  });

  it('ir --after frontend is the smaller graph without gradients', async () => {
    const [fe, ad] = await Promise.all([run(['ir', example, '--after', 'frontend', '--batch-size', '4']), run(['ir', example, '--batch-size', '4'])]);
    expect(fe.code).toBe(0);
    expect(fe.stdout.startsWith('func @')).toBe(true);
    expect(fe.stdout.length).toBeLessThan(ad.stdout.length);
  });

  it('ir rejects an unknown pass, naming the valid ones', async () => {
    const r = await run(['ir', example, '--after', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/frontend.*autodiff/);
  });

  it.each([['dlc', []], ['dlc summary', ['summary']], ['dlc ir', ['ir']], ['dlc train', ['train']]])('%s --help', async (_name, cmd) => {
    for (const flag of ['--help', '-h']) {
      const r = await run([...cmd, flag]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^(Usage|dlc)/);
      expect(r.stdout).toContain('Usage: dlc');
    }
  });

  it('train --help lists its flags', async () => {
    const r = await run(['train', '--help']);
    for (const f of ['--epochs', '--batch-size', '--train-samples', '--test-samples', '--backend', '--seed']) expect(r.stdout).toContain(f);
  });

  it.each([
    ['unknown flag', ['summary', example, '--bogus']],
    ['flag without its value', ['train', example, '--epochs']],
    ['bad integer', ['train', example, '--epochs', 'two']],
    ['unknown command', ['frobnicate', example]],
    ['unknown backend name', ['train', example, '--backend', 'cuda']],
    ['missing model argument', ['summary']],
    ['missing model file', ['summary', 'examples/no-such-model.ts']],
  ])('%s: one-line error, exit 2', async (_what, args) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
  });

  it('bare dlc prints usage and exits 2', async () => {
    const r = await run([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: dlc');
  });

  describe('model files', () => {
    let dir = '';
    beforeAll(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'dlc-cli-test-'));
      return () => rmSync(dir, { recursive: true, force: true });
    });
    const write = (name: string, text: string) => {
      const f = path.join(dir, name);
      writeFileSync(f, text);
      return f;
    };

    it('a library error is one line without a stack, exit 1', async () => {
      const f = write('bad.ts', "import { Dense, Sequential } from 'dlc';\nexport default Sequential([Dense(10)]);\n");
      const r = await run(['summary', f]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: Sequential: .*inputShape[^\n]*\n$/);
    });

    it('a file without a model export says what to export', async () => {
      const r = await run(['summary', write('none.ts', 'export const x = 1;\n')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("default export or as 'model'");
    });

    it('a .js model with a named export and its own relative imports loads', async () => {
      write('head.js', "import { Dense } from 'dlc';\nexport const head = () => Dense(10, { activation: 'softmax', inputShape: [4] });\n");
      const f = write('model.js', "import { Sequential } from 'dlc';\nimport { head } from './head.js';\nexport const model = Sequential([head()]);\n");
      const r = await run(['summary', f]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Total params: 50');
    });
  });

  it('bin/dlc.js without dist/ asks for a build', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'dlc-nodist-'));
    try {
      cpSync(bin, path.join(dir, 'bin', 'dlc.js'));
      const r = await run([], path.join(dir, 'bin', 'dlc.js'));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^error: .*npm run build[^\n]*\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('train runs a few steps on the interp backend and reports test accuracy', async () => {
    const r = await run(['train', example, '--backend', 'interp', '--train-samples', '64', '--test-samples', '32', '--batch-size', '32']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/test accuracy: \d\.\d{4}/);
  });

  it('train names the available backends when one is missing', async () => {
    // The shipped build registers every backend, so the refusal needs a build that lacks one: the
    // library bundled from compiler/index.ts without its `import './backends/wasm.ts'`, beside copies
    // of dist/cli.js and bin/dlc.js. It lives under .tmp/ in the repository so that the npm packages
    // the bundles leave external resolve as they do from dist/.
    expect(/available here: ([a-z, ]+)\./.exec((await run(['train', '--help'])).stdout)?.[1]).toBe('interp, wasm, webgpu');
    mkdirSync(path.join(root, '.tmp'), { recursive: true });
    const dir = mkdtempSync(path.join(root, '.tmp', 'cli-no-wasm-'));
    try {
      mkdirSync(path.join(dir, 'bin'));
      mkdirSync(path.join(dir, 'dist'));
      cpSync(bin, path.join(dir, 'bin', 'dlc.js'));
      cpSync(path.join(root, 'dist', 'cli.js'), path.join(dir, 'dist', 'cli.js'));
      const lib = path.join(root, 'compiler', 'index.ts');
      await esbuild.build({
        entryPoints: [lib],
        outfile: path.join(dir, 'dist', 'dlc.js'),
        bundle: true,
        format: 'esm',
        platform: 'node',
        target: 'node20',
        packages: 'external',
        logLevel: 'silent',
        plugins: [
          {
            name: 'leave-out-the-wasm-backend',
            setup(build) {
              build.onResolve({ filter: /^\.\/backends\/wasm\.ts$/ }, (a) => (a.importer === lib ? { path: 'wasm-backend', namespace: 'left-out' } : undefined));
              build.onLoad({ filter: /.*/, namespace: 'left-out' }, () => ({ contents: '' }));
            },
          },
        ],
      });
      const cli = path.join(dir, 'bin', 'dlc.js');
      const help = await run(['train', '--help'], cli);
      expect(help.stdout).toContain('available here: interp, webgpu.');
      const r = await run(['train', example, '--backend', 'wasm'], cli);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe("error: backend 'wasm' is not available; available: interp, webgpu\n");
      expect(r.code).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
