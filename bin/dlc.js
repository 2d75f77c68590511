#!/usr/bin/env node
/**
 * @file The `dlc` executable: runs the CLI bundle dist/cli.js (built by scripts/build.mjs, which
 * `npm ci` runs through `prepare`). Plain JS so it works before anything is compiled; when dist/ is
 * missing it says how to build it instead of failing with a module-resolution stack.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
const lib = new URL('../dist/dlc.js', import.meta.url);
if (!existsSync(cli) || !existsSync(lib)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`error: dlc is not built (no dist/cli.js or dist/dlc.js); run 'npm run build' in ${root}\n`);
  process.exit(1);
}
const { main } = await import(cli.href);
// exitCode, not exit(): let stdout drain when it is a pipe.
process.exitCode = await main(process.argv.slice(2));
