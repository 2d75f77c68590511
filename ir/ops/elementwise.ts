/**
 * @file Elementwise ops: unary and binary ALU ops, `select` and `cast`.
 *
 * Binary ops take two inputs of the same dtype and shape (broadcasts are explicit nodes). Float-only
 * ops (exp, log, ...) reject integer inputs. Comparisons return bool. The reference semantics of i32
 * arithmetic wrap like 32-bit two's complement, and integer division truncates, as WGSL and Wasm do.
 */
import * as b from '../builders.ts';
import type { OpDef } from '../opdef.ts';
import { expectDType, fail } from '../opdef.ts';
import type { BinaryOp, DType, Node, OpParams, TensorType, UnaryOp } from '../types.ts';
import { fmtType, numel, shapeEq } from '../types.ts';

function unary<O extends UnaryOp>(
  dtypes: readonly DType[],
  f: (x: number) => number,
  vjp: (ct: Node, x: Node, y: Node) => Node,
): OpDef<O> {
  return {
    arity: 1,
    type: ([x]) => (expectDType(x, dtypes, 'operand'), { dtype: x.dtype, shape: x.shape }),
    interp: ([x], _p, out) => {
      const r = new Float64Array(x.data.length);
      const wrap = out.dtype === 'i32';
      for (let i = 0; i < r.length; i++) r[i] = wrap ? f(x.data[i]) | 0 : f(x.data[i]);
      return r;
    },
    vjp: (ct, n) => [vjp(ct, n.inputs[0], n as Node)],
  };
}

function binaryType(a: TensorType, c: TensorType, dtypes: readonly DType[]): void {
  if (a.dtype !== c.dtype) fail(`operand dtypes differ: ${a.dtype} vs ${c.dtype}`);
  if (!shapeEq(a.shape, c.shape)) fail(`operand shapes differ: ${fmtType(a)} vs ${fmtType(c)} (broadcast explicitly)`);
  expectDType(a, dtypes, 'operands');
}

function binary<O extends BinaryOp>(
  dtypes: readonly DType[],
  result: 'same' | 'bool',
  f: (x: number, y: number, int: boolean) => number,
  vjp: (ct: Node, x: Node, y: Node, out: Node) => readonly (Node | null)[],
): OpDef<O> {
  return {
    arity: 2,
    type: ([x, y]) => (binaryType(x, y, dtypes), { dtype: result === 'bool' ? 'bool' : x.dtype, shape: x.shape }),
    interp: ([x, y]) => {
      const r = new Float64Array(x.data.length);
      const int = x.dtype === 'i32';
      for (let i = 0; i < r.length; i++) r[i] = f(x.data[i], y.data[i], int);
      return r;
    },
    vjp: (ct, n) => vjp(ct, n.inputs[0], n.inputs[1], n as Node),
  };
}

const NUM: readonly DType[] = ['f32', 'i32'];
const F: readonly DType[] = ['f32'];
const ANY: readonly DType[] = ['f32', 'i32', 'bool'];
const nograd = () => [null, null] as const;

export const elementwiseOps: { readonly [O in UnaryOp | BinaryOp | 'select' | 'cast']: OpDef<O> } = {
  neg: unary(NUM, (x) => -x, (ct) => b.neg(ct)),
  // The gradient at 0 is the cotangent itself (sign taken as +1 there, as JAX does).
  abs: unary(NUM, Math.abs, (ct, x) => b.select(b.less(x, b.scalarLike(0, x)), b.neg(ct), ct)),
  exp: unary(F, Math.exp, (ct, _x, y) => b.mul(ct, y)),
  log: unary(F, Math.log, (ct, x) => b.div(ct, x)),
  sqrt: unary(F, Math.sqrt, (ct, _x, y) => b.div(ct, b.mul(b.scalarLike(2, y), y))),
  recip: unary(F, (x) => 1 / x, (ct, _x, y) => b.neg(b.mul(ct, b.mul(y, y)))),
  tanh: unary(F, Math.tanh, (ct, _x, y) => b.mul(ct, b.sub(b.scalarLike(1, y), b.mul(y, y)))),

  add: binary(NUM, 'same', (x, y, int) => (int ? (x + y) | 0 : x + y), (ct) => [ct, ct]),
  sub: binary(NUM, 'same', (x, y, int) => (int ? (x - y) | 0 : x - y), (ct) => [ct, b.neg(ct)]),
  mul: binary(NUM, 'same', (x, y, int) => (int ? Math.imul(x, y) : x * y), (ct, x, y) => [b.mul(ct, y), b.mul(ct, x)]),
  div: binary(NUM, 'same', (x, y, int) => (int ? (y === 0 ? 0 : Math.trunc(x / y) | 0) : x / y), (ct, x, y, out) => [
    b.div(ct, y),
    b.neg(b.mul(ct, b.div(out, y))),
  ]),
  // Ties send the whole cotangent to the first operand, so max(x, x) has gradient 1, not 2.
  max: binary(NUM, 'same', (x, y) => Math.max(x, y), (ct, x, y) => {
    const takeY = b.less(x, y);
    const z = b.scalarLike(0, ct);
    return [b.select(takeY, z, ct), b.select(takeY, ct, z)];
  }),
  min: binary(NUM, 'same', (x, y) => Math.min(x, y), (ct, x, y) => {
    const takeY = b.less(y, x);
    const z = b.scalarLike(0, ct);
    return [b.select(takeY, z, ct), b.select(takeY, ct, z)];
  }),
  pow: binary(F, 'same', (x, y) => Math.pow(x, y), (ct, x, y, out) => [
    b.mul(ct, b.mul(y, b.pow(x, b.sub(y, b.scalarLike(1, y))))),
    // d/dy x^y = log(x) x^y; at x = 0 take log(x) as 0 (0^y is constant in y for y > 0), as JAX does.
    b.mul(ct, b.mul(b.select(b.equal(x, b.scalarLike(0, x)), b.scalarLike(0, x), b.log(x)), out)),
  ]),
  less: binary(NUM, 'bool', (x, y) => (x < y ? 1 : 0), nograd),
  equal: binary(ANY, 'bool', (x, y) => (x === y ? 1 : 0), nograd),

  select: {
    arity: 3,
    type: ([c, x, y]) => {
      expectDType(c, ['bool'], 'condition');
      binaryType(x, y, ANY);
      if (!shapeEq(c.shape, x.shape)) fail(`condition shape ${fmtType(c)} differs from operands ${fmtType(x)}`);
      return { dtype: x.dtype, shape: x.shape };
    },
    interp: ([c, x, y]) => {
      const r = new Float64Array(x.data.length);
      for (let i = 0; i < r.length; i++) r[i] = c.data[i] ? x.data[i] : y.data[i];
      return r;
    },
    vjp: (ct, n) => {
      const z = b.scalarLike(0, ct);
      return [null, b.select(n.inputs[0], ct, z), b.select(n.inputs[0], z, ct)];
    },
  },

  cast: {
    arity: 1,
    type: ([x], p: OpParams['cast']) => {
      if (!['f32', 'i32', 'bool'].includes(p.to)) fail(`unknown dtype ${String(p.to)}`);
      return { dtype: p.to, shape: x.shape };
    },
    interp: ([x], p) => {
      const r = new Float64Array(numel(x.shape));
      for (let i = 0; i < r.length; i++) {
        const v = x.data[i];
        // f32 -> i32 saturates and maps NaN to 0, like Wasm's trunc_sat and WGSL's conversion.
        r[i] = p.to === 'bool' ? (v !== 0 ? 1 : 0) : p.to === 'i32' ? (Number.isNaN(v) ? 0 : Math.max(-2147483648, Math.min(2147483647, Math.trunc(v)))) : v;
      }
      return r;
    },
    // Gradients flow only between float types; casts to or from integers cut them.
    vjp: (ct, n) => [n.inputs[0].dtype === 'f32' && n.dtype === 'f32' ? ct : null],
  },
};
