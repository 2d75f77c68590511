/**
 * @file The counter-based random generator every backend reproduces bit for bit.
 *
 * Element `i` of `random_uniform[seed](key)` is a pure function of (seed, key, i): two rounds of the
 * murmur3 32-bit finalizer over wrapping u32 arithmetic, then the top 24 bits scaled to [0, 1). That
 * value is exact in f32, so the interpreter, Wasm and WGSL all produce identical numbers. Keep the
 * constants in sync with the generators' copies (they are tested against this function).
 */

export const RNG_GOLDEN = 0x9e3779b1;
export const RNG_KEY_MUL = 0x85ebca77;

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Uniform [0,1) value for element `index` given `seed` and `key`. */
export function uniformAt(seed: number, key: number, index: number): number {
  const k = fmix32((key ^ Math.imul(seed, RNG_KEY_MUL)) >>> 0);
  const h = fmix32((Math.imul(index, RNG_GOLDEN) + k) >>> 0);
  return (h >>> 8) / 16777216;
}
