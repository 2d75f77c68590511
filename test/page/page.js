/**
 * @file The script of test/page/index.html: what a user's page does with a compiled artifact. It
 * imports the artifact's `index.js` (which imports the `dlc-runtime.js` copy next to it), loads the
 * model once per run and predicts every digit of `/digits.f32` (N x 784 f32 values, N not a multiple
 * of the batch size, so the last batch is padded). Runs come from `?runs=` and are one of:
 *   wasm            load({ backend: 'wasm' })
 *   webgpu          load({ backend: 'webgpu' }): the runtime asks for the browser's default adapter
 *   webgpu-compat   load({ backend: 'webgpu', device }) on a device this page requests from a
 *                   `featureLevel: 'compatibility'` adapter (in the test: Dawn's OpenGL ES backend on
 *                   ANGLE on the system Vulkan driver), with the compute limits the WGSL needs.
 * With `?labels=` (the first batch's labels) each run then takes two train steps on that batch.
 * It ends by setting `window.result` to `{ runs: { [run]: { output, losses, adapter, threads, threadsNote, loadMs, predictMs, trainMs } },
 * isolated, hardwareConcurrency }` (isolated: the page's crossOriginIsolated, which threads need), or
 * `{ error }` with the stack; a run without WebGPU reports `{ unavailable: why }` instead of throwing,
 * so the test can describe the adapter situation. Plain JavaScript: the browser runs it as served.
 */

/** What the adapter says about itself (unredacted with --enable-webgpu-developer-features). */
function describe(adapter) {
  const i = adapter.info ?? {};
  return {
    vendor: i.vendor ?? '',
    architecture: i.architecture ?? '',
    device: i.device ?? '',
    description: i.description ?? '',
    featureLevel: adapter.features.has('core-features-and-limits') ? 'core' : 'compatibility',
  };
}

/** The compute limits the artifact's WGSL may use, at the adapter's maximum (compat defaults are lower). */
const COMPUTE_LIMITS = [
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupStorageSize',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
];

async function loadFor(load, run) {
  if (run === 'wasm') return { model: await load({ backend: 'wasm' }), adapter: null };
  if (!navigator.gpu) return { unavailable: `navigator.gpu is missing (isSecureContext: ${isSecureContext})` };
  if (run === 'webgpu') {
    // The same request the runtime makes, only to name the adapter it will get.
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { unavailable: "requestAdapter({ powerPreference: 'high-performance' }) returned null" };
    return { model: await load({ backend: 'webgpu' }), adapter: describe(adapter) };
  }
  if (run === 'webgpu-compat') {
    const adapter = await navigator.gpu.requestAdapter({ featureLevel: 'compatibility' });
    if (!adapter) return { unavailable: "requestAdapter({ featureLevel: 'compatibility' }) returned null" };
    const requiredLimits = Object.fromEntries(COMPUTE_LIMITS.map((k) => [k, adapter.limits[k]]));
    const device = await adapter.requestDevice({ requiredLimits });
    return { model: await load({ backend: 'webgpu', device }), adapter: describe(adapter) };
  }
  throw new Error(`page.js: unknown run '${run}'`);
}

async function main() {
  const params = new URLSearchParams(location.search);
  const runs = (params.get('runs') ?? 'wasm').split(',');
  // Labels of the first batch (`?labels=7,2,1,...`): when given, each run also trains.
  const labels = params.get('labels') ? Int32Array.from(params.get('labels').split(','), Number) : null;
  const { load } = await import('./artifact/index.js');
  const res = await fetch('./digits.f32');
  if (!res.ok) throw new Error(`page.js: GET digits.f32: HTTP ${res.status}`);
  const x = new Float32Array(await res.arrayBuffer());
  const out = {};
  for (const run of runs) {
    const t = performance.now();
    const got = await loadFor(load, run);
    if (got.unavailable) {
      out[run] = { unavailable: got.unavailable };
      continue;
    }
    const loaded = performance.now();
    const y = await got.model.predict(x);
    const predicted = performance.now();
    // Then train: two steps on the first batch, from the artifact's weights. The first loss is the
    // forward pass at those weights; the second is after one Adam update made in this page.
    const losses = [];
    if (labels) {
      const xb = x.subarray(0, labels.length * 784);
      for (let s = 0; s < 2; s++) losses.push((await got.model.trainStep(xb, labels)).loss);
    }
    got.model.dispose();
    out[run] = {
      output: Array.from(y),
      losses,
      adapter: got.adapter,
      threads: got.model.threads,
      threadsNote: got.model.threadsNote,
      loadMs: Math.round(loaded - t),
      predictMs: Math.round(predicted - loaded),
      trainMs: Math.round(performance.now() - predicted),
    };
  }
  return { runs: out, isolated: globalThis.crossOriginIsolated === true, hardwareConcurrency: navigator.hardwareConcurrency };
}

main().then(
  (r) => {
    window.result = r;
  },
  (e) => {
    window.result = { error: String(e?.stack ?? e) };
  },
);
