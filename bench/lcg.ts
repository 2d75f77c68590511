/**
 * @file Deterministic test values for the matmul benchmarks (bench/matmul-wasm.ts,
 * bench/matmul-gpu.ts): an LCG, so a spot check can recompute any operand element in f64.
 */

/** `n` values in [-1, 1) from `seed`. */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
