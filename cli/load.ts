/**
 * @file Loads a user's model file (`.ts` or `.js`) for the CLI: esbuild bundles it with its own
 * relative imports, the result is written to a temporary `.mjs` file and `import()`ed, and the model
 * is taken from its default export or its named export `model`.
 *
 * Invariant: the model file and the CLI share one instance of the library. Its `dlc` imports are
 * rewritten to the absolute file URL of the `dist/dlc.js` the CLI itself imports, so `instanceof
 * Model`, `DlcError` and the backend registry mean the same thing on both sides. npm packages the
 * model imports are resolved from the model's directory at bundle time and kept external by absolute
 * URL, so the temporary file can live anywhere and packages keep their own module instances.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import { DlcError, Model } from '../compiler/index.ts';

/** A user mistake the CLI reports in one line; `code` is the process exit code. */
export class CliError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * The library's URL. This file is bundled into dist/cli.js, next to dist/dlc.js, which is exactly the
 * module the CLI's own `import ... from '../compiler/index.ts'` was rewritten to (scripts/build.mjs).
 */
const LIBRARY_URL = new URL('./dlc.js', import.meta.url).href;

export async function loadModel(file: string): Promise<Model> {
  const abs = path.resolve(file);
  const st = statSync(abs, { throwIfNoEntry: false });
  if (!st) throw new CliError(`model file not found: ${file}`, 2);
  if (!st.isFile()) throw new CliError(`model file is not a file: ${file}`, 2);
  if (!/\.(ts|mts|js|mjs)$/.test(abs)) throw new CliError(`model file must be .ts or .js: ${file}`, 2);

  const code = await bundle(abs, file);
  // A fresh directory per load: two concurrent runs never import each other's half-written file.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dlc-model-'));
  const out = path.join(dir, `${path.basename(abs).replace(/\.[^.]+$/, '')}.mjs`);
  let mod: Record<string, unknown>;
  try {
    writeFileSync(out, code);
    // Stack traces from the model point at the user's source through the inline source map.
    process.setSourceMapsEnabled?.(true);
    mod = (await import(pathToFileURL(out).href)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const model = pickModel(mod, file);
  feeds.set(model, pickTarget(mod, file));
  const ds = pickDataset(mod, file);
  if (ds) datasets.set(model, ds);
  return model;
}

/** Labelled samples: x holds n samples of the model's input shape, y one class per sample. */
export interface Samples {
  readonly x: Float32Array;
  readonly y: Int32Array;
}
/** A model file's own data (`export function dataset(train, test)`), used instead of MNIST. */
export type DatasetFn = (train: number, test: number) => { readonly train: Samples; readonly test: Samples };
const datasets = new WeakMap<Model, DatasetFn>();

/** The data the model's file exports, if any. */
export function datasetOf(model: Model): DatasetFn | undefined {
  return datasets.get(model);
}

function pickDataset(mod: Record<string, unknown>, shown: string): DatasetFn | undefined {
  const d = mod.dataset;
  if (d === undefined) return undefined;
  if (typeof d !== 'function') throw new DlcError(`${shown}: export 'dataset' must be a function (train: number, test: number) => { train: { x, y }, test: { x, y } }, got ${typeof d}`);
  return d as DatasetFn;
}

/**
 * What a model file trains against: `'labels'` (the digit classes, the default) or `'input'` (the
 * digits themselves, for autoencoders), declared by the file as `export const target = 'input'`.
 */
export type Target = 'labels' | 'input';
const feeds = new WeakMap<Model, Target>();

/** The training target the model's file declared (`labels` unless it exported `target = 'input'`). */
export function targetOf(model: Model): Target {
  return feeds.get(model) ?? 'labels';
}

function pickTarget(mod: Record<string, unknown>, shown: string): Target {
  const t = mod.target;
  if (t === undefined || t === 'labels' || t === 'input') return t ?? 'labels';
  throw new DlcError(`${shown}: export 'target' must be 'labels' (train against the digit classes) or 'input' (reconstruct the digits, e.g. an autoencoder), got ${JSON.stringify(t)}`);
}

async function bundle(abs: string, shown: string): Promise<string> {
  const rewrite: esbuild.Plugin = {
    name: 'dlc-model-imports',
    setup(build) {
      build.onResolve({ filter: /^dlc$/ }, () => ({ path: LIBRARY_URL, external: true }));
      // Any other bare specifier is an npm package or a node builtin: resolve it where the model
      // lives and import it by absolute URL from wherever the bundle is written.
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === 'inner' || args.path.startsWith('node:') || /^[a-z]+:/i.test(args.path)) return undefined;
        const r = await build.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, pluginData: 'inner' });
        if (r.errors.length > 0) return { errors: r.errors };
        if (r.external || !path.isAbsolute(r.path)) return { path: r.path, external: true };
        return { path: pathToFileURL(r.path).href, external: true };
      });
    },
  };
  try {
    const res = await esbuild.build({
      entryPoints: [abs],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      sourcemap: 'inline',
      logLevel: 'silent',
      plugins: [rewrite],
    });
    return res.outputFiles[0].text;
  } catch (e) {
    const errs = (e as { errors?: esbuild.Message[] }).errors;
    if (!errs?.length) throw e;
    const first = errs[0];
    const at = first.location ? `${path.relative(process.cwd(), first.location.file) || shown}:${first.location.line}:${first.location.column + 1}: ` : '';
    throw new CliError(`cannot load ${shown}: ${at}${first.text}${errs.length > 1 ? ` (and ${errs.length - 1} more errors)` : ''}`, 1);
  }
}

function pickModel(mod: Record<string, unknown>, shown: string): Model {
  const candidates: [string, unknown][] = [
    ['default', mod.default],
    ['model', mod.model],
  ];
  for (const [name, v] of candidates) {
    if (v === undefined) continue;
    if (v instanceof Model) return v;
    throw new DlcError(`${shown}: the ${name === 'default' ? 'default export' : "export 'model'"} is not a dlc model (got ${describe(v)}); export the result of Sequential([...])`);
  }
  const names = Object.keys(mod);
  throw new DlcError(`${shown}: no model found; export it as the default export or as 'model' (exports: ${names.length ? names.join(', ') : 'none'})`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as object).constructor?.name ? `an instance of ${(v as object).constructor.name}` : 'an object';
  return typeof v;
}
