/**
 * @file WebAssembly code generation: one module per `Program`, built with binaryen.
 *
 * The module defines and exports its memory (`memory`, fixed size: the plan's arena plus scratch) and
 * exports one function, `run()`, which calls every kernel of the program in order; each kernel is an
 * internal function with its buffers' byte addresses baked in as constants, so a whole step is one
 * call with no JS between kernels. Nothing is imported: exp/log/tanh/pow are Wasm helper functions
 * computing in f64 with range reduction and short polynomials (relative error below 1e-11 before
 * the final rounding to f32; exp and tanh also have f64x2 SIMD versions doing the same operations
 * per lane, so vector and scalar code agree bit for bit), and `rand` reproduces ir/random.ts
 * exactly (the murmur3 finalizer in i32 arithmetic, scalar or 4 lanes).
 *
 * Memory layout: every element is 4 bytes. f32 is f32, i32 is i32, and bool is an i32 holding 0 or
 * 1 (4 bytes rather than 1 so that every dtype shares one addressing scheme and one SIMD lane width).
 * Scratch for matmul packing lives after `plan.totalBytes`, which the plan must not overlap.
 *
 * Kernels:
 *  - elementwise: loops over the grid, innermost axis last. The innermost loop runs 4 lanes at a time
 *    in SIMD128 when every load whose index varies along that axis is contiguous (index = base +
 *    idx_last); loads that do not vary are scalar and broadcast; any other load (a gather) makes the
 *    whole kernel scalar. A scalar tail handles an extent that is not a multiple of 4. An innermost
 *    axis that is a flattened product read through / and % (im2col) is split first when that makes
 *    it contiguous.
 *  - reduce: the same, with the reduction loops inside the (possibly 4-lane) element; accumulator 0
 *    (sum) or -Infinity (max) in f32, then the epilogue.
 *  - matmul: a 4x8 register-tiled micro-kernel (8 v128 accumulators) over A and B packed into
 *    panels in scratch; the epilogue runs on the accumulators (SIMD when it vectorises along n).
 *  - pool_grad: a scatter into the zeroed output, 4 channels at a time when C % 4 == 0.
 *
 * Expression emission does loop-invariant hoisting, common-subexpression caching and reassociation
 * of index sums (a `Unit` plans which nodes live in locals at which loop level). A load inside a
 * `select` arm whose index is not provably in range (padding, concat) is only evaluated when chosen
 * (an `if`) and never hoisted. Codegen is deterministic: the same program and options give
 * byte-identical wasm.
 */
import binaryen from 'binaryen';
import { RNG_GOLDEN, RNG_KEY_MUL } from '../../ir/random.ts';
import { numel, type DType, type Shape } from '../../ir/types.ts';
import type { MemoryPlan } from '../kernel/plan.ts';
import type { BinOp, ElementwiseKernel, Expr, Kernel, MatmulKernel, PoolGradKernel, Program, ReduceKernel, UnOp } from '../kernel/types.ts';

export interface WasmOptions {
  /** Use f32x4.relaxed_madd in the matmul micro-kernel (needs engine support; see runtime/wasm.ts). */
  readonly relaxedSimd: boolean;
}

type Ref = binaryen.ExpressionRef;
type Ty = binaryen.Type;
type Mod = binaryen.Module;

const I32 = binaryen.i32;
const I64 = binaryen.i64;
const F32 = binaryen.f32;
const F64 = binaryen.f64;
const V128 = binaryen.v128;
const NONE = binaryen.none;

/** binaryen.js has the op id but no wrapper for relaxed madd; the C API entry point is exported. */
const simdTernary = (binaryen as unknown as { _BinaryenSIMDTernary(m: number, op: number, a: Ref, b: Ref, c: Ref): Ref })._BinaryenSIMDTernary;

// ---- matmul tiling parameters ----
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

// ---- small utilities ----

function kids(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'load':
      return [e.index];
    case 'un':
    case 'cast':
      return [e.a];
    case 'bin':
      return [e.a, e.b];
    case 'select':
      return [e.c, e.a, e.b];
    case 'rand':
      return [e.key, e.index];
    default:
      return [];
  }
}

/** `e` with its children replaced (same order as `kids`). */
function withKids(e: Expr, c: readonly Expr[]): Expr {
  switch (e.k) {
    case 'load':
      return { ...e, index: c[0] };
    case 'un':
    case 'cast':
      return { ...e, a: c[0] };
    case 'bin':
      return { ...e, a: c[0], b: c[1] };
    case 'select':
      return { ...e, c: c[0], a: c[1], b: c[2] };
    case 'rand':
      return { ...e, key: c[0], index: c[1] };
    default:
      return e;
  }
}

function dtypeOf(e: Expr): DType {
  return e.k === 'idx' || e.k === 'ridx' ? 'i32' : e.k === 'acc' ? 'f32' : e.dtype;
}

const scalarTy = (dt: DType): Ty => (dt === 'f32' ? F32 : I32);

function v128Bytes(lanes: ArrayLike<number>, dt: DType): number[] {
  const buf = new ArrayBuffer(16);
  if (dt === 'f32') new Float32Array(buf).set(lanes);
  else new Int32Array(buf).set(lanes);
  return Array.from(new Uint8Array(buf));
}

/** Locals and labels of one function under construction (functions here take no parameters). */
class Fn {
  readonly vars: Ty[] = [];
  private nLabels = 0;
  constructor(readonly m: Mod) {}
  local(t: Ty): number {
    return this.vars.push(t) - 1;
  }
  get(i: number): Ref {
    return this.m.local.get(i, this.vars[i]);
  }
  set(i: number, v: Ref): Ref {
    return this.m.local.set(i, v);
  }
  /** local[i] += c (i32). */
  bump(i: number, c: number): Ref {
    return this.set(i, this.m.i32.add(this.get(i), this.m.i32.const(c)));
  }
  /** for (counter = from; counter < to; counter += step) body, as a do-while: callers guarantee from < to. */
  loop(counter: number, from: number | Ref, to: number, step: number, body: readonly Ref[]): Ref {
    const m = this.m;
    const l = `L${this.nLabels++}`;
    const init = typeof from === 'number' ? m.i32.const(from) : from;
    return m.block(null, [
      this.set(counter, init),
      m.loop(l, m.block(null, [...body, this.bump(counter, step), m.br(l, m.i32.lt_s(this.get(counter), m.i32.const(to)))])),
    ]);
  }
}

/** Reductions over at most this many elements are unrolled (see `reduce`). */
const REDUCE_UNROLL_MAX = 16;

/** Loop nest over `extents` with `counters`; `pre(l)` runs at the top of level l (l = 0: before all loops). */
function nest(fn: Fn, extents: readonly number[], counters: readonly number[], pre: (l: number) => Ref[], inner: Ref[]): Ref[] {
  let body = inner;
  for (let a = extents.length - 1; a >= 0; a--) body = [...pre(a), fn.loop(counters[a], 0, extents[a], 1, body)];
  return body;
}

// ---- helper functions inside the module (transcendentals, guarded integer ops, rng) ----

const INV_LN2 = 1.4426950408889634;
const LN2_HI = 6.9314718036912381649e-1; // fdlibm split: k*LN2_HI is exact for |k| < 2^11
const LN2_LO = 1.9082149292705877e-10;
const LN2 = 0.6931471805599453;
const SQRT2 = 1.4142135623730951;
/** 1.5 * 2^52: adding it rounds an f64 below 2^51 in magnitude to an integer (ties to even, like nearest), kept in the low mantissa bits. */
const ROUND_MAGIC = 6755399441055744;
const invFact = (n: number): number => (n <= 1 ? 1 : invFact(n - 1) / n);

type HelperName =
  | 'expd' | 'tanhd' | 'logd' | 'powd'
  | 'exp' | 'log' | 'tanh' | 'pow' | 'fmod'
  | 'idiv' | 'irem' | 'imax' | 'imin'
  | 'fmix' | 'rand' | 'fmix4' | 'rand4'
  | 'exp4' | 'log4' | 'tanh4' | 'pow4' | 'fmod4' | 'idiv4' | 'irem4';

/**
 * f64 arithmetic on a scalar or on both lanes of an f64x2. exp and tanh are written once against
 * this interface, so the SIMD versions perform exactly the scalar operations per lane and a vector
 * body and its scalar tail give bit-identical results.
 */
interface F64Ops {
  readonly ty: Ty;
  c(v: number): Ref;
  add(a: Ref, b: Ref): Ref;
  sub(a: Ref, b: Ref): Ref;
  mul(a: Ref, b: Ref): Ref;
  div(a: Ref, b: Ref): Ref;
  /** min(max(x, lo), hi), NaN passing through. */
  clamp(x: Ref, lo: number, hi: number): Ref;
  abs(a: Ref): Ref;
  copysign(a: Ref, b: Ref): Ref;
  /** 2^k from kk = k + ROUND_MAGIC (k integral, in the normal exponent range): k sits in kk's low mantissa bits. */
  pow2(kk: Ref): Ref;
}

function f64Scalar(m: Mod): F64Ops {
  return {
    ty: F64,
    c: (v) => m.f64.const(v),
    add: (a, b) => m.f64.add(a, b),
    sub: (a, b) => m.f64.sub(a, b),
    mul: (a, b) => m.f64.mul(a, b),
    div: (a, b) => m.f64.div(a, b),
    clamp: (x, lo, hi) => m.f64.min(m.f64.max(x, m.f64.const(lo)), m.f64.const(hi)),
    abs: (a) => m.f64.abs(a),
    copysign: (a, b) => m.f64.copysign(a, b),
    pow2: (kk) => m.f64.reinterpret(m.i64.shl(m.i64.add(m.i64.reinterpret(kk), m.i64.const(1023n)), m.i64.const(52n))),
  };
}

function f64x2(m: Mod): F64Ops {
  const c = (v: number) => m.f64x2.splat(m.f64.const(v));
  const sign = () => m.i64x2.splat(m.i64.const(-0x8000000000000000n));
  return {
    ty: V128,
    c,
    add: (a, b) => m.f64x2.add(a, b),
    sub: (a, b) => m.f64x2.sub(a, b),
    mul: (a, b) => m.f64x2.mul(a, b),
    div: (a, b) => m.f64x2.div(a, b),
    // pmin/pmax are one instruction each (min/max need a NaN-fixing sequence); with x first they
    // return x when it is NaN, and agree with f64.min/max otherwise.
    clamp: (x, lo, hi) => m.f64x2.pmin(m.f64x2.pmax(x, c(lo)), c(hi)),
    abs: (a) => m.f64x2.abs(a),
    copysign: (a, b) => m.v128.or(m.v128.andnot(a, sign()), m.v128.and(b, sign())),
    pow2: (kk) => m.i64x2.shl(m.i64x2.add(kk, m.i64x2.splat(m.i64.const(1023n))), m.i32.const(52)),
  };
}

/** Adds each helper function to the module on first use (so unused ones cost nothing), in use order. */
class Helpers {
  private readonly done = new Set<HelperName>();
  constructor(private readonly m: Mod) {}

  use(name: HelperName): string {
    if (!this.done.has(name)) {
      this.done.add(name);
      this.define(name);
    }
    return name;
  }

  private define(name: HelperName): void {
    const m = this.m;
    const f64 = (v: number) => m.f64.const(v);
    const gd = (i: number) => m.local.get(i, F64);
    const gi = (i: number) => m.local.get(i, I32);
    const gv = (i: number) => m.local.get(i, V128);
    const horner = (o: F64Ops, x: () => Ref, coeffs: readonly number[]) => {
      // coeffs from highest degree to constant term
      let p = o.c(coeffs[0]);
      for (let i = 1; i < coeffs.length; i++) p = o.add(o.mul(p, x()), o.c(coeffs[i]));
      return p;
    };
    const add = (params: Ty[], result: Ty, vars: Ty[], body: Ref) => m.addFunction(name, binaryen.createType(params), result, vars, body);
    const f32Wrap = (inner: HelperName, arity: number) => {
      const args = Array.from({ length: arity }, (_, i) => m.f64.promote(m.local.get(i, F32)));
      add(Array(arity).fill(F32), F32, [], m.f32.demote(m.call(this.use(inner), args, F64)));
    };
    /** A v128 helper applying scalar helper `inner` lane by lane. */
    const laneWise = (inner: HelperName, arity: number, laneTy: 'f32' | 'i32') => {
      const ext = (p: number, lane: number) => (laneTy === 'f32' ? m.f32x4.extract_lane(gv(p), lane) : m.i32x4.extract_lane(gv(p), lane));
      const lane = (l: number) => m.call(this.use(inner), Array.from({ length: arity }, (_, p) => ext(p, l)), laneTy === 'f32' ? F32 : I32);
      let r = laneTy === 'f32' ? m.f32x4.splat(lane(0)) : m.i32x4.splat(lane(0));
      for (let l = 1; l < 4; l++) r = laneTy === 'f32' ? m.f32x4.replace_lane(r, l, lane(l)) : m.i32x4.replace_lane(r, l, lane(l));
      add(Array(arity).fill(V128), V128, [], r);
    };
    /**
     * The shared core of exp and tanh, on the value in local `x`: x = k ln2 + r with |r| <= ln2/2
     * (fdlibm's split ln2, exact k*LN2_HI), and e^r - 1 = r P(r), P of degree 8 (the Taylor series to
     * r^9, relative error < 1e-11) evaluated by Estrin's scheme to keep the dependency chain short.
     * x is first clamped to [-104, 89]: beyond it the f32 result is 0 or +Inf anyway and 2^k stays a
     * normal f64. NaN passes through (the clamp keeps it, and NaN times any scale is NaN). Leaves
     * `scale` = 2^k and `pm1` = e^r - 1 in locals.
     */
    const expCore = (o: F64Ops, x: number, local: (t: Ty) => number) => {
      const g = (i: number) => m.local.get(i, o.ty);
      const [xc, kk, k, r, r2, r4, scale, pm1] = Array.from({ length: 8 }, () => local(o.ty));
      const d = (i: number) => o.c(invFact(i + 1));
      const pair = (i: number) => o.add(d(i), o.mul(d(i + 1), g(r)));
      const P = o.add(
        o.add(o.add(pair(0), o.mul(pair(2), g(r2))), o.mul(o.add(pair(4), o.mul(pair(6), g(r2))), g(r4))),
        o.mul(d(8), o.mul(g(r4), g(r4))),
      );
      const stmts = [
        m.local.set(xc, o.clamp(g(x), -104, 89)),
        m.local.set(kk, o.add(o.mul(g(xc), o.c(INV_LN2)), o.c(ROUND_MAGIC))),
        m.local.set(k, o.sub(g(kk), o.c(ROUND_MAGIC))),
        m.local.set(r, o.sub(o.sub(g(xc), o.mul(g(k), o.c(LN2_HI))), o.mul(g(k), o.c(LN2_LO)))),
        m.local.set(r2, o.mul(g(r), g(r))),
        m.local.set(r4, o.mul(g(r2), g(r2))),
        m.local.set(pm1, o.mul(g(r), P)),
        m.local.set(scale, o.pow2(g(kk))),
      ];
      return { stmts, scale: () => g(scale), pm1: () => g(pm1) };
    };
    /** exp(x) = 2^k (1 + (e^r - 1)). */
    const expOf = (o: F64Ops, x: number, local: (t: Ty) => number) => {
      const core = expCore(o, x, local);
      return { stmts: core.stmts, value: o.mul(core.scale(), o.add(o.c(1), core.pm1())) };
    };
    /**
     * tanh(x) = sign(x) em1 / (em1 + 2), em1 = e^{2|x|} - 1 = 2^k (e^r - 1) + (2^k - 1): exact
     * near 0 (k = 0, no cancellation), saturating to exactly 1 for large |x|.
     */
    const tanhOf = (o: F64Ops, x: number, local: (t: Ty) => number) => {
      const g = (i: number) => m.local.get(i, o.ty);
      const [u, em1] = [local(o.ty), local(o.ty)];
      const core = expCore(o, u, local);
      return {
        stmts: [
          m.local.set(u, o.mul(o.abs(g(x)), o.c(2))),
          ...core.stmts,
          m.local.set(em1, o.add(o.mul(core.scale(), core.pm1()), o.sub(core.scale(), o.c(1)))),
        ],
        value: o.copysign(o.div(g(em1), o.add(g(em1), o.c(2))), g(x)),
      };
    };
    type Recipe = (o: F64Ops, x: number, local: (t: Ty) => number) => { stmts: Ref[]; value: Ref };
    /** f64 -> f64 helper from a recipe. */
    const scalarFn = (recipe: Recipe) => {
      const vars: Ty[] = [];
      const { stmts, value } = recipe(f64Scalar(m), 0, (t) => vars.push(t));
      add([F64], F64, vars, m.block(null, [...stmts, value], F64));
    };
    /** f32x4 -> f32x4 helper: the recipe on the low and the high half as f64x2, demoted and rejoined. */
    const vectorFn = (recipe: Recipe) => {
      const vars: Ty[] = [];
      const local = (t: Ty) => vars.push(t);
      const o = f64x2(m);
      const bytes = (l: number[]) => l.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]);
      const [lo, hi] = [local(V128), local(V128)];
      const a = recipe(o, lo, local);
      const b = recipe(o, hi, local);
      add([V128], V128, vars, m.block(null, [
        m.local.set(lo, m.f64x2.promote_low_f32x4(gv(0))),
        m.local.set(hi, m.f64x2.promote_low_f32x4(m.i8x16.shuffle(gv(0), gv(0), bytes([2, 3, 2, 3])))),
        ...a.stmts,
        ...b.stmts,
        m.i8x16.shuffle(m.f32x4.demote_f64x2_zero(a.value), m.f32x4.demote_f64x2_zero(b.value), bytes([0, 1, 4, 5])),
      ], V128));
    };
    switch (name) {
      case 'expd':
        return scalarFn(expOf);
      case 'tanhd':
        return scalarFn(tanhOf);
      case 'logd': {
        // log(x) = e ln2 + 2 atanh(s), s = (m-1)/(m+1), m in [sqrt(1/2), sqrt(2)): |s| < 0.172, 8 terms (error < 1e-13).
        const coeffs: number[] = [];
        for (let n = 7; n >= 0; n--) coeffs.push(2 / (2 * n + 1));
        const [x, bits, e, mm, s] = [0, 1, 2, 3, 4];
        const o = f64Scalar(m);
        add([F64], F64, [I64, F64, F64, F64], m.block(null, [
          m.if(m.i32.eqz(m.f64.gt(gd(x), f64(0))), m.return(m.select(m.f64.eq(gd(x), f64(0)), f64(-Infinity), f64(NaN)))),
          m.if(m.f64.eq(gd(x), f64(Infinity)), m.return(gd(x))),
          m.local.set(bits, m.i64.reinterpret(gd(x))),
          // x > 0 came from f32 or from |f32| in pow, so it is a normal f64: the exponent field is exact.
          m.local.set(e, m.f64.convert_s.i64(m.i64.sub(m.i64.shr_u(m.local.get(bits, I64), m.i64.const(52n)), m.i64.const(1023n)))),
          m.local.set(mm, m.f64.reinterpret(m.i64.or(m.i64.and(m.local.get(bits, I64), m.i64.const(0x000fffffffffffffn)), m.i64.const(0x3ff0000000000000n)))),
          m.if(m.f64.gt(gd(mm), f64(SQRT2)), m.block(null, [m.local.set(mm, m.f64.mul(gd(mm), f64(0.5))), m.local.set(e, m.f64.add(gd(e), f64(1)))])),
          m.local.set(s, m.f64.div(m.f64.sub(gd(mm), f64(1)), m.f64.add(gd(mm), f64(1)))),
          m.return(m.f64.add(m.f64.mul(gd(e), f64(LN2)), m.f64.mul(gd(s), horner(o, () => m.f64.mul(gd(s), gd(s)), coeffs)))),
        ], F64));
        return;
      }
      case 'powd': {
        // Math.pow semantics: exp(y log|x|), negated for a negative base and an odd integer y, NaN
        // for a negative finite base and a non-integer y; y = 0 gives 1 even for NaN x.
        const [x, y, r] = [0, 1, 2];
        const isInt = () => m.f64.eq(m.f64.trunc(gd(y)), gd(y));
        const half = () => m.f64.mul(gd(y), f64(0.5));
        const isOdd = m.i32.and(m.i32.and(isInt(), m.f64.lt(m.f64.abs(gd(y)), f64(2 ** 53))), m.f64.ne(m.f64.trunc(half()), half()));
        add([F64, F64], F64, [F64], m.block(null, [
          m.if(m.f64.eq(gd(y), f64(0)), m.return(f64(1))),
          m.if(m.i32.or(m.f64.ne(gd(x), gd(x)), m.f64.ne(gd(y), gd(y))), m.return(f64(NaN))),
          m.local.set(r, m.call(this.use('expd'), [m.f64.mul(gd(y), m.call(this.use('logd'), [m.f64.abs(gd(x))], F64))], F64)),
          m.if(m.i64.lt_s(m.i64.reinterpret(gd(x)), m.i64.const(0n)),
            m.if(isOdd,
              m.local.set(r, m.f64.neg(gd(r))),
              m.if(m.i32.and(m.i32.eqz(isInt()), m.i32.and(m.f64.ne(gd(x), f64(0)), m.f64.ne(gd(x), f64(-Infinity)))), m.local.set(r, f64(NaN))))),
          m.return(gd(r)),
        ], F64));
        return;
      }
      case 'exp':
        return f32Wrap('expd', 1);
      case 'log':
        return f32Wrap('logd', 1);
      case 'tanh':
        return f32Wrap('tanhd', 1);
      case 'pow':
        return f32Wrap('powd', 2);
      case 'fmod': {
        // JS % on floats: a - b trunc(a/b) in f64 (exact for the magnitudes f32 operands reach in
        // practice), a itself for an infinite divisor.
        const A = () => m.f64.promote(m.local.get(0, F32));
        const B = () => m.f64.promote(m.local.get(1, F32));
        add([F32, F32], F32, [], m.if(
          m.i32.and(m.f64.eq(m.f64.abs(B()), f64(Infinity)), m.f64.lt(m.f64.abs(A()), f64(Infinity))),
          m.local.get(0, F32),
          m.f32.demote(m.f64.sub(A(), m.f64.mul(B(), m.f64.trunc(m.f64.div(A(), B())))))));
        return;
      }
      case 'idiv':
        // The reference gives 0 for a zero divisor; -1 would trap on INT_MIN in Wasm, so negate.
        add([I32, I32], I32, [], m.if(m.i32.eqz(gi(1)), m.i32.const(0),
          m.if(m.i32.eq(gi(1), m.i32.const(-1)), m.i32.sub(m.i32.const(0), gi(0)), m.i32.div_s(gi(0), gi(1)))));
        return;
      case 'irem':
        add([I32, I32], I32, [], m.if(m.i32.eqz(gi(1)), m.i32.const(0), m.i32.rem_s(gi(0), gi(1))));
        return;
      case 'imax':
        add([I32, I32], I32, [], m.select(m.i32.gt_s(gi(0), gi(1)), gi(0), gi(1)));
        return;
      case 'imin':
        add([I32, I32], I32, [], m.select(m.i32.lt_s(gi(0), gi(1)), gi(0), gi(1)));
        return;
      case 'fmix': {
        const step = (sh: number, mul: number | null): Ref[] => [
          m.local.set(0, m.i32.xor(gi(0), m.i32.shr_u(gi(0), m.i32.const(sh)))),
          ...(mul === null ? [] : [m.local.set(0, m.i32.mul(gi(0), m.i32.const(mul | 0)))]),
        ];
        add([I32], I32, [], m.block(null, [...step(16, 0x85ebca6b), ...step(13, 0xc2b2ae35), ...step(16, null), gi(0)], I32));
        return;
      }
      case 'rand': {
        // (kin = key ^ seed*KEY_MUL, index) -> uniformAt: top 24 bits of the hash, times 2^-24.
        const k = m.call(this.use('fmix'), [gi(0)], I32);
        const h = m.call(this.use('fmix'), [m.i32.add(m.i32.mul(gi(1), m.i32.const(RNG_GOLDEN | 0)), k)], I32);
        add([I32, I32], F32, [], m.f32.mul(m.f32.convert_u.i32(m.i32.shr_u(h, m.i32.const(8))), m.f32.const(2 ** -24)));
        return;
      }
      case 'fmix4': {
        const c = (v: number) => m.i32x4.splat(m.i32.const(v | 0));
        const step = (sh: number, mul: number | null): Ref[] => [
          m.local.set(0, m.v128.xor(gv(0), m.i32x4.shr_u(gv(0), m.i32.const(sh)))),
          ...(mul === null ? [] : [m.local.set(0, m.i32x4.mul(gv(0), c(mul)))]),
        ];
        add([V128], V128, [], m.block(null, [...step(16, 0x85ebca6b), ...step(13, 0xc2b2ae35), ...step(16, null), gv(0)], V128));
        return;
      }
      case 'rand4': {
        const k = m.call(this.use('fmix4'), [gv(0)], V128);
        const h = m.call(this.use('fmix4'), [m.i32x4.add(m.i32x4.mul(gv(1), m.i32x4.splat(m.i32.const(RNG_GOLDEN | 0))), k)], V128);
        add([V128, V128], V128, [], m.f32x4.mul(m.f32x4.convert_i32x4_s(m.i32x4.shr_u(h, m.i32.const(8))), m.f32x4.splat(m.f32.const(2 ** -24))));
        return;
      }
      case 'exp4':
        return vectorFn(expOf);
      case 'tanh4':
        return vectorFn(tanhOf);
      case 'log4':
        return laneWise('log', 1, 'f32');
      case 'pow4':
        return laneWise('pow', 2, 'f32');
      case 'fmod4':
        return laneWise('fmod', 2, 'f32');
      case 'idiv4':
        return laneWise('idiv', 2, 'i32');
      case 'irem4':
        return laneWise('irem', 2, 'i32');
      default:
        name satisfies never;
    }
  }
}

// ---- scalar and vector ALU ----

/**
 * One Wasm instruction sequence per kernel-IR op, scalar (`*S`) and 4-lane (`*V`). Vector bools are
 * 0/1 lanes like scalar ones (comparison masks are shifted down), so loads, stores and casts treat
 * them as i32 in both forms.
 */
class Alu {
  constructor(
    readonly m: Mod,
    readonly h: Helpers,
  ) {}

  constS(dt: DType, v: number): Ref {
    return dt === 'f32' ? this.m.f32.const(v) : this.m.i32.const(dt === 'bool' ? (v ? 1 : 0) : v | 0);
  }
  constV(dt: DType, v: number): Ref {
    return this.m.v128.const(v128Bytes([v, v, v, v].map((x) => (dt === 'bool' ? (x ? 1 : 0) : x)), dt));
  }
  splat(dt: DType, a: Ref): Ref {
    return dt === 'f32' ? this.m.f32x4.splat(a) : this.m.i32x4.splat(a);
  }

  convS(a: Ref, from: DType, to: DType): Ref {
    const m = this.m;
    if (from === to) return a;
    if (to === 'f32') return m.f32.convert_s.i32(a);
    if (to === 'i32') return from === 'f32' ? m.i32.trunc_s_sat.f32(a) : a;
    return from === 'f32' ? m.f32.ne(a, m.f32.const(0)) : m.i32.ne(a, m.i32.const(0));
  }
  convV(a: Ref, from: DType, to: DType): Ref {
    const m = this.m;
    if (from === to) return a;
    if (to === 'f32') return m.f32x4.convert_i32x4_s(a);
    if (to === 'i32') return from === 'f32' ? m.i32x4.trunc_sat_f32x4_s(a) : a;
    const mask = from === 'f32' ? m.f32x4.ne(a, this.constV('f32', 0)) : m.i32x4.ne(a, this.constV('i32', 0));
    return this.maskToBool(mask);
  }
  /** All-ones/zero lanes to 0/1 lanes. */
  maskToBool(mask: Ref): Ref {
    return this.m.i32x4.shr_u(mask, this.m.i32.const(31));
  }

  unS(op: UnOp, dt: DType, a: Ref): Ref {
    const m = this.m;
    switch (op) {
      case 'neg':
        return dt === 'f32' ? m.f32.neg(a) : m.i32.sub(m.i32.const(0), a);
      case 'exp':
      case 'log':
      case 'tanh':
        return m.call(this.h.use(op), [a], F32);
      case 'sqrt':
        return m.f32.sqrt(a);
      case 'recip':
        return m.f32.div(m.f32.const(1), a);
      case 'not':
        return m.i32.eqz(a);
      default:
        return op satisfies never;
    }
  }
  unV(op: UnOp, dt: DType, a: Ref): Ref {
    const m = this.m;
    switch (op) {
      case 'neg':
        return dt === 'f32' ? m.f32x4.neg(a) : m.i32x4.neg(a);
      case 'exp':
      case 'log':
      case 'tanh':
        return m.call(this.h.use(`${op}4`), [a], V128);
      case 'sqrt':
        return m.f32x4.sqrt(a);
      case 'recip':
        return m.f32x4.div(this.constV('f32', 1), a);
      case 'not':
        return m.v128.xor(a, this.constV('i32', 1));
      default:
        return op satisfies never;
    }
  }

  /** `odt` is the operands' dtype (the result is bool for less/equal); `bConst` a constant divisor, if any. */
  binS(op: BinOp, odt: DType, a: Ref, b: Ref, bConst: number | null): Ref {
    const m = this.m;
    const f = odt === 'f32';
    switch (op) {
      case 'add':
        return f ? m.f32.add(a, b) : m.i32.add(a, b);
      case 'sub':
        return f ? m.f32.sub(a, b) : m.i32.sub(a, b);
      case 'mul':
        return f ? m.f32.mul(a, b) : m.i32.mul(a, b);
      case 'div':
        if (f) return m.f32.div(a, b);
        // Index arithmetic divides by constants: emit the plain instruction (the engine strength-reduces it).
        if (bConst !== null && bConst !== 0 && bConst !== -1) return m.i32.div_s(a, b);
        return m.call(this.h.use('idiv'), [a, b], I32);
      case 'mod':
        if (f) return m.call(this.h.use('fmod'), [a, b], F32);
        if (bConst !== null && bConst !== 0) return m.i32.rem_s(a, b);
        return m.call(this.h.use('irem'), [a, b], I32);
      case 'max':
        return f ? m.f32.max(a, b) : m.call(this.h.use('imax'), [a, b], I32);
      case 'min':
        return f ? m.f32.min(a, b) : m.call(this.h.use('imin'), [a, b], I32);
      case 'pow':
        return m.call(this.h.use('pow'), [a, b], F32);
      case 'less':
        return f ? m.f32.lt(a, b) : m.i32.lt_s(a, b);
      case 'equal':
        return f ? m.f32.eq(a, b) : m.i32.eq(a, b);
      case 'and':
        return m.i32.and(a, b);
      default:
        return op satisfies never;
    }
  }
  binV(op: BinOp, odt: DType, a: Ref, b: Ref): Ref {
    const m = this.m;
    const f = odt === 'f32';
    switch (op) {
      case 'add':
        return f ? m.f32x4.add(a, b) : m.i32x4.add(a, b);
      case 'sub':
        return f ? m.f32x4.sub(a, b) : m.i32x4.sub(a, b);
      case 'mul':
        return f ? m.f32x4.mul(a, b) : m.i32x4.mul(a, b);
      case 'div':
        return f ? m.f32x4.div(a, b) : m.call(this.h.use('idiv4'), [a, b], V128);
      case 'mod':
        return m.call(this.h.use(f ? 'fmod4' : 'irem4'), [a, b], V128);
      case 'max':
        return f ? m.f32x4.max(a, b) : m.i32x4.max_s(a, b);
      case 'min':
        return f ? m.f32x4.min(a, b) : m.i32x4.min_s(a, b);
      case 'pow':
        return m.call(this.h.use('pow4'), [a, b], V128);
      case 'less':
        return this.maskToBool(f ? m.f32x4.lt(a, b) : m.i32x4.lt_s(a, b));
      case 'equal':
        return this.maskToBool(f ? m.f32x4.eq(a, b) : m.i32x4.eq(a, b));
      case 'and':
        return m.v128.and(a, b);
      default:
        return op satisfies never;
    }
  }

  loadS(dt: DType, base: number, index: Ref): Ref {
    const ptr = this.m.i32.shl(index, this.m.i32.const(2));
    return dt === 'f32' ? this.m.f32.load(base, 4, ptr) : this.m.i32.load(base, 4, ptr);
  }
  storeS(dt: DType, ptr: Ref, v: Ref, offset = 0): Ref {
    return dt === 'f32' ? this.m.f32.store(offset, 4, ptr, v) : this.m.i32.store(offset, 4, ptr, v);
  }
}

// ---- expression units: planning (hoisting, CSE, vectorisability) and emission ----

/** Dependency bits: grid axis a, reduction axis a, the accumulator. */
const IDX_BIT = (a: number) => 1 << a;
const RIDX_BIT = (a: number) => 1 << (15 + a);
const ACC_BIT = 1 << 30;

const S = 0;
const V = 1;
type Form = typeof S | typeof V;

interface NodeInfo {
  deps: number;
  /** Contains a load whose index is not provably in range (so it must not run speculatively). */
  risky: boolean;
  /** Parent edges in the DAG (plus one for the root's consumer). */
  uses: number;
}

/** What a unit reads from its surroundings: index variables (lane 0 in vector code) and the accumulator. */
interface Ctx {
  readonly inputAddr: readonly number[];
  /** Elements in each input buffer (bounds for the speculation check). */
  readonly inputLen: readonly number[];
  idx(axis: number): Ref;
  ridx(axis: number): Ref;
  acc(): Ref;
  accVec(): Ref;
}

interface UnitSpec {
  /** Extents of the grid and reduction axes (bounds for index ranges). */
  readonly grid: readonly number[];
  readonly rgrid?: readonly number[];
  /** Dependency bits that become available at loop level l + 1 (outermost first). Level L = length is the element point. */
  readonly axisBits: readonly number[];
  /** Grid axis run 4 lanes at a time, or -1 for scalar code. */
  readonly laneAxis: number;
  /** The accumulator is a v128 (epilogues of matmuls and of 4-lane reductions). */
  readonly accVector?: boolean;
}

/** How a load's index moves along the vectorised axis. */
export type LoadClass = 'invariant' | 'contiguous' | 'gather';

/**
 * One expression tree to emit in a loop nest. Planning decides, per node and form (scalar or v128),
 * whether it lives in a local computed at some loop level: nodes that do not depend on the inner loops
 * are hoisted to the level where their last index variable is set, and nodes used more than once are
 * computed once. A node is only hoisted when evaluating it early is safe: it is reached on a path that
 * always evaluates it, or it contains no "risky" load (one whose index range analysis cannot keep
 * inside its buffer, as in the untaken arm of a padding select). In vector mode the unit also
 * decides whether 4-lane code is possible at all (`ok`), classifying every lane-varying load.
 */
class Unit {
  /** False when the vector form is impossible (a gather, or a lane-varying select over risky loads). */
  readonly ok: boolean;
  private readonly info = new Map<Expr, NodeInfo>();
  private readonly order: Expr[] = [];
  private readonly coefMemo = new Map<Expr, number | null>();
  private readonly rangeMemo = new Map<Expr, readonly [number, number] | null>();
  private readonly visited = new Map<Expr, number>();
  private readonly uncond = new Set<Expr>();
  private readonly demand = new Map<Expr, number>();
  private readonly slots = new Map<Expr, { local: number; level: number }[]>();
  private readonly laneMask: number;
  private readonly L: number;
  private readonly root: Expr;
  private readonly depsMemo = new Map<Expr, number>();

  constructor(
    private readonly alu: Alu,
    private readonly fn: Fn,
    root: Expr,
    private readonly spec: UnitSpec,
    private readonly ctx: Ctx,
  ) {
    this.L = spec.axisBits.length;
    this.laneMask = spec.laneAxis < 0 ? 0 : IDX_BIT(spec.laneAxis) | (spec.accVector ? ACC_BIT : 0);
    this.root = this.reassociate(root, new Map());
    this.analyse(this.root).uses++;
    this.ok = this.need(this.root, this.vectorMode ? V : S, false);
    if (this.ok) this.planSlots();
  }

  get vectorMode(): boolean {
    return this.laneMask !== 0;
  }

  /** Classify a load for the vectorised axis. */
  classify(load: Expr & { k: 'load' }): LoadClass {
    const c = this.coef(load.index);
    return c === 0 ? 'invariant' : c === 1 ? 'contiguous' : 'gather';
  }

  /** Statements computing the locals of loop level `level`; call for every level 0..L, in place. */
  stmts(level: number): Ref[] {
    const out: Ref[] = [];
    for (const e of this.order) {
      const s = this.slots.get(e);
      if (!s) continue;
      for (const form of [S, V] as const) {
        const slot = s[form];
        if (slot && slot.level === level) out.push(this.fn.set(slot.local, this.compute(e, form)));
      }
    }
    return out;
  }

  /** The root's value at the element point, converted to `dt`. */
  value(dt: DType): Ref {
    const form = this.vectorMode ? V : S;
    const v = this.get(this.root, form);
    return form === V ? this.alu.convV(v, dtypeOf(this.root), dt) : this.alu.convS(v, dtypeOf(this.root), dt);
  }

  // -- planning --

  private deps(e: Expr): number {
    let d = this.depsMemo.get(e);
    if (d === undefined) {
      d = e.k === 'idx' ? IDX_BIT(e.axis) : e.k === 'ridx' ? RIDX_BIT(e.axis) : e.k === 'acc' ? ACC_BIT : 0;
      for (const c of kids(e)) d |= this.deps(c);
      this.depsMemo.set(e, d);
    }
    return d;
  }

  /**
   * Rewrite i32 sums so their terms are added outermost loop level first: ((a(i) + b(j)) + c(k)).
   * Each partial sum then depends on one loop level fewer and is hoisted with it, so the innermost
   * loop adds one term instead of recomputing the whole flattened index. Wrapping i32 addition is
   * associative and commutative, so values are unchanged. Shared subtrees stay shared (memo).
   */
  private reassociate(e: Expr, memo: Map<Expr, Expr>): Expr {
    const hit = memo.get(e);
    if (hit) return hit;
    let out: Expr;
    const isSum = (x: Expr): x is Expr & { k: 'bin' } => x.k === 'bin' && x.op === 'add' && x.dtype === 'i32';
    if (isSum(e)) {
      const terms: Expr[] = [];
      const collect = (x: Expr): void => {
        if (isSum(x)) {
          collect(x.a);
          collect(x.b);
        } else terms.push(this.reassociate(x, memo));
      };
      collect(e);
      const lv = terms.map((t) => this.levelOf(this.deps(t)));
      const order = terms.map((_, i) => i).sort((i, j) => lv[i] - lv[j] || i - j);
      out = order.map((i) => terms[i]).reduce((a, b): Expr => ({ k: 'bin', op: 'add', a, b, dtype: 'i32' }));
    } else {
      const ks = kids(e);
      const nk = ks.map((c) => this.reassociate(c, memo));
      out = nk.every((c, i) => c === ks[i]) ? e : withKids(e, nk);
    }
    memo.set(e, out);
    return out;
  }

  private analyse(e: Expr): NodeInfo {
    const known = this.info.get(e);
    if (known) return known;
    let deps = e.k === 'idx' ? IDX_BIT(e.axis) : e.k === 'ridx' ? RIDX_BIT(e.axis) : e.k === 'acc' ? ACC_BIT : 0;
    let risky = e.k === 'load' && !this.inBounds(e);
    for (const c of kids(e)) {
      const ci = this.analyse(c);
      ci.uses++;
      deps |= ci.deps;
      risky ||= ci.risky;
    }
    const inf: NodeInfo = { deps, risky, uses: 0 };
    this.info.set(e, inf);
    this.order.push(e);
    return inf;
  }

  /** Whether a load's index provably stays inside its buffer for every grid point. */
  private inBounds(e: Expr & { k: 'load' }): boolean {
    const r = this.range(e.index);
    return r !== null && r[0] >= 0 && r[1] < this.ctx.inputLen[e.input];
  }

  /** Interval of an i32 index expression over the grid, or null when unknown (or beyond i32). */
  private range(e: Expr): readonly [number, number] | null {
    if (this.rangeMemo.has(e)) return this.rangeMemo.get(e)!;
    let r: readonly [number, number] | null = null;
    if (e.k === 'const') r = [e.value, e.value];
    else if (e.k === 'idx') r = [0, this.spec.grid[e.axis] - 1];
    else if (e.k === 'ridx') r = [0, (this.spec.rgrid ?? [])[e.axis] - 1];
    else if (e.k === 'select') {
      const a = this.range(e.a);
      const b = this.range(e.b);
      r = a && b ? [Math.min(a[0], b[0]), Math.max(a[1], b[1])] : null;
    } else if (e.k === 'bin' && e.dtype === 'i32') {
      const a = this.range(e.a);
      const b = this.range(e.b);
      if (a && b) {
        if (e.op === 'add') r = [a[0] + b[0], a[1] + b[1]];
        else if (e.op === 'sub') r = [a[0] - b[1], a[1] - b[0]];
        else if (e.op === 'mul') {
          const p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]];
          r = [Math.min(...p), Math.max(...p)];
        } else if (e.op === 'div' && a[0] >= 0 && b[0] > 0) r = [Math.floor(a[0] / b[1]), Math.floor(a[1] / b[0])];
        else if (e.op === 'mod' && a[0] >= 0 && b[0] > 0) r = [0, Math.min(a[1], b[1] - 1)];
        else if (e.op === 'max') r = [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
        else if (e.op === 'min') r = [Math.min(a[0], b[0]), Math.min(a[1], b[1])];
      }
    }
    if (r && (Number.isNaN(r[0]) || r[0] < -(2 ** 31) || r[1] >= 2 ** 31)) r = null;
    this.rangeMemo.set(e, r);
    return r;
  }

  private varying(e: Expr): boolean {
    return (this.info.get(e)!.deps & this.laneMask) !== 0;
  }

  private level(e: Expr): number {
    return this.levelOf(this.info.get(e)!.deps);
  }

  /** Loop level at which every index variable in `d` is set (L for the accumulator). */
  private levelOf(d: number): number {
    if (d & ACC_BIT) return this.L;
    for (let l = this.L; l > 0; l--) if (d & this.spec.axisBits[l - 1]) return l;
    return 0;
  }

  /** Coefficient of the lane index in an i32 expression affine in it, 0 when invariant, null otherwise. */
  private coef(e: Expr): number | null {
    if (this.coefMemo.has(e)) return this.coefMemo.get(e)!;
    let c: number | null = null;
    if (!this.varying(e)) c = 0;
    else if (e.k === 'idx') c = 1;
    else if (e.k === 'un' && e.op === 'neg' && e.dtype === 'i32') {
      const a = this.coef(e.a);
      c = a === null ? null : -a;
    } else if (e.k === 'bin' && e.dtype === 'i32') {
      const a = this.coef(e.a);
      const b = this.coef(e.b);
      if (a !== null && b !== null) {
        if (e.op === 'add') c = a + b;
        else if (e.op === 'sub') c = a - b;
        else if (e.op === 'mul' && a === 0 && e.a.k === 'const') c = e.a.value * b;
        else if (e.op === 'mul' && b === 0 && e.b.k === 'const') c = a * e.b.value;
      }
    }
    this.coefMemo.set(e, c);
    return c;
  }

  /** Record that `e` is needed in `form`; `guarded` = only under a select arm evaluated on demand. */
  private need(e: Expr, form: Form, guarded: boolean): boolean {
    const bit = 1 << (form * 2 + (guarded ? 1 : 0));
    const seen = this.visited.get(e) ?? 0;
    if (seen & bit) return true;
    this.visited.set(e, seen | bit);
    this.demand.set(e, (this.demand.get(e) ?? 0) | (1 << form));
    if (!guarded) this.uncond.add(e);
    if (form === V && !this.varying(e)) return this.need(e, S, guarded);
    const risky = (x: Expr) => this.info.get(x)!.risky;
    switch (e.k) {
      case 'load':
        if (form === V && this.classify(e) !== 'contiguous') return false;
        return this.need(e.index, S, guarded);
      case 'select': {
        const armsLoad = risky(e.a) || risky(e.b);
        if (form === V && this.varying(e.c)) {
          // Both arms are evaluated for every lane: only possible when neither can load out of range.
          if (armsLoad) return false;
          return this.need(e.c, V, guarded) && this.need(e.a, V, guarded) && this.need(e.b, V, guarded);
        }
        return this.need(e.c, S, guarded) && this.need(e.a, form, guarded || armsLoad) && this.need(e.b, form, guarded || armsLoad);
      }
      default:
        return kids(e).every((c) => this.need(c, form, guarded));
    }
  }

  private planSlots(): void {
    for (const e of this.order) {
      const d = this.demand.get(e) ?? 0;
      const inf = this.info.get(e)!;
      if (!d || !(this.uncond.has(e) || !inf.risky)) continue;
      const lvl = this.level(e);
      for (const form of [S, V] as const) {
        if (!(d & (1 << form))) continue;
        const trivial = e.k === 'const' || e.k === 'acc' || (form === S && (e.k === 'idx' || e.k === 'ridx'));
        if (trivial || !(lvl < this.L || inf.uses > 1)) continue;
        const s = this.slots.get(e) ?? [];
        s[form] = { local: this.fn.local(form === V ? V128 : scalarTy(dtypeOf(e))), level: lvl };
        this.slots.set(e, s);
      }
    }
  }

  // -- emission --

  private get(e: Expr, form: Form): Ref {
    const slot = this.slots.get(e)?.[form];
    return slot ? this.fn.get(slot.local) : this.compute(e, form);
  }

  private compute(e: Expr, form: Form): Ref {
    if (form === S) return this.scalar(e);
    return this.varying(e) ? this.vector(e) : this.alu.splat(dtypeOf(e), this.get(e, S));
  }

  private guardedSelect(e: Expr & { k: 'select' }): boolean {
    return this.info.get(e.a)!.risky || this.info.get(e.b)!.risky;
  }

  private scalar(e: Expr): Ref {
    const { alu, ctx } = this;
    const m = alu.m;
    switch (e.k) {
      case 'const':
        return alu.constS(e.dtype, e.value);
      case 'idx':
        return ctx.idx(e.axis);
      case 'ridx':
        return ctx.ridx(e.axis);
      case 'acc':
        return ctx.acc();
      case 'load':
        return alu.loadS(e.dtype, ctx.inputAddr[e.input], this.get(e.index, S));
      case 'un':
        return alu.unS(e.op, e.dtype, this.get(e.a, S));
      case 'bin':
        return alu.binS(e.op, dtypeOf(e.a), this.get(e.a, S), this.get(e.b, S), e.b.k === 'const' ? e.b.value : null);
      case 'select': {
        const c = this.get(e.c, S);
        const a = this.get(e.a, S);
        const b = this.get(e.b, S);
        return this.guardedSelect(e) ? m.if(c, a, b) : m.select(c, a, b);
      }
      case 'cast':
        return alu.convS(this.get(e.a, S), dtypeOf(e.a), e.dtype);
      case 'rand':
        return m.call(alu.h.use('rand'), [m.i32.xor(this.get(e.key, S), m.i32.const(Math.imul(e.seed, RNG_KEY_MUL))), this.get(e.index, S)], F32);
      default:
        return e satisfies never;
    }
  }

  private vector(e: Expr): Ref {
    const { alu, ctx } = this;
    const m = alu.m;
    switch (e.k) {
      case 'idx':
        return m.i32x4.add(m.i32x4.splat(ctx.idx(e.axis)), m.v128.const(v128Bytes([0, 1, 2, 3], 'i32')));
      case 'acc':
        return ctx.accVec();
      case 'load':
        return m.v128.load(ctx.inputAddr[e.input], 4, m.i32.shl(this.get(e.index, S), m.i32.const(2)));
      case 'un':
        return alu.unV(e.op, e.dtype, this.get(e.a, V));
      case 'bin':
        return alu.binV(e.op, dtypeOf(e.a), this.get(e.a, V), this.get(e.b, V));
      case 'select': {
        if (!this.varying(e.c)) {
          const c = this.get(e.c, S);
          const a = this.get(e.a, V);
          const b = this.get(e.b, V);
          return this.guardedSelect(e) ? m.if(c, a, b) : m.select(c, a, b);
        }
        const mask = m.i32x4.neg(this.get(e.c, V));
        return m.v128.bitselect(this.get(e.a, V), this.get(e.b, V), mask);
      }
      case 'cast':
        return alu.convV(this.get(e.a, V), dtypeOf(e.a), e.dtype);
      case 'rand':
        return m.call(alu.h.use('rand4'), [m.v128.xor(this.get(e.key, V), alu.constV('i32', Math.imul(e.seed, RNG_KEY_MUL))), this.get(e.index, V)], V128);
      case 'const':
      case 'ridx':
        throw new Error(`wasm codegen: ${e.k} cannot vary along a lane`);
      default:
        return e satisfies never;
    }
  }
}

// ---- axis splitting ----

/**
 * Split the innermost grid axis g (extent E) into (g / D, g % D) when the expression divides g by
 * constants: im2col's q = (kh, kw, c) is read through q / 192, (q / 64) % 3 and q % 64, a gather
 * along q, but along q % 64 it is contiguous. D is the smallest such divisor that is a multiple of 4
 * and divides E. Divisions of g itself are rewritten exactly (g = hi*D + lo, 0 <= lo < D); other
 * uses of g become hi*D + lo. The flattened order of the grid is unchanged, so the output layout is
 * too. Returns null when no divisor qualifies.
 */
export function splitLastAxis(shape: Shape, expr: Expr): { shape: number[]; expr: Expr } | null {
  const a = shape.length - 1;
  if (a < 0) return null;
  const E = shape[a];
  const isG = (e: Expr) => e.k === 'idx' && e.axis === a;
  const divisorOf = (e: Expr): number | null =>
    e.k === 'bin' && (e.op === 'div' || e.op === 'mod') && e.dtype === 'i32' && isG(e.a) && e.b.k === 'const' && e.b.value > 0 ? e.b.value : null;
  const cands: number[] = [];
  const seen = new Set<Expr>();
  const visit = (e: Expr): void => {
    if (seen.has(e)) return;
    seen.add(e);
    const d = divisorOf(e);
    if (d !== null && d % 4 === 0 && d < E && E % d === 0) cands.push(d);
    kids(e).forEach(visit);
  };
  visit(expr);
  if (cands.length === 0) return null;
  const D = Math.min(...cands);
  const i = (value: number): Expr => ({ k: 'const', dtype: 'i32', value });
  const op = (o: BinOp, x: Expr, y: Expr): Expr => ({ k: 'bin', op: o, a: x, b: y, dtype: 'i32' });
  const hi: Expr = { k: 'idx', axis: a };
  const lo: Expr = { k: 'idx', axis: a + 1 };
  const g: Expr = op('add', op('mul', hi, i(D)), lo);
  const memo = new Map<Expr, Expr>();
  const rewrite = (e: Expr): Expr => {
    const hit = memo.get(e);
    if (hit) return hit;
    let out: Expr;
    const c = divisorOf(e);
    if (isG(e)) out = g;
    else if (c !== null && e.k === 'bin' && e.op === 'div' && c % D === 0) out = c === D ? hi : op('div', hi, i(c / D));
    else if (c !== null && e.k === 'bin' && e.op === 'div' && D % c === 0) out = op('add', op('mul', hi, i(D / c)), op('div', lo, i(c)));
    else if (c !== null && e.k === 'bin' && e.op === 'mod' && c % D === 0) out = c === D ? lo : op('add', op('mul', op('mod', hi, i(c / D)), i(D)), lo);
    else if (c !== null && e.k === 'bin' && e.op === 'mod' && D % c === 0) out = op('mod', lo, i(c));
    else out = withKids(e, kids(e).map(rewrite));
    memo.set(e, out);
    return out;
  };
  return { shape: [...shape.slice(0, a), E / D, D], expr: rewrite(expr) };
}

// ---- module builder ----

interface Scratch {
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

function planScratch(p: Program, plan: MemoryPlan): Scratch {
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

class ModuleBuilder {
  readonly m: Mod;
  readonly alu: Alu;
  readonly scratch: Scratch;

  constructor(
    readonly p: Program,
    readonly plan: MemoryPlan,
    readonly opts: WasmOptions,
  ) {
    this.scratch = planScratch(p, plan);
    const pages = Math.max(1, Math.ceil(this.scratch.end / 65536));
    if (pages > 65536) throw new Error(`wasm codegen: ${p.name} needs ${this.scratch.end} bytes of memory, over Wasm32's 4 GiB`);
    this.m = new binaryen.Module();
    const F = binaryen.Features;
    this.m.setFeatures(F.SIMD128 | F.NontrappingFPToInt | F.BulkMemory | F.BulkMemoryOpt | F.SignExt | F.MutableGlobals | (opts.relaxedSimd ? F.RelaxedSIMD : 0));
    this.alu = new Alu(this.m, new Helpers(this.m));
    // The memory must exist before any load or store is built (binaryen binds them to it).
    this.m.setMemory(pages, pages, 'memory');
  }

  fnName(i: number): string {
    return `k${i}_${this.p.kernels[i].name}`;
  }

  addKernel(i: number): void {
    const k = this.p.kernels[i];
    const fn = new Fn(this.m);
    const body = numel(k.shape) === 0 ? this.m.nop() : this.kernelBody(k, fn);
    this.m.addFunction(this.fnName(i), NONE, NONE, fn.vars, body);
  }

  finish(kernels: readonly number[]): void {
    const m = this.m;
    m.addFunction('run', NONE, NONE, [], m.block(null, kernels.map((i) => m.call(this.fnName(i), [], NONE))));
    m.addFunctionExport('run', 'run');
    // Kernel i is also exported as `k<i>`: a runtime trace (runtime/trace.ts) calls and times them one
    // by one. Kernels stay separate functions anyway (see buildModule), so this costs ~2% of bytes.
    for (const i of kernels) m.addFunctionExport(this.fnName(i), `k${i}`);
  }

  private addr(b: number): number {
    return this.plan.offsets[b];
  }

  private kernelBody(k: Kernel, fn: Fn): Ref {
    switch (k.kind) {
      case 'elementwise':
        return this.elementwise(k, fn);
      case 'reduce':
        return this.reduce(k, fn);
      case 'matmul':
        return this.matmul(k, fn);
      case 'pool_grad':
        return this.poolGrad(k, fn);
      default:
        return k satisfies never;
    }
  }

  private ctxFor(k: Kernel, idx: (a: number) => Ref, extra: Partial<Ctx> = {}): Ctx {
    const unavailable = (what: string) => () => {
      throw new Error(`wasm codegen: ${what} used outside its kernel part in ${k.name}`);
    };
    return {
      inputAddr: k.inputs.map((b) => this.addr(b)),
      inputLen: k.inputs.map((b) => numel(this.p.buffers[b].shape)),
      idx,
      ridx: extra.ridx ?? unavailable('ridx'),
      acc: extra.acc ?? unavailable('acc'),
      accVec: extra.accVec ?? unavailable('acc'),
    };
  }

  /**
   * Grid loops with the innermost axis in SIMD where the expression allows, else scalar; a scalar
   * tail covers an extent that is not a multiple of 4. When the innermost axis is a flattened
   * product (e.g. im2col's (kh, kw, c)), it is first split at the smallest divisor the index
   * arithmetic uses, if that makes the kernel vectorise (see `splitLastAxis`).
   */
  private elementwise(k0: ElementwiseKernel, fn: Fn): Ref {
    const { m, alu } = this;
    const probe = (shape: Shape, expr: Expr) =>
      shape.length > 0 && shape[shape.length - 1] >= 4 &&
      new Unit(alu, new Fn(m), expr, { grid: shape, axisBits: shape.map((_, a) => IDX_BIT(a)), laneAxis: shape.length - 1 }, this.ctxFor(k0, () => m.i32.const(0))).ok;
    const split = probe(k0.shape, k0.expr) ? null : splitLastAxis(k0.shape, k0.expr);
    const k = split && probe(split.shape, split.expr) ? { ...k0, ...split } : k0;
    const R = k.shape.length;
    const counters = k.shape.map(() => fn.local(I32));
    const ctx = this.ctxFor(k, (a) => fn.get(counters[a]));
    const out = fn.local(I32);
    if (R === 0) {
      const u = new Unit(alu, fn, k.expr, { grid: [], axisBits: [], laneAxis: -1 }, ctx);
      return m.block(null, [...u.stmts(0), alu.storeS(k.dtype, m.i32.const(this.addr(k.output)), u.value(k.dtype))]);
    }
    const gridBits = k.shape.map((_, a) => IDX_BIT(a));
    const last = k.shape[R - 1];
    let vec: Unit | null = last >= 4 ? new Unit(alu, fn, k.expr, { grid: k.shape, axisBits: gridBits, laneAxis: R - 1 }, ctx) : null;
    if (vec && !vec.ok) vec = null;
    const vecEnd = vec ? last - (last % 4) : 0;
    const sc = vecEnd < last ? new Unit(alu, fn, k.expr, { grid: k.shape, axisBits: gridBits, laneAxis: -1 }, ctx) : null;
    const inner: Ref[] = [];
    if (vec) inner.push(fn.loop(counters[R - 1], 0, vecEnd, 4, [...vec.stmts(R), m.v128.store(0, 16, fn.get(out), vec.value(k.dtype)), fn.bump(out, 16)]));
    if (sc) inner.push(fn.loop(counters[R - 1], vecEnd, last, 1, [...sc.stmts(R), alu.storeS(k.dtype, fn.get(out), sc.value(k.dtype)), fn.bump(out, 4)]));
    const pre = (l: number) => [...(vec?.stmts(l) ?? []), ...(sc?.stmts(l) ?? [])];
    return m.block(null, [fn.set(out, m.i32.const(this.addr(k.output))), ...nest(fn, k.shape.slice(0, R - 1), counters, pre, [...pre(R - 1), ...inner])]);
  }

  /**
   * Scalar loops over the grid, the reduction loops innermost. Like elementwise kernels, the innermost
   * grid axis runs 4 lanes at a time when the body and the epilogue vectorise along it (e.g. a bias
   * gradient, summing rows of dy): each lane folds its own accumulator in the same order as the
   * scalar code, so results are identical.
   */
  private reduce(k: ReduceKernel, fn: Fn): Ref {
    const { m, alu } = this;
    const R = k.shape.length;
    const RR = k.rshape.length;
    const gc = k.shape.map(() => fn.local(I32));
    const rc = k.rshape.map(() => fn.local(I32));
    const acc = fn.local(F32);
    const accV = fn.local(V128);
    const out = fn.local(I32);
    const ctx = this.ctxFor(k, (a) => fn.get(gc[a]), { ridx: (a) => fn.get(rc[a]), acc: () => fn.get(acc), accVec: () => fn.get(accV) });
    const gridBits = k.shape.map((_, a) => IDX_BIT(a));
    const bodySpec = { grid: k.shape, rgrid: k.rshape, axisBits: [...gridBits, ...k.rshape.map((_, a) => RIDX_BIT(a))] };
    const epiSpec = { grid: k.shape, axisBits: gridBits };
    const init = k.op === 'sum' ? 0 : -Infinity;
    const last = R > 0 ? k.shape[R - 1] : 1;
    let vec: [Unit, Unit] | null = null;
    if (last >= 4) {
      const b = new Unit(alu, fn, k.body, { ...bodySpec, laneAxis: R - 1 }, ctx);
      const e = new Unit(alu, fn, k.epilogue, { ...epiSpec, laneAxis: R - 1, accVector: true }, ctx);
      if (b.ok && e.ok) vec = [b, e];
    }
    const vecEnd = vec ? last - (last % 4) : 0;
    const scl = vecEnd < last ? [new Unit(alu, fn, k.body, { ...bodySpec, laneAxis: -1 }, ctx), new Unit(alu, fn, k.epilogue, { ...epiSpec, laneAxis: -1 }, ctx)] : null;

    /** One output element (or 4 lanes): init, reduction loops, epilogue, store. */
    const element = ([body, epi]: Unit[], lanes: boolean): Ref[] => {
      const fold = () => {
        const v = body.value('f32');
        return lanes
          ? fn.set(accV, k.op === 'sum' ? m.f32x4.add(fn.get(accV), v) : m.f32x4.max(fn.get(accV), v))
          : fn.set(acc, k.op === 'sum' ? m.f32.add(fn.get(acc), v) : m.f32.max(fn.get(acc), v));
      };
      const taps = numel(k.rshape);
      let reduction: Ref[];
      if (taps === 0) reduction = [];
      else if (taps <= REDUCE_UNROLL_MAX) {
        // A small window (pooling 2x2, a 10-class row) is unrolled: the loop control would cost as
        // much as the body. Same order as the loops, so the same result to the bit.
        reduction = [];
        for (let t = 0; t < taps; t++) {
          let rest = t;
          const at = [...k.rshape].reverse().map((d) => {
            const v = rest % d;
            rest = Math.floor(rest / d);
            return v;
          }).reverse();
          at.forEach((v, a) => reduction.push(fn.set(rc[a], m.i32.const(v))));
          for (let l = 0; l <= RR; l++) reduction.push(...body.stmts(R + l));
          reduction.push(fold());
        }
      } else reduction = nest(fn, k.rshape, rc, (l) => body.stmts(R + l), [...body.stmts(R + RR), fold()]);
      return [
        lanes ? fn.set(accV, alu.constV('f32', init)) : fn.set(acc, m.f32.const(init)),
        ...reduction,
        ...epi.stmts(R),
        lanes ? m.v128.store(0, 16, fn.get(out), epi.value(k.dtype)) : alu.storeS(k.dtype, fn.get(out), epi.value(k.dtype)),
        fn.bump(out, lanes ? 16 : 4),
      ];
    };
    const units = [...(vec ?? []), ...(scl ?? [])];
    const pre = (l: number) => units.flatMap((u) => u.stmts(l));
    let inner: Ref[];
    if (R === 0) inner = element(scl!, false);
    else {
      inner = [...pre(R - 1)];
      if (vec) inner.push(fn.loop(gc[R - 1], 0, vecEnd, 4, element(vec, true)));
      if (scl) inner.push(fn.loop(gc[R - 1], vecEnd, last, 1, element(scl, false)));
    }
    return m.block(null, [fn.set(out, m.i32.const(this.addr(k.output))), ...nest(fn, k.shape.slice(0, Math.max(R - 1, 0)), gc, pre, inner)]);
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
  private matmul(k: MatmulKernel, fn: Fn): Ref {
    const { m, alu, scratch } = this;
    const [Bt, M, N] = k.shape;
    const K = k.k;
    const outAddr = this.addr(k.output);
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
    const vecCtx = this.ctxFor(k, (a) => (a === 0 ? fn.get(cb) : a === 1 ? add(fn.get(cm), i32c(tile.r)) : add(fn.get(cn), i32c(4 * tile.v))), {
      accVec: () => fn.get(accs[tile.r][tile.v]),
    });
    const sclCtx = this.ctxFor(k, (a) => (a === 0 ? fn.get(cb) : a === 1 ? add(fn.get(cm), fn.get(rr)) : add(fn.get(cn), fn.get(cc))), {
      acc: () => fn.get(accS),
    });
    const epiVec = new Unit(alu, fn, k.epilogue, { grid: k.shape, axisBits: [], laneAxis: 2, accVector: true }, vecCtx);
    const epiScl = new Unit(alu, fn, k.epilogue, { grid: k.shape, axisBits: [], laneAxis: -1 }, sclCtx);

    const fma = (a: Ref, b: Ref, c: Ref) =>
      this.opts.relaxedSimd ? simdTernary(m.ptr, binaryen.RelaxedMaddVecF32x4, a, b, c) : m.f32x4.add(m.f32x4.mul(a, b), c);
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
      s.push(fn.set(pa, mOuter ? i32c(scratch.packA) : add(i32c(scratch.packA), mul(fn.get(cm), K * 4))), fn.set(pb, fn.get(panel)));
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
      for (let r = 0; r < R; r++) for (let v = 0; v < NV; v++) s.push(m.v128.store((r * NR + 4 * v) * 4, 16, i32c(scratch.tile), fn.get(accs[r][v])));
      const elem = [
        fn.set(accS, m.f32.load(0, 4, add(i32c(scratch.tile), m.i32.shl(add(mul(fn.get(rr), NR), fn.get(cc)), i32c(2))))),
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
      fn.set(panel, !packB ? add(fn.get(bB), m.i32.shl(fn.get(cn), i32c(2))) : mOuter ? add(i32c(scratch.packB), mul(fn.get(cn), K * 4)) : i32c(scratch.packB));
    if (!packB && N % NR) throw new Error(`wasm codegen: ${k.name}: unpacked B needs N % ${NR} == 0`);
    const perBatch: Ref[] = [
      fn.set(aB, add(i32c(this.addr(k.inputs[k.a.input]) + k.a.offset * 4), mul(fn.get(cb), sa0 * 4))),
      fn.set(bB, add(i32c(this.addr(k.inputs[k.b.input]) + k.b.offset * 4), mul(fn.get(cb), sb0 * 4))),
    ];
    const pack = K > 0;
    if (mOuter) {
      // all of B packed once; each A panel packed just before its row of tiles (it stays in L1)
      if (packB && pack) perBatch.push(fn.set(pd, i32c(scratch.packB)), ...tiles(cn, N, NR, bPanel));
      perBatch.push(...tiles(cm, M, MR, (R) => [
        ...(pack ? [fn.set(pd, i32c(scratch.packA)), ...aPanel(R)] : []),
        ...tiles(cn, N, NR, (W) => [setPanel(), ...micro(), ...store(R, W)]),
      ]));
    } else {
      // all of A packed once; each B panel packed just before its column of tiles
      if (pack) perBatch.push(fn.set(pd, i32c(scratch.packA)), ...tiles(cm, M, MR, aPanel));
      perBatch.push(...tiles(cn, N, NR, (W) => [
        ...(packB && pack ? [fn.set(pd, i32c(scratch.packB)), ...bPanel(W)] : []),
        setPanel(),
        ...tiles(cm, M, MR, (R) => [...micro(), ...store(R, W)]),
      ]));
    }
    return fn.loop(cb, 0, Bt, 1, perBatch);
  }

  /** Gradient of max/sum pooling over NHWC: scatter each dy element to its window (max: the first arg-max). */
  private poolGrad(k: PoolGradKernel, fn: Fn): Ref {
    const { m } = this;
    const [N, H, W, C] = k.shape;
    const [, OH, OW] = k.dyShape;
    const [wh, ww] = k.window;
    const [sh, sw] = k.strides;
    const [ph, pw] = [k.padding[0][0], k.padding[1][0]];
    const xAddr = this.addr(k.inputs[0]);
    const dyAddr = this.addr(k.inputs[1]);
    const outAddr = this.addr(k.output);
    const s: Ref[] = [m.memory.fill(m.i32.const(outAddr), m.i32.const(0), m.i32.const(numel(k.shape) * 4))];
    if (numel(k.dyShape) === 0 || wh === 0 || ww === 0) return m.block(null, s);
    const [n, oh, ow, c, kh, kw, ih, iw, i, best, pdy] = Array.from({ length: 11 }, () => fn.local(I32));
    const [d, bestv] = [fn.local(F32), fn.local(F32)];
    const g = (l: number) => fn.get(l);
    const c32 = (v: number) => m.i32.const(v);
    const outAt = (ix: Ref) => m.i32.add(c32(outAddr), m.i32.shl(ix, c32(2)));
    const addTo = (ix: () => Ref) => m.f32.store(0, 4, outAt(ix()), m.f32.add(m.f32.load(0, 4, outAt(ix())), g(d)));
    const xAt = () => m.f32.load(xAddr, 4, m.i32.shl(g(i), c32(2)));
    const visit =
      k.op === 'sum'
        ? addTo(() => g(i))
        : m.if(m.i32.or(m.i32.lt_s(g(best), c32(0)), m.f32.gt(xAt(), g(bestv))), m.block(null, [fn.set(best, g(i)), fn.set(bestv, xAt())]));
    const window = fn.loop(kh, 0, wh, 1, [
      fn.set(ih, m.i32.sub(m.i32.add(m.i32.mul(g(oh), c32(sh)), g(kh)), c32(ph))),
      m.if(m.i32.lt_u(g(ih), c32(H)), fn.loop(kw, 0, ww, 1, [
        fn.set(iw, m.i32.sub(m.i32.add(m.i32.mul(g(ow), c32(sw)), g(kw)), c32(pw))),
        m.if(m.i32.lt_u(g(iw), c32(W)), m.block(null, [
          fn.set(i, m.i32.add(m.i32.mul(m.i32.add(m.i32.mul(m.i32.add(m.i32.mul(g(n), c32(H)), g(ih)), c32(W)), g(iw)), c32(C)), g(c))),
          visit,
        ])),
      ])),
    ]);
    const element = [
      fn.set(d, m.f32.load(0, 4, g(pdy))),
      fn.bump(pdy, 4),
      fn.set(best, c32(-1)),
      window,
      ...(k.op === 'max' ? [m.if(m.i32.ge_s(g(best), c32(0)), addTo(() => g(best)))] : []),
    ];
    if (C % 4 === 0 && wh * ww <= 64) return m.block(null, [...s, ...this.poolGradLanes(k, fn)]);
    s.push(fn.set(pdy, c32(dyAddr)), ...nest(fn, [N, OH, OW, C], [n, oh, ow, c], () => [], element));
    return m.block(null, s);
  }

  /**
   * pool_grad with 4 channels per step (NHWC keeps channels contiguous in x, dy and the output). The
   * window is unrolled; a window row or column is bounds-checked only when padding can put it
   * outside. max: each lane tracks the window position of its first maximum (strict >, as the
   * reference), then every in-bounds position adds dy where it won and 0 elsewhere, which leaves
   * the other cells unchanged (the output starts at +0, so it never holds -0).
   */
  private poolGradLanes(k: PoolGradKernel, fn: Fn): Ref[] {
    const { m, alu } = this;
    const [N, H, W, C] = k.shape;
    const [, OH, OW] = k.dyShape;
    const [wh, ww] = k.window;
    const [sh, sw] = k.strides;
    const [ph, pw] = [k.padding[0][0], k.padding[1][0]];
    const [n, oh, ow, c, base, pdy] = Array.from({ length: 6 }, () => fn.local(I32));
    const vh = Array.from({ length: wh }, () => fn.local(I32));
    const vw = Array.from({ length: ww }, () => fn.local(I32));
    const [d, best, bestv, xv, take] = Array.from({ length: 5 }, () => fn.local(V128));
    const g = (l: number) => fn.get(l);
    const c32 = (v: number) => m.i32.const(v);
    // statically in bounds for every output position?
    const alwaysH = (kh: number) => kh - ph >= 0 && (OH - 1) * sh + kh - ph < H;
    const alwaysW = (kw: number) => kw - pw >= 0 && (OW - 1) * sw + kw - pw < W;
    const positions: { p: number; kh: number; kw: number }[] = [];
    for (let kh = 0; kh < wh; kh++) for (let kw = 0; kw < ww; kw++) positions.push({ p: positions.length, kh, kw });
    const guard = (q: { kh: number; kw: number }, body: Ref): Ref => {
      const conds = [...(alwaysH(q.kh) ? [] : [g(vh[q.kh])]), ...(alwaysW(q.kw) ? [] : [g(vw[q.kw])])];
      return conds.length === 0 ? body : m.if(conds.length === 1 ? conds[0] : m.i32.and(conds[0], conds[1]), body);
    };
    /** Byte address of channel c at window position q, from `base` (element index of (ih, iw) = (oh*sh - ph, ow*sw - pw), c = 0). */
    const at = (q: { kh: number; kw: number }) => m.i32.shl(m.i32.add(g(base), m.i32.add(g(c), c32((q.kh * W + q.kw) * C))), c32(2));
    const addrOut = this.addr(k.output);
    const addrX = this.addr(k.inputs[0]);
    const rmw = (q: { kh: number; kw: number }, v: Ref) => m.v128.store(addrOut, 4, at(q), m.f32x4.add(m.v128.load(addrOut, 4, at(q)), v));
    const step: Ref[] = [fn.set(d, m.v128.load(this.addr(k.inputs[1]), 16, g(pdy))), fn.bump(pdy, 16)];
    if (k.op === 'sum') step.push(...positions.map((q) => guard(q, rmw(q, g(d)))));
    else {
      step.push(fn.set(best, alu.constV('i32', -1)));
      for (const q of positions)
        step.push(guard(q, m.block(null, [
          fn.set(xv, m.v128.load(addrX, 4, at(q))),
          fn.set(take, m.v128.or(m.i32x4.lt_s(g(best), alu.constV('i32', 0)), m.f32x4.gt(g(xv), g(bestv)))),
          fn.set(bestv, m.v128.bitselect(g(xv), g(bestv), g(take))),
          fn.set(best, m.v128.bitselect(alu.constV('i32', q.p), g(best), g(take))),
        ])));
      for (const q of positions) step.push(guard(q, rmw(q, m.v128.and(g(d), m.i32x4.eq(g(best), alu.constV('i32', q.p))))));
    }
    const pre = (l: number): Ref[] => {
      if (l === 2) return vh.map((v, kh) => fn.set(v, m.i32.lt_u(m.i32.add(m.i32.mul(g(oh), c32(sh)), c32(kh - ph)), c32(H))));
      return [];
    };
    const element: Ref[] = [
      ...vw.map((v, kw) => fn.set(v, m.i32.lt_u(m.i32.add(m.i32.mul(g(ow), c32(sw)), c32(kw - pw)), c32(W)))),
      fn.set(base, m.i32.mul(m.i32.add(m.i32.mul(m.i32.add(m.i32.mul(g(n), c32(H)), m.i32.add(m.i32.mul(g(oh), c32(sh)), c32(-ph))), c32(W)), m.i32.add(m.i32.mul(g(ow), c32(sw)), c32(-pw))), c32(C))),
      fn.loop(c, 0, C, 4, step),
    ];
    return [fn.set(pdy, c32(0)), ...nest(fn, [N, OH, OW], [n, oh, ow], pre, element)];
  }
}

/** Add kernel `i`, naming it in any error raised while generating it. */
function addKernelNamed(b: ModuleBuilder, i: number): void {
  try {
    b.addKernel(i);
  } catch (e) {
    throw new Error(`wasm codegen: kernel ${b.p.kernels[i].name} of ${b.p.name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/** Whether kernel `i` alone validates (used to name the culprit after a failed validation). */
function kernelValidates(p: Program, plan: MemoryPlan, opts: WasmOptions, i: number): boolean {
  const one = new ModuleBuilder(p, plan, opts);
  try {
    one.addKernel(i);
    one.finish([i]);
    return Boolean(one.m.validate());
  } finally {
    one.m.dispose();
  }
}

/** Build, validate (naming the first invalid kernel) and optimise the module. Caller disposes it. */
function buildModule(p: Program, plan: MemoryPlan, opts: WasmOptions): Mod {
  const b = new ModuleBuilder(p, plan, opts);
  try {
    const all = p.kernels.map((_, i) => i);
    all.forEach((i) => addKernelNamed(b, i));
    b.finish(all);
    if (!b.m.validate()) {
      // Rebuild one kernel at a time to name the culprit (only on this failure path).
      const bad = all.find((i) => !kernelValidates(p, plan, opts, i));
      throw new Error(bad === undefined ? `wasm codegen: invalid Wasm module for ${p.name}` : `wasm codegen: invalid Wasm for kernel ${p.kernels[bad].name} of ${p.name}`);
    }
    // Kernels stay separate functions (binaryen would inline each into `run`, its only caller): one
    // giant function compiles slower in the engine and hides kernels from profilers. binaryen's
    // settings are process-global, so they are restored.
    const saved = [binaryen.getOptimizeLevel(), binaryen.getShrinkLevel(), binaryen.getOneCallerInlineMaxSize()] as const;
    binaryen.setOptimizeLevel(2);
    binaryen.setShrinkLevel(0);
    binaryen.setOneCallerInlineMaxSize(0);
    try {
      b.m.optimize();
    } finally {
      binaryen.setOptimizeLevel(saved[0]);
      binaryen.setShrinkLevel(saved[1]);
      binaryen.setOneCallerInlineMaxSize(saved[2]);
    }
    return b.m;
  } catch (e) {
    b.m.dispose();
    throw e;
  }
}

/** One Wasm module running the whole program: exports `memory`, `run()` and each kernel as `k<i>()`; has a name section. */
export function emitWasm(p: Program, plan: MemoryPlan, opts: WasmOptions): Uint8Array {
  // Debug info keeps binaryen's function names through optimisation and emits a name section, so
  // profilers, stack traces and WAT dumps show `k<i>_<kernel name>`. Global setting: restored.
  const debug = binaryen.getDebugInfo();
  binaryen.setDebugInfo(true);
  try {
    const m = buildModule(p, plan, opts);
    try {
      return m.emitBinary();
    } finally {
      m.dispose();
    }
  } finally {
    binaryen.setDebugInfo(debug);
  }
}

/** The same module as binaryen's text (codegen tests; dumps use wabt, see codegen/wat.ts). */
export function emitWat(p: Program, plan: MemoryPlan, opts: WasmOptions): string {
  const m = buildModule(p, plan, opts);
  try {
    return m.emitText();
  } finally {
    m.dispose();
  }
}

/** Bytes of memory the module defines for `p` under `plan` (arena plus matmul scratch, page-rounded). */
export function wasmMemoryBytes(p: Program, plan: MemoryPlan): number {
  return Math.max(1, Math.ceil(planScratch(p, plan).end / 65536)) * 65536;
}
