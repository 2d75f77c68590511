/**
 * @file The live demo (demo/, built and served by scripts/demo.mjs, `npm run demo`) in headless
 * Chromium. The script builds the page into a temporary folder and serves it on a free port of
 * 127.0.0.1; Debian's Chromium (DLC_CHROMIUM or /usr/bin/chromium, driven by playwright-core, never
 * a downloaded browser) opens it, and the test uses it as a person would. In one tab: every control
 * is reached by Tab in page order and has an accessible name (read from Chromium's accessibility
 * tree), the pad shows a focus ring and its keyboard cursor; the page's controls train the reference
 * convnet for a few hundred steps on Wasm; a '1' is drawn on the pad with the mouse and a '7' with the
 * keyboard (arrow keys and Space); one train step is profiled. In a second, fresh tab (same initial
 * weights and batches), where the page has WebGPU: the compiled artifact is switched to WebGPU and
 * gives the probabilities it gives on Wasm, and the convnet trains on WebGPU for a few steps, whose
 * losses must fall and follow the Wasm run's step by step. The page exposes its state as
 * `window.demo`. Checked throughout: no page errors, console errors or 404s; the page is
 * cross-origin isolated (COOP/COEP). A screenshot goes to .tmp/demo-screenshot.png.
 *
 * Without Chromium the file is skipped with a banner (or fails under DLC_TEST_REQUIRE=browser), as
 * test/helpers/requirements.ts does for every browser suite; a Chromium whose pages get no WebGPU
 * adapter skips the WebGPU tab the same way (failing when DLC_TEST_REQUIRE names webgpu or browser).
 * Headless Chromium's WebGPU without a GPU is SwiftShader, about 2.7 s per train step at batch 16
 * here, so that tab trains GPU_STEPS steps only and does not wait for the page's test-set evaluation.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needBrowser, needBrowserWebGpu } from './helpers/requirements.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = needBrowser('test/demo.test.ts: the live demo page in headless Chromium');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Whether pages in that Chromium get a WebGPU adapter (reported when not: a banner, or a failure under DLC_TEST_REQUIRE). */
const PAGE_GPU = CHROMIUM ? await needBrowserWebGpu('test/demo.test.ts: training and the compiled artifact on WebGPU in the demo page (the Wasm tests still run)', CHROMIUM, CHROMIUM_ARGS) : false;
/** Train steps the test takes on Wasm: about 6 s here. */
const STEPS = 300;
/** Train steps on WebGPU (SwiftShader: the first, which builds the pipelines, takes 15-25 s, then about 2.7 s each). */
const GPU_STEPS = 10;
/** The batch size both runs pick in the page, so the WebGPU run sees the Wasm run's first batches. */
const BATCH = 16;
/** Relative tolerance between the WebGPU and Wasm losses of the same steps (f32 on both; 1.3e-4 seen after 12 steps). */
const GPU_LOSS_TOL = 2e-3;
const SCREENSHOT = path.join(root, '.tmp', 'demo-screenshot.png');

interface DemoState {
  ready: boolean;
  training: boolean;
  steps: number;
  losses: number[];
  accs: number[];
  rate: number;
  testAccuracy: number | null;
  libProbs: number[] | null;
  artProbs: number[] | null;
  artBackend: 'wasm' | 'webgpu' | null;
  hasGpu: boolean;
  threads: number;
  profile: { index: number; kernel: string; ms: number }[] | null;
  error: string | null;
}

/** One open page and what went wrong in it. */
interface Tab {
  page: Page;
  problems: string[];
  served404: string[];
}

let tmp = '';
let server: ChildProcess | null = null;
let serverLog = '';
let browser: Browser | null = null;
let url = '';
/** The tab the Wasm tests use. */
let main: Tab | null = null;
/** The Wasm run's losses, which the WebGPU run must follow. */
let wasmLosses: number[] = [];

const state = async (t: Tab): Promise<DemoState> => (await t.page.evaluate(() => (window as unknown as { demo: DemoState }).demo)) as DemoState;
const context = async (t: Tab) =>
  `\n--- page problems ---\n${t.problems.join('\n') || '(none)'}\n--- server ---\n${serverLog}\n--- page state ---\n${JSON.stringify({ ...(await state(t).catch(() => ({}))), losses: undefined, accs: undefined, profile: undefined }, null, 2)}`;
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
const top = (p: number[]) => p.indexOf(Math.max(...p));
/** Wait until `cond`, a JS expression over `d` (the page's window.demo), holds, or the page reports an error. */
const waitFor = (t: Tab, cond: string, timeout: number) => t.page.waitForFunction(`((d) => d.error !== null || (${cond}))(window.demo)`, null, { timeout });

/** A new tab on the demo, loaded and ready (or failed: state.error), recording its problems. */
async function openTab(): Promise<Tab> {
  const t: Tab = { page: await browser!.newPage({ viewport: { width: 1200, height: 1100 } }), problems: [], served404: [] };
  t.page.on('pageerror', (e) => t.problems.push(`pageerror: ${e.stack ?? e.message}`));
  t.page.on('console', (m) => {
    if (m.type() === 'error') t.problems.push(`console.error: ${m.text()} (${m.location().url})`);
  });
  t.page.on('requestfailed', (r) => t.problems.push(`request failed: ${r.url()}: ${r.failure()?.errorText ?? '?'}`));
  t.page.on('response', (r) => {
    if (r.status() >= 400) t.served404.push(`${r.status()} ${r.url()}`);
  });
  await t.page.goto(url);
  await t.page.waitForFunction(() => (window as unknown as { demo?: DemoState }).demo?.ready || (window as unknown as { demo?: DemoState }).demo?.error, null, { timeout: 60_000 });
  return t;
}

/** Press `key` `n` times. */
async function press(t: Tab, key: string, n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await t.page.keyboard.press(key);
}

/**
 * Draws a '7' on the focused pad with the keyboard alone: from the cursor's start (row 15, column 15
 * of 28) up 8 and left 5, pen down, 10 cells right, 16 down, pen up: a bar and a stem.
 */
async function drawSevenByKeyboard(t: Tab): Promise<void> {
  await press(t, 'ArrowUp', 8);
  await press(t, 'ArrowLeft', 5);
  await press(t, 'Space');
  await press(t, 'ArrowRight', 10);
  await press(t, 'ArrowDown', 16);
  await press(t, 'Space');
}

/** Role, accessible name and id of the focused element, from Chromium's accessibility tree. */
async function focusedControl(t: Tab, cdp: CDPSession) {
  const { result } = await cdp.send('Runtime.evaluate', { expression: 'document.activeElement' });
  const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { objectId: result.objectId, fetchRelatives: false });
  const ax = nodes.find((n) => !n.ignored) ?? nodes[0];
  const id = await t.page.evaluate(() => {
    const e = document.activeElement;
    return e === document.body || !e ? 'body' : e.id || `${e.tagName.toLowerCase()}[name=${e.getAttribute('name') ?? ''}][value=${e.getAttribute('value') ?? ''}]`;
  });
  return { id, role: String(ax?.role?.value ?? ''), name: String(ax?.name?.value ?? '') };
}

beforeAll(async () => {
  if (!CHROMIUM) return;
  tmp = mkdtempSync(path.join(os.tmpdir(), 'dlc-demo-test-'));
  // The demo script builds into tmp and prints its URL once it listens (port 0: a free one).
  server = spawn(process.execPath, [path.join(root, 'scripts', 'demo.mjs'), '--port', '0', '--out', path.join(tmp, 'demo')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  url = await new Promise<string>((resolve, reject) => {
    const onData = (d: Buffer) => {
      serverLog += String(d);
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(serverLog);
      if (m) resolve(m[0]);
    };
    server!.stdout!.on('data', onData);
    server!.stderr!.on('data', onData);
    server!.once('exit', (code) => reject(new Error(`scripts/demo.mjs exited with ${code} before serving:\n${serverLog}`)));
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  main = await openTab();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.kill();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(CHROMIUM)('the live demo in headless Chromium', () => {
  it('loads cross-origin isolated, without page errors, console errors or 404s', async () => {
    const s = await state(main!);
    expect(s.error, `the page failed${await context(main!)}`).toBeNull();
    expect(s.ready).toBe(true);
    expect(await main!.page.evaluate(() => self.crossOriginIsolated), 'COOP/COEP headers make the page cross-origin isolated').toBe(true);
    // Isolated, so the library's Wasm steps run on threads (one per core, up to 8).
    const cores = await main!.page.evaluate(() => navigator.hardwareConcurrency);
    expect((await state(main!)).threads).toBe(Math.min(cores, 8));
    expect(main!.problems, `problems in the page${await context(main!)}`).toEqual([]);
    expect(main!.served404).toEqual([]);
  });

  it('Tab reaches every control in page order, each with an accessible name; the pad shows a focus ring and its cursor', async () => {
    const t = main!;
    const cdp = await t.page.context().newCDPSession(t.page);
    await cdp.send('Accessibility.enable');
    const webgpu = (await state(t)).hasGpu;
    // The Stop button is disabled until training starts; a radio group is one Tab stop (its checked radio).
    const want = [
      { id: 'input[name=backend][value=wasm]', role: 'radio', name: 'Wasm (SIMD)' },
      { id: 'steps', role: 'spinbutton', name: 'Steps' },
      { id: 'batch', role: 'combobox', name: 'Batch' },
      { id: 'start', role: 'button', name: 'Train' },
      { id: 'pad', role: 'application', name: 'Drawing pad' },
      { id: 'clear', role: 'button', name: 'Clear' },
      { id: 'input[name=art-backend][value=wasm]', role: 'radio', name: 'Wasm' },
      { id: 'prof', role: 'button', name: 'Profile one train step' },
      { id: 'kernel', role: 'combobox', name: 'Kernel' },
      { id: 'tab-ir', role: 'tab', name: 'IR' },
      { id: 'tab-wgsl', role: 'tab', name: 'WGSL' },
      { id: 'tab-wat', role: 'tab', name: 'WAT' },
      { id: 'code', role: 'tabpanel', name: 'kernel source' },
    ];
    await t.page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    const seen = [];
    for (let i = 0; i < want.length + 1; i++) {
      await t.page.keyboard.press('Tab');
      const f = await focusedControl(t, cdp);
      if (f.id === 'body') break;
      seen.push(f);
      if (f.id === 'pad') {
        // Reached by the keyboard: a visible focus ring, and the keyboard cursor over the grid.
        const look = await t.page.evaluate(() => {
          const pad = getComputedStyle(document.getElementById('pad')!);
          const cur = document.getElementById('cursor')!;
          const r = cur.getBoundingClientRect();
          return { outline: pad.outlineStyle, width: parseFloat(pad.outlineWidth), cursor: getComputedStyle(cur).display, w: r.width };
        });
        expect(look.outline, 'the focused pad has an outline').not.toBe('none');
        expect(look.width).toBeGreaterThanOrEqual(2);
        expect(look.cursor, 'the keyboard cursor shows while the pad has focus').toBe('block');
        expect(look.w).toBeCloseTo(280 / 28, 0);
      }
    }
    await cdp.detach();
    expect(seen, `focus order (this page ${webgpu ? 'has' : 'has no'} WebGPU)`).toEqual(want);
    for (const f of seen) expect(f.name.trim(), `${f.id} has an accessible name`).not.toBe('');
    // The pad's keyboard help is its description, and the cursor position is announced.
    expect(await t.page.getAttribute('#pad', 'aria-describedby')).toBe('pad-help pad-pos');
    expect(await t.page.textContent('#pad-help')).toMatch(/arrow keys.*Space.*Delete/s);
    expect(await t.page.getAttribute('#pad-pos', 'aria-live')).toBe('polite');
  });

  it(`trains the convnet for ${STEPS} steps on Wasm with the page's controls, and the loss falls`, async () => {
    const t = main!;
    await t.page.check('input[name=backend][value=wasm]');
    await t.page.selectOption('#batch', String(BATCH));
    await t.page.fill('#steps', String(STEPS));
    const t0 = Date.now();
    await t.page.click('#start');
    await waitFor(t, 'd.testAccuracy !== null', 90_000);
    const s = await state(t);
    expect(s.error, `training failed${await context(t)}`).toBeNull();
    expect(s.losses).toHaveLength(STEPS);
    wasmLosses = s.losses;
    const first = mean(s.losses.slice(0, 20));
    const last = mean(s.losses.slice(-20));
    console.log(`demo: ${STEPS} steps at batch ${BATCH} on Wasm in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${s.rate.toFixed(0)} samples/s, loss ${first.toFixed(3)} -> ${last.toFixed(3)}, test accuracy ${s.testAccuracy}`);
    expect(last).toBeLessThan(first / 3);
    expect(s.testAccuracy!).toBeGreaterThan(0.8);
    expect(await t.page.textContent('#s-step')).toBe(String(STEPS));
  });

  it('classifies a digit drawn on the pad with the mouse: both models give probabilities that sum to 1, and the artifact says 1', async () => {
    const t = main!;
    const box = (await t.page.locator('#pad').boundingBox())!;
    await t.page.mouse.move(box.x + box.width / 2, box.y + box.height * 0.18);
    await t.page.mouse.down();
    for (let i = 1; i <= 20; i++) await t.page.mouse.move(box.x + box.width / 2 + i * 0.3, box.y + box.height * (0.18 + i * 0.032));
    await t.page.mouse.up();
    await waitFor(t, 'd.libProbs && d.artProbs', 30_000);
    await t.page.waitForTimeout(300); // the last stroke's predictions
    const s = await state(t);
    expect(s.error, `prediction failed${await context(t)}`).toBeNull();
    for (const [who, p] of [['library', s.libProbs!], ['artifact', s.artProbs!]] as const) {
      expect(p, who).toHaveLength(10);
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1), `${who} probabilities sum to 1`).toBeLessThan(1e-4);
      for (const v of p) expect(v).toBeGreaterThanOrEqual(0);
    }
    console.log(`demo: drawn '1': library says ${top(s.libProbs!)} (${s.libProbs![top(s.libProbs!)].toFixed(3)}), artifact says ${top(s.artProbs!)} (${s.artProbs![top(s.artProbs!)].toFixed(3)})`);
    // The artifact is built deterministically (seeded init and shuffle); a vertical stroke is a 1.
    expect(top(s.artProbs!)).toBe(1);
  });

  it("draws a '7' with the keyboard alone (Delete clears, arrows move, Space lifts and lowers the pen), and both models classify it", async () => {
    const t = main!;
    await t.page.focus('#pad');
    await press(t, 'Delete');
    let s = await state(t);
    expect(s.libProbs, 'Delete cleared the pad').toBeNull();
    expect(s.artProbs).toBeNull();
    await drawSevenByKeyboard(t);
    expect(await t.page.textContent('#pad-pos')).toBe('Cursor: row 23 of 28, column 20 of 28; pen up.');
    await waitFor(t, 'd.libProbs && d.artProbs', 30_000);
    await t.page.waitForTimeout(300);
    s = await state(t);
    expect(s.error, `prediction failed${await context(t)}`).toBeNull();
    for (const p of [s.libProbs!, s.artProbs!]) expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-4);
    console.log(`demo: keyboard '7': library says ${top(s.libProbs!)} (${s.libProbs![top(s.libProbs!)].toFixed(3)}), artifact says ${top(s.artProbs!)} (${s.artProbs![top(s.artProbs!)].toFixed(3)})`);
    // The same deterministic artifact: the bar-and-stem figure is a 7 (0.94 here).
    expect(top(s.artProbs!)).toBe(7);
    expect(await t.page.getAttribute('#probs-art', 'aria-label')).toMatch(/most likely 7/);
  });

  it("profiles one train step (the dispatch trace) and shows each kernel's IR, WGSL and WAT", async () => {
    const t = main!;
    await t.page.click('#prof');
    await waitFor(t, 'd.profile', 60_000);
    const s = await state(t);
    expect(s.error, `profiling failed${await context(t)}`).toBeNull();
    expect(s.profile!.length).toBeGreaterThan(20);
    expect(await t.page.locator('#prof-table tbody tr').count()).toBe(s.profile!.length);
    expect(await t.page.textContent('#code')).toMatch(/^kernel @/);
    await t.page.click('#tab-wgsl');
    expect(await t.page.textContent('#code')).toMatch(/@compute/);
    await t.page.click('#tab-wat');
    expect(await t.page.textContent('#code')).toMatch(/^\s*\(func \$k\d+_/);
    await t.page.click('#tab-ir');
    expect(await t.page.textContent('#sizes-list')).toMatch(/dlc-runtime\.js/);
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await t.page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(t.problems, `problems in the page${await context(t)}`).toEqual([]);
  });
});

describe.runIf(PAGE_GPU)('the live demo on WebGPU in headless Chromium (a fresh tab)', () => {
  let gpu: Tab | null = null;
  afterAll(async () => {
    // The page is evaluating the test digits on WebGPU by now (tens of seconds on SwiftShader): not waited for.
    await gpu?.page.close();
  });

  it('runs the compiled artifact on WebGPU with its switch: the probabilities Wasm gives, to 1e-5', async () => {
    gpu = await openTab();
    const t = gpu;
    const s0 = await state(t);
    expect(s0.error, `the page failed${await context(t)}`).toBeNull();
    expect(s0.hasGpu, 'the probe found a WebGPU adapter in this Chromium, so the page must offer WebGPU').toBe(true);
    expect(await t.page.isDisabled('input[name=art-backend][value=webgpu]')).toBe(false);
    await t.page.focus('#pad');
    await drawSevenByKeyboard(t);
    await waitFor(t, "d.artProbs && d.artBackend === 'wasm'", 30_000);
    await t.page.waitForTimeout(300);
    const onWasm = (await state(t)).artProbs!;
    const t0 = Date.now();
    await t.page.check('input[name=art-backend][value=webgpu]');
    await waitFor(t, "d.artProbs && d.artBackend === 'webgpu'", 120_000);
    const s = await state(t);
    expect(s.error, `the artifact failed on WebGPU${await context(t)}`).toBeNull();
    const diff = Math.max(...s.artProbs!.map((v, i) => Math.abs(v - onWasm[i])));
    console.log(`demo: the artifact on WebGPU (loaded and run in ${((Date.now() - t0) / 1000).toFixed(1)} s) says ${top(s.artProbs!)} (${s.artProbs![top(s.artProbs!)].toFixed(3)}), max |WebGPU - Wasm| = ${diff.toExponential(1)}`);
    expect(top(s.artProbs!)).toBe(top(onWasm));
    expect(diff).toBeLessThan(1e-5);
    expect(await t.page.textContent('#status')).toMatch(/runs on webgpu/);
    // An empty pad again, so no prediction runs between the train steps below.
    await t.page.focus('#pad');
    await press(t, 'Delete');
  }, 180_000);

  it(`trains the convnet for ${GPU_STEPS} steps on WebGPU with the page's controls: the loss falls, as on Wasm step by step`, async () => {
    const t = gpu!;
    expect(wasmLosses.length, 'the Wasm training test ran first (its losses are the reference)').toBe(STEPS);
    expect(await t.page.isDisabled('input[name=backend][value=webgpu]')).toBe(false);
    await t.page.check('input[name=backend][value=webgpu]');
    await t.page.selectOption('#batch', String(BATCH));
    await t.page.fill('#steps', String(GPU_STEPS));
    const t0 = Date.now();
    await t.page.click('#start');
    await waitFor(t, `d.losses.length >= ${GPU_STEPS}`, 300_000);
    const s = await state(t);
    expect(s.error, `training on WebGPU failed${await context(t)}`).toBeNull();
    expect(s.losses).toHaveLength(GPU_STEPS);
    const ref = wasmLosses.slice(0, GPU_STEPS);
    const worst = Math.max(...s.losses.map((l, i) => Math.abs(l - ref[i]) / Math.abs(ref[i])));
    console.log(`demo: ${GPU_STEPS} steps at batch ${BATCH} on WebGPU in ${((Date.now() - t0) / 1000).toFixed(1)} s: losses ${s.losses.map((l) => l.toFixed(3)).join(' ')}; largest relative difference from Wasm ${worst.toExponential(1)}`);
    for (let i = 0; i < GPU_STEPS; i++) expect(Math.abs(s.losses[i] - ref[i]) / Math.abs(ref[i]), `step ${i + 1}: WebGPU ${s.losses[i]}, Wasm ${ref[i]}`).toBeLessThan(GPU_LOSS_TOL);
    // Not bit for bit: another backend computed them (the page did not fall back to Wasm).
    expect(worst, "WebGPU's losses differ from Wasm's in the last bits").toBeGreaterThan(0);
    // The same first batches on both: the loss falls (2.28 -> 2.11 over the first and last three here).
    expect(mean(s.losses.slice(-3))).toBeLessThan(mean(s.losses.slice(0, 3)) - 0.1);
    expect(await t.page.textContent('#s-step')).toBe(String(GPU_STEPS));
    expect(t.problems, `problems in the page${await context(t)}`).toEqual([]);
    expect(t.served404).toEqual([]);
  }, 300_000);
});
