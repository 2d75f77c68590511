/**
 * @file `npm run bench`: bundles bench/run.ts into .tmp/bench/ (npm packages stay external, so
 * jax-js, TF.js and their wasm files load from node_modules as they would for a user; code-split, so
 * each system's child process loads only its own module) and runs it, passing on any arguments
 * (`npm run bench -- --only tfjs-wasm`).
 */
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, '.tmp', 'bench');
rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
  entryPoints: { run: path.join(root, 'bench', 'run.ts') },
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
const r = spawnSync(process.execPath, ['--enable-source-maps', path.join(outdir, 'run.mjs'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
