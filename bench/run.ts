/**
 * @file `npm run bench`: the driver. It loads the MNIST samples once, then runs each system in its
 * own Node process (`--child <id>`), one after another, so a system's peak RSS is its own, a crash
 * or hang costs only its row, and no system warms the machine for the next through shared state.
 * It prints the machine, the FLOP count and the protocol, one table row per system and mode (with
 * dlc-wasm's speed ratio to each peer), the loss sanity check per system, and writes the same table
 * as markdown to .tmp/bench.md.
 *
 * Besides the reference CNN, it trains the ResNet example (examples/mnist-resnet.ts; rows of mode
 * `resnet train b32`) in dlc and in TF.js, whose model is rebuilt from the dlc model's graph
 * (bench/model-spec.ts: the parent walks the dlc model once and writes its layers and initial
 * weights for the children), and prints dlc's train-step compile times and kernel counts
 * (`dlc-compile`) for the ResNet, the autoencoder example and the CNN.
 *
 * The LSTM example (examples/mnist-lstm.ts; rows of modes `lstm train b32` and `lstm infer b32`)
 * runs the same way in dlc, in TF.js (tf.layers.lstm, rebuilt from the spec) and in jax-js (the
 * recurrence unrolled by hand: jax-js has no scan), all from dlc's initial weights; before timing,
 * each compares its softmax outputs on a batch at those weights with dlc's (computed once by the
 * parent) and fails its row, untimed, if they differ anywhere by more than 1e-4. `dlc-lstm-seq`
 * prints a second table: the LSTM's train step at T = 28, 140 and 280 time steps (kernel count,
 * arena bytes, compile times).
 *
 * The reference CNN's group also holds the ONNX Runtime rows (bench/peers/ort.ts; inference only):
 * `ort-web` (onnxruntime-web's wasm backend in Node, 1 thread), `ort-web-mt` (the same with one
 * thread per logical core) and `ort-node` (onnxruntime-node's native CPU build, intraOpNumThreads 1:
 * the native reference line). They run an ONNX model that bench/onnx.ts exports from the CNN spec
 * (the dlc model walked by bench/model-spec.ts, with bench/common.ts's initial weights, which the
 * parent writes only when an ORT row runs), and, like the LSTM rows, compare their outputs with
 * dlc's (computed once by the parent) before timing. `dlc-first-step` prints the reference CNN's
 * cold start: model construction to its first train step done on wasm, and that step's compile
 * split (compileStep per pass, emitWasm, WebAssembly.compile). `wasm-matmul` (group `matmul`)
 * prints GFLOP/s of dlc's Wasm matmul kernel per shape (bench/matmul-wasm.ts).
 *
 * Options: `--only id,id` runs a subset (ids, or the groups `cnn`, `resnet`, `lstm`, `compile`,
 * `matmul`; e.g. `--only resnet,dlc-wasm`); `--timeout s` bounds each child (default 240 s).
 * `--only lstm-accuracy [--epochs N] [--seed S] [--tfjs-adam stock|keras]` runs, alone and instead of
 * the table, issue 13's accuracy check (bench/lstm-accuracy.ts): the LSTM example trained for N
 * epochs (default 1) on `dlc train`'s 8,000 digits in dlc and in TF.js from the same initial weights
 * in the same sample order, test accuracy on the 2,000 test digits side by side; exit 1 if they
 * differ by more than 1 percentage point. It takes minutes (TF.js's epoch), so it is not in the
 * default run.
 * `dlc-webgpu-resnet` and `dlc-webgpu-lstm` are not in the default run (on lavapipe, this machine's
 * CPU Vulkan driver, their first step alone takes half a minute to a minute or more: lavapipe
 * compiles a pipeline per kernel): name them in `--only` (or `--with dlc-webgpu-lstm` to add one to
 * the default set or a group); their own time limit is 600 s.
 * Exit status 1 if any system that trained did not lower its loss (a broken step is not a result),
 * if the systems of one model disagree on their outputs at the shared initial weights (a layout
 * bug) or on the loss of their first train step (same weights, same batch: a bug on one side), if
 * an LSTM or ONNX Runtime row's initial outputs are more than 1e-4 from dlc's, or if the LSTM's
 * kernel count changes with the sequence length.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { CompileStat, FirstStepStat, MatmulStat, Mode, ModeResult, SeqScalingStat, SystemDef, SystemResult } from './common.ts';
import {
  CLASSES,
  FWD_FLOPS,
  forwardMacsPerSample,
  isTrainMode,
  INFER1_SAMPLES,
  INFER1_WARMUP,
  INFER_BATCH,
  INFER_BATCHES,
  INFER_WARMUP,
  initialWeights,
  loadBenchData,
  LOSS_SAMPLES,
  probeDistance,
  PIXELS,
  runSystem,
  saveBenchData,
  saveReference,
  TEST_SAMPLES,
  TRAIN_BATCH,
  TRAIN_FLOPS,
  TRAIN_SAMPLES,
  TRAIN_STEPS,
  TRAIN_WARMUP,
} from './common.ts';
import { CNN_REFERENCE, CNN_SPEC_FILE, describeSpec, LSTM_REFERENCE, LSTM_SPEC_FILE, RESNET_SPEC_FILE, saveModelSpec } from './model-spec.ts';

type Group = 'cnn' | 'resnet' | 'lstm' | 'compile' | 'matmul';
/** The groups whose rows run one model each and are cross-checked (initial outputs, first train-step loss). */
const MODEL_GROUPS = ['cnn', 'resnet', 'lstm'] as const;
type ModelGroup = (typeof MODEL_GROUPS)[number];
const GROUP_WHAT: Record<ModelGroup, string> = { cnn: 'reference CNN', resnet: 'ResNet', lstm: 'LSTM' };
/** The dlc-wasm row of each model, which the ratio column divides by and the cross-checks compare with. */
const DLC_WASM_OF: Record<ModelGroup, string> = { cnn: 'dlc-wasm', resnet: 'dlc-wasm-resnet', lstm: 'dlc-wasm-lstm' };

/**
 * The rows, in table order. Each system's module is imported only by its own child process (the
 * bundle is code-split), so a child's RSS holds that system and the shared harness, nothing else:
 * no peer pays for dlc's compiler or another peer's runtime.
 */
interface Entry {
  readonly id: string;
  readonly system: string;
  /** Which model it runs: rows of one group are cross-checked against each other. */
  readonly group: Group;
  /** False: only run when named in --only / --with. */
  readonly byDefault?: boolean;
  /** Child time limit when --timeout is not given (default 240 s). */
  readonly timeoutS?: number;
  /**
   * Reads its group's model spec (bench/model-spec.ts), which the parent then writes: every row of
   * the ResNet and LSTM groups; of the CNN group, the ONNX Runtime rows (the others build the
   * reference CNN themselves from bench/common.ts's weights).
   */
  readonly usesSpec?: boolean;
  load(): Promise<SystemDef>;
}
const SYSTEMS: readonly Entry[] = [
  { id: 'dlc-wasm', system: 'dlc (wasm)', group: 'cnn', load: async () => (await import('./dlc.ts')).dlcWasm },
  { id: 'dlc-wasm-mt', system: `dlc (wasm, ${os.availableParallelism()} threads)`, group: 'cnn', load: async () => (await import('./dlc.ts')).dlcWasmMt },
  { id: 'dlc-webgpu', system: 'dlc (webgpu; CPU driver here, not a GPU)', group: 'cnn', load: async () => (await import('./dlc.ts')).dlcWebgpu },
  { id: 'dlc-interp', system: 'dlc (interp, f64 reference)', group: 'cnn', load: async () => (await import('./dlc.ts')).dlcInterp },
  { id: 'jax-conv', system: 'jax-js 0.1.25 wasm, lax.conv (idiomatic)', group: 'cnn', load: async () => (await import('./peers/jax.ts')).jaxConv },
  { id: 'jax-im2col', system: 'jax-js 0.1.25 wasm, im2col + dot (fast)', group: 'cnn', load: async () => (await import('./peers/jax.ts')).jaxIm2col },
  { id: 'tfjs-wasm', system: 'TF.js 4.22 layers, wasm + our Conv2DBackpropFilter', group: 'cnn', load: async () => (await import('./peers/tfjs.ts')).tfjsWasm },
  { id: 'ort-web', system: 'ONNX Runtime Web 1.30 wasm, 1 thread', group: 'cnn', usesSpec: true, load: async () => (await import('./peers/ort.ts')).ortWeb1 },
  { id: 'ort-web-mt', system: `ONNX Runtime Web 1.30 wasm, ${os.cpus().length} threads`, group: 'cnn', usesSpec: true, load: async () => (await import('./peers/ort.ts')).ortWebMt },
  { id: 'ort-node', system: 'ONNX Runtime Node 1.30 native CPU, 1 thread (not for the web)', group: 'cnn', usesSpec: true, load: async () => (await import('./peers/ort.ts')).ortNode },
  { id: 'dlc-first-step', system: 'dlc reference CNN, cold start to first train step', group: 'cnn', load: async () => (await import('./dlc-first-step.ts')).dlcFirstStep },
  { id: 'dlc-wasm-resnet', system: 'dlc (wasm)', group: 'resnet', load: async () => (await import('./dlc-resnet.ts')).dlcWasmResnet },
  { id: 'dlc-webgpu-resnet', system: 'dlc (webgpu; CPU driver here, not a GPU)', group: 'resnet', byDefault: false, timeoutS: 600, load: async () => (await import('./dlc-resnet.ts')).dlcWebgpuResnet },
  { id: 'tfjs-wasm-resnet', system: 'TF.js 4.22 layers, wasm + our Conv2DBackpropFilter', group: 'resnet', load: async () => (await import('./peers/tfjs.ts')).tfjsWasmResnet },
  { id: 'dlc-wasm-lstm', system: 'dlc (wasm)', group: 'lstm', load: async () => (await import('./dlc-lstm.ts')).dlcWasmLstm },
  { id: 'dlc-wasm-lstm-mt', system: `dlc (wasm, ${os.availableParallelism()} threads)`, group: 'lstm', load: async () => (await import('./dlc-lstm.ts')).dlcWasmLstmMt },
  { id: 'dlc-webgpu-lstm', system: 'dlc (webgpu; CPU driver here, not a GPU)', group: 'lstm', byDefault: false, timeoutS: 600, load: async () => (await import('./dlc-lstm.ts')).dlcWebgpuLstm },
  { id: 'jax-lstm', system: 'jax-js 0.1.25 wasm, 28 steps unrolled by hand', group: 'lstm', load: async () => (await import('./peers/jax.ts')).jaxLstm },
  { id: 'tfjs-wasm-lstm', system: 'TF.js 4.22 layers (tf.layers.lstm), wasm', group: 'lstm', load: async () => (await import('./peers/tfjs.ts')).tfjsWasmLstm },
  { id: 'dlc-lstm-seq', system: 'dlc LSTM train step vs sequence length', group: 'lstm', load: async () => (await import('./dlc-lstm.ts')).dlcLstmSeq },
  { id: 'dlc-compile', system: 'dlc train-step compile', group: 'compile', load: async () => (await import('./dlc-resnet.ts')).dlcCompile },
  { id: 'wasm-matmul', system: 'dlc Wasm matmul kernel', group: 'matmul', load: async () => (await import('./matmul-wasm.ts')).wasmMatmul },
];
/** The rows the ratio column divides by: dlc-wasm of the same mode. */
const DLC_WASM_IDS = new Set(Object.values(DLC_WASM_OF));
/** Children that print a table of their own instead of model rows (and need no model spec). */
const OWN_TABLE = new Set(['dlc-compile', 'dlc-lstm-seq', 'dlc-first-step', 'wasm-matmul']);
/** Whether a row reads its group's model spec (and fails untimed when the parent could not write it). */
const usesSpec = (s: Entry): boolean => !OWN_TABLE.has(s.id) && (s.group === 'resnet' || s.group === 'lstm' || s.usesSpec === true);
const GROUPS = 'cnn, resnet, lstm, compile, matmul';

/** `--only` / `--with` names: system ids, or a group (cnn, resnet, lstm, compile, matmul: its default systems). */
function pick(names: readonly string[], flag: string): Entry[] {
  const out: Entry[] = [];
  for (const n of names) {
    const hit = SYSTEMS.filter((s) => s.id === n || (s.group === n && s.byDefault !== false));
    if (!hit.length) throw new Error(`bench: ${flag} ${n}: known systems are ${SYSTEMS.map((s) => s.id).join(', ')}; groups are ${GROUPS}; \`--only ${LSTM_ACCURACY}\` (alone) runs the LSTM accuracy check`);
    for (const h of hit) if (!out.includes(h)) out.push(h);
  }
  return SYSTEMS.filter((s) => out.includes(s)); // table order
}
/** Not a system: `--only lstm-accuracy` selects issue 13's accuracy check (bench/lstm-accuracy.ts) instead of the table. */
const LSTM_ACCURACY = 'lstm-accuracy';
const RESULT_TAG = '@@BENCH-RESULT ';
const TMP = path.resolve('.tmp');
const DATA_FILE = path.join(TMP, 'bench-data.bin');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// ------------------------------------------------------------------------------------ child

async function child(id: string): Promise<void> {
  const entry = SYSTEMS.find((s) => s.id === id);
  if (!entry) throw new Error(`bench: unknown system '${id}'`);
  const log = (l: string) => process.stderr.write(`  [${id}] ${l}\n`);
  const d = loadBenchData(arg('--data') ?? DATA_FILE);
  const r = await runSystem(await entry.load(), entry.system, d, log);
  // Some peers keep handles (timers, wasm workers) alive; once the result is out, leave.
  process.stdout.write(`\n${RESULT_TAG}${JSON.stringify(r)}\n`, () => process.exit(0));
}

function runChild(def: Entry, timeoutS: number): Promise<SystemResult> {
  return new Promise((resolve) => {
    const script = process.argv[1];
    const p = spawn(process.execPath, [...process.execArgv, script, '--child', def.id, '--data', DATA_FILE], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let lastErr = '';
    let timedOut = false;
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (s: string) => {
      out += s;
    });
    p.stderr.on('data', (s: string) => {
      process.stderr.write(s);
      const lines = s.split('\n').filter((l) => l.trim());
      if (lines.length) lastErr = lines[lines.length - 1].trim();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, timeoutS * 1000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const line of out.split('\n')) {
        if (line.startsWith(RESULT_TAG)) {
          resolve(JSON.parse(line.slice(RESULT_TAG.length)) as SystemResult);
          return;
        }
        if (line.trim()) process.stderr.write(`  [${def.id} stdout] ${line}\n`);
      }
      const why = timedOut ? `timed out after ${timeoutS} s` : `exited with ${signal ?? `code ${code}`}`;
      resolve({ id: def.id, system: def.system, notes: [], status: 'failed', reason: `${why}${lastErr ? `: ${lastErr.slice(0, 200)}` : ''}`, modes: [] });
    });
  });
}

// ------------------------------------------------------------------------------------ table

/** Steps averaged at each end of the train-step losses for the ResNet's check. */
const LOSS_ENDS = 3;

/**
 * The loss sanity check of a system that trained. The reference CNN: loss on the test samples
 * (predict) before and after training. The ResNet: its predict uses BatchNormalization's moving
 * statistics, which after only TRAIN_WARMUP + TRAIN_STEPS updates still hold much of their initial
 * values (moving_variance 1 decays by momentum per step, far above the real batch variances), so
 * its test loss rises in every system (it is in the notes); the check is the train step's own loss
 * (batch statistics): the mean of the first LOSS_ENDS steps against the mean of the last LOSS_ENDS.
 */
function lossCheck(r: SystemResult): { what: string; before: number; after: number; ok: boolean } | null {
  if (r.modes.some((m) => m.mode === 'resnet train b32') && r.stepLosses && r.stepLosses.length >= 2 * LOSS_ENDS) {
    const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
    const before = mean(r.stepLosses.slice(0, LOSS_ENDS));
    const after = mean(r.stepLosses.slice(-LOSS_ENDS));
    return { what: 'step loss', before, after, ok: after < before };
  }
  if (r.lossBefore === undefined || r.lossAfter === undefined) return null;
  return { what: 'loss', before: r.lossBefore, after: r.lossAfter, ok: r.lossAfter < r.lossBefore };
}

const fmt = (x: number, digits: number) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

interface Row {
  cells: string[];
}

function buildRows(results: readonly SystemResult[], extraCheck: ReadonlyMap<string, string> = new Map()): { header: string[]; rows: Row[] } {
  const header = ['system', 'mode', 'samples/s', 'ms/step (median)', 'GFLOP/s', 'peak RSS MB', 'dlc-wasm ÷ this', 'check'];
  const dlc = results.filter((r) => DLC_WASM_IDS.has(r.id) && r.status === 'ok');
  const dlcMode = (m: Mode): ModeResult | undefined => dlc.flatMap((r) => r.modes).find((x) => x.mode === m);
  const rows: Row[] = [];
  for (const r of results) {
    if (r.compile || r.seqScaling || r.firstStep || r.matmul) continue; // printed as tables of their own
    if (r.status !== 'ok') {
      const what = r.status === 'not built' ? `**${r.reason ?? 'not built yet'}**` : `**FAILED**: ${r.reason ?? 'unknown error'}`;
      rows.push({ cells: [r.system, 'all', '—', '—', '—', r.peakRssMB ? fmt(r.peakRssMB, 0) : '—', 'n/a', what] });
      continue;
    }
    r.modes.forEach((m, i) => {
      let ratio = 'n/a';
      const d = dlcMode(m.mode);
      if (DLC_WASM_IDS.has(r.id)) ratio = '—';
      else if (d) ratio = `${fmt(d.samplesPerSec / m.samplesPerSec, 2)}×`;
      let check = '';
      const lc = isTrainMode(m.mode) ? lossCheck(r) : null;
      if (lc) {
        check = `${lc.what} ${lc.before.toFixed(3)} → ${lc.after.toFixed(3)} ${lc.ok ? 'ok' : '**LOSS DID NOT DROP**'}`;
      }
      const extra = extraCheck.get(`${r.id}|${m.mode}`);
      const stepsNote = (m.mode === 'infer b1' ? `${m.steps} samples` : `${m.steps} batches`) + (extra ? `; ${extra}` : '');
      rows.push({
        cells: [
          i === 0 ? r.system : '',
          m.mode,
          fmt(m.samplesPerSec, m.samplesPerSec < 100 ? 1 : 0),
          fmt(m.msMedian, m.msMedian < 10 ? 2 : 1),
          fmt(m.gflops, 2),
          i === 0 && r.peakRssMB !== undefined ? fmt(r.peakRssMB, 0) : '',
          ratio,
          check || stepsNote,
        ],
      });
    });
  }
  return { header, rows };
}

function textTable(header: string[], rows: Row[]): string {
  const all = [header, ...rows.map((r) => r.cells)].map((cs) => cs.map((c) => c.replace(/\*\*/g, '')));
  const widths = header.map((_, i) => Math.max(...all.map((cs) => cs[i].length)));
  const right = new Set([2, 3, 4, 5, 6]);
  const line = (cs: string[]) => cs.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

function mdTable(header: string[], rows: Row[]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|');
  const align = header.map((_, i) => ([2, 3, 4, 5, 6].includes(i) ? '---:' : '---'));
  return [header, align, ...rows.map((r) => r.cells)].map((cs) => `| ${cs.map(esc).join(' | ')} |`).join('\n');
}

// ------------------------------------------------------------------------------------ parent

async function parent(): Promise<number> {
  const t0 = performance.now();
  const only = arg('--only')?.split(',').filter(Boolean);
  const extra = arg('--with')?.split(',').filter(Boolean) ?? [];
  const timeoutArg = arg('--timeout');
  const base = only ? pick(only, '--only') : SYSTEMS.filter((s) => s.byDefault !== false);
  const added = pick(extra, '--with');
  const systems = SYSTEMS.filter((s) => base.includes(s) || added.includes(s));
  const groupOf = new Map(SYSTEMS.map((s) => [s.id, s.group]));

  // The ResNet's and the LSTM's specs (layers, compile config, initial weights) for their children, from the dlc models.
  mkdirSync(TMP, { recursive: true });
  const specLines: string[] = [];
  const specError = new Map<Group, string>();
  /** Models whose reference outputs (dlc wasm, at the spec's weights) the parent computes for their rows' check. */
  const refModels: { group: ModelGroup; model: import('../compiler/index.ts').LayersModel; file: string; inputShape: readonly number[] }[] = [];
  rmSync(LSTM_REFERENCE.file, { force: true });
  rmSync(CNN_REFERENCE.file, { force: true });
  for (const group of ['cnn', 'resnet', 'lstm'] as const) {
    const file = { cnn: CNN_SPEC_FILE, resnet: RESNET_SPEC_FILE, lstm: LSTM_SPEC_FILE }[group];
    rmSync(file, { force: true });
    if (!systems.some((s) => s.group === group && usesSpec(s))) continue;
    try {
      const { modelSpec } = await import('./model-spec.ts');
      const { model } = group === 'resnet' ? await import('../examples/mnist-resnet.ts') : group === 'lstm' ? await import('../examples/mnist-lstm.ts') : await import('../examples/mnist-cnn.ts');
      if (group === 'cnn') {
        // The CNN rows start from bench/common.ts's weights (the dlc-wasm row sets them the same way, by position).
        const { tensor } = await import('../compiler/index.ts');
        const init = initialWeights();
        const mismatch = model.weightInfo.findIndex((w, i) => init[i]?.shape.join() !== w.shape.join());
        if (mismatch >= 0 || init.length !== model.weightInfo.length) throw new Error(`bench/common.ts's initialWeights() do not fit examples/mnist-cnn.ts (weight ${mismatch}: ${model.weightInfo[mismatch]?.name})`);
        model.setWeights(init.map((w) => tensor(w.data.slice(), w.shape, 'f32')));
      }
      const { spec, weights } = modelSpec(model);
      saveModelSpec(file, spec, weights);
      if (group === 'lstm') refModels.push({ group, model, file: LSTM_REFERENCE.file, inputShape: [28, 28] });
      if (group === 'cnn') refModels.push({ group, model, file: CNN_REFERENCE.file, inputShape: [28, 28, 1] });
      const fwd = 2 * spec.fwdMacsPerSample;
      const o = spec.optimizer;
      if (group === 'cnn') {
        specLines.push(
          `ONNX Runtime rows (inference only): the reference CNN exported to ONNX (opset 17) from the dlc model's graph by bench/onnx.ts, with the same initial weights (kernels HWIO → OIHW, the input transposed NHWC → NCHW once, a Transpose back to NHWC before Flatten so the Dense rows match); before timing, each row's softmax outputs on ${INFER_BATCH} test digits are compared with dlc-wasm's (computed once here) and a row more than ${CNN_REFERENCE.maxAbsDiff.toExponential(0)} away anywhere fails untimed; the "infer b32" line gives the largest |difference|. ort-node is ONNX Runtime's native CPU build (not something a page can run), the line native code sets.`,
        );
        continue;
      }
      specLines.push(
        group === 'resnet'
          ? `ResNet example (examples/mnist-resnet.ts, rows "resnet train b32"): ${describeSpec(spec)}; Adam lr ${o.learningRate}, sparse categorical cross-entropy; forward ${fmt(fwd / 1e6, 2)} MFLOP/sample (convs and dense layers only; BatchNormalization, ReLU, Add, pooling not counted), training 3× = ${fmt((3 * fwd) / 1e6, 2)} MFLOP. TF.js builds the same graph from the dlc model and starts from dlc's initial weights. Check column: the train step's own loss (batch statistics), mean of the first ${LOSS_ENDS} steps → mean of the last ${LOSS_ENDS}; the test loss through predict (moving statistics) is in the notes.`
          : `LSTM example (examples/mnist-lstm.ts, rows "lstm train b32" and "lstm infer b32"): each digit as 28 time steps of 28 pixels; ${describeSpec(spec)}; Adam lr ${o.learningRate}, sparse categorical cross-entropy; forward ${fmt(fwd / 1e6, 2)} MFLOP/sample (the input projection and recurrent matmuls of every step and the dense layer; gates not counted), training 3× = ${fmt((3 * fwd) / 1e6, 2)} MFLOP. TF.js (tf.layers.lstm) and jax-js (the cell written out 28 times) start from dlc's initial weights. Check column: test loss before → after training, as for the CNN; before timing, every row's softmax outputs at the initial weights (${INFER_BATCH} test digits × ${CLASSES} classes) are compared with dlc-wasm's (computed once here), and a row more than ${LSTM_REFERENCE.maxAbsDiff.toExponential(0)} away anywhere fails untimed; the "lstm infer b32" line gives the largest |difference|.`,
      );
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      specError.set(group, msg);
      console.error(`bench: cannot build the ${group} spec: ${msg}`);
    }
  }

  const cpus = os.cpus();
  const machine = `${cpus[0]?.model.trim() ?? 'unknown CPU'} (${cpus.length} logical cores), ${fmt(os.totalmem() / 2 ** 30, 0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}`;
  const macs = forwardMacsPerSample();
  const headerLines = [
    `Reference model (examples/mnist-cnn.ts): Conv2D 32 → MaxPool → Conv2D 64 → MaxPool → Conv2D 128 → Flatten → Dense 128 → Dense 10; Adam lr 1e-3, sparse categorical cross-entropy; same MNIST samples and same initial weights for every system.`,
    `Machine: ${machine}.`,
    `FLOPs per sample: forward ${fmt(FWD_FLOPS / 1e6, 2)} MFLOP (${fmt(macs / 1e6, 3)} M multiply-adds in the convs and dense layers, ×2); training counted as 3× forward = ${fmt(TRAIN_FLOPS / 1e6, 2)} MFLOP.`,
    `Protocol: train ${TRAIN_WARMUP} warm-up + ${TRAIN_STEPS} timed steps at batch ${TRAIN_BATCH}; infer batch ${INFER_BATCH}: ${INFER_WARMUP} warm-up + ${INFER_BATCHES} timed batches; infer batch 1: ${INFER1_WARMUP} warm-up + ${INFER1_SAMPLES} timed samples. ms/step is the median; host→device copies and the read-back of results are inside the timed step. Each system runs in its own process; peak RSS is that process's whole run (for a system that trains, its train steps and its inference together).`,
    `Numbers are single-threaded (every system runs one thread, ort-web-mt and the dlc "2 threads" rows aside) and noisy (shared VM; expect ±10% run to run).`,
    ...specLines,
  ];
  console.log(`dlc bench\n${headerLines.map((l) => `  ${l}`).join('\n')}\n`);

  const { loadMnist } = await import('../compiler/index.ts'); // the parent only: children read the cached samples
  const m = loadMnist(8000, 2000);
  saveBenchData(DATA_FILE, {
    trainX: (m.train.x.data as Float32Array).slice(0, TRAIN_SAMPLES * PIXELS),
    trainY: (m.train.y.data as Int32Array).slice(0, TRAIN_SAMPLES),
    testX: (m.test.x.data as Float32Array).slice(0, TEST_SAMPLES * PIXELS),
    testY: (m.test.y.data as Int32Array).slice(0, TEST_SAMPLES),
  });
  // The LSTM's and the CNN's reference outputs at the initial weights (dlc, wasm), which their checked children compare with before timing.
  for (const r of refModels) {
    try {
      const { tensor } = await import('../compiler/index.ts');
      const x = tensor((m.test.x.data as Float32Array).slice(0, INFER_BATCH * PIXELS), [INFER_BATCH, ...r.inputShape], 'f32');
      const p = await r.model.predict(x, { backend: 'wasm', batchSize: INFER_BATCH });
      saveReference(r.file, { by: 'dlc (wasm)', samples: INFER_BATCH, probs: [...(p.data as Float32Array)] });
      await r.model.dispose();
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      specError.set(r.group, `no reference outputs: ${msg}`);
      console.error(`bench: cannot compute the ${GROUP_WHAT[r.group]}'s reference outputs: ${msg}`);
    }
  }

  const results: SystemResult[] = [];
  for (const def of systems) {
    const ts = performance.now();
    console.error(`→ ${def.id}: ${def.system}`);
    const noSpec = usesSpec(def) ? specError.get(def.group) : undefined;
    const r: SystemResult =
      noSpec !== undefined
        ? { id: def.id, system: def.system, notes: [], status: 'failed', reason: `${def.group} rows not run: ${noSpec}`, modes: [] }
        : await runChild(def, Number(timeoutArg ?? def.timeoutS ?? 240));
    console.error(`  ${def.id} done in ${fmt((performance.now() - ts) / 1000, 1)} s (${r.status}${r.reason ? `: ${r.reason}` : ''})`);
    results.push(r);
  }

  const notes: string[] = [];
  for (const r of results) {
    for (const n of r.notes) if (!notes.includes(n)) notes.push(n);
    if (r.status !== 'ok' || r.compile || r.seqScaling || r.firstStep || r.matmul) continue;
    const bits: string[] = [];
    const resnet = groupOf.get(r.id) === 'resnet';
    if (r.lossBefore !== undefined) bits.push(`loss on ${LOSS_SAMPLES} test samples${resnet ? ' (predict: moving statistics)' : ''} at the initial weights ${r.lossBefore.toFixed(6)}${r.lossAfter !== undefined ? `, after ${TRAIN_WARMUP + TRAIN_STEPS} steps ${r.lossAfter.toFixed(4)}` : ''}`);
    if (r.trainWarmupMs) bits.push(`first train step (with compilation) ${fmt(r.trainWarmupMs[0], 0)} ms`);
    if (r.rssDriftMB !== undefined) bits.push(`RSS drift over the ${TRAIN_STEPS} timed steps ${fmt(r.rssDriftMB, 1)} MB`);
    if (r.stepLosses) bits.push(`train-step losses ${r.stepLosses.slice(0, 3).map((l) => l.toFixed(5)).join(', ')} … ${r.stepLosses.slice(-3).map((l) => l.toFixed(4)).join(', ')}`);
    const train = r.modes.find((x) => isTrainMode(x.mode));
    if (train) bits.push(`train step min/median/max ${fmt(train.msMin, 0)}/${fmt(train.msMedian, 0)}/${fmt(train.msMax, 0)} ms`);
    notes.push(`${r.id}: ${bits.join('; ')}`);
  }
  // Same initial weights everywhere: the initial outputs must agree, or some system reads the weights wrongly.
  // And the same batch: the first train step's loss (batch statistics for BatchNormalization) must agree.
  let layoutMismatch = false;
  let firstLossMismatch = false;
  let refMismatch = false;
  /** Extra text for a row's check cell, by system id and mode. */
  const extraCheck = new Map<string, string>();
  for (const group of MODEL_GROUPS) {
    const ok = results.filter((r) => r.status === 'ok' && groupOf.get(r.id) === group && !OWN_TABLE.has(r.id));
    const what = GROUP_WHAT[group];
    const probed = ok.filter((r) => r.initProbe);
    if (probed.length > 1) {
      const ref = probed[0];
      const dist = probed.slice(1).map((r) => [r.id, probeDistance(ref.initProbe!, r.initProbe!)] as const);
      const worst = Math.max(...dist.map(([, x]) => x));
      const bad = dist.filter(([, x]) => x > 1e-2).map(([id]) => id);
      if (bad.length) layoutMismatch = true;
      notes.push(
        `initial-weight cross-check (${what}): softmax outputs at the shared initial weights (first ${ref.initProbe!.length / CLASSES} test samples) match ${ref.id}'s to ${worst.toExponential(1)} relative to their deviation from uniform` +
          (bad.length ? ` — **MISMATCH for ${bad.join(', ')}: it does not compute the same model from the same weights**` : ''),
      );
    }
    const lossed = ok.filter((r) => r.stepLosses?.length);
    if (lossed.length > 1) {
      const ref = lossed[0];
      const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
      const dist = lossed.slice(1).map((r) => [r.id, rel(r.stepLosses![0], ref.stepLosses![0])] as const);
      const worst = Math.max(...dist.map(([, x]) => x));
      const bad = dist.filter(([, x]) => x > 1e-3).map(([id]) => id);
      if (bad.length) firstLossMismatch = true;
      notes.push(
        `first-train-step cross-check (${what}): loss of step 1 (same weights, same batch) ${lossed.map((r) => `${r.id} ${r.stepLosses![0].toFixed(7)}`).join(', ')}; worst relative difference ${worst.toExponential(1)}; step 2 (after one update) ${lossed.map((r) => `${r.id} ${r.stepLosses![1]?.toFixed(7) ?? 'n/a'}`).join(', ')}` +
          (bad.length ? ` — **MISMATCH for ${bad.join(', ')}: the train steps do not compute the same loss**` : ''),
      );
    }
    // The LSTM's rows and the CNN's ONNX Runtime rows: each child compared its softmax outputs on a
    // batch at the initial weights with dlc's before timing.
    if (group === 'lstm' || group === 'cnn') {
      const limit = group === 'lstm' ? LSTM_REFERENCE.maxAbsDiff : CNN_REFERENCE.maxAbsDiff;
      const mode = group === 'lstm' ? 'lstm infer b32' : 'infer b32';
      const checked = results.filter((r) => groupOf.get(r.id) === group && r.refMaxAbsDiff !== undefined);
      for (const r of checked) {
        const bad = !(r.refMaxAbsDiff! <= limit);
        if (bad) refMismatch = true;
        extraCheck.set(`${r.id}|${mode}`, `init max |Δp| vs dlc ${r.refMaxAbsDiff!.toExponential(1)}`);
      }
      if (checked.length) {
        notes.push(
          `${group === 'lstm' ? 'LSTM' : 'CNN (ONNX Runtime rows)'} prediction check (before timing): max |softmax difference| from dlc (wasm, computed in the parent) at the shared initial weights over ${INFER_BATCH} test digits × ${CLASSES} classes: ${checked.map((r) => `${r.id} ${r.refMaxAbsDiff!.toExponential(1)}${r.refMaxAbsDiff! <= limit ? '' : ' **MISMATCH: not timed**'}`).join(', ')} (limit ${limit.toExponential(0)})`,
        );
      }
    }
  }
  const { header, rows } = buildRows(results, extraCheck);
  const compile = results.flatMap((r) => (r.status === 'ok' && r.compile ? r.compile : []));
  const compileText = compile.length ? compileTable(compile) : '';
  const seq = results.flatMap((r) => (r.status === 'ok' && r.seqScaling ? r.seqScaling : []));
  const seqTable = seq.length ? seqScalingTable(seq) : null;
  const seqText = seqTable?.text ?? '';
  const firstStepText = results.flatMap((r) => (r.status === 'ok' && r.firstStep ? [firstStepLines(r.firstStep, r.peakRssMB)] : [])).join('\n');
  const matmulStats = results.flatMap((r) => (r.status === 'ok' && r.matmul ? r.matmul : []));
  const matmulText = matmulStats.length ? matmulTable(matmulStats) : '';
  const extraText = [compileText, seqText, firstStepText, matmulText].filter(Boolean);
  // The ratio column's reference row for each model that ran.
  const refs = MODEL_GROUPS.filter((g) => results.some((r) => groupOf.get(r.id) === g && !OWN_TABLE.has(r.id))).map((g) => DLC_WASM_OF[g]);
  const missingRefs = refs.filter((id) => results.find((r) => r.id === id)?.status !== 'ok');
  for (const id of [...missingRefs].reverse()) notes.unshift(`${id} has no numbers (see its row${results.some((r) => r.id === id) ? '' : '; not run in this invocation'}): the ratio column is n/a for its mode until it runs.`);

  const text = textTable(header, rows);
  console.log(`\n${text}\n${extraText.map((t) => `\n${t}\n`).join('')}\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);
  const md = [
    `## Benchmark: MNIST convnet`,
    '',
    ...headerLines.map((l) => `${l}  `),
    '',
    mdTable(header, rows),
    '',
    ...extraText.flatMap((t) => ['```', t, '```', '']),
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
  writeFileSync(path.join(TMP, 'bench.md'), md);
  for (const id of missingRefs) {
    const r = results.find((x) => x.id === id);
    console.log(`\n!!! ${id}: ${r?.status === 'not built' ? r.reason : `FAILED: ${r?.reason ?? 'not run in this invocation'}`} !!!`);
  }
  console.log(`\nmarkdown written to .tmp/bench.md; total ${fmt((performance.now() - t0) / 1000, 0)} s`);

  const broken = results.filter((r) => r.status === 'ok' && lossCheck(r)?.ok === false);
  if (layoutMismatch) console.error('\nINITIAL OUTPUTS DISAGREE: the systems do not compute the same model from the same weights.');
  if (firstLossMismatch) console.error('\nFIRST TRAIN-STEP LOSSES DISAGREE: the systems do not compute the same train step from the same weights and batch.');
  if (refMismatch) console.error(`\nPREDICTIONS DISAGREE: some LSTM or ONNX Runtime row's softmax outputs at dlc's initial weights differ from dlc's by more than the limit (see its row and the notes): it is not the same model, so it was not timed.`);
  if (seqTable?.kernelsGrow) console.error('\nLSTM KERNEL COUNT GROWS WITH THE SEQUENCE LENGTH: the recurrence is not compiled as one loop.');
  if (broken.length) {
    console.error(`\nBROKEN TRAIN STEP: loss did not drop for ${broken.map((r) => r.id).join(', ')}; their timings are not meaningful.`);
    return 1;
  }
  return layoutMismatch || firstLossMismatch || refMismatch || seqTable?.kernelsGrow ? 1 : 0;
}

/** The reference CNN from a cold start to its first train step done (the dlc-first-step child), as text. */
function firstStepLines(s: FirstStepStat, peakRssMB: number | undefined): string {
  const p = s.passMs;
  const passes = ['frontend', 'autodiff', 'simplify', 'fuse'].map((k) => p[k] ?? 0);
  const plan = s.compileStepMs - passes.reduce((a, b) => a + b, 0);
  const toFirst = s.constructMs + s.firstStepMs;
  return [
    `Reference CNN, cold start to first train step (dlc wasm, batch ${TRAIN_BATCH}, a fresh process${peakRssMB !== undefined ? `, peak RSS ${fmt(peakRssMB, 0)} MB` : ''}):`,
    `  import dlc ${fmt(s.importMs, 0)} ms; model construction (examples/mnist-cnn.ts) ${fmt(s.constructMs, 0)} ms; first trainOnBatch ${fmt(s.firstStepMs, 0)} ms; construction → first step done ${fmt(toFirst, 0)} ms (later steps ${fmt(s.nextStepMs, 1)} ms).`,
    `  The first step's compile, timed apart right after (warm: second time in the process): compileStep ${fmt(s.compileStepMs, 0)} ms (frontend/autodiff/simplify/fuse/plan ${[...passes, plan].map((x) => fmt(x, 0)).join('/')}), ${s.kernels} kernels; emitWasm (binaryen) ${fmt(s.emitWasmMs, 0)} ms, ${fmt(s.wasmBytes / 1024, 0)} KiB; WebAssembly.compile ${fmt(s.v8CompileMs, 0)} ms. The rest of the cold first step is JIT and binaryen warm-up, instantiation and the step.`,
  ].join('\n');
}

/** GFLOP/s of dlc's Wasm matmul kernel per shape (the wasm-matmul child), as text. */
function matmulTable(stats: readonly MatmulStat[]): string {
  const header = ['dlc Wasm matmul, M×N×K', 'relaxed SIMD', 'B', 'ms/run', 'GFLOP/s', 'max rel err (64 entries vs f64)'];
  const rows = stats.map((s) => [`${s.M}×${s.N}×${s.K}`, s.relaxedSimd ? 'on' : 'off', s.transB ? 'transposed' : 'row-major', fmt(s.msPerRun, 2), fmt(s.gflops, 2), s.maxRelErr.toExponential(1)]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (cs: string[]) => cs.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), 'One hand-built matmul kernel program per shape (bench/matmul-wasm.ts), single-threaded; runs back to back for at least 400 ms after one untimed run; 2·M·N·K FLOPs per run.'].join('\n');
}

/** dlc's train-step compile times and kernel counts (the dlc-compile child), as text. */
function compileTable(stats: readonly CompileStat[]): string {
  const header = ['dlc train step, batch 32', 'kernels', 'compileStep ms (cold)', 'compileStep ms (warm)', 'frontend/autodiff/simplify/fuse/plan ms', 'emitWasm ms', 'Wasm KiB', 'WebAssembly.compile ms', 'first wasm trainOnBatch ms'];
  const rows = stats.map((s) => {
    const p = s.passMs;
    const passes = ['frontend', 'autodiff', 'simplify', 'fuse'].map((k) => p[k] ?? 0);
    const plan = s.warmMs - passes.reduce((a, b) => a + b, 0);
    const w = s.wasmCodegen;
    return [
      s.model,
      String(s.kernels),
      fmt(s.coldMs, 0),
      fmt(s.warmMs, 0),
      [...passes, plan].map((x) => fmt(x, 0)).join('/'),
      w ? fmt(w.emitMs, 0) : 'n/a',
      w ? fmt(w.bytes / 1024, 0) : 'n/a',
      w ? fmt(w.v8CompileMs, 0) : 'n/a',
      s.firstWasmStepMs !== undefined ? fmt(s.firstWasmStepMs, 0) : 'n/a',
    ];
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (cs: string[]) => cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [
    line(header),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    'compileStep = frontend + autodiff + simplify + fuse + memory plan (compiler/pipeline.ts), in a fresh process: "cold" is each model\'s first compile there (the first model also pays the compiler\'s JIT warm-up), "warm" the best of 3 repeats. The wasm backend then runs emitWasm (binaryen codegen and optimisation) and WebAssembly.compile (V8), timed here apart (best of 3); the first trainOnBatch does all of it once more, plus instantiation and one step (the models run in table order, so only the first pays for binaryen\'s warm-up; each row\'s "first train step" note has the cold figure).',
  ].join('\n');
}

/**
 * The LSTM's train step against sequence length (the dlc-lstm-seq child), as text; `kernelsGrow`
 * when the kernel count is not the same at every length (the recurrence is then not one loop).
 */
function seqScalingTable(stats: readonly SeqScalingStat[]): { text: string; kernelsGrow: boolean } {
  const MiB = 2 ** 20;
  const header = ['LSTM(128) train step, batch 32, T steps', 'kernels', 'scan loops × steps', 'arena MiB', 'arena KiB per added step', 'compileStep ms', 'emitWasm ms', 'Wasm KiB', 'WebAssembly.compile ms', 'first trainOnBatch ms', 'later steps ms'];
  const rows = stats.map((s, i) => {
    const prev = stats[i - 1];
    const perStep = prev ? (s.arenaBytes - prev.arenaBytes) / (s.T - prev.T) : undefined;
    return [
      `T = ${s.T}`,
      String(s.kernels),
      `${s.loopLengths.length} × ${[...new Set(s.loopLengths)].join('/')}`,
      fmt(s.arenaBytes / MiB, 2),
      perStep !== undefined ? fmt(perStep / 1024, 1) : '—',
      fmt(s.compileStepMs, 0),
      fmt(s.emitWasmMs, 0),
      fmt(s.wasmBytes / 1024, 0),
      fmt(s.v8CompileMs, 0),
      fmt(s.firstStepMs, 0),
      fmt(s.stepMs, 0),
    ];
  });
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (cs: string[]) => cs.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const kernels = [...new Set(stats.map((s) => s.kernels))];
  const kernelsGrow = kernels.length > 1;
  const first = stats[0];
  const last = stats[stats.length - 1];
  const notes: string[] = [];
  if (kernelsGrow) notes.push(`KERNEL COUNT CHANGES WITH T (${stats.map((s) => `${s.kernels} at T = ${s.T}`).join(', ')}): the recurrence is not compiled as one loop.`);
  else notes.push(`${kernels[0]} kernels at every length: the forward and backward recurrences are one loop each, whatever T.`);
  if (stats.length > 1) {
    const perStep = (last.arenaBytes - first.arenaBytes) / (last.T - first.T);
    const fixed = first.arenaBytes - perStep * first.T;
    notes.push(`Arena from T = ${first.T} to T = ${last.T}: ${fmt(first.arenaBytes / MiB, 2)} → ${fmt(last.arenaBytes / MiB, 2)} MiB, ${fmt(perStep / 1024, 1)} KiB per time step at batch 32 (${fmt(perStep / TRAIN_BATCH / 4, 0)} floats per sample per step) plus ${fmt(fixed / MiB, 2)} MiB that does not depend on T (weights, Adam slots, per-step buffers).`);
  }
  const tb = last.timeBuffers;
  if (tb) notes.push(`At T = ${last.T}, the ${tb.count} buffers with a time axis (${tb.shapes.join(', ')}) take ${fmt(tb.bytes / MiB, 2)} of the ${fmt(last.arenaBytes / MiB, 2)} MiB (their sum without liveness reuse).`);
  notes.push('compileStep = frontend + autodiff + simplify + fuse + memory plan; it, emitWasm (binaryen) and WebAssembly.compile are the best of 5, after 5 warm-up compiles in the same process (binaryen takes several to warm up). "first trainOnBatch" is a fresh model\'s first step on wasm: all of it again, instantiation, and one step; "later steps" the median of the next 3 (MNIST rows run on as sequences).');
  return { text: [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line), ...notes].join('\n'), kernelsGrow };
}

/**
 * `--only lstm-accuracy`: issue 13's accuracy check (bench/lstm-accuracy.ts), which trains the LSTM
 * example to the end in dlc and TF.js; it takes minutes, so it is never in the default run, and runs alone.
 */
async function lstmAccuracyMode(): Promise<number> {
  const only = arg('--only')?.split(',').filter(Boolean) ?? [];
  if (only.length > 1 || arg('--with')) throw new Error(`bench: --only lstm-accuracy runs alone (got --only ${only.join(',')}${arg('--with') ? ` --with ${arg('--with')}` : ''})`);
  const { lstmAccuracy } = await import('./lstm-accuracy.ts');
  return lstmAccuracy(process.argv);
}

const childId = arg('--child');
if (childId) await child(childId);
else if (arg('--only')?.split(',').includes(LSTM_ACCURACY)) process.exitCode = await lstmAccuracyMode();
else process.exitCode = await parent();
