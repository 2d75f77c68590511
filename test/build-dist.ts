/**
 * @file Vitest global setup: builds dist/ (library, CLI and runtime bundles) once before any test
 * file runs, when any source is newer than the bundles. The CLI, artifact and page tests all go
 * through dist/; building here, once, means no two test files ever rebuild it under each other.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Newest modification time under `p` (recursively), 0 when missing. */
function newest(p: string): number {
  if (!existsSync(p)) return 0;
  const st = statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...readdirSync(p).map((f) => newest(path.join(p, f))));
}

export default function setup(): void {
  const outputs = ['dlc.js', 'cli.js', 'dlc-runtime.js', 'dlc-runtime.meta.json'].map((f) => path.join(root, 'dist', f));
  const built = Math.min(...outputs.map((f) => (existsSync(f) ? statSync(f).mtimeMs : 0)));
  const sources = Math.max(...['compiler', 'ir', 'cli', 'runtime', 'scripts', 'package.json'].map((f) => newest(path.join(root, f))));
  if (built > sources) return;
  // --no-types: declarations are not used by tests and take most of the build time.
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs'), '--no-types'], { cwd: root, stdio: 'inherit' });
}
