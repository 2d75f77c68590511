/**
 * @file The ALU: Wasm code for each kernel-IR op, scalar and 4-lane (SIMD128), plus constants,
 * conversions, loads and stores.
 *
 * `UNARY` and `BINARY` are mapped types over the kernel IR's `UnOp` and `BinOp`, which include the
 * graph IR's `UNARY_OPS` and `BINARY_OPS` (ir/types.ts): an op declared there without an entry
 * here is a type error naming it. Each entry gives the scalar and the vector form; an op that
 * needs more than a few instructions calls a helper function (helpers.ts), whose 4-lane version may
 * apply the scalar one lane by lane. Vector bools are 0/1 lanes like scalar ones (comparison masks
 * are shifted down), so loads, stores and casts treat them as i32 in both forms.
 */
import type { DType } from '../../../ir/types.ts';
import type { BinOp, UnOp } from '../../kernel/types.ts';
import { F32, I32, V128, v128Bytes, type Mod, type Ref } from './core.ts';
import type { Helpers } from './helpers.ts';

/** Code for one unary op; `dt` is the result's dtype (the operand's, except for `not`). */
interface UnaryCode {
  scalar(x: Alu, dt: DType, a: Ref): Ref;
  vector(x: Alu, dt: DType, a: Ref): Ref;
}

/** Code for one binary op; `odt` is the operands' dtype (the result is bool for comparisons). */
interface BinaryCode {
  /** `bConst`: the value of the right operand when it is a constant (a divisor), else null. */
  scalar(x: Alu, odt: DType, a: Ref, b: Ref, bConst: number | null): Ref;
  vector(x: Alu, odt: DType, a: Ref, b: Ref): Ref;
}

/** An f32 op computed by helper function `name` (and `${name}4` for 4 lanes). */
const viaHelper = (name: 'exp' | 'log' | 'tanh'): UnaryCode => ({
  scalar: ({ m, h }, _dt, a) => m.call(h.use(name), [a], F32),
  vector: ({ m, h }, _dt, a) => m.call(h.use(`${name}4`), [a], V128),
});

const UNARY: { readonly [O in UnOp]: UnaryCode } = {
  neg: {
    scalar: ({ m }, dt, a) => (dt === 'f32' ? m.f32.neg(a) : m.i32.sub(m.i32.const(0), a)),
    vector: ({ m }, dt, a) => (dt === 'f32' ? m.f32x4.neg(a) : m.i32x4.neg(a)),
  },
  abs: {
    scalar: ({ m, h }, dt, a) => (dt === 'f32' ? m.f32.abs(a) : m.call(h.use('iabs'), [a], I32)),
    vector: ({ m }, dt, a) => (dt === 'f32' ? m.f32x4.abs(a) : m.i32x4.abs(a)),
  },
  exp: viaHelper('exp'),
  log: viaHelper('log'),
  sqrt: {
    scalar: ({ m }, _dt, a) => m.f32.sqrt(a),
    vector: ({ m }, _dt, a) => m.f32x4.sqrt(a),
  },
  recip: {
    scalar: ({ m }, _dt, a) => m.f32.div(m.f32.const(1), a),
    vector: (x, _dt, a) => x.m.f32x4.div(x.constV('f32', 1), a),
  },
  tanh: viaHelper('tanh'),
  not: {
    scalar: ({ m }, _dt, a) => m.i32.eqz(a),
    vector: (x, _dt, a) => x.m.v128.xor(a, x.constV('i32', 1)),
  },
};

const BINARY: { readonly [O in BinOp]: BinaryCode } = {
  add: {
    scalar: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32.add(a, b) : m.i32.add(a, b)),
    vector: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32x4.add(a, b) : m.i32x4.add(a, b)),
  },
  sub: {
    scalar: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32.sub(a, b) : m.i32.sub(a, b)),
    vector: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32x4.sub(a, b) : m.i32x4.sub(a, b)),
  },
  mul: {
    scalar: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32.mul(a, b) : m.i32.mul(a, b)),
    vector: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32x4.mul(a, b) : m.i32x4.mul(a, b)),
  },
  div: {
    scalar: ({ m, h }, odt, a, b, bConst) => {
      if (odt === 'f32') return m.f32.div(a, b);
      // Index arithmetic divides by constants: emit the plain instruction (the engine strength-reduces it).
      if (bConst !== null && bConst !== 0 && bConst !== -1) return m.i32.div_s(a, b);
      return m.call(h.use('idiv'), [a, b], I32);
    },
    vector: ({ m, h }, odt, a, b) => (odt === 'f32' ? m.f32x4.div(a, b) : m.call(h.use('idiv4'), [a, b], V128)),
  },
  mod: {
    scalar: ({ m, h }, odt, a, b, bConst) => {
      if (odt === 'f32') return m.call(h.use('fmod'), [a, b], F32);
      if (bConst !== null && bConst !== 0) return m.i32.rem_s(a, b);
      return m.call(h.use('irem'), [a, b], I32);
    },
    vector: ({ m, h }, odt, a, b) => m.call(h.use(odt === 'f32' ? 'fmod4' : 'irem4'), [a, b], V128),
  },
  max: {
    scalar: ({ m, h }, odt, a, b) => (odt === 'f32' ? m.f32.max(a, b) : m.call(h.use('imax'), [a, b], I32)),
    vector: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32x4.max(a, b) : m.i32x4.max_s(a, b)),
  },
  min: {
    scalar: ({ m, h }, odt, a, b) => (odt === 'f32' ? m.f32.min(a, b) : m.call(h.use('imin'), [a, b], I32)),
    vector: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32x4.min(a, b) : m.i32x4.min_s(a, b)),
  },
  pow: {
    scalar: ({ m, h }, _odt, a, b) => m.call(h.use('pow'), [a, b], F32),
    vector: ({ m, h }, _odt, a, b) => m.call(h.use('pow4'), [a, b], V128),
  },
  less: {
    scalar: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32.lt(a, b) : m.i32.lt_s(a, b)),
    vector: (x, odt, a, b) => x.maskToBool(odt === 'f32' ? x.m.f32x4.lt(a, b) : x.m.i32x4.lt_s(a, b)),
  },
  equal: {
    scalar: ({ m }, odt, a, b) => (odt === 'f32' ? m.f32.eq(a, b) : m.i32.eq(a, b)),
    vector: (x, odt, a, b) => x.maskToBool(odt === 'f32' ? x.m.f32x4.eq(a, b) : x.m.i32x4.eq(a, b)),
  },
  and: {
    scalar: ({ m }, _odt, a, b) => m.i32.and(a, b),
    vector: ({ m }, _odt, a, b) => m.v128.and(a, b),
  },
};

/** Wasm instruction sequences for the kernel IR, scalar (`*S`) and 4-lane (`*V`). */
export class Alu {
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
    return UNARY[op].scalar(this, dt, a);
  }
  unV(op: UnOp, dt: DType, a: Ref): Ref {
    return UNARY[op].vector(this, dt, a);
  }
  /** `odt` is the operands' dtype (the result is bool for less/equal); `bConst` a constant divisor, if any. */
  binS(op: BinOp, odt: DType, a: Ref, b: Ref, bConst: number | null): Ref {
    return BINARY[op].scalar(this, odt, a, b, bConst);
  }
  binV(op: BinOp, odt: DType, a: Ref, b: Ref): Ref {
    return BINARY[op].vector(this, odt, a, b);
  }

  loadS(dt: DType, base: number, index: Ref): Ref {
    const ptr = this.m.i32.shl(index, this.m.i32.const(2));
    return dt === 'f32' ? this.m.f32.load(base, 4, ptr) : this.m.i32.load(base, 4, ptr);
  }
  storeS(dt: DType, ptr: Ref, v: Ref, offset = 0): Ref {
    return dt === 'f32' ? this.m.f32.store(offset, 4, ptr, v) : this.m.i32.store(offset, 4, ptr, v);
  }
}
