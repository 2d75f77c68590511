/**
 * @file The live demo (demo/, built and served by scripts/demo.mjs, `npm run demo`) in headless
 * Chromium. The script builds the page into a temporary folder and serves it on a free port of
 * 127.0.0.1; Debian's Chromium (DLC_CHROMIUM or /usr/bin/chromium, driven by playwright-core, never
 * a downloaded browser) opens it, and the test uses it as a person would: it trains the reference
 * convnet for a few hundred steps on Wasm with the page's controls, draws a '1' (a vertical stroke)
 * on the pad, and profiles one train step. The page exposes its state as `window.demo`. Checked: no
 * page errors, console errors or 404s; the page is cross-origin isolated (COOP/COEP); the loss
 * fell; both the in-page model and the compiled artifact (runtime only) give probability vectors
 * that sum to 1 for the drawn digit, and the artifact calls it a 1; the profile lists every kernel
 * and shows its IR, WGSL and WAT. A screenshot goes to .tmp/demo-screenshot.png.
 *
 * Without Chromium the file is skipped with a banner (or fails under DLC_TEST_REQUIRE=browser),
 * as test/helpers/requirements.ts does for every browser suite. WebGPU training is not run here:
 * headless Chromium's WebGPU on a GPU-less host is SwiftShader, far too slow for a train loop.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needBrowser } from './helpers/requirements.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = needBrowser('test/demo.test.ts: the live demo page in headless Chromium');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
/** Train steps the test takes on Wasm (batch 32): about 11 s here. */
const STEPS = 300;
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
  profile: { index: number; kernel: string; ms: number }[] | null;
  error: string | null;
}

let tmp = '';
let server: ChildProcess | null = null;
let serverLog = '';
let browser: Browser | null = null;
let tab: Page | null = null;
let url = '';
const problems: string[] = [];
const served404: string[] = [];

const state = async (): Promise<DemoState> => (await tab!.evaluate(() => (window as unknown as { demo: DemoState }).demo)) as DemoState;
const context = async () => `\n--- page problems ---\n${problems.join('\n') || '(none)'}\n--- server ---\n${serverLog}\n--- page state ---\n${JSON.stringify({ ...(await state().catch(() => ({}))), losses: undefined, accs: undefined, profile: undefined }, null, 2)}`;
const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

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
  tab = await browser.newPage({ viewport: { width: 1200, height: 1100 } });
  tab.on('pageerror', (e) => problems.push(`pageerror: ${e.stack ?? e.message}`));
  tab.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()} (${m.location().url})`);
  });
  tab.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}: ${r.failure()?.errorText ?? '?'}`));
  tab.on('response', (r) => {
    if (r.status() >= 400) served404.push(`${r.status()} ${r.url()}`);
  });
  await tab.goto(url);
  await tab.waitForFunction(() => (window as unknown as { demo?: DemoState }).demo?.ready || (window as unknown as { demo?: DemoState }).demo?.error, null, { timeout: 60_000 });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  server?.kill();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(CHROMIUM)('the live demo in headless Chromium', () => {
  it('loads cross-origin isolated, without page errors, console errors or 404s', async () => {
    const s = await state();
    expect(s.error, `the page failed${await context()}`).toBeNull();
    expect(s.ready).toBe(true);
    expect(await tab!.evaluate(() => self.crossOriginIsolated), 'COOP/COEP headers make the page cross-origin isolated').toBe(true);
    expect(problems, `problems in the page${await context()}`).toEqual([]);
    expect(served404).toEqual([]);
  });

  it(`trains the convnet for ${STEPS} steps on Wasm with the page's controls, and the loss falls`, async () => {
    await tab!.check('input[name=backend][value=wasm]');
    await tab!.fill('#steps', String(STEPS));
    const t0 = Date.now();
    await tab!.click('#start');
    await tab!.waitForFunction(() => {
      const d = (window as unknown as { demo: DemoState }).demo;
      return d.testAccuracy !== null || d.error !== null;
    }, null, { timeout: 90_000 });
    const s = await state();
    expect(s.error, `training failed${await context()}`).toBeNull();
    expect(s.losses).toHaveLength(STEPS);
    const first = mean(s.losses.slice(0, 20));
    const last = mean(s.losses.slice(-20));
    console.log(`demo: ${STEPS} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${s.rate.toFixed(0)} samples/s, loss ${first.toFixed(3)} -> ${last.toFixed(3)}, test accuracy ${s.testAccuracy}`);
    expect(last).toBeLessThan(first / 3);
    expect(s.testAccuracy!).toBeGreaterThan(0.8);
    expect(await tab!.textContent('#s-step')).toBe(String(STEPS));
  });

  it('classifies a digit drawn on the pad: both models give probabilities that sum to 1, and the artifact says 1', async () => {
    const box = (await tab!.locator('#pad').boundingBox())!;
    await tab!.mouse.move(box.x + box.width / 2, box.y + box.height * 0.18);
    await tab!.mouse.down();
    for (let i = 1; i <= 20; i++) await tab!.mouse.move(box.x + box.width / 2 + i * 0.3, box.y + box.height * (0.18 + i * 0.032));
    await tab!.mouse.up();
    await tab!.waitForFunction(() => {
      const d = (window as unknown as { demo: DemoState }).demo;
      return (d.libProbs && d.artProbs) || d.error;
    }, null, { timeout: 30_000 });
    await tab!.waitForTimeout(300); // the last stroke's predictions
    const s = await state();
    expect(s.error, `prediction failed${await context()}`).toBeNull();
    for (const [who, p] of [['library', s.libProbs!], ['artifact', s.artProbs!]] as const) {
      expect(p, who).toHaveLength(10);
      expect(Math.abs(p.reduce((a, b) => a + b, 0) - 1), `${who} probabilities sum to 1`).toBeLessThan(1e-4);
      for (const v of p) expect(v).toBeGreaterThanOrEqual(0);
    }
    const top = (p: number[]) => p.indexOf(Math.max(...p));
    console.log(`demo: drawn '1': library says ${top(s.libProbs!)} (${s.libProbs![top(s.libProbs!)].toFixed(3)}), artifact says ${top(s.artProbs!)} (${s.artProbs![top(s.artProbs!)].toFixed(3)})`);
    // The artifact is built deterministically (seeded init and shuffle); a vertical stroke is a 1.
    expect(top(s.artProbs!)).toBe(1);
  });

  it("profiles one train step (the dispatch trace) and shows each kernel's IR, WGSL and WAT", async () => {
    await tab!.click('#prof');
    await tab!.waitForFunction(() => {
      const d = (window as unknown as { demo: DemoState }).demo;
      return d.profile || d.error;
    }, null, { timeout: 60_000 });
    const s = await state();
    expect(s.error, `profiling failed${await context()}`).toBeNull();
    expect(s.profile!.length).toBeGreaterThan(20);
    expect(await tab!.locator('#prof-table tbody tr').count()).toBe(s.profile!.length);
    expect(await tab!.textContent('#code')).toMatch(/^kernel @/);
    await tab!.click('#tab-wgsl');
    expect(await tab!.textContent('#code')).toMatch(/@compute/);
    await tab!.click('#tab-wat');
    expect(await tab!.textContent('#code')).toMatch(/^\s*\(func \$k\d+_/);
    await tab!.click('#tab-ir');
    expect(await tab!.textContent('#sizes-list')).toMatch(/dlc-runtime\.js/);
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await tab!.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(problems, `problems in the page${await context()}`).toEqual([]);
  });
});
