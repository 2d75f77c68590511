/**
 * @file Helper functions inside the module, each added on first use: transcendentals computing in
 * f64 with range reduction and short polynomials (relative error below 1e-11 before the final
 * rounding to f32; exp and tanh also as f64x2 SIMD versions doing the same operations per lane, so
 * vector and scalar code agree bit for bit), integer division and remainder guarded as the reference
 * defines them, and `rand`, which reproduces ir/random.ts exactly (the murmur3 finalizer in i32
 * arithmetic, scalar or 4 lanes). Nothing is imported from JS.
 */
import { binaryen } from './binaryen.ts';
import { RNG_GOLDEN } from '../../../ir/random.ts';
import { F32, F64, I32, I64, V128, type Mod, type Ref, type Ty } from './core.ts';

const INV_LN2 = 1.4426950408889634;
const LN2_HI = 6.9314718036912381649e-1; // fdlibm split: k*LN2_HI is exact for |k| < 2^11
const LN2_LO = 1.9082149292705877e-10;
const LN2 = 0.6931471805599453;
const SQRT2 = 1.4142135623730951;
/** 1.5 * 2^52: adding it rounds an f64 below 2^51 in magnitude to an integer (ties to even, like nearest), kept in the low mantissa bits. */
const ROUND_MAGIC = 6755399441055744;
const invFact = (n: number): number => (n <= 1 ? 1 : invFact(n - 1) / n);

export type HelperName =
  | 'expd' | 'tanhd' | 'logd' | 'powd'
  | 'exp' | 'log' | 'tanh' | 'pow' | 'fmod'
  | 'idiv' | 'irem' | 'imax' | 'imin' | 'iabs'
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
export class Helpers {
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
      case 'iabs':
        // Wraps like the reference: abs(INT_MIN) = INT_MIN.
        add([I32], I32, [], m.select(m.i32.lt_s(gi(0), m.i32.const(0)), m.i32.sub(m.i32.const(0), gi(0)), gi(0)));
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
