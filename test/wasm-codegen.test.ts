/**
 * @file Wasm code generator and runtime, tested on hand-built kernel programs.
 *
 * Every program here is written by hand in kernel IR (no frontend, no fusion), compiled with
 * `emitWasm`, instantiated with the runtime and compared with values computed in plain JS. Cases are
 * picked to reach each code path: SIMD and scalar-tail loops, broadcast (invariant) loads, gathers
 * (scalar fallback), the im2col axis split, selects whose untaken arm would load out of range,
 * scalar and 4-lane reductions with epilogues, matmul tiles with M/N/K remainders, transposed and
 * reversed views, batches, vector and scalar epilogues, pooling gradients (scalar and 4 channels)
 * with padding and ties, every ALU op, casts and the RNG. Where SIMD and scalar code compute the
 * same thing (reductions, exp/tanh), results must agree bit for bit. All of it runs with relaxed
 * SIMD on and off. Matmul throughput (GFLOP/s) is measured by the bench, not here:
 * `npm run bench -- --only matmul` (bench/matmul-wasm.ts).
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { emitWasm, emitWat, loadBinaryen, wasmMemoryBytes } from '../compiler/codegen/wasm.ts';
import type { MemoryPlan } from '../compiler/kernel/plan.ts';
import type { BinOp, BufferInfo, Expr, Kernel, MatmulKernel, Program, UnOp, View3 } from '../compiler/kernel/types.ts';
import { uniformAt } from '../ir/random.ts';
import { numel, type DType, type Padding2 } from '../ir/types.ts';
import { detectRelaxedSimd, instantiateProgram } from '../runtime/wasm.ts';

// emitWasm needs binaryen, which is loaded on demand (compiler/codegen/wasm/binaryen.ts).
beforeAll(loadBinaryen);

// ---- kernel IR by hand ----

const cI = (value: number): Expr => ({ k: 'const', dtype: 'i32', value });
const cF = (value: number): Expr => ({ k: 'const', dtype: 'f32', value });
const idx = (axis: number): Expr => ({ k: 'idx', axis });
const ridx = (axis: number): Expr => ({ k: 'ridx', axis });
const ACC: Expr = { k: 'acc' };
const ld = (input: number, index: Expr, dtype: DType = 'f32'): Expr => ({ k: 'load', input, index, dtype });
const bin = (op: BinOp, a: Expr, b: Expr, dtype: DType = 'f32'): Expr => ({ k: 'bin', op, a, b, dtype });
const un = (op: UnOp, a: Expr, dtype: DType = 'f32'): Expr => ({ k: 'un', op, a, dtype });
const sel = (c: Expr, a: Expr, b: Expr, dtype: DType = 'f32'): Expr => ({ k: 'select', c, a, b, dtype });
const cast = (a: Expr, dtype: DType): Expr => ({ k: 'cast', a, dtype });
const iadd = (a: Expr, b: Expr) => bin('add', a, b, 'i32');
const imul = (a: Expr, c: number) => bin('mul', a, cI(c), 'i32');
/** Row-major linear index of idx(0..) into `shape`. */
const lin = (shape: readonly number[], ix: readonly Expr[] = shape.map((_, a) => idx(a))): Expr => {
  let e: Expr = cI(0);
  let stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    e = d === shape.length - 1 ? imul(ix[d], stride) : iadd(imul(ix[d], stride), e);
    stride *= shape[d];
  }
  return e;
};

interface TBuf {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data?: ArrayLike<number>;
}

/** A kernel without its name (generated) and ops list. */
type DistOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type KSpec = DistOmit<Kernel, 'name' | 'ops'> & { name?: string };

let kernelNo = 0;
function program(bufs: readonly TBuf[], kernels: readonly KSpec[]): Program {
  const outs = new Set(kernels.map((k) => k.output));
  const buffers: BufferInfo[] = bufs.map((b, id) => ({ id, dtype: b.dtype, shape: b.shape, role: outs.has(id) ? 'output' : 'input', name: `b${id}` }));
  const ks = kernels.map((k): Kernel => ({ ...k, name: k.name ?? `k${kernelNo++}`, ops: [] }));
  return {
    name: 'test',
    buffers,
    kernels: ks,
    loops: [],
    inputs: buffers.filter((b) => b.role === 'input').map((b) => b.id),
    outputs: [...outs],
    outputNames: [...outs].map((o) => `b${o}`),
  };
}

/** Buffers back to back from `base` (16-byte aligned), like the real planner but without reuse. */
function planOf(p: Program, base = 0): MemoryPlan {
  let at = base;
  const offsets = p.buffers.map((b) => {
    const o = at;
    at += Math.ceil((Math.max(numel(b.shape), 1) * 4) / 16) * 16;
    return o;
  });
  return { offsets, totalBytes: at };
}

type Arr = Float32Array | Int32Array;

async function exec(p: Program, bufs: readonly TBuf[], relaxed: boolean, base = 0): Promise<Arr[]> {
  const plan = planOf(p, base);
  const w = await instantiateProgram(emitWasm(p, plan, { relaxedSimd: relaxed }));
  const view = (i: number) => {
    const n = numel(p.buffers[i].shape);
    return p.buffers[i].dtype === 'f32' ? w.f32(plan.offsets[i], n) : w.i32(plan.offsets[i], n);
  };
  bufs.forEach((b, i) => b.data && view(i).set(b.data));
  w.run();
  return p.buffers.map((_, i) => view(i).slice());
}

// ---- data and comparisons ----

/** Deterministic pseudo-random f32 values in [lo, hi). */
function rnd(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(lo + (hi - lo) * uniformAt(seed, 7, i)));
}

function expectExact(got: ArrayLike<number>, want: ArrayLike<number>, what = ''): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i]) && !(got[i] === 0 && want[i] === 0)) {
      throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
    }
  }
}

/** |got - want| <= rel*|want| + abs (NaN matches NaN, infinities must match exactly). */
function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, abs = 0, what = ''): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    const ok = Number.isNaN(w) ? Number.isNaN(g) : !Number.isFinite(w) ? g === w : Math.abs(g - w) <= rel * Math.abs(w) + abs;
    if (!ok) throw new Error(`${what}[${i}]: got ${g}, want ${w} (rel ${Math.abs(g - w) / Math.abs(w)})`);
  }
}

const relaxedOk = detectRelaxedSimd();
const modes = [false, ...(relaxedOk ? [true] : [])];

describe('runtime', () => {
  it('detects relaxed SIMD (Node 20+: via the V8 flag)', () => {
    expect(typeof detectRelaxedSimd()).toBe('boolean');
    expect(detectRelaxedSimd()).toBe(relaxedOk);
  });

  it('rejects views outside memory, and modules that are not programs', async () => {
    const p = program([{ dtype: 'f32', shape: [4] }, { dtype: 'f32', shape: [4] }], [{ kind: 'elementwise', inputs: [0], output: 1, shape: [4], dtype: 'f32', expr: ld(0, idx(0)) }]);
    const w = await instantiateProgram(emitWasm(p, planOf(p), { relaxedSimd: false }));
    expect(() => w.f32(w.memory.buffer.byteLength - 4, 2)).toThrow(/outside/);
    expect(w.f32(0, 4).length).toBe(4);
    const empty = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
    await expect(instantiateProgram(empty)).rejects.toThrow(/memory/);
  });
});

describe.each(modes)('wasm codegen (relaxedSimd=%s)', (relaxed) => {
  const run = (p: Program, bufs: readonly TBuf[], base = 0) => exec(p, bufs, relaxed, base);

  it('elementwise with broadcast loads, vector body and scalar tail', async () => {
    for (const W of [1, 3, 4, 7, 8, 13]) {
      const H = 3;
      const x = rnd(H * W, 1);
      const y = rnd(W, 2);
      const z = rnd(H, 3);
      const bufs: TBuf[] = [
        { dtype: 'f32', shape: [H, W], data: x },
        { dtype: 'f32', shape: [W], data: y },
        { dtype: 'f32', shape: [H], data: z },
        { dtype: 'f32', shape: [H, W] },
      ];
      // out[i,j] = x[i,j] * y[j] + z[i]
      const expr = bin('add', bin('mul', ld(0, lin([H, W])), ld(1, idx(1))), ld(2, idx(0)));
      const p = program(bufs, [{ kind: 'elementwise', inputs: [0, 1, 2], output: 3, shape: [H, W], dtype: 'f32', expr }]);
      const out = (await run(p, bufs))[3];
      const want = Float32Array.from({ length: H * W }, (_, f) => Math.fround(Math.fround(x[f] * y[f % W]) + z[Math.floor(f / W)]));
      expectExact(out, want, `W=${W}`);
      if (W >= 4) expect(emitWat(p, planOf(p), { relaxedSimd: relaxed })).toContain('f32x4.mul');
    }
  });

  it('falls back to scalar for gathers (transpose) and stays correct', async () => {
    const x = rnd(8 * 3, 4);
    const bufs: TBuf[] = [
      { dtype: 'f32', shape: [8, 3], data: x },
      { dtype: 'f32', shape: [3, 8] },
    ];
    const p = program(bufs, [{ kind: 'elementwise', inputs: [0], output: 1, shape: [3, 8], dtype: 'f32', expr: un('neg', ld(0, iadd(imul(idx(1), 3), idx(0)))) }]);
    const out = (await run(p, bufs))[1];
    expectExact(out, Float32Array.from({ length: 24 }, (_, f) => -x[(f % 8) * 3 + Math.floor(f / 8)]));
    expect(emitWat(p, planOf(p), { relaxedSimd: relaxed })).not.toContain('v128.load');
  });

  it('never evaluates a load in an untaken select arm (padding at address 0)', async () => {
    // x sits at byte 0, so x[-2] would trap: the select must guard the load.
    const x = rnd(8, 5);
    const j = idx(0);
    const inside = bin('and', un('not', bin('less', j, cI(2), 'bool'), 'bool'), bin('less', j, cI(10), 'bool'), 'bool');
    const x2 = rnd(8, 6);
    const i = idx(0);
    const rowIn = bin('and', un('not', bin('less', i, cI(1), 'bool'), 'bool'), bin('less', i, cI(3), 'bool'), 'bool');
    const bufs: TBuf[] = [
      { dtype: 'f32', shape: [8], data: x },
      { dtype: 'f32', shape: [12] },
      { dtype: 'f32', shape: [2, 4], data: x2 },
      { dtype: 'f32', shape: [4, 4] },
    ];
    const p = program(bufs, [
      { kind: 'elementwise', inputs: [0], output: 1, shape: [12], dtype: 'f32', expr: sel(inside, ld(0, iadd(j, cI(-2))), cF(0)) },
      // pad along the outer axis: the condition is invariant in the vector loop (a vector `if`)
      { kind: 'elementwise', inputs: [2], output: 3, shape: [4, 4], dtype: 'f32', expr: sel(rowIn, ld(0, iadd(imul(iadd(i, cI(-1)), 4), idx(1))), cF(-1)) },
    ]);
    const out = await run(p, bufs);
    expectExact(out[1], [0, 0, ...x, 0, 0]);
    expectExact(out[3], [-1, -1, -1, -1, ...x2, -1, -1, -1, -1]);
  });

  it('selects between in-range loads vectorise (relu gradient)', async () => {
    const x = rnd(16, 7);
    const dy = rnd(16, 8);
    const bufs: TBuf[] = [
      { dtype: 'f32', shape: [2, 8], data: x },
      { dtype: 'f32', shape: [2, 8], data: dy },
      { dtype: 'f32', shape: [2, 8] },
    ];
    const p = program(bufs, [
      { kind: 'elementwise', inputs: [0, 1], output: 2, shape: [2, 8], dtype: 'f32', expr: sel(bin('less', cF(0), ld(0, lin([2, 8])), 'bool'), ld(1, lin([2, 8])), cF(0)) },
    ]);
    const out = (await run(p, bufs))[2];
    expectExact(out, Float32Array.from(x, (v, f) => (v > 0 ? dy[f] : 0)));
    expect(emitWat(p, planOf(p), { relaxedSimd: relaxed })).toContain('v128.bitselect');
  });

  it('im2col: the flattened (kh, kw, c) axis is split at c and vectorised, with padding', async () => {
    const [H, W, C, KH, KW] = [4, 4, 8, 2, 3];
    for (const pad of [0, 1]) {
      const [OH, OW] = [H + 2 * pad - KH + 1, W + 2 * pad - KW + 1];
      const [Mr, Kq] = [OH * OW, KH * KW * C];
      const x = rnd(H * W * C, 28);
      const g0 = idx(0);
      const g1 = idx(1);
      const div = (a: Expr, c: number) => bin('div', a, cI(c), 'i32');
      const mod = (a: Expr, c: number) => bin('mod', a, cI(c), 'i32');
      const ih = iadd(iadd(div(g0, OW), div(g1, KW * C)), cI(-pad));
      const iw = iadd(iadd(mod(g0, OW), mod(div(g1, C), KW)), cI(-pad));
      const inb = (v: Expr, n: number) => bin('and', un('not', bin('less', v, cI(0), 'bool'), 'bool'), bin('less', v, cI(n), 'bool'), 'bool');
      const ok = bin('and', inb(ih, H), inb(iw, W), 'bool');
      const clamp = (v: Expr) => sel(ok, v, cI(0), 'i32');
      const expr = sel(ok, ld(0, iadd(imul(iadd(imul(clamp(ih), W), clamp(iw)), C), mod(g1, C))), cF(0));
      const bufs: TBuf[] = [{ dtype: 'f32', shape: [H * W * C], data: x }, { dtype: 'f32', shape: [Mr, Kq] }];
      const p = program(bufs, [{ kind: 'elementwise', inputs: [0], output: 1, shape: [Mr, Kq], dtype: 'f32', expr }]);
      const out = (await run(p, bufs))[1];
      const want = new Float32Array(Mr * Kq);
      for (let m = 0; m < Mr; m++)
        for (let q = 0; q < Kq; q++) {
          const [y, xx] = [Math.floor(m / OW) + Math.floor(q / (KW * C)) - pad, (m % OW) + (Math.floor(q / C) % KW) - pad];
          want[m * Kq + q] = y >= 0 && y < H && xx >= 0 && xx < W ? x[(y * W + xx) * C + (q % C)] : 0;
        }
      expectExact(out, want, `pad ${pad}`);
      expect(emitWat(p, planOf(p), { relaxedSimd: relaxed })).toContain('v128.load');
    }
  });

  it('reduce: sum and max with epilogues, several axes, full reduction, bool body', async () => {
    const [R, C] = [5, 6];
    const x = rnd(R * C, 9);
    const b = rnd(R, 10);
    const bufs: TBuf[] = [
      { dtype: 'f32', shape: [R, C], data: x },
      { dtype: 'f32', shape: [R], data: b },
      { dtype: 'f32', shape: [R] },
      { dtype: 'f32', shape: [C] },
      { dtype: 'f32', shape: [] },
      { dtype: 'f32', shape: [] },
      { dtype: 'f32', shape: [2] },
    ];
    const xAt = (r: Expr, c: Expr) => ld(0, iadd(imul(r, C), c));
    const p = program(bufs, [
      // out2[i] = 0.5 * sum_j x[i,j] + b[i]
      { kind: 'reduce', op: 'sum', inputs: [0, 1], output: 2, shape: [R], rshape: [C], dtype: 'f32', body: xAt(idx(0), ridx(0)), epilogue: bin('add', bin('mul', ACC, cF(0.5)), ld(1, idx(0))) },
      // out3[j] = exp(max_i x[i,j]) - 1
      { kind: 'reduce', op: 'max', inputs: [0], output: 3, shape: [C], rshape: [R], dtype: 'f32', body: xAt(ridx(0), idx(0)), epilogue: bin('sub', un('exp', ACC), cF(1)) },
      // out4 = sum over both axes
      { kind: 'reduce', op: 'sum', inputs: [0], output: 4, shape: [], rshape: [R, C], dtype: 'f32', body: xAt(ridx(0), ridx(1)), epilogue: ACC },
      // out5 = count(x > 0): a bool body is summed as 0/1
      { kind: 'reduce', op: 'sum', inputs: [0], output: 5, shape: [], rshape: [R * C], dtype: 'f32', body: bin('less', cF(0), ld(0, ridx(0)), 'bool'), epilogue: ACC },
      // out6[i] = (i + 1) * max(x[2i, 0], x[2i+1, 0]): the epilogue reads the grid index
      { kind: 'reduce', op: 'max', inputs: [0], output: 6, shape: [2], rshape: [2], dtype: 'f32', body: xAt(iadd(imul(idx(0), 2), ridx(0)), cI(0)), epilogue: bin('mul', ACC, cast(iadd(idx(0), cI(1)), 'f32')) },
    ]);
    const out = await run(p, bufs);
    const sumRow = (i: number) => x.slice(i * C, i * C + C).reduce((s, v) => s + v, 0);
    expectClose(out[2], Array.from({ length: R }, (_, i) => 0.5 * sumRow(i) + b[i]), 1e-6, 1e-6);
    expectClose(out[3], Array.from({ length: C }, (_, j) => Math.exp(Math.max(...Array.from({ length: R }, (_, i) => x[i * C + j]))) - 1), 1e-6, 1e-7);
    expectClose(out[4], [x.reduce((s, v) => s + v, 0)], 1e-5, 1e-6);
    expectExact(out[5], [x.filter((v) => v > 0).length]);
    expectExact(out[6], [Math.max(x[0], x[C]), 2 * Math.max(x[2 * C], x[3 * C])]);
  });

  it('reduce vectorises along the innermost grid axis (bias gradient), identical to scalar order', async () => {
    const [N, C] = [7, 13];
    const dy = rnd(N * C, 26);
    const b = rnd(C, 27);
    const bufs: TBuf[] = [
      { dtype: 'f32', shape: [N, C], data: dy },
      { dtype: 'f32', shape: [C], data: b },
      { dtype: 'f32', shape: [C] },
      { dtype: 'f32', shape: [C] },
    ];
    const p = program(bufs, [
      { kind: 'reduce', op: 'sum', inputs: [0, 1], output: 2, shape: [C], rshape: [N], dtype: 'f32', body: ld(0, iadd(imul(ridx(0), C), idx(0))), epilogue: bin('sub', ld(1, idx(0)), bin('mul', ACC, cF(0.1))) },
      { kind: 'reduce', op: 'max', inputs: [0], output: 3, shape: [C], rshape: [N], dtype: 'f32', body: un('neg', ld(0, iadd(imul(ridx(0), C), idx(0)))), epilogue: ACC },
    ]);
    const out = await run(p, bufs);
    // f32 accumulation in row order, exactly as the kernel does it
    const sums = Array.from({ length: C }, (_, j) => {
      let s = 0;
      for (let i = 0; i < N; i++) s = Math.fround(s + dy[i * C + j]);
      return Math.fround(b[j] - Math.fround(s * Math.fround(0.1)));
    });
    expectExact(out[2], sums, 'sum');
    expectExact(out[3], Array.from({ length: C }, (_, j) => Math.max(...Array.from({ length: N }, (_, i) => -dy[i * C + j]))), 'max');
    expect(emitWat(p, planOf(p), { relaxedSimd: relaxed })).toContain('f32x4.add');
  });

  describe('matmul', () => {
    interface MM {
      Bt: number;
      M: number;
      N: number;
      K: number;
      /** A buffer contents and its view */
      aLen: number;
      a: View3;
      bLen: number;
      b: View3;
      /** extra inputs for the epilogue (positions 2..) */
      extra?: Float32Array[];
      epilogue?: Expr;
      /** JS epilogue */
      epi?: (acc: number, b: number, m: number, n: number) => number;
    }
    async function check(t: MM): Promise<void> {
      const A = rnd(t.aLen, 11);
      const B = rnd(t.bLen, 12);
      const extra = t.extra ?? [];
      const bufs: TBuf[] = [
        { dtype: 'f32', shape: [t.aLen], data: A },
        { dtype: 'f32', shape: [t.bLen], data: B },
        ...extra.map((d) => ({ dtype: 'f32' as const, shape: [d.length], data: d })),
        { dtype: 'f32', shape: [t.Bt, t.M, t.N] },
      ];
      const outId = bufs.length - 1;
      const k: Omit<MatmulKernel, 'name' | 'ops'> = {
        kind: 'matmul', inputs: bufs.slice(0, -1).map((_, i) => i), output: outId, shape: [t.Bt, t.M, t.N], dtype: 'f32', k: t.K, a: t.a, b: t.b, epilogue: t.epilogue ?? ACC,
      };
      const p = program(bufs, [k]);
      const out = (await run(p, bufs, 48))[outId];
      const want: number[] = [];
      const scale: number[] = [];
      for (let b = 0; b < t.Bt; b++)
        for (let m = 0; m < t.M; m++)
          for (let n = 0; n < t.N; n++) {
            let acc = 0;
            let mag = 0;
            for (let q = 0; q < t.K; q++) {
              const av = A[t.a.offset + b * t.a.strides[0] + m * t.a.strides[1] + q * t.a.strides[2]];
              const bv = B[t.b.offset + b * t.b.strides[0] + q * t.b.strides[1] + n * t.b.strides[2]];
              acc += av * bv;
              mag += Math.abs(av * bv);
            }
            const v = t.epi ? t.epi(acc, b, m, n) : acc;
            want.push(v);
            scale.push(mag + Math.abs(v));
          }
      for (let i = 0; i < want.length; i++) {
        if (!(Math.abs(out[i] - want[i]) <= 1e-5 * scale[i] + 1e-7)) throw new Error(`matmul [${i}]: got ${out[i]}, want ${want[i]}`);
      }
    }

    it('5x7x9, row-major (N remainder: packed, zero-padded panel)', () =>
      check({ Bt: 1, M: 5, N: 7, K: 9, aLen: 45, a: { input: 0, offset: 0, strides: [0, 9, 1] }, bLen: 63, b: { input: 1, offset: 0, strides: [0, 7, 1] } }));

    it('batch 2, transposed B, bias epilogue (scalar epilogue on a partial panel)', () => {
      const bias = rnd(7, 13);
      return check({
        Bt: 2, M: 5, N: 7, K: 9, aLen: 90, a: { input: 0, offset: 0, strides: [45, 9, 1] }, bLen: 126, b: { input: 1, offset: 0, strides: [63, 1, 9] },
        extra: [bias], epilogue: bin('add', ACC, ld(2, idx(2))), epi: (acc, _b, _m, n) => acc + bias[n],
      });
    });

    it('transposed A, offsets, vector epilogue relu(acc + bias[n] + rowbias[m]) with M and N remainders', () => {
      const [Bt, M, N, K] = [2, 13, 27, 17];
      const bias = rnd(N, 14);
      const rb = rnd(M, 15);
      return check({
        Bt, M, N, K, aLen: 5 + Bt * K * M, a: { input: 0, offset: 5, strides: [K * M, 1, M] }, bLen: 3 + Bt * K * N, b: { input: 1, offset: 3, strides: [K * N, N, 1] },
        extra: [bias, rb],
        epilogue: bin('max', bin('add', bin('add', ACC, ld(2, idx(2))), ld(3, idx(1))), cF(0)),
        epi: (acc, _b, m, n) => Math.max(acc + bias[n] + rb[m], 0),
      });
    });

    it('16x16x16 with unpacked B and a scaled epilogue', () =>
      check({ Bt: 1, M: 16, N: 16, K: 16, aLen: 256, a: { input: 0, offset: 0, strides: [0, 16, 1] }, bLen: 256, b: { input: 1, offset: 0, strides: [0, 16, 1] }, epilogue: bin('mul', ACC, cF(2)), epi: (acc) => 2 * acc }));

    it('shared A across the batch (stride 0), K not a multiple of the unroll', () =>
      check({ Bt: 3, M: 6, N: 10, K: 5, aLen: 30, a: { input: 0, offset: 0, strides: [0, 5, 1] }, bLen: 150, b: { input: 1, offset: 0, strides: [50, 10, 1] } }));

    it('reversed rows of A (negative stride: A is packed)', () =>
      check({ Bt: 1, M: 5, N: 9, K: 7, aLen: 35, a: { input: 0, offset: 28, strides: [0, -7, 1] }, bLen: 63, b: { input: 1, offset: 0, strides: [0, 9, 1] } }));

    it('an epilogue that gathers (scalar epilogue on full tiles)', () => {
      const s = rnd(3, 16);
      return check({
        Bt: 1, M: 8, N: 16, K: 11, aLen: 88, a: { input: 0, offset: 0, strides: [0, 11, 1] }, bLen: 176, b: { input: 1, offset: 0, strides: [0, 16, 1] },
        extra: [s], epilogue: bin('mul', ACC, ld(2, bin('mod', idx(2), cI(3), 'i32'))), epi: (acc, _b, _m, n) => acc * s[n % 3],
      });
    });

    it('K = 0 gives epilogue(0)', () =>
      check({ Bt: 1, M: 3, N: 5, K: 0, aLen: 1, a: { input: 0, offset: 0, strides: [0, 0, 1] }, bLen: 1, b: { input: 1, offset: 0, strides: [0, 5, 1] }, epilogue: bin('add', ACC, cF(1)), epi: (acc) => acc + 1 }));

    it('larger odd sizes 37x45x70, transposed B', () =>
      check({ Bt: 1, M: 37, N: 45, K: 70, aLen: 37 * 70, a: { input: 0, offset: 0, strides: [0, 70, 1] }, bLen: 45 * 70, b: { input: 1, offset: 0, strides: [0, 1, 70] } }));
  });

  describe('pool_grad', () => {
    function reference(op: 'max' | 'sum', x: Float32Array, dy: Float32Array, shape: number[], dyShape: number[], win: number[], str: number[], pad: Padding2): Float64Array {
      const [N, H, W, C] = shape;
      const [, OH, OW] = dyShape;
      const out = new Float64Array(numel(shape));
      for (let n = 0; n < N; n++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++)
            for (let c = 0; c < C; c++) {
              const d = dy[((n * OH + oh) * OW + ow) * C + c];
              let best = -1;
              for (let kh = 0; kh < win[0]; kh++)
                for (let kw = 0; kw < win[1]; kw++) {
                  const ih = oh * str[0] + kh - pad[0][0];
                  const iw = ow * str[1] + kw - pad[1][0];
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                  const i = ((n * H + ih) * W + iw) * C + c;
                  if (op === 'sum') out[i] += d;
                  else if (best < 0 || x[i] > x[best]) best = i;
                }
              if (op === 'max' && best >= 0) out[best] += d;
            }
      return out;
    }
    const cases: [string, number[], number[], Padding2][] = [
      ['2x2 stride 2 pad 1', [2, 2], [2, 2], [[1, 1], [1, 1]]],
      ['3x3 stride 1 pad 1 (overlapping windows)', [3, 3], [1, 1], [[1, 1], [1, 1]]],
      ['2x3 stride 2x1 no pad', [2, 3], [2, 1], [[0, 0], [0, 0]]],
      ['2x2 stride 2 pad 2 (some windows entirely outside)', [2, 2], [2, 2], [[2, 2], [2, 2]]],
    ];
    for (const op of ['max', 'sum'] as const)
      for (const [label, win, str, pad] of cases)
        for (const C of [3, 8]) // scalar, and 4 channels per step
          it(`${op} ${label}, ${C} channels`, async () => {
            const shape = [2, 5, 5, C];
            const OH = Math.floor((5 + pad[0][0] + pad[0][1] - win[0]) / str[0]) + 1;
            const OW = Math.floor((5 + pad[1][0] + pad[1][1] - win[1]) / str[1]) + 1;
            const dyShape = [2, OH, OW, C];
            // small integers so windows have ties: the first maximum must win
            const x = Float32Array.from(rnd(numel(shape), 17, 0, 4), Math.floor);
            const dy = rnd(numel(dyShape), 18);
            const bufs: TBuf[] = [
              { dtype: 'f32', shape, data: x },
              { dtype: 'f32', shape: dyShape, data: dy },
              { dtype: 'f32', shape },
            ];
            const p = program(bufs, [{ kind: 'pool_grad', inputs: [0, 1], output: 2, shape, dtype: 'f32', op, window: win, strides: str, padding: pad, dyShape }]);
            const out = (await run(p, bufs))[2];
            expectClose(out, reference(op, x, dy, shape, dyShape, win, str, pad), 1e-6, 1e-6);
          });
  });

  describe('ALU ops', () => {
    const specials = [0, -0, 1, -1, 0.5, -0.5, 2.5, -3.75, 10, -20, 88, -88, -100, 1e-20, -1e-7, 3e38, -3e38, Infinity, -Infinity, NaN, 1e-40];
    const F = Float32Array.from([...specials, ...rnd(22, 19, -30, 30)]); // 43 values: vector body + tail of 3
    const G = Float32Array.from([...rnd(F.length - 9, 20, -5, 5), 0, -0, 2, 3, -3, 0.5, Infinity, -Infinity, NaN]);
    const I = Int32Array.from([0, 1, -1, 7, -7, 100, 2147483647, -2147483648, 3, -3, 13, 64, 5, -100, 12345, 9, 2, 0, -2147483648, 1 << 20, 33]);
    const J = Int32Array.from([3, 0, 5, 2, -2, 7, -1, -1, 3, 4, 0, 8, -5, 1, 100, 9, 2, 0, 2, 3, 5]);
    const n = F.length;
    const m = I.length;

    async function unary(ops: readonly UnOp[], data: ArrayLike<number>, dtype: DType): Promise<Arr[]> {
      const bufs: TBuf[] = [{ dtype, shape: [data.length], data }, ...ops.map(() => ({ dtype, shape: [data.length] }))];
      const p = program(bufs, ops.map((op, i) => ({ kind: 'elementwise' as const, inputs: [0], output: i + 1, shape: [data.length], dtype, expr: un(op, ld(0, idx(0), dtype), dtype) })));
      return (await run(p, bufs)).slice(1);
    }

    it('f32 unary: neg sqrt recip abs exact; exp log tanh within 1e-6', async () => {
      const ops: UnOp[] = ['neg', 'sqrt', 'recip', 'exp', 'log', 'tanh', 'abs'];
      const out = await unary(ops, F, 'f32');
      const f = (fn: (v: number) => number) => Float32Array.from(F, (v) => Math.fround(fn(v)));
      expectExact(out[0], f((v) => -v), 'neg');
      expectExact(out[1], f(Math.sqrt), 'sqrt');
      expectExact(out[2], f((v) => 1 / v), 'recip');
      // 1e-6 relative, or one f32 subnormal step where the result underflows
      expectClose(out[3], Array.from(F, Math.exp), 1e-6, 1.5e-45, 'exp');
      expectClose(out[4], Array.from(F, Math.log), 1e-6, 0, 'log');
      expectClose(out[5], Array.from(F, Math.tanh), 1e-6, 0, 'tanh');
      expectExact(out[6], f(Math.abs), 'abs');
    });

    it('exp, log and tanh over a dense sweep stay within 1e-6 relative', async () => {
      const xs = Float32Array.from({ length: 4001 }, (_, i) => Math.fround(-87 + (175 * i) / 4000));
      const pos = Float32Array.from({ length: 4001 }, (_, i) => Math.fround(Math.pow(10, -30 + (60 * i) / 4000)));
      const small = Float32Array.from({ length: 2001 }, (_, i) => Math.fround((i - 1000) * 1e-3));
      const [e, , t] = await unary(['exp', 'log', 'tanh'], xs, 'f32');
      const [, l] = await unary(['exp', 'log'], pos, 'f32');
      const [, , ts] = await unary(['exp', 'log', 'tanh'], small, 'f32');
      expectClose(e, Array.from(xs, Math.exp), 1e-6, 0, 'exp');
      expectClose(t, Array.from(xs, Math.tanh), 1e-6, 0, 'tanh');
      expectClose(ts, Array.from(small, Math.tanh), 1e-6, 0, 'tanh near 0');
      expectClose(l, Array.from(pos, Math.log), 1e-6, 0, 'log');
    });

    it('exp and tanh give the same bits in the SIMD body and the scalar tail', async () => {
      const v = [0.1, -3.3, 17.2, 1e-6];
      const xs = Float32Array.from([...v, ...v, v[0], v[1], v[2]]); // 8 in vector lanes, 3 in the tail
      for (const out of await unary(['exp', 'tanh'], xs, 'f32')) {
        expectExact(out.slice(8), out.slice(0, 3));
        expectExact(out.slice(4, 8), out.slice(0, 4));
      }
    });

    it('i32 neg and abs (wrapping at INT_MIN) and bool not', async () => {
      const [neg, abs] = await unary(['neg', 'abs'], I, 'i32');
      expectExact(neg, Int32Array.from(I, (v) => -v | 0), 'ineg');
      expectExact(abs, Int32Array.from(I, (v) => Math.abs(v) | 0), 'iabs');
      const b = Float32Array.from([0, 1, 1, 0, 0, 1, 1]);
      const [not] = await unary(['not'], b, 'bool');
      expectExact(not, Int32Array.from(b, (v) => (v ? 0 : 1)), 'not');
    });

    async function binary(ops: readonly BinOp[], a: ArrayLike<number>, b: ArrayLike<number>, dt: DType, outDt: (op: BinOp) => DType, bConst?: number): Promise<Arr[]> {
      const len = a.length;
      const bufs: TBuf[] = [{ dtype: dt, shape: [len], data: a }, { dtype: dt, shape: [len], data: b }, ...ops.map((op) => ({ dtype: outDt(op), shape: [len] }))];
      const rhs = bConst === undefined ? ld(1, idx(0), dt) : { k: 'const' as const, dtype: dt, value: bConst };
      const p = program(bufs, ops.map((op, i) => ({ kind: 'elementwise' as const, inputs: [0, 1], output: i + 2, shape: [len], dtype: outDt(op), expr: bin(op, ld(0, idx(0), dt), rhs, outDt(op)) })));
      return (await run(p, bufs)).slice(2);
    }
    const cmpDt = (op: BinOp): DType => (op === 'less' || op === 'equal' ? 'bool' : 'f32');

    it('f32 binary: add sub mul div max min exact, less equal, mod, pow within 1e-6', async () => {
      const ops: BinOp[] = ['add', 'sub', 'mul', 'div', 'max', 'min', 'less', 'equal', 'pow'];
      const [add, sub, mul, div, max, min, less, equal, pow] = await binary(ops, F, G, 'f32', cmpDt);
      const f = (fn: (x: number, y: number) => number) => Float32Array.from(F, (x, i) => Math.fround(fn(x, G[i])));
      expectExact(add, f((x, y) => x + y), 'add');
      expectExact(sub, f((x, y) => x - y), 'sub');
      expectExact(mul, f((x, y) => x * y), 'mul');
      expectExact(div, f((x, y) => x / y), 'div');
      expectExact(max, f(Math.max), 'max');
      expectExact(min, f(Math.min), 'min');
      expectExact(less, Int32Array.from(F, (x, i) => (x < G[i] ? 1 : 0)), 'less');
      expectExact(equal, Int32Array.from(F, (x, i) => (x === G[i] ? 1 : 0)), 'equal');
      expectClose(pow, Array.from(F, (x, i) => Math.pow(x, G[i])), 1e-6, 1.5e-45, 'pow');
      // pow's special cases, one by one
      const px = Float32Array.from([-2, -2, -8, 0, 0, -0, -0, NaN, 1, -1, 2, -Infinity, -Infinity, -Infinity, 0.5, 4, -2, 1e-3]);
      const py = Float32Array.from([3, 2, 1 / 3, 0, -1, 3, -3, 0, Infinity, Infinity, -0.5, 3, 0.5, -3, -Infinity, 0.5, -3, 7]);
      const [pw] = await binary(['pow'], px, py, 'f32', () => 'f32');
      expectClose(pw, Array.from(px, (x, i) => Math.pow(x, py[i])), 1e-6, 0, 'pow specials');
      for (let i = 0; i < px.length; i++) if (Math.pow(px[i], py[i]) === 0) expect(Object.is(pw[i], Math.pow(px[i], py[i]))).toBe(true);
      const ma = rnd(13, 21, -10, 10);
      const mb = Float32Array.from([3, -2.5, 0.75, 0, Infinity, 3, 1, 2, -4, 5, 0.25, 7, 1.5]);
      const [mod] = await binary(['mod'], ma, mb, 'f32', () => 'f32');
      expectClose(mod, Array.from(ma, (x, i) => Math.fround(x % mb[i])), 1e-6, 1e-6, 'fmod');
    });

    it('i32 binary: wrapping add sub mul, guarded div/mod, max min less equal', async () => {
      const ops: BinOp[] = ['add', 'sub', 'mul', 'div', 'mod', 'max', 'min', 'less', 'equal'];
      const outs = await binary(ops, I, J, 'i32', (op) => (op === 'less' || op === 'equal' ? 'bool' : 'i32'));
      const want: Record<string, (a: number, b: number) => number> = {
        add: (a, b) => (a + b) | 0,
        sub: (a, b) => (a - b) | 0,
        mul: Math.imul,
        div: (a, b) => (b === 0 ? 0 : Math.trunc(a / b) | 0),
        mod: (a, b) => (b === 0 ? 0 : a % b | 0),
        max: Math.max,
        min: Math.min,
        less: (a, b) => (a < b ? 1 : 0),
        equal: (a, b) => (a === b ? 1 : 0),
      };
      ops.forEach((op, k) => expectExact(outs[k], Int32Array.from(I, (a, i) => want[op](a, J[i])), `i32 ${op}`));
      // constant divisors (index arithmetic) take the plain instruction path
      const nonneg = Int32Array.from({ length: 19 }, (_, i) => i * 37);
      const [d3, m3] = await binary(['div', 'mod'], nonneg, nonneg, 'i32', () => 'i32', 3);
      expectExact(d3, Int32Array.from(nonneg, (v) => Math.floor(v / 3)), 'div 3');
      expectExact(m3, Int32Array.from(nonneg, (v) => v % 3), 'mod 3');
      const ba = [0, 1, 0, 1, 1, 0, 1, 1, 0];
      const bb = [0, 0, 1, 1, 1, 1, 0, 1, 0];
      const [and] = await binary(['and'], ba, bb, 'bool', () => 'bool');
      expectExact(and, ba.map((a, i) => a & bb[i]), 'and');
    });

    it('cast between f32, i32 and bool', async () => {
      const f = Float32Array.from([1.5, -1.5, 2.9, -2.9, NaN, 0, -0, 1e9, -1e9, 0.25, 7, -7, 3e-30]);
      const i = Int32Array.from([0, 1, -1, 5, -5, 123456789, 2147483647, -2147483648, 2, 0, 3, 4, -9]);
      const bl = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 0];
      const len = f.length;
      const bufs: TBuf[] = [
        { dtype: 'f32', shape: [len], data: f },
        { dtype: 'i32', shape: [len], data: i },
        { dtype: 'bool', shape: [len], data: bl },
        { dtype: 'i32', shape: [len] },
        { dtype: 'bool', shape: [len] },
        { dtype: 'f32', shape: [len] },
        { dtype: 'bool', shape: [len] },
        { dtype: 'f32', shape: [len] },
        { dtype: 'i32', shape: [len] },
      ];
      const k = (input: number, from: DType, output: number, to: DType): KSpec => ({ kind: 'elementwise', inputs: [input], output, shape: [len], dtype: to, expr: cast(ld(0, idx(0), from), to) });
      const p = program(bufs, [k(0, 'f32', 3, 'i32'), k(0, 'f32', 4, 'bool'), k(1, 'i32', 5, 'f32'), k(1, 'i32', 6, 'bool'), k(2, 'bool', 7, 'f32'), k(2, 'bool', 8, 'i32')]);
      const out = await run(p, bufs);
      expectExact(out[3], Int32Array.from(f, (v) => Math.trunc(v) | 0), 'f32->i32');
      expectExact(out[4], Int32Array.from(f, (v) => (v !== 0 ? 1 : 0)), 'f32->bool');
      expectExact(out[5], Float32Array.from(i, (v) => Math.fround(v)), 'i32->f32');
      expectExact(out[6], Int32Array.from(i, (v) => (v !== 0 ? 1 : 0)), 'i32->bool');
      expectExact(out[7], Float32Array.from(bl), 'bool->f32');
      expectExact(out[8], Int32Array.from(bl), 'bool->i32');
    });

    it('select on f32 and i32, and iota through cast(idx)', async () => {
      const a = rnd(m, 22);
      const b = rnd(m, 23);
      const bufs: TBuf[] = [
        { dtype: 'f32', shape: [m], data: a },
        { dtype: 'f32', shape: [m], data: b },
        { dtype: 'i32', shape: [m], data: I },
        { dtype: 'f32', shape: [m] },
        { dtype: 'i32', shape: [m] },
        { dtype: 'f32', shape: [3, 6] },
      ];
      const p = program(bufs, [
        { kind: 'elementwise', inputs: [0, 1], output: 3, shape: [m], dtype: 'f32', expr: sel(bin('less', ld(0, idx(0)), ld(1, idx(0)), 'bool'), ld(0, idx(0)), bin('mul', ld(1, idx(0)), cF(2))) },
        { kind: 'elementwise', inputs: [2], output: 4, shape: [m], dtype: 'i32', expr: sel(bin('less', ld(0, idx(0), 'i32'), cI(5), 'bool'), cI(-1), ld(0, idx(0), 'i32'), 'i32') },
        { kind: 'elementwise', inputs: [], output: 5, shape: [3, 6], dtype: 'f32', expr: cast(iadd(imul(idx(0), 10), idx(1)), 'f32') },
      ]);
      const out = await run(p, bufs);
      expectExact(out[3], Float32Array.from(a, (x, i) => (x < b[i] ? x : Math.fround(b[i] * 2))), 'select f32');
      expectExact(out[4], Int32Array.from(I, (x) => (x < 5 ? -1 : x)), 'select i32');
      expectExact(out[5], Float32Array.from({ length: 18 }, (_, f) => Math.floor(f / 6) * 10 + (f % 6)), 'iota');
    });

    it('rand reproduces uniformAt bit for bit (vector and scalar paths)', async () => {
      const seeds = [0, 1234, 0xdeadbeef];
      const [H, W] = [3, 10];
      const bufs: TBuf[] = [{ dtype: 'i32', shape: [H], data: [5, -7, 2147483647] }, ...seeds.map(() => ({ dtype: 'f32' as const, shape: [H, W] }))];
      const p = program(bufs, seeds.map((seed, s) => ({ kind: 'elementwise' as const, inputs: [0], output: s + 1, shape: [H, W], dtype: 'f32' as const, expr: { k: 'rand' as const, seed, key: ld(0, idx(0), 'i32'), index: lin([H, W]), dtype: 'f32' as const } })));
      const out = await run(p, bufs);
      const keys = [5, -7, 2147483647];
      seeds.forEach((seed, s) => expectExact(out[s + 1], Float32Array.from({ length: H * W }, (_, f) => uniformAt(seed, keys[Math.floor(f / W)], f)), `seed ${seed}`));
      // key varying along the lane too
      const b2: TBuf[] = [{ dtype: 'f32', shape: [9] }];
      const p2 = program(b2, [{ kind: 'elementwise', inputs: [], output: 0, shape: [9], dtype: 'f32', expr: { k: 'rand', seed: 42, key: idx(0), index: cI(3), dtype: 'f32' } }]);
      expectExact((await run(p2, b2))[0], Float32Array.from({ length: 9 }, (_, i) => uniformAt(42, i, 3)), 'key per lane');
    });
  });

  it('runs kernels in order inside one call (elementwise -> matmul -> reduce)', async () => {
    const [M, K, N] = [6, 5, 9];
    const x = rnd(M * K, 24);
    const w = rnd(K * N, 25);
    const bufs: TBuf[] = [
      { dtype: 'f32', shape: [M, K], data: x },
      { dtype: 'f32', shape: [K, N], data: w },
      { dtype: 'f32', shape: [M, K] },
      { dtype: 'f32', shape: [1, M, N] },
      { dtype: 'f32', shape: [] },
    ];
    const p = program(bufs, [
      { kind: 'elementwise', inputs: [0], output: 2, shape: [M, K], dtype: 'f32', expr: bin('mul', ld(0, lin([M, K])), cF(2)) },
      { kind: 'matmul', inputs: [2, 1], output: 3, shape: [1, M, N], dtype: 'f32', k: K, a: { input: 0, offset: 0, strides: [0, K, 1] }, b: { input: 1, offset: 0, strides: [0, N, 1] }, epilogue: un('tanh', ACC) },
      { kind: 'reduce', op: 'sum', inputs: [3], output: 4, shape: [], rshape: [M * N], dtype: 'f32', body: ld(0, ridx(0)), epilogue: ACC },
    ]);
    const out = await run(p, bufs);
    let want = 0;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let q = 0; q < K; q++) acc += 2 * x[i * K + q] * w[q * N + j];
        want += Math.tanh(acc);
      }
    expectClose(out[4], [want], 1e-5, 1e-5);
  });
});

describe('module properties', () => {
  const bufs: TBuf[] = [{ dtype: 'f32', shape: [4, 9] }, { dtype: 'f32', shape: [9, 4] }, { dtype: 'f32', shape: [1, 4, 4] }];
  const p = program(bufs, [
    { kind: 'matmul', inputs: [0, 1], output: 2, shape: [1, 4, 4], dtype: 'f32', k: 9, a: { input: 0, offset: 0, strides: [0, 9, 1] }, b: { input: 1, offset: 0, strides: [0, 4, 1] }, epilogue: un('exp', ACC) },
  ]);

  it('is deterministic: the same program gives byte-identical wasm', () => {
    const a = emitWasm(p, planOf(p), { relaxedSimd: true });
    const b = emitWasm(p, planOf(p), { relaxedSimd: true });
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(emitWat(p, planOf(p), { relaxedSimd: true })).toContain('f32x4.relaxed_madd');
    expect(emitWat(p, planOf(p), { relaxedSimd: false })).not.toContain('relaxed');
  });

  it('exports memory, run and one k<i> per kernel (for traces), imports nothing', async () => {
    const mod = await WebAssembly.compile(emitWasm(p, planOf(p), { relaxedSimd: false }) as Uint8Array<ArrayBuffer>);
    expect(WebAssembly.Module.imports(mod)).toEqual([]);
    expect(WebAssembly.Module.exports(mod).map((e) => e.name).sort()).toEqual([...p.kernels.map((_, i) => `k${i}`), 'memory', 'run']);
  });

  it('names the kernel when the module does not validate', () => {
    const bad = program([{ dtype: 'f32', shape: [3] }, { dtype: 'f32', shape: [3] }], [
      // an ill-typed tree: an f32 add over an i32 operand (scalar code, where the types clash)
      { kind: 'elementwise', name: 'E_3_broken', inputs: [0], output: 1, shape: [3], dtype: 'f32', expr: bin('add', ld(0, idx(0)), idx(0)) },
    ]);
    expect(() => emitWasm(bad, planOf(bad), { relaxedSimd: false })).toThrow(/E_3_broken/);
  });

  it('before loadBinaryen() resolved, emitWasm and emitWat throw naming it; wasmMemoryBytes needs no binaryen', async () => {
    // A fresh copy of the code generator, whose binaryen bindings were never filled.
    vi.resetModules();
    const fresh = await import('../compiler/codegen/wasm.ts');
    expect(() => fresh.emitWasm(p, planOf(p), { relaxedSimd: false })).toThrow(/emitWasm: binaryen is not loaded; await loadBinaryen\(\)/);
    expect(() => fresh.emitWat(p, planOf(p), { relaxedSimd: false })).toThrow(/emitWat: .*loadBinaryen\(\)/);
    expect(fresh.wasmMemoryBytes(p, planOf(p), 2)).toBe(wasmMemoryBytes(p, planOf(p), 2));
    await fresh.loadBinaryen();
    expect(Buffer.from(fresh.emitWasm(p, planOf(p), { relaxedSimd: false })).equals(Buffer.from(emitWasm(p, planOf(p), { relaxedSimd: false })))).toBe(true);
  });
});
