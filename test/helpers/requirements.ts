/**
 * @file What the WebGPU and browser suites need from the machine, detected the same way in every
 * suite and reported the same way.
 *
 * A suite calls `needWebGpu(suite)` or `needBrowser(suite)` at the top level of its file. When the
 * machine has what it needs they return it (the device, the browser's path). When it does not, they
 * return null, and:
 *  - by default the suite's tests are to be skipped (the caller skips them on null) and a banner names
 *    the suite, what is missing and how to get it (`sudo bash scripts/setup-test-machine.sh`); the
 *    reporter in vitest.config.ts repeats the banners after the run's summary. `npm test` on a fresh
 *    machine passes, and says what it did not test;
 *  - when DLC_TEST_REQUIRE (a comma-separated list: webgpu, browser) names the requirement, a failing
 *    test `requires ...` is registered instead, naming what is missing. .ci/run sets
 *    DLC_TEST_REQUIRE=webgpu,browser, so CI never skips silently.
 * WebGPU means an adapter and device from `requestGpuDevice` (in Node: Dawn, the `webgpu` npm package,
 * on a Vulkan driver; without a GPU, Mesa's lavapipe). The browser is the Chromium at DLC_CHROMIUM
 * (default /usr/bin/chromium, Debian's package), driven by playwright-core; no browser is downloaded.
 * `needBrowserWebGpu` asks for both at once: an adapter from `navigator.gpu` in a page of that
 * Chromium (without a GPU, its bundled SwiftShader); DLC_TEST_REQUIRE naming either makes its absence
 * a failure.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { it } from 'vitest';
import { requestGpuDevice } from '../../runtime/webgpu.ts';

export type Requirement = 'webgpu' | 'browser';

/** The one command that installs both requirements (Debian or Ubuntu). */
export const SETUP_COMMAND = 'sudo bash scripts/setup-test-machine.sh';

/** The browser the page test drives. */
export const CHROMIUM = process.env.DLC_CHROMIUM || '/usr/bin/chromium';

const KNOWN: readonly Requirement[] = ['webgpu', 'browser'];

/** What each requirement is, for banners and failures. */
const NEED: Record<Requirement, string> = {
  webgpu: "a WebGPU adapter (Node gets WebGPU from Dawn, the 'webgpu' npm package, which needs a Vulkan driver; without a GPU: Mesa's lavapipe, mesa-vulkan-drivers >= 23)",
  browser: `Chromium at ${CHROMIUM} (Debian's chromium package; DLC_CHROMIUM=PATH names another)`,
};

/** DLC_TEST_REQUIRE, checked: a misspelt name must not quietly require nothing. */
function parseRequired(raw: string | undefined): ReadonlySet<Requirement> {
  const names = (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!KNOWN.includes(n as Requirement)) throw new Error(`DLC_TEST_REQUIRE=${raw}: unknown requirement '${n}' (known: ${KNOWN.join(', ')})`);
  }
  return new Set(names as Requirement[]);
}

const REQUIRED = parseRequired(process.env.DLC_TEST_REQUIRE);

/** Whether DLC_TEST_REQUIRE turns a missing `req` into a failure. */
export function isRequired(req: Requirement): boolean {
  return REQUIRED.has(req);
}

/** The banner printed when `suite` is skipped for want of `req` (described as `need`, by default NEED[req]). */
export function skipBanner(req: Requirement, suite: string, why: string, need = NEED[req]): string {
  const bar = '!'.repeat(100);
  return [
    '',
    bar,
    `!!! SKIPPED: ${suite}`,
    `!!! MISSING: ${need}: ${why}`,
    `!!! TO GET IT: ${SETUP_COMMAND} (Debian or Ubuntu: installs Debian's chromium and Mesa's CPU Vulkan driver)`,
    `!!! DLC_TEST_REQUIRE=${req} makes this a failure instead of a skip (.ci/run sets DLC_TEST_REQUIRE=webgpu,browser).`,
    bar,
    '',
  ].join('\n');
}

/** The machine lacks `req`: a banner and a skipped placeholder, or (required) a failing test. */
function unmet(req: Requirement, suite: string, why: string, need = NEED[req]): void {
  if (isRequired(req)) {
    const msg = `DLC_TEST_REQUIRE=${process.env.DLC_TEST_REQUIRE} requires ${need}, and this machine has none: ${why}. ${suite} did not run. Install it with: ${SETUP_COMMAND}`;
    it(`requires ${req} (DLC_TEST_REQUIRE): ${suite}`, () => {
      throw new Error(msg);
    });
  } else {
    console.warn(skipBanner(req, suite, why, need));
    it.skip(`SKIPPED for want of ${req} (${why}): ${suite}`, () => {});
  }
}

let gpuProbe: Promise<{ device: GPUDevice | null; why: string }> | undefined;

/** This process's WebGPU device, asked for once. */
function probeWebGpu(): Promise<{ device: GPUDevice | null; why: string }> {
  gpuProbe ??= requestGpuDevice().then(
    (device) => ({ device, why: '' }),
    (e: unknown) => ({ device: null, why: (e as Error).message }),
  );
  return gpuProbe;
}

/**
 * A WebGPU device for `suite` (a file name and what it tests), or null when there is none, after
 * reporting that (a banner and a skip, or under DLC_TEST_REQUIRE a failing test). Call it at the top
 * level of the test file and skip the WebGPU tests when it returns null.
 */
export async function needWebGpu(suite: string): Promise<GPUDevice | null> {
  const { device, why } = await probeWebGpu();
  if (!device) unmet('webgpu', suite, why);
  return device;
}

/** The Chromium executable for `suite`, or null when there is none, reported as `needWebGpu` does. */
export function needBrowser(suite: string): string | null {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  unmet('browser', suite, `${CHROMIUM} does not exist`);
  return null;
}

/**
 * Why a page in the Chromium at `executablePath`, launched with `args`, gets no WebGPU adapter, or ''
 * when it gets one. The page is served from 127.0.0.1 (a secure context, so `navigator.gpu` exists
 * where the browser has WebGPU at all) and asks `navigator.gpu.requestAdapter()`, as the demo does.
 */
async function probeBrowserWebGpu(executablePath: string, args: readonly string[]): Promise<string> {
  const { chromium } = await import('playwright-core');
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><title>WebGPU probe</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let browser: Awaited<ReturnType<typeof chromium.launch>> | null = null;
  try {
    browser = await chromium.launch({ executablePath, args: [...args], timeout: 60_000 });
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return await page.evaluate(async () => {
      const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
      if (!gpu) return 'navigator.gpu is missing in the page';
      return (await gpu.requestAdapter()) ? '' : 'navigator.gpu.requestAdapter() returned null';
    });
  } catch (e) {
    return `the probe failed: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    await browser?.close();
    server.close();
  }
}

/**
 * Whether a page in the Chromium at `executablePath` (from `needBrowser`), launched with `args`, has a
 * WebGPU adapter (without a GPU, headless Chromium's is its bundled SwiftShader; `--enable-unsafe-webgpu`
 * lifts the blocklist). When it has none, `suite` is reported as `needWebGpu` does, failing when
 * DLC_TEST_REQUIRE names webgpu or browser. Call it at the top level of the test file.
 */
export async function needBrowserWebGpu(suite: string, executablePath: string, args: readonly string[]): Promise<boolean> {
  const why = await probeBrowserWebGpu(executablePath, args);
  if (!why) return true;
  const need = `a WebGPU adapter in headless Chromium (${executablePath} ${args.join(' ')}; without a GPU, Chromium's bundled SwiftShader Vulkan)`;
  unmet(isRequired('browser') && !isRequired('webgpu') ? 'browser' : 'webgpu', suite, why, need);
  return false;
}
