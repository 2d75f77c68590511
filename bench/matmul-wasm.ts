/**
 * @file `wasm-matmul` (`npm run bench -- --only matmul`): GFLOP/s of the f32 matmul kernel dlc's Wasm
 * code generator emits, on one hand-built kernel program per shape (the kernel IR `matmul` kernel,
 * no frontend or fusion, as test/wasm-codegen.test.ts builds them), with relaxed SIMD on (where the
 * engine has it) and off, B row-major and transposed. These timings used to sit in the codegen tests,
 * where they asserted nothing; the tests keep the matmul correctness cases.
 *
 * Protocol: one untimed run, then runs back to back until 400 ms and at least 3 runs have passed;
 * FLOPs are 2·M·N·K per run. A spot check compares 64 output entries with f64 dot products of the
 * same inputs and fails the row above 1e-4 relative to the sum of |products|, so a fast wrong kernel
 * cannot report a number. The shapes are the two the tests timed (SHAPES).
 */
import { emitWasm, loadBinaryen } from '../compiler/codegen/wasm.ts';
import type { MemoryPlan } from '../compiler/kernel/plan.ts';
import type { BufferInfo, MatmulKernel, Program, View3 } from '../compiler/kernel/types.ts';
import { detectRelaxedSimd, instantiateProgram } from '../runtime/wasm.ts';
import type { BenchData, MatmulStat, SystemDef } from './common.ts';
import { values } from './lcg.ts';

const SHAPES: readonly (readonly [number, number, number])[] = [
  [256, 256, 256],
  [1024, 1152, 128],
];
const MIN_MS = 400;
const MIN_RUNS = 3;
const SPOT = 64;
const MAX_REL_ERR = 1e-4;


/** C[1, M, N] = A[M, K] · B (B [K, N] row-major, or stored [N, K] when `transB`), buffers back to back. */
function matmulProgram(M: number, N: number, K: number, transB: boolean): { p: Program; plan: MemoryPlan } {
  const shapes = [[M, K], transB ? [N, K] : [K, N], [1, M, N]];
  const buffers: BufferInfo[] = shapes.map((shape, id) => ({ id, dtype: 'f32', shape, role: id === 2 ? 'output' : 'input', name: `b${id}` }));
  const b: View3 = { input: 1, offset: 0, strides: transB ? [0, 1, K] : [0, N, 1] };
  const k: MatmulKernel = { kind: 'matmul', name: `matmul_${M}x${N}x${K}`, ops: [], inputs: [0, 1], output: 2, shape: [1, M, N], dtype: 'f32', k: K, a: { input: 0, offset: 0, strides: [0, K, 1] }, b, epilogue: { k: 'acc' } };
  const p: Program = { name: 'matmul_bench', buffers, kernels: [k], loops: [], inputs: [0, 1], outputs: [2], outputNames: ['c'] };
  let at = 0;
  const offsets = shapes.map((s) => {
    const o = at;
    at += Math.ceil((s.reduce((x, y) => x * y, 1) * 4) / 16) * 16;
    return o;
  });
  return { p, plan: { offsets, totalBytes: at } };
}

async function measureShape(M: number, N: number, K: number, relaxedSimd: boolean, transB: boolean): Promise<MatmulStat> {
  const { p, plan } = matmulProgram(M, N, K, transB);
  await loadBinaryen();
  const w = await instantiateProgram(emitWasm(p, plan, { relaxedSimd }));
  const A = values(M * K, 1);
  const B = values(K * N, 2);
  w.f32(plan.offsets[0], M * K).set(A);
  w.f32(plan.offsets[1], K * N).set(B);
  w.run();
  let runs = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < MIN_MS || runs < MIN_RUNS) {
    w.run();
    runs++;
    t = performance.now();
  }
  const ms = (t - t0) / runs;
  const C = w.f32(plan.offsets[2], M * N);
  let maxRelErr = 0;
  for (let s = 0; s < SPOT; s++) {
    const m = (s * 7919) % M;
    const n = (s * 104729) % N;
    let acc = 0;
    let mag = 0;
    for (let q = 0; q < K; q++) {
      const prod = A[m * K + q] * (transB ? B[n * K + q] : B[q * N + n]);
      acc += prod;
      mag += Math.abs(prod);
    }
    maxRelErr = Math.max(maxRelErr, Math.abs(C[m * N + n] - acc) / Math.max(mag, 1e-30));
  }
  const what = `${M}x${N}x${K} relaxedSimd=${relaxedSimd} B ${transB ? 'transposed' : 'row-major'}`;
  if (!(maxRelErr <= MAX_REL_ERR)) throw new Error(`matmul ${what}: spot check against f64 off by ${maxRelErr.toExponential(2)} (limit ${MAX_REL_ERR})`);
  return { M, N, K, relaxedSimd, transB, msPerRun: ms, gflops: (2 * M * N * K) / (ms * 1e6), maxRelErr };
}

export const wasmMatmul: SystemDef = {
  id: 'wasm-matmul',
  async setup(_d: BenchData, log) {
    const relaxed = detectRelaxedSimd();
    const out: MatmulStat[] = [];
    for (const [M, N, K] of SHAPES)
      for (const r of [false, ...(relaxed ? [true] : [])])
        for (const transB of [false, true]) {
          const s = await measureShape(M, N, K, r, transB);
          log(`matmul ${M}x${N}x${K} relaxed=${r} B=${transB ? 'T' : 'N'}: ${s.gflops.toFixed(2)} GFLOP/s (${s.msPerRun.toFixed(2)} ms/run)`);
          out.push(s);
        }
    return { matmul: out };
  },
};
