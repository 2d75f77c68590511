/**
 * @file Shared by the end-to-end tests: run `node` (the CLI `bin/dlc.js` or any script) in a child
 * process from the repository root and collect its exit code and output, never throwing.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const bin = path.join(root, 'bin', 'dlc.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node ...args` with extra environment variables; NO_COLOR keeps the output plain. */
export function node(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, maxBuffer: 256 << 20, env: { ...process.env, NO_COLOR: '1', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
