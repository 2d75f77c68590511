/**
 * @file `npm run bench`: the driver. It loads the MNIST samples once, then runs each system in its
 * own Node process (`--child <id>`), one after another, so a system's peak RSS is its own, a crash
 * or hang costs only its row, and no system warms the machine for the next through shared state.
 * It prints the machine, the FLOP count and the protocol, one table row per system and mode (with
 * dlc-wasm's speed ratio to each peer), the loss sanity check per system, and writes the same table
 * as markdown to .tmp/bench.md.
 *
 * Options: `--only id,id` runs a subset; `--timeout s` bounds each child (default 240 s).
 * Exit status 1 if any system that trained did not lower its loss (a broken step is not a result),
 * or if the systems disagree on their outputs at the shared initial weights (a layout bug).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Mode, ModeResult, SystemDef, SystemResult } from './common.ts';
import {
  FWD_FLOPS,
  forwardMacsPerSample,
  INFER1_SAMPLES,
  INFER1_WARMUP,
  INFER_BATCH,
  INFER_BATCHES,
  INFER_WARMUP,
  loadBenchData,
  LOSS_SAMPLES,
  PROBE_SAMPLES,
  probeDistance,
  PIXELS,
  runSystem,
  saveBenchData,
  TEST_SAMPLES,
  TRAIN_BATCH,
  TRAIN_FLOPS,
  TRAIN_SAMPLES,
  TRAIN_STEPS,
  TRAIN_WARMUP,
} from './common.ts';

/**
 * The rows, in table order. Each system's module is imported only by its own child process (the
 * bundle is code-split), so a child's RSS holds that system and the shared harness, nothing else:
 * no peer pays for dlc's compiler or another peer's runtime.
 */
interface Entry {
  readonly id: string;
  readonly system: string;
  load(): Promise<SystemDef>;
}
const SYSTEMS: readonly Entry[] = [
  { id: 'dlc-wasm', system: 'dlc (wasm)', load: async () => (await import('./dlc.ts')).dlcWasm },
  { id: 'dlc-webgpu', system: 'dlc (webgpu; CPU driver here, not a GPU)', load: async () => (await import('./dlc.ts')).dlcWebgpu },
  { id: 'dlc-interp', system: 'dlc (interp, f64 reference)', load: async () => (await import('./dlc.ts')).dlcInterp },
  { id: 'jax-conv', system: 'jax-js 0.1.25 wasm, lax.conv (idiomatic)', load: async () => (await import('./peers/jax.ts')).jaxConv },
  { id: 'jax-im2col', system: 'jax-js 0.1.25 wasm, im2col + dot (fast)', load: async () => (await import('./peers/jax.ts')).jaxIm2col },
  { id: 'tfjs-wasm', system: 'TF.js 4.22 layers, wasm + our Conv2DBackpropFilter', load: async () => (await import('./peers/tfjs.ts')).tfjsWasm },
];
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

const fmt = (x: number, digits: number) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

interface Row {
  cells: string[];
}

function buildRows(results: readonly SystemResult[]): { header: string[]; rows: Row[] } {
  const header = ['system', 'mode', 'samples/s', 'ms/step (median)', 'GFLOP/s', 'peak RSS MB', 'dlc-wasm ÷ this', 'check'];
  const dlc = results.find((r) => r.id === 'dlc-wasm');
  const dlcMode = (m: Mode): ModeResult | undefined => (dlc && dlc.status === 'ok' ? dlc.modes.find((x) => x.mode === m) : undefined);
  const rows: Row[] = [];
  for (const r of results) {
    if (r.status !== 'ok') {
      const what = r.status === 'not built' ? `**${r.reason ?? 'not built yet'}**` : `**FAILED**: ${r.reason ?? 'unknown error'}`;
      rows.push({ cells: [r.system, 'all', '—', '—', '—', r.peakRssMB ? fmt(r.peakRssMB, 0) : '—', 'n/a', what] });
      continue;
    }
    r.modes.forEach((m, i) => {
      let ratio = 'n/a';
      const d = dlcMode(m.mode);
      if (r.id === 'dlc-wasm') ratio = '—';
      else if (d) ratio = `${fmt(d.samplesPerSec / m.samplesPerSec, 2)}×`;
      let check = '';
      if (m.mode === 'train b32' && r.lossBefore !== undefined && r.lossAfter !== undefined) {
        const ok = r.lossAfter < r.lossBefore;
        check = `loss ${r.lossBefore.toFixed(3)} → ${r.lossAfter.toFixed(3)} ${ok ? 'ok' : '**LOSS DID NOT DROP**'}`;
      }
      const stepsNote = m.mode === 'infer b1' ? `${m.steps} samples` : `${m.steps} batches`;
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
  const only = arg('--only')?.split(',');
  const timeoutS = Number(arg('--timeout') ?? 240);
  const systems = only ? SYSTEMS.filter((s) => only.includes(s.id)) : SYSTEMS;
  if (only && systems.length !== only.length) throw new Error(`bench: --only ${only.join(',')}: known systems are ${SYSTEMS.map((s) => s.id).join(', ')}`);

  const cpus = os.cpus();
  const machine = `${cpus[0]?.model.trim() ?? 'unknown CPU'} (${cpus.length} logical cores), ${fmt(os.totalmem() / 2 ** 30, 0)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}`;
  const macs = forwardMacsPerSample();
  const headerLines = [
    `Reference model (examples/mnist-cnn.ts): Conv2D 32 → MaxPool → Conv2D 64 → MaxPool → Conv2D 128 → Flatten → Dense 128 → Dense 10; Adam lr 1e-3, sparse categorical cross-entropy; same MNIST samples and same initial weights for every system.`,
    `Machine: ${machine}.`,
    `FLOPs per sample: forward ${fmt(FWD_FLOPS / 1e6, 2)} MFLOP (${fmt(macs / 1e6, 3)} M multiply-adds in the convs and dense layers, ×2); training counted as 3× forward = ${fmt(TRAIN_FLOPS / 1e6, 2)} MFLOP.`,
    `Protocol: train ${TRAIN_WARMUP} warm-up + ${TRAIN_STEPS} timed steps at batch ${TRAIN_BATCH}; infer batch ${INFER_BATCH}: ${INFER_WARMUP} warm-up + ${INFER_BATCHES} timed batches; infer batch 1: ${INFER1_WARMUP} warm-up + ${INFER1_SAMPLES} timed samples. ms/step is the median; host→device copies and the read-back of results are inside the timed step. Each system runs in its own process; peak RSS is that process's.`,
    `Numbers are single-threaded (every system runs one wasm thread) and noisy (shared VM; expect ±10% run to run).`,
  ];
  console.log(`dlc bench\n${headerLines.map((l) => `  ${l}`).join('\n')}\n`);

  mkdirSync(TMP, { recursive: true });
  const { loadMnist } = await import('../compiler/index.ts'); // the parent only: children read the cached samples
  const m = loadMnist(8000, 2000);
  saveBenchData(DATA_FILE, {
    trainX: (m.train.x.data as Float32Array).slice(0, TRAIN_SAMPLES * PIXELS),
    trainY: (m.train.y.data as Int32Array).slice(0, TRAIN_SAMPLES),
    testX: (m.test.x.data as Float32Array).slice(0, TEST_SAMPLES * PIXELS),
    testY: (m.test.y.data as Int32Array).slice(0, TEST_SAMPLES),
  });

  const results: SystemResult[] = [];
  for (const def of systems) {
    const ts = performance.now();
    console.error(`→ ${def.id}: ${def.system}`);
    const r = await runChild(def, timeoutS);
    console.error(`  ${def.id} done in ${fmt((performance.now() - ts) / 1000, 1)} s (${r.status}${r.reason ? `: ${r.reason}` : ''})`);
    results.push(r);
  }

  const { header, rows } = buildRows(results);
  const notes: string[] = [];
  for (const r of results) {
    for (const n of r.notes) if (!notes.includes(n)) notes.push(n);
    if (r.status !== 'ok') continue;
    const bits: string[] = [];
    if (r.lossBefore !== undefined) bits.push(`loss on ${LOSS_SAMPLES} test samples at the initial weights ${r.lossBefore.toFixed(6)}${r.lossAfter !== undefined ? `, after ${TRAIN_WARMUP + TRAIN_STEPS} steps ${r.lossAfter.toFixed(4)}` : ''}`);
    if (r.trainWarmupMs) bits.push(`first train step (with compilation) ${fmt(r.trainWarmupMs[0], 0)} ms`);
    if (r.rssDriftMB !== undefined) bits.push(`RSS drift over the ${TRAIN_STEPS} timed steps ${fmt(r.rssDriftMB, 1)} MB`);
    const train = r.modes.find((x) => x.mode === 'train b32');
    if (train) bits.push(`train step min/median/max ${fmt(train.msMin, 0)}/${fmt(train.msMedian, 0)}/${fmt(train.msMax, 0)} ms`);
    notes.push(`${r.id}: ${bits.join('; ')}`);
  }
  // Same initial weights everywhere: the initial outputs must agree, or some system reads the weights wrongly.
  const probed = results.filter((r) => r.status === 'ok' && r.initProbe);
  let layoutMismatch = false;
  if (probed.length > 1) {
    const ref = probed[0];
    const dist = probed.slice(1).map((r) => [r.id, probeDistance(ref.initProbe!, r.initProbe!)] as const);
    const worst = Math.max(...dist.map(([, x]) => x));
    layoutMismatch = worst > 1e-2;
    const bad = dist.filter(([, x]) => x > 1e-2).map(([id]) => id);
    notes.push(
      `initial-weight cross-check: softmax outputs at the shared initial weights (first ${PROBE_SAMPLES} test samples) match ${ref.id}'s to ${worst.toExponential(1)} relative to their deviation from uniform` +
        (layoutMismatch ? ` — **MISMATCH for ${bad.join(', ')}: it does not compute the same model from the same weights**` : ''),
    );
  }
  const dlcOk = results.find((r) => r.id === 'dlc-wasm')?.status === 'ok';
  if (!dlcOk) notes.unshift('dlc-wasm has no numbers (see its row): the ratio column is n/a until it runs.');

  const text = textTable(header, rows);
  console.log(`\n${text}\n\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);
  const md = [`## Benchmark: MNIST convnet`, '', ...headerLines.map((l) => `${l}  `), '', mdTable(header, rows), '', ...notes.map((n) => `- ${n}`), ''].join('\n');
  writeFileSync(path.join(TMP, 'bench.md'), md);
  if (!dlcOk) {
    const r = results.find((x) => x.id === 'dlc-wasm');
    console.log(`\n!!! dlc-wasm: ${r?.status === 'not built' ? r.reason : `FAILED: ${r?.reason ?? 'not run in this invocation'}`} !!!`);
  }
  console.log(`\nmarkdown written to .tmp/bench.md; total ${fmt((performance.now() - t0) / 1000, 0)} s`);

  const broken = results.filter((r) => r.status === 'ok' && r.lossBefore !== undefined && r.lossAfter !== undefined && !(r.lossAfter < r.lossBefore));
  if (layoutMismatch) console.error('\nINITIAL OUTPUTS DISAGREE: the systems do not compute the same model from the same weights.');
  if (broken.length) {
    console.error(`\nBROKEN TRAIN STEP: loss did not drop for ${broken.map((r) => r.id).join(', ')}; their timings are not meaningful.`);
    return 1;
  }
  return layoutMismatch ? 1 : 0;
}

const childId = arg('--child');
if (childId) await child(childId);
else process.exitCode = await parent();
