/**
 * @file The page test: a compiled artifact used from a real web page. The reference model
 * (examples/mnist-cnn.ts) is compiled in-process into a temporary folder; a tiny node:http server on
 * 127.0.0.1 serves test/page/ (index.html, page.js), the artifact under /artifact/ and the digits as
 * /digits.f32; headless Chromium (Debian's, at DLC_CHROMIUM or /usr/bin/chromium, driven by
 * playwright-core, never a downloaded browser) opens the page, which imports the artifact's own index.js and predicts N MNIST
 * test digits on Wasm, on WebGPU with the default adapter, and on WebGPU with a compatibility-mode
 * adapter (see CHROMIUM_ARGS for which drivers those are), then takes two train steps on the first
 * batch with each. The page is then opened again cross-origin isolated (the server adds COOP/COEP
 * headers for `?coi=1`), Wasm only: there the artifact runs on threads (its `.mt.wasm` modules, a
 * Worker per extra thread) and must give the one-thread page's outputs and losses to the bit, while
 * the first, non-isolated page runs on one thread and says why. The same artifact loaded in Node
 * (runtime/index.ts, Wasm) gives the reference: classes must agree exactly and probabilities within
 * stated tolerances. The page must also have run the `dlc-runtime.js` copy inside the artifact
 * (byte-identical to dist/dlc-runtime.js) and nothing else, with no page errors, console errors,
 * failed requests or 404s.
 *
 * Loud by design. Without Chromium the file is skipped with a banner saying so, and without the
 * machine's WebGPU (the Vulkan driver Node's WebGPU adapter also needs; the page's adapters sit on
 * the same Vulkan loader) the two WebGPU runs are, or either fails when DLC_TEST_REQUIRE names it
 * (test/helpers/requirements.ts). A stale or missing dist/dlc-runtime.js, or a page without a WebGPU
 * adapter while the machine has one, fails the test with the reason.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildArtifact, DEFAULT_ARTIFACT_THREADS, loadMnist, writeArtifact } from '../compiler/index.ts';
import type { SequentialModel } from '../compiler/index.ts';
import { loadArtifact } from '../runtime/index.ts';
import { needBrowser, needWebGpu } from './helpers/requirements.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const pageDir = path.join(root, 'test', 'page');
/** The browser, or null (reported: skipped with a banner, or failed under DLC_TEST_REQUIRE). */
const CHROMIUM = needBrowser('test/page.test.ts: a compiled artifact in headless Chromium');
/** Whether the machine has WebGPU (a Vulkan driver); without it the page's WebGPU runs are left out, reported the same way. */
const GPU = CHROMIUM ? !!(await needWebGpu("test/page.test.ts: the page's WebGPU runs, webgpu and webgpu-compat (the Wasm run still runs)")) : false;
/** Digits to predict: not a multiple of BATCH, so the last batch is padded. */
const N = 50;
const BATCH = 32;
const CLASSES = 10;
/** Train digits for the one epoch that gives the model real predictions. */
const TRAIN = 1024;

/**
 * Chromium switches. Two WebGPU paths exist in headless Chromium on a GPU-less Linux host:
 *  - Core WebGPU on Vulkan: Chromium accepts only Vulkan adapters that can import external images
 *    (dma-buf with DRM format modifiers, plus external semaphore fds), or SwiftShader. Mesa 25's
 *    lavapipe on this host exposes neither VK_EXT_image_drm_format_modifier nor
 *    VK_KHR_external_semaphore_fd (the driver has them, but not without /dev/udmabuf, it seems), so
 *    no switch makes it the core adapter: that is Chromium's bundled SwiftShader Vulkan, its
 *    fallback adapter. The `webgpu` run uses it, through the runtime's own adapter request.
 *  - Compatibility-mode WebGPU on Dawn's OpenGL ES backend, which runs on ANGLE: with
 *    `--use-angle=vulkan` ANGLE sits on the system Vulkan driver, i.e. lavapipe here, and
 *    `--use-webgpu-adapter=opengles` makes Dawn look at that backend first (otherwise a compat
 *    request is also answered by SwiftShader). The `webgpu-compat` run uses it.
 * `--enable-unsafe-webgpu` lifts the adapter blocklist (both adapters are CPU adapters, which
 * Chromium blocklists). `--ignore-gpu-blocklist` is not needed by Chromium 156 (the unsafe switch
 * wins), but without it chrome://gpu lists WebGPU as disabled because lavapipe's GL is software
 * rendered; with it the reported state matches what runs. `--enable-webgpu-developer-features`
 * unredacts adapter info, so the log and failures name the driver. Playwright's default
 * `--use-angle=swiftshader-webgl` is dropped (ignoreDefaultArgs) in favour of ours.
 */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--use-angle=vulkan',
  '--use-webgpu-adapter=opengles',
  '--ignore-gpu-blocklist',
  '--enable-webgpu-developer-features',
];
const ALL_RUNS = ['wasm', 'webgpu', 'webgpu-compat'] as const;
type RunName = (typeof ALL_RUNS)[number];
const RUNS: readonly RunName[] = GPU ? ALL_RUNS : ['wasm'];
/**
 * Tolerances on softmax probabilities against Wasm in Node. Wasm against Wasm: the same module on
 * two V8s, IEEE f32 without relaxed SIMD or FMA contraction, so bit-identical results are expected;
 * 1e-6 only absorbs what an engine could legally do differently. WebGPU against Wasm: f32 on both
 * sides, but the shaders sum in another order (workgroup tiling, parallel reductions) and the
 * driver's exp may differ by a few ulp; the probabilities then differ by about 1e-7 to 1e-6, and
 * 1e-4 leaves room for other drivers while still catching any wrong index, offset or batch.
 */
const WASM_TOL = 1e-6;
const GPU_TOL = 1e-4;
/**
 * Relative tolerance on a WebGPU train loss against Wasm's. The first step's loss is a forward pass
 * (about 1e-7 apart); the second follows an Adam update, and Adam divides each gradient by its own
 * magnitude, so a gradient entry that is rounding noise on one side moves its weight by up to the
 * learning rate either way. Measured here: 3e-5 (SwiftShader) and 6e-5 (lavapipe) after one step;
 * the bound leaves a factor of 3 over the worst.
 */
const TRAIN_GPU_TOL = 2e-4;

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
  '.f32': 'application/octet-stream',
};

interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  featureLevel: 'core' | 'compatibility';
}
interface PageRun {
  output?: number[];
  adapter?: AdapterDescription | null;
  loadMs?: number;
  predictMs?: number;
  trainMs?: number;
  /** Losses of two train steps on the first batch. */
  losses?: number[];
  unavailable?: string;
  /** The loaded model's `threads` and `threadsNote`. */
  threads?: number;
  threadsNote?: string | null;
}
interface PageResult {
  runs?: Partial<Record<RunName, PageRun>>;
  /** The page's `crossOriginIsolated`. */
  isolated?: boolean;
  hardwareConcurrency?: number;
  error?: string;
}

let tmp = '';
let artifactDir = '';
let server: Server | null = null;
let browser: Browser | null = null;
/** Every request the server answered, as "STATUS /path", in order. */
const served: string[] = [];
/** Page errors, console errors and failed requests, for the failure messages. */
const problems: string[] = [];
let page: PageResult = {};
/** The same page served cross-origin isolated (COOP/COEP), Wasm only: there the artifact runs on threads. */
let isolatedPage: PageResult = {};
let nodeOut: Float32Array = new Float32Array(0);
/** Node's (Wasm) losses of the same two train steps the page takes. */
const nodeLosses: number[] = [];
let labels: Int32Array = new Int32Array(0);
let runtimeBytes: Buffer = Buffer.alloc(0);

/** Newest modification time of the files under `dir`, and which file that is. */
function newest(dir: string): { ms: number; file: string } {
  let best = { ms: 0, file: '' };
  for (const f of readdirSync(dir)) {
    const p = path.join(dir, f);
    const st = statSync(p);
    const cand = st.isDirectory() ? newest(p) : { ms: st.mtimeMs, file: p };
    if (cand.ms > best.ms) best = cand;
  }
  return best;
}

/** dist/dlc-runtime.js, refused when missing or older than a runtime/ source (the page would test stale code). */
function runtimeBundle(): Buffer {
  const f = path.join(root, 'dist', 'dlc-runtime.js');
  if (!existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` (the page test serves the built runtime bundle)`);
  const src = newest(path.join(root, 'runtime'));
  if (statSync(f).mtimeMs < src.ms) {
    throw new Error(
      `dist/dlc-runtime.js is older than ${path.relative(root, src.file)}: run \`npm run build\` so the page runs the current runtime (vitest's global setup, test/build-dist.ts, rebuilds a stale dist/ before the tests start)`,
    );
  }
  return readFileSync(f);
}

function serve(digits: Uint8Array): Promise<Server> {
  const s = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    let file: string | null = null;
    let body: Uint8Array | null = null;
    const p = decodeURIComponent(url.pathname);
    if (p === '/digits.f32') body = digits;
    else if (p === '/' || p === '/index.html') file = path.join(pageDir, 'index.html');
    else if (p === '/page.js') file = path.join(pageDir, 'page.js');
    else if (p.startsWith('/artifact/')) {
      const f = path.resolve(artifactDir, `.${p.slice('/artifact'.length)}`);
      // Nothing outside the artifact folder is reachable (no `..`).
      if (f.startsWith(artifactDir + path.sep) && existsSync(f) && statSync(f).isFile()) file = f;
    }
    if (file) body = readFileSync(file);
    const status = req.method === 'GET' && body ? 200 : 404;
    served.push(`${status} ${p}`);
    if (status !== 200 || !body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const ext = path.extname(p) || '.html';
    // `?coi=1` serves the page cross-origin isolated, which is what gives it SharedArrayBuffer and so threads.
    const isolation = url.searchParams.get('coi') === '1' ? { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' } : {};
    res.writeHead(200, { 'content-type': MIME[ext] ?? 'application/octet-stream', 'cache-control': 'no-store', ...isolation }).end(body);
  });
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

/** Index of the largest value in each row of `cls` values. */
function argmax(out: ArrayLike<number>, cls = CLASSES): number[] {
  const r: number[] = [];
  for (let i = 0; i < out.length / cls; i++) {
    let best = 0;
    for (let c = 1; c < cls; c++) if (out[i * cls + c] > out[i * cls + best]) best = c;
    r.push(best);
  }
  return r;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** What went wrong around the page, appended to every failure message. */
const context = () =>
  `\n--- page problems ---\n${problems.join('\n') || '(none)'}\n--- requests ---\n${served.join('\n')}\n--- page result ---\n${JSON.stringify(page, (k, v) => (k === 'output' ? `[${(v as number[]).length} values]` : v), 2)}`;

beforeAll(async () => {
  // No browser: reported by needBrowser (a banner and a skip, or a failing test under DLC_TEST_REQUIRE).
  if (!CHROMIUM) return;
  runtimeBytes = runtimeBundle();

  const model = (await import('../examples/mnist-cnn.ts')).default as SequentialModel;
  // Freshly initialised, the model's softmax is nearly uniform (top-2 margins around 1e-5), so
  // comparing classes across f32 implementations would compare rounding noise. One epoch on a few
  // train digits (about 4 s here) gives real predictions with clear margins.
  const data = loadMnist(TRAIN, N);
  await model.fit(data.train.x, data.train.y, { epochs: 1, batchSize: BATCH, verbose: 0, backend: 'wasm' });
  const art = await buildArtifact(model, { batchSize: BATCH, entries: ['predict', 'train'], runtime: runtimeBytes });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'dlc-page-test-'));
  artifactDir = path.join(tmp, 'artifact');
  writeArtifact(artifactDir, art.files);

  const test = data.test;
  const x = test.x.data as Float32Array;
  labels = test.y.data as Int32Array;
  const ref = await loadArtifact(artifactDir, { backend: 'wasm' });
  nodeOut = await ref.predict(x);
  const firstLabels = labels.slice(0, BATCH);
  for (let s = 0; s < 2; s++) nodeLosses.push((await ref.trainStep(x.subarray(0, BATCH * 784), firstLabels)).loss);
  ref.dispose();

  server = await serve(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, ignoreDefaultArgs: ['--use-angle=swiftshader-webgl'] });
  const tab = await browser.newPage();
  tab.on('pageerror', (e) => problems.push(`pageerror: ${e.stack ?? e.message}`));
  tab.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error: ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
  });
  tab.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}: ${r.failure()?.errorText ?? '?'}`));
  const { port } = server.address() as AddressInfo;
  // http://127.0.0.1 is a secure context, so navigator.gpu exists (it does not on about:blank).
  await tab.goto(`http://127.0.0.1:${port}/?runs=${RUNS.join(',')}&labels=${Array.from(labels.slice(0, BATCH)).join(',')}`);
  try {
    // SwiftShader compiles every WGSL kernel on the CPU: about 30 s on a quiet 2-core machine, more
    // while other suites share the cores.
    await tab.waitForFunction(() => (window as { result?: unknown }).result !== undefined, null, { timeout: 150_000 });
  } catch (e) {
    throw new Error(`the page never set window.result: ${(e as Error).message}${context()}`);
  }
  page = (await tab.evaluate(() => (window as { result?: unknown }).result)) as PageResult;
  await tab.close();
  const iso = await browser.newPage();
  iso.on('pageerror', (e) => problems.push(`pageerror (isolated page): ${e.stack ?? e.message}`));
  iso.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console.error (isolated page): ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
  });
  await iso.goto(`http://127.0.0.1:${port}/?coi=1&runs=wasm&labels=${Array.from(labels.slice(0, BATCH)).join(',')}`);
  try {
    await iso.waitForFunction(() => (window as { result?: unknown }).result !== undefined, null, { timeout: 60_000 });
  } catch (e) {
    throw new Error(`the isolated page never set window.result: ${(e as Error).message}${context()}`);
  }
  isolatedPage = (await iso.evaluate(() => (window as { result?: unknown }).result)) as PageResult;
  await iso.close();
}, 260_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe.runIf(CHROMIUM)('a compiled artifact in headless Chromium', () => {
  it('ran without page errors, console errors, failed requests or 404s', () => {
    expect(page.error, `the page threw${context()}`).toBeUndefined();
    expect(problems, `problems in the page${context()}`).toEqual([]);
    expect(served.filter((s) => !s.startsWith('200 ')), `requests that failed${context()}`).toEqual([]);
  });

  it("loaded dlc-runtime.js from the artifact, and only the artifact's copy of dist/dlc-runtime.js", () => {
    const scripts = [...new Set(served.filter((s) => s.endsWith('.js')).map((s) => s.slice(4)))].sort();
    expect(scripts, `scripts the page loaded${context()}`).toEqual(['/artifact/dlc-runtime.js', '/artifact/index.js', '/page.js']);
    expect(readFileSync(path.join(artifactDir, 'dlc-runtime.js')).equals(runtimeBytes)).toBe(true);
  });

  it(`Wasm in the page gives the same classes and (to ${WASM_TOL}) the same probabilities as Wasm in Node`, () => {
    const r = page.runs?.wasm;
    expect(r?.output, `no wasm result${context()}`).toBeDefined();
    expect(r!.output!.length).toBe(N * CLASSES);
    expect(argmax(r!.output!)).toEqual(argmax(nodeOut));
    const diff = maxAbsDiff(r!.output!, nodeOut);
    console.log(`page wasm: load ${r!.loadMs} ms, predict ${r!.predictMs} ms, max |page - node| ${diff}`);
    expect(diff).toBeLessThanOrEqual(WASM_TOL);
  });

  for (const run of ['webgpu', 'webgpu-compat'] as const) {
    it.skipIf(!GPU)(`WebGPU in the page (${run}) gives the same classes and (to ${GPU_TOL}) the same probabilities as Wasm in Node`, () => {
      const r = page.runs?.[run];
      // The machine has WebGPU (GPU), so no adapter in the page is a failure, described, never a skip.
      expect(r?.unavailable, `no WebGPU adapter for the '${run}' run in headless Chromium (flags: ${CHROMIUM_ARGS.join(' ')})${context()}`).toBeUndefined();
      expect(r?.output, `no ${run} result${context()}`).toBeDefined();
      const diff = maxAbsDiff(r!.output!, nodeOut);
      console.log(`page ${run}: ${r!.adapter?.description} (${r!.adapter?.featureLevel}), load ${r!.loadMs} ms, predict ${r!.predictMs} ms, max |page - node| ${diff}`);
      if (run === 'webgpu-compat') {
        // This run exists to use a driver other than Chromium's bundled SwiftShader (lavapipe here).
        expect(r!.adapter?.description, `the compatibility adapter should be ANGLE on the system Vulkan driver (Mesa's lavapipe without a GPU: scripts/setup-test-machine.sh)${context()}`).not.toMatch(/swiftshader/i);
      }
      expect(argmax(r!.output!)).toEqual(argmax(nodeOut));
      expect(diff).toBeLessThanOrEqual(GPU_TOL);
    });
  }

  it('runs on one thread in a page that is not cross-origin isolated, and says why', () => {
    const r = page.runs?.wasm;
    expect(page.isolated).toBe(false);
    expect(r?.threads, `wasm run${context()}`).toBe(1);
    expect(r?.threadsNote).toMatch(/cross-origin isolated \(serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp\); running on one thread/);
  });

  it('runs on threads in a cross-origin-isolated page, with the one-thread page\'s outputs and losses to the bit', () => {
    expect(isolatedPage.error, `the isolated page threw${context()}`).toBeUndefined();
    expect(isolatedPage.isolated, 'COOP/COEP headers should make the page crossOriginIsolated').toBe(true);
    const r = isolatedPage.runs?.wasm;
    const want = Math.min(isolatedPage.hardwareConcurrency ?? 1, DEFAULT_ARTIFACT_THREADS);
    expect(r?.threads).toBe(want);
    if (want > 1) expect(r?.threadsNote).toBeNull();
    expect(r?.output).toEqual(page.runs?.wasm?.output);
    expect(r?.losses).toEqual(page.runs?.wasm?.losses);
    console.log(`isolated page wasm on ${r?.threads} threads: load ${r?.loadMs} ms, predict ${r?.predictMs} ms, train 2 steps ${r?.trainMs} ms (one thread: predict ${page.runs?.wasm?.predictMs} ms, train ${page.runs?.wasm?.trainMs} ms)`);
  });

  it(`trains in the page: two steps on the first batch give the losses Node gets (Wasm to ${WASM_TOL}, WebGPU to ${TRAIN_GPU_TOL} relative)`, () => {
    // The second loss follows one Adam update made in the page, so this checks the gradients, the
    // optimizer and the in-place state updates as well as the forward pass.
    for (const run of RUNS) {
      const r = page.runs?.[run];
      expect(r?.losses, `no train losses for '${run}'${context()}`).toHaveLength(2);
      const tol = run === 'wasm' ? WASM_TOL : TRAIN_GPU_TOL;
      r!.losses!.forEach((l, s) => expect(Math.abs(l - nodeLosses[s]) / nodeLosses[s], `${run} step ${s}: ${l} vs Node ${nodeLosses[s]}`).toBeLessThanOrEqual(tol));
      console.log(`page ${run}: train 2 steps ${r!.trainMs} ms, losses ${r!.losses!.join(', ')} (Node ${nodeLosses.join(', ')})`);
    }
    // The update must have done something: a second step on the same batch has a lower loss.
    expect(nodeLosses[1]).toBeLessThan(nodeLosses[0]);
  });

  it(`predicts real digits, each decided by more than 2 x ${GPU_TOL} (so no class hinges on rounding)`, () => {
    const cls = argmax(nodeOut);
    const correct = cls.filter((c, i) => c === labels[i]).length;
    const margins = cls.map((c, i) => {
      const row = Array.from(nodeOut.subarray(i * CLASSES, (i + 1) * CLASSES));
      return row[c] - Math.max(...row.filter((_, k) => k !== c));
    });
    const minMargin = Math.min(...margins);
    console.log(`node wasm: ${correct}/${N} digits right, smallest top-2 margin ${minMargin}`);
    // Deterministic (seeded init and shuffle): about 75% after the one short epoch.
    expect(correct).toBeGreaterThanOrEqual(0.6 * N);
    // Outputs within GPU_TOL of each other cannot disagree on a class decided by more than twice it.
    expect(minMargin).toBeGreaterThan(2 * GPU_TOL);
  });
});
