/**
 * @file The ONNX Runtime peers, inference only (ORT Web has no training): the reference CNN exported
 * to ONNX from dlc's model graph (bench/onnx.ts, from the CNN spec the parent writes, which carries
 * bench/common.ts's `initialWeights()`, the weights every CNN row starts from), run by
 *
 *  - `ort-web`: onnxruntime-web's WebAssembly backend (SIMD) in Node, one thread, the same kind of
 *    engine as dlc-wasm;
 *  - `ort-web-mt`: the same with `ort.env.wasm.numThreads` = the machine's logical cores (its worker
 *    threads), to show what threads buy on this machine;
 *  - `ort-node`: onnxruntime-node, the native CPU build (MLAS), `intraOpNumThreads` 1: the native
 *    reference line, not something a web page can run.
 *
 * Each session is created with all graph optimizations (Conv+Relu fusion and the like), as a user
 * would. Before timing, the harness compares each row's softmax outputs on a batch at the initial
 * weights with dlc's (`reference`, within 1e-4) and fails the row untimed if they differ. The host
 * batch goes in as an `ort.Tensor` over the caller's Float32Array and the output comes back as a
 * Float32Array, inside the timed step as for every system.
 */
import os from 'node:os';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BenchData, Runner, SystemDef } from '../common.ts';
import { CLASSES } from '../common.ts';
import { exportOnnx } from '../onnx.ts';
import { CNN_REFERENCE, CNN_SPEC_FILE, loadModelSpec } from '../model-spec.ts';

/** What both ORT packages' InferenceSession and Tensor share (onnxruntime-common's API). */
interface OrtTensorLike {
  readonly data: unknown;
  readonly dims: readonly number[];
}
interface OrtSession {
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
  release(): Promise<void>;
}
type MakeTensor = (data: Float32Array, dims: number[]) => OrtTensorLike;

/** The CNN's ONNX bytes from the spec; also written to .tmp/bench-cnn.onnx for inspection (netron, onnx.checker). */
function cnnOnnx(log: (l: string) => void): { bytes: Uint8Array; input: string; output: string; flops: Runner['flops'] } {
  const { spec, weights } = loadModelSpec(CNN_SPEC_FILE);
  const t0 = performance.now();
  const m = exportOnnx(spec, weights);
  log(`${spec.name}: exported to ONNX in ${(performance.now() - t0).toFixed(1)} ms: ${m.nodes} nodes, ${(m.bytes.length / 1024).toFixed(0)} KiB, ${spec.params} parameters`);
  writeFileSync(path.resolve('.tmp', 'bench-cnn.onnx'), m.bytes);
  const fwd = 2 * spec.fwdMacsPerSample;
  return { ...m, flops: { forward: fwd, train: 3 * fwd } };
}

function ortRunner(session: OrtSession, makeTensor: MakeTensor, input: string, output: string, flops: Runner['flops']): Runner {
  return {
    flops,
    async trainStep(): Promise<never> {
      throw new Error('ONNX Runtime rows are inference only');
    },
    async predict(x: Float32Array, n: number): Promise<Float32Array> {
      const out = (await session.run({ [input]: makeTensor(x, [n, 28, 28, 1]) }))[output];
      if (!(out.data instanceof Float32Array) || out.data.length !== n * CLASSES) throw new Error(`ort: output ${output} is not ${n * CLASSES} floats`);
      return out.data;
    },
    dispose(): void {
      void session.release();
    },
  };
}

const MODES = { modes: ['infer b32', 'infer b1'] } as const;

function ortWeb(id: string, threads: () => number): SystemDef {
  return {
    id,
    measure: MODES,
    reference: CNN_REFERENCE,
    async setup(_d: BenchData, log) {
      const ort = await import('onnxruntime-web');
      // Must be set before the first session: the wasm module is instantiated once, with its thread pool.
      ort.env.wasm.numThreads = threads();
      const m = cnnOnnx(log);
      const session = await ort.InferenceSession.create(m.bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
      log(`onnxruntime-web ${ort.env.versions.web ?? '?'} (common ${ort.env.versions.common}), wasm backend, numThreads ${ort.env.wasm.numThreads}`);
      return ortRunner(session as OrtSession, (data, dims) => new ort.Tensor('float32', data, dims), m.input, m.output, m.flops);
    },
  };
}

export const ortWeb1: SystemDef = ortWeb('ort-web', () => 1);
export const ortWebMt: SystemDef = ortWeb('ort-web-mt', () => os.cpus().length);

export const ortNode: SystemDef = {
  id: 'ort-node',
  measure: MODES,
  reference: CNN_REFERENCE,
  async setup(_d: BenchData, log) {
    const ort = await import('onnxruntime-node');
    const m = cnnOnnx(log);
    const session = await ort.InferenceSession.create(m.bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' });
    log(`onnxruntime-node ${ort.env.versions.node ?? '?'} (common ${ort.env.versions.common}), cpu, intraOpNumThreads 1`);
    return ortRunner(session as OrtSession, (data, dims) => new ort.Tensor('float32', data, dims), m.input, m.output, m.flops);
  },
};
