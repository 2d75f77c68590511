/**
 * @file `npm run bench`: bundles bench/run.ts into .tmp/bench/ (npm packages stay external, so
 * jax-js, TF.js, ONNX Runtime and their wasm files and native addons load from node_modules as they would for a user; code-split, so
 * each system's child process loads only its own module) and runs it, passing on any arguments
 * (`npm run bench -- --only tfjs-wasm`; `npm run bench -- --only lstm-accuracy` runs the LSTM
 * example's accuracy check against TF.js instead, see bench/lstm-accuracy.ts). `npm run bench:matmul-gpu` does the same for
 * bench/matmul-gpu.ts (GFLOP/s of dlc's WebGPU matmul kernel).
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, '.tmp', 'bench');
rmSync(outdir, { recursive: true, force: true });
// `node scripts/bench.mjs matmul-gpu ...` runs bench/matmul-gpu.ts instead of the model benchmark.
const [entry, args] = process.argv[2] === 'matmul-gpu' ? ['matmul-gpu', process.argv.slice(3)] : ['run', process.argv.slice(2)];
await esbuild.build({
  entryPoints: { [entry]: path.join(root, 'bench', `${entry}.ts`) },
  outdir,
  outExtension: { '.js': '.mjs' },
  splitting: true,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: 'inline',
  logLevel: 'warning',
  absWorkingDir: root,
});
const r = spawnSync(process.execPath, ['--enable-source-maps', path.join(outdir, `${entry}.mjs`), ...args], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
