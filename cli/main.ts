/**
 * @file The `dlc` command line: `summary`, `ir`, `train` and `compile` on a user's model file, with a
 * small hand-written argument parser and `--help` on every command.
 *
 * Exit codes: 0 success; 1 the library refused (a `DlcError`, printed as `error: <message>` without a
 * stack) or an unavailable backend; 2 a usage mistake (unknown command or flag, a flag without its
 * value, a bad value, a missing model file), always reported in one line. The library is imported
 * only through compiler/index.ts, which the build turns into the external `./dlc.js`: the CLI and the
 * model file it loads share one library instance (see scripts/build.mjs and cli/load.ts).
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BackendName, CompiledStep, Model, PassName, StepKind } from '../compiler/index.ts';
import {
  availableBackends,
  buildArtifact,
  checkArtifactTarget,
  compileStep,
  DlcError,
  getDefaultBackend,
  loadMnist,
  PASS_NAMES,
  printFunc,
  printProgram,
  SequentialModel,
  stepWat,
  stepWgsl,
  webgpuAdapterInfo,
  writeArtifact,
} from '../compiler/index.ts';
import { CliError, loadModel } from './load.ts';

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
  run(model: Model, p: Parsed): Promise<void>;
}

const STEP_KINDS: readonly StepKind[] = ['train', 'predict', 'eval'];
const BACKENDS: readonly BackendName[] = ['interp', 'wasm', 'webgpu'];

/**
 * The graph IR as each pass leaves it, in pipeline order. `--after` picks one by name; the last one
 * is the default. More passes (simplify, fuse) are added here as the library exports them.
 */
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
  if (r.program) {
    const st = c.plan.stats;
    const mib = (n: number) => (n / 1048576).toFixed(2);
    return `${printProgram(r.program)}// kernels: ${r.program.kernels.length}; arena ${mib(c.plan.totalBytes)} MiB (inputs/outputs ${mib(st.fixedBytes)} MiB, temporaries ${mib(st.tempBytes)} MiB shared from ${mib(st.tempBytesUnshared)} MiB)\n`;
  }
  return printFunc(r.graph!);
}


// ---- compile: dumps and debug output ----

const TARGETS = ['wasm', 'webgpu'] as const;
const ENTRIES = ['predict', 'train'] as const;
const DEBUG_LEVELS = [
  '1  pass timings, code generation time and kernel count per entry',
  '2  and the graph IR after each pass that changed it',
  '3  and the kernel IR (the fused program with its memory plan)',
  '4  and the generated code (Wasm text, WGSL)',
];

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
function debugReport(level: number, label: string, c: CompiledStep, codegen: string, code: () => readonly [string, string][]): void {
  if (level < 1) return;
  const err = (t: string) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`);
  const times = c.passes.map((r) => `${r.name} ${r.ms.toFixed(1)} ms`).join(', ');
  err(`[dlc] ${label}: ${times}${codegen}; ${c.program.kernels.length} kernels, arena ${mib(c.plan.totalBytes)} MiB`);
  if (level >= 2) {
    for (const d of passDumps(c)) if (d.changed && !c.passes.find((r) => r.name === d.name)!.program) err(`${d.header.replace(/ -----\n$/, ` (${label}) -----\n`)}${d.text}`);
  }
  if (level >= 3) err(`// ----- kernel IR: ${label} -----\n${kernelText(c)}`);
  if (level >= 4) for (const [name, text] of code()) err(`// ----- ${name} -----\n${text}`);
}

function writeDumps(dir: string | undefined, mode: string, entries: readonly { name: string; compiled: CompiledStep; wat: (() => string) | null; wgsl: readonly { name: string; code: string }[] | null }[]): void {
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
    if (e.wat) writeFileSync(path.join(at, `${e.name}.wat`), e.wat());
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
  if (wfile) {
    const st = statSync(wfile, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new CliError(`--weights: file not found: ${wfile}`, 2);
    weights = { bytes: readFileSync(wfile), file: wfile };
  }
  // Refuse a non-artifact OUT before spending time compiling (writeArtifact checks again).
  checkArtifactTarget(path.resolve(out));
  const targets = (strFlag(p, 'target') ?? 'wasm,webgpu').split(',') as ('wasm' | 'webgpu')[];
  const entries = strFlag(p, 'entry')?.split(',') as ('predict' | 'train')[] | undefined;
  const art = buildArtifact(model, { targets, entries, batchSize: intFlag(p, 'batch-size', 32), weights, runtime: runtimeBundle() });
  for (const e of art.entries) {
    const cg = Object.entries(e.codegenMs).map(([t, ms]) => `; ${t} codegen ${ms.toFixed(1)} ms`).join('');
    debugReport(level, e.name, e.compiled, cg, () => [
      ...(targets.includes('wasm') ? [[`${e.name}.wasm (text)`, stepWat(e.compiled)] as [string, string]] : []),
      ...(e.wgsl ?? []).map((k) => [`${e.name} WGSL ${k.name}`, k.code] as [string, string]),
    ]);
  }
  const dumpMode = strFlag(p, 'dump-after') ?? (strFlag(p, 'dump-dir') ? 'all' : undefined);
  if (dumpMode) {
    writeDumps(
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
    async run(model) {
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
    async run(model, p) {
      const pass = (strFlag(p, 'after') ?? 'autodiff') as PassName;
      const entry = (strFlag(p, 'entry') ?? 'train') as StepKind;
      const text = dumpAfter(model, entry, intFlag(p, 'batch-size', 32), pass);
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
  },
  {
    name: 'train',
    summary: 'train the model on MNIST digits and report test loss and accuracy',
    args: 'MODEL',
    flags: [
      { name: 'epochs', metavar: 'N', min: 1, help: 'passes over the training data (default: 1)' },
      { name: 'batch-size', metavar: 'N', min: 1, help: 'samples per optimizer step (default: 32)' },
      { name: 'train-samples', metavar: 'N', min: 1, help: 'training digits (default: 8000)' },
      { name: 'test-samples', metavar: 'N', min: 0, help: 'held-out test digits; 0 skips the test (default: 2000)' },
      { name: 'backend', metavar: 'NAME', choices: BACKENDS, help: `where the steps run: ${BACKENDS.join(', ')}` },
      { name: 'seed', metavar: 'N', min: 0, help: 'seed of the per-epoch shuffle (default: 0)' },
      { name: 'debug', metavar: 'N', min: 0, help: 'compiler diagnostics on stderr for the train step, levels 1-4 (default: $DLC_DEBUG or 0)' },
    ],
    notes: () => [
      `Default backend: ${getDefaultBackend()}; available here: ${availableBackends().join(', ')}.`,
      'The interp backend is the exact f64 reference and slow; try --train-samples 1000 for a quick look.',
      'Debug levels (--debug N or DLC_DEBUG=N):',
      ...DEBUG_LEVELS.map((l) => `  ${l}`),
    ],
    async run(model, p) {
      const level = debugLevel(p);
      let backend = strFlag(p, 'backend') as BackendName | undefined;
      if (backend === 'webgpu') {
        const adapter = await webgpuAdapterInfo();
        if (!adapter) {
          process.stderr.write('notice: no WebGPU adapter found; training on wasm instead\n');
          backend = 'wasm';
        } else if (/llvmpipe|lavapipe|swiftshader/i.test(adapter)) {
          process.stderr.write(`notice: the WebGPU adapter is a CPU driver (${adapter}); its speed says nothing about GPUs\n`);
        }
      }
      if (backend && !availableBackends().includes(backend)) {
        throw new CliError(`backend '${backend}' is not available; available: ${availableBackends().join(', ')}`, 1);
      }
      if (!(model instanceof SequentialModel)) throw new DlcError('train: the model has no fit(); build it with Sequential([...])');
      if (level > 0) {
        // The backends compile inside fit(); compiling the train step once more here reports what they build.
        const c = compileStep(model, 'train', intFlag(p, 'batch-size', 32));
        const wasm = (backend ?? getDefaultBackend()) === 'wasm';
        debugReport(level, 'train_step', c, '', () =>
          wasm ? [['train_step.wasm (text)', stepWat(c)]] : stepWgsl(c).map((k): [string, string] => [`train_step WGSL ${k.name}`, k.code]),
        );
      }
      const nTest = intFlag(p, 'test-samples', 2000);
      const data = loadMnist(intFlag(p, 'train-samples', 8000), nTest);
      const history = await model.fit(data.train.x, data.train.y, {
        epochs: intFlag(p, 'epochs', 1),
        batchSize: intFlag(p, 'batch-size', 32),
        validationData: nTest > 0 ? [data.test.x, data.test.y] : undefined,
        verbose: 1,
        backend: backend ?? getDefaultBackend(),
        seed: intFlag(p, 'seed', 0),
      });
      if (nTest === 0) return;
      // fit already evaluated the test split after the last epoch; report that rather than rerun it.
      const h = history.history;
      const parts = Object.keys(h)
        .filter((k) => k.startsWith('val_'))
        .map((k) => `test ${k.slice(4)}: ${h[k][h[k].length - 1].toFixed(4)}`);
      process.stdout.write(`${parts.join(' - ')} (${nTest} test samples)\n`);
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
      { name: 'entry', metavar: 'LIST', list: true, choices: ENTRIES, help: 'entry points: predict, train or both (default: both; predict only if the model is not compiled)' },
      { name: 'weights', metavar: 'FILE', help: 'start from these weights (a .safetensors file, e.g. from saveWeights()) instead of the initial ones' },
      { name: 'dump-after', metavar: 'PASS', choices: [...PASS_NAMES, 'all', 'changed'], help: 'dump the IR after PASS, after every pass (all) or after those that changed it' },
      { name: 'dump-dir', metavar: 'DIR', help: 'write dumps into DIR/<entry>/ (NN-<pass>.txt, kernels.txt, <entry>.wat, webgpu/*.wgsl); without it dumps go to stdout' },
      { name: 'debug', metavar: 'N', min: 0, help: 'compiler diagnostics on stderr, levels 1-4 (default: $DLC_DEBUG or 0)' },
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
    run: compileCommand,
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
    `${c.summary[0].toUpperCase()}${c.summary.slice(1)}. MODEL is a .ts or .js file whose default export (or export 'model') is a dlc model.`,
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
    const model = await loadModel(p.positionals[0]);
    await cmd.run(model, p);
    return 0;
  } catch (e) {
    if (e instanceof CliError) {
      process.stderr.write(`error: ${e.message}\n`);
      return e.code;
    }
    // A DlcError is the library's answer to a user mistake: its message is the whole story.
    if (e instanceof DlcError || (e instanceof Error && e.name === 'DlcError')) {
      process.stderr.write(`error: ${e.message}\n`);
      return 1;
    }
    // Anything else is a bug in dlc or in the model file: keep the stack.
    process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}
