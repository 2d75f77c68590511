/**
 * @file Matmul kernels: a 4x8 register-tiled micro-kernel (8 v128 accumulators) over A and B packed
 * into panels in scratch memory after the plan's arena; the epilogue runs on the accumulators (SIMD
 * when it vectorises along n).
 */
import { binaryen } from './binaryen.ts';
import type { MemoryPlan } from '../../kernel/plan.ts';
import type { MatmulKernel, Program } from '../../kernel/types.ts';
import { F32, I32, V128, type Fn, type KernelEnv, type Ref } from './core.ts';
import { Unit } from './unit.ts';

/**
 * binaryen.js has the op id but no wrapper for relaxed madd; the C API entry point is exported. Looked
 * up per call: binaryen is loaded on demand (wasm/binaryen.ts), so it is not there at module scope.
 */
const simdTernary = (m: number, op: number, a: Ref, b: Ref, c: Ref): Ref =>
  (binaryen as unknown as { _BinaryenSIMDTernary(m: number, op: number, a: Ref, b: Ref, c: Ref): Ref })._BinaryenSIMDTernary(m, op, a, b, c);

// ---- tiling parameters ----
/** Rows of the register tile: one v128 of packed A holds the MR values of a k step. */
const MR = 4;
/** v128 columns of the register tile; the tile is MR x 4*NV floats (4x8: 8 accumulators + 2 B + 2 A registers). */
const NV = 2;
const NR = 4 * NV;
/**
 * k-loop unroll factor. 1 is fastest on V8 (measured): with unrolling, TurboFan schedules every
 * load of the body first, and the extra live registers spill inside the hot loop.
 */
const KU = 1;

// ---- scratch memory ----

export interface Scratch {
  /** MR x NR f32 tile for scalar epilogues. */
  readonly tile: number;
  /** Packed B panels [ceil(N/NR)][K][NR]. */
  readonly packB: number;
  /** Packed A panels [ceil(M/MR)][K][MR]. */
  readonly packA: number;
  readonly end: number;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Whether a matmul packs B into NR-wide panels. Packing costs K*N copies per batch, small against
 * the M*N*K multiply-adds unless M is small; it is required when B's rows are not contiguous or N
 * is not a multiple of NR (the zero-padded last panel then takes the same micro-kernel).
 */
function packsB(k: MatmulKernel): boolean {
  const [, M, N] = k.shape;
  const [, s1, s2] = k.b.strides;
  const direct = s2 === 1 && s1 >= 0 && N % NR === 0;
  return !direct || M > 4 * MR;
}

/** Loop order: rows (A panels) outside when A is the larger operand. */
const rowsOuter = (k: MatmulKernel) => k.shape[1] >= k.shape[2];

export function planScratch(p: Program, plan: MemoryPlan): Scratch {
  let bBytes = 0;
  let aBytes = 0;
  for (const k of p.kernels) {
    if (k.kind !== 'matmul') continue;
    const [, M, N] = k.shape;
    // the outer operand needs one panel, the inner one all of its panels
    if (packsB(k)) bBytes = Math.max(bBytes, (rowsOuter(k) ? Math.ceil(N / NR) : 1) * NR * k.k * 4);
    aBytes = Math.max(aBytes, (rowsOuter(k) ? 1 : Math.ceil(M / MR)) * MR * k.k * 4);
  }
  const tile = align(plan.totalBytes, 64);
  const packB = tile + align(MR * NR * 4, 64);
  const packA = packB + align(bBytes, 64);
  return { tile, packB, packA, end: packA + align(aBytes, 64) };
}

/**
 * out[b,m,n] = epilogue(acc), acc = sum_k A[b,m,k] B[b,k,n]. A is packed into MR-row panels laid
 * out [k][MR] (zero rows past M) and B into NR-column panels [k][NR] (zero columns past N; skipped
 * when B rows are contiguous and M is small). The larger operand's panel is the outer loop and is
 * packed just before use, so it stays in L1 while the smaller operand (packed whole, once per
 * batch) streams from L2: A is re-read N/NR times, or B M/MR times, never both large. The
 * micro-kernel keeps the MR x NR tile in MR*NV v128 accumulators: per k one v128 load gives the
 * MR values of A, each broadcast with a lane shuffle, NV loads give B's row, and MR*NV
 * multiply-adds follow. Both operands stream sequentially with small constant offsets, which keeps
 * V8's register allocator from spilling (offsets of a few KiB each take a register).
 */
export function matmulKernel(env: KernelEnv, k: MatmulKernel, fn: Fn): Ref {
  const { m, alu, scratch } = env;
  const [Bt, M, N] = k.shape;
  const K = k.k;
  const outAddr = env.addr(k.output);
  const packB = packsB(k);
  const mOuter = rowsOuter(k);
  const [sa0, sa1, sa2] = k.a.strides;
  const [sb0, sb1, sb2] = k.b.strides;
  // B row kk of a panel at pb + kk*bK bytes.
  const bK = packB ? NR * 4 : sb1 * 4;

  const [cb, cm, cn, ck, aB, bB, pa, pb, ps, pd, panel, oT] = Array.from({ length: 12 }, () => fn.local(I32));
  const accs = Array.from({ length: MR }, () => Array.from({ length: NV }, () => fn.local(V128)));
  const bv = Array.from({ length: NV }, () => fn.local(V128));
  const a4 = fn.local(V128);
  const av = fn.local(V128);
  const i32c = (v: number) => m.i32.const(v);
  const add = (a: Ref, b: Ref) => m.i32.add(a, b);
  const mul = (a: Ref, c: number) => m.i32.mul(a, i32c(c));
  /** f32 load at ptr + off bytes (off may be negative for reversed views). */
  const loadAt = (ptr: Ref, off: number) => (off >= 0 ? m.f32.load(off, 4, ptr) : m.f32.load(0, 4, add(ptr, i32c(off))));

  // -- epilogue units: vector along n on full-width tiles, scalar otherwise --
  const tile = { r: 0, v: 0 };
  const rr = fn.local(I32);
  const cc = fn.local(I32);
  const accS = fn.local(F32);
  const vecCtx = env.ctxFor(k, (a) => (a === 0 ? fn.get(cb) : a === 1 ? add(fn.get(cm), i32c(tile.r)) : add(fn.get(cn), i32c(4 * tile.v))), {
    accVec: () => fn.get(accs[tile.r][tile.v]),
  });
  const sclCtx = env.ctxFor(k, (a) => (a === 0 ? fn.get(cb) : a === 1 ? add(fn.get(cm), fn.get(rr)) : add(fn.get(cn), fn.get(cc))), {
    acc: () => fn.get(accS),
  });
  const epiVec = new Unit(alu, fn, k.epilogue, { grid: k.shape, axisBits: [], laneAxis: 2, accVector: true }, vecCtx);
  const epiScl = new Unit(alu, fn, k.epilogue, { grid: k.shape, axisBits: [], laneAxis: -1 }, sclCtx);

  const fma = (a: Ref, b: Ref, c: Ref) =>
    env.opts.relaxedSimd ? simdTernary(m.ptr, binaryen.RelaxedMaddVecF32x4, a, b, c) : m.f32x4.add(m.f32x4.mul(a, b), c);
  const laneSplat = (r: number) => Array.from({ length: 16 }, (_, i) => 4 * r + (i % 4));

  /** One k step at byte offsets u*MR*4 (A) and u*bK (B) from pa/pb. */
  const kStep = (u: number): Ref[] => {
    const s: Ref[] = [fn.set(a4, m.v128.load(u * MR * 4, 16, fn.get(pa)))];
    for (let v = 0; v < NV; v++) s.push(fn.set(bv[v], m.v128.load(u * bK + 16 * v, packB ? 16 : 4, fn.get(pb))));
    for (let r = 0; r < MR; r++) {
      s.push(fn.set(av, m.i8x16.shuffle(fn.get(a4), fn.get(a4), laneSplat(r))));
      for (let v = 0; v < NV; v++) s.push(fn.set(accs[r][v], fma(fn.get(av), fn.get(bv[v]), fn.get(accs[r][v]))));
    }
    return s;
  };

  /** Accumulate the tile of the current A panel (row cm) and B panel (column cn). */
  const micro = (): Ref[] => {
    const s: Ref[] = [];
    for (let r = 0; r < MR; r++) for (let v = 0; v < NV; v++) s.push(fn.set(accs[r][v], m.v128.const(new Array(16).fill(0))));
    if (K === 0) return s;
    s.push(fn.set(pa, mOuter ? env.scratchAt(scratch.packA) : add(env.scratchAt(scratch.packA), mul(fn.get(cm), K * 4))), fn.set(pb, fn.get(panel)));
    const full = Math.floor(K / KU);
    if (full > 0) {
      const body: Ref[] = [];
      for (let u = 0; u < KU; u++) body.push(...kStep(u));
      body.push(fn.bump(pa, KU * MR * 4), fn.bump(pb, KU * bK));
      s.push(fn.loop(ck, 0, full, 1, body));
    }
    for (let u = 0; u < K % KU; u++) s.push(...kStep(u));
    return s;
  };

  /** Write the first R rows and W columns of the tile through the epilogue. */
  const store = (R: number, W: number): Ref[] => {
    const s: Ref[] = [fn.set(oT, add(i32c(outAddr), m.i32.shl(add(mul(add(mul(fn.get(cb), M), fn.get(cm)), N), fn.get(cn)), i32c(2))))];
    if (W === NR && epiVec.ok) {
      for (let r = 0; r < R; r++)
        for (let v = 0; v < NV; v++) {
          tile.r = r;
          tile.v = v;
          s.push(...epiVec.stmts(0), m.v128.store(r * N * 4 + 16 * v, 4, fn.get(oT), epiVec.value('f32')));
        }
      return s;
    }
    for (let r = 0; r < R; r++) for (let v = 0; v < NV; v++) s.push(m.v128.store((r * NR + 4 * v) * 4, 16, env.scratchAt(scratch.tile), fn.get(accs[r][v])));
    const elem = [
      fn.set(accS, m.f32.load(0, 4, add(env.scratchAt(scratch.tile), m.i32.shl(add(mul(fn.get(rr), NR), fn.get(cc)), i32c(2))))),
      ...epiScl.stmts(0),
      m.f32.store(0, 4, add(fn.get(oT), m.i32.shl(add(mul(fn.get(rr), N), fn.get(cc)), i32c(2))), epiScl.value('f32')),
    ];
    s.push(fn.loop(rr, 0, R, 1, [fn.loop(cc, 0, W, 1, elem)]));
    return s;
  };

  /** Loop `ctr` over full tiles of `size`, then the remainder tile (its valid size passed to `each`). */
  const tiles = (ctr: number, extent: number, size: number, each: (valid: number) => Ref[]): Ref[] => {
    const full = extent - (extent % size);
    const s: Ref[] = [];
    if (full > 0) s.push(fn.loop(ctr, 0, full, size, each(size)));
    if (extent % size) s.push(fn.set(ctr, i32c(full)), ...each(extent % size));
    return s;
  };
  /**
   * `tiles` for the outer operand, split across threads in a threaded module: tile t of the
   * ⌈extent/size⌉ (the last one partial) goes to the thread whose share holds t. Each thread packs
   * the inner operand into its own scratch, so a split matmul repeats that O(K·inner) copy per thread;
   * it is split only from 64K multiply-adds up (SPLIT_MIN_WORK counts elements, about 8 MACs each).
   */
  const outerTiles = (ctr: number, extent: number, size: number, each: (valid: number) => Ref[]): Ref[] => {
    const full = Math.floor(extent / size);
    const rem = extent % size;
    const sh = env.share(fn, full + (rem ? 1 : 0), (Bt * M * N * K) / 8);
    if (!sh) return tiles(ctr, extent, size, each);
    const t = fn.local(I32);
    const body = [fn.set(ctr, mul(fn.get(t), size)), ...(rem ? [m.if(m.i32.lt_s(fn.get(t), i32c(full)), m.block(null, each(size)), m.block(null, each(rem)))] : each(size))];
    return [...sh.init, fn.loopShare(t, sh.share, body)];
  };
  // A panels [M/MR][K][MR], written in order (pd walks the scratch); ps walks row cm of A along k.
  const lanes = (l: number[]) => l.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]);
  const aPanel = (R: number): Ref[] => {
    const s: Ref[] = [fn.set(ps, add(fn.get(aB), mul(fn.get(cm), sa1 * 4)))];
    const scalarCols = (from: number): Ref[] =>
      from >= K ? [] : [fn.loop(ck, from, K, 1, [
        ...Array.from({ length: MR }, (_, r) => m.f32.store(4 * r, 4, fn.get(pd), r < R ? loadAt(fn.get(ps), r * sa1 * 4) : m.f32.const(0))),
        fn.bump(ps, sa2 * 4),
        fn.bump(pd, MR * 4),
      ])];
    if (R === MR && sa1 === 1 && sa2 >= 0) {
      // transposed A (e.g. X^T in a weight gradient): the MR values of a k step are adjacent
      s.push(fn.loop(ck, 0, K, 1, [m.v128.store(0, 16, fn.get(pd), m.v128.load(0, 4, fn.get(ps))), fn.bump(ps, sa2 * 4), fn.bump(pd, MR * 4)]));
    } else if (R === MR && sa2 === 1 && sa1 >= 0 && K >= 4) {
      // row-major A: 4 rows x 4 k at a time, transposed in registers (unpack lo/hi pairs)
      const row = (r: number) => m.v128.load(r * sa1 * 4, 4, fn.get(ps));
      const [t0, t1, t2, t3] = [fn.local(V128), fn.local(V128), fn.local(V128), fn.local(V128)];
      const sh = (x: Ref, y: Ref, l: number[]) => m.i8x16.shuffle(x, y, lanes(l));
      const K4 = K - (K % 4);
      s.push(fn.loop(ck, 0, K4, 4, [
        fn.set(t0, sh(row(0), row(1), [0, 4, 1, 5])),
        fn.set(t1, sh(row(2), row(3), [0, 4, 1, 5])),
        fn.set(t2, sh(row(0), row(1), [2, 6, 3, 7])),
        fn.set(t3, sh(row(2), row(3), [2, 6, 3, 7])),
        m.v128.store(0, 16, fn.get(pd), sh(fn.get(t0), fn.get(t1), [0, 1, 4, 5])),
        m.v128.store(16, 16, fn.get(pd), sh(fn.get(t0), fn.get(t1), [2, 3, 6, 7])),
        m.v128.store(32, 16, fn.get(pd), sh(fn.get(t2), fn.get(t3), [0, 1, 4, 5])),
        m.v128.store(48, 16, fn.get(pd), sh(fn.get(t2), fn.get(t3), [2, 3, 6, 7])),
        fn.bump(ps, 16),
        fn.bump(pd, 4 * MR * 4),
      ]), ...scalarCols(K4));
    } else s.push(...scalarCols(0));
    return s;
  };
  // B panels [N/NR][K][NR], zero-padded past N; ps walks row k of the panel's columns.
  const copyRow = (W: number): Ref[] => {
    if (W === NR && sb2 === 1) return Array.from({ length: NV }, (_, v) => m.v128.store(16 * v, 16, fn.get(pd), m.v128.load(16 * v, 4, fn.get(ps))));
    return Array.from({ length: NR }, (_, j) => m.f32.store(4 * j, 4, fn.get(pd), j < W ? loadAt(fn.get(ps), j * sb2 * 4) : m.f32.const(0)));
  };
  const bPanel = (W: number): Ref[] => [
    fn.set(ps, add(fn.get(bB), mul(fn.get(cn), sb2 * 4))),
    fn.loop(ck, 0, K, 1, [...copyRow(W), fn.bump(ps, sb1 * 4), fn.bump(pd, NR * 4)]),
  ];
  const setPanel = () =>
    fn.set(panel, !packB ? add(fn.get(bB), m.i32.shl(fn.get(cn), i32c(2))) : mOuter ? add(env.scratchAt(scratch.packB), mul(fn.get(cn), K * 4)) : env.scratchAt(scratch.packB));
  if (!packB && N % NR) throw new Error(`wasm codegen: ${k.name}: unpacked B needs N % ${NR} == 0`);
  const perBatch: Ref[] = [
    fn.set(aB, add(i32c(env.addr(k.inputs[k.a.input]) + k.a.offset * 4), mul(fn.get(cb), sa0 * 4))),
    fn.set(bB, add(i32c(env.addr(k.inputs[k.b.input]) + k.b.offset * 4), mul(fn.get(cb), sb0 * 4))),
  ];
  const pack = K > 0;
  if (mOuter) {
    // all of B packed once; each A panel packed just before its row of tiles (it stays in L1)
    if (packB && pack) perBatch.push(fn.set(pd, env.scratchAt(scratch.packB)), ...tiles(cn, N, NR, bPanel));
    perBatch.push(...outerTiles(cm, M, MR, (R) => [
      ...(pack ? [fn.set(pd, env.scratchAt(scratch.packA)), ...aPanel(R)] : []),
      ...tiles(cn, N, NR, (W) => [setPanel(), ...micro(), ...store(R, W)]),
    ]));
  } else {
    // all of A packed once; each B panel packed just before its column of tiles
    if (pack) perBatch.push(fn.set(pd, env.scratchAt(scratch.packA)), ...tiles(cm, M, MR, aPanel));
    perBatch.push(...outerTiles(cn, N, NR, (W) => [
      ...(packB && pack ? [fn.set(pd, env.scratchAt(scratch.packB)), ...bPanel(W)] : []),
      setPanel(),
      ...tiles(cm, M, MR, (R) => [...micro(), ...store(R, W)]),
    ]));
  }
  return fn.loop(cb, 0, Bt, 1, perBatch);
}
