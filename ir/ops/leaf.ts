/**
 * @file Leaf ops: `input` (function parameters), `constant` (a tensor filled with one value), `iota`
 * (index along an axis) and `random_uniform` (the counter-based generator, keyed by an i32 scalar).
 *
 * Leaves take their result type from params. `input` nodes are only made by `input()` in node.ts and
 * are never evaluated by their own rule; the interpreter binds them to arguments.
 */
import { uniformAt } from '../random.ts';
import type { OpDef } from '../opdef.ts';
import { checkValue, expectDType, fail } from '../opdef.ts';
import type { Shape } from '../types.ts';
import { DTYPES, numel, stridesOf } from '../types.ts';

function checkShape(shape: Shape): void {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`bad shape [${String(shape)}]`);
}

export const leafOps: { readonly [O in 'input' | 'constant' | 'iota' | 'random_uniform']: OpDef<O> } = {
  input: {
    arity: 0,
    type: () => fail('input nodes are made by input(), not apply()'),
    interp: () => fail('input nodes are bound by the interpreter, not evaluated'),
    vjp: () => [],
  },
  constant: {
    arity: 0,
    type: (_i, p) => {
      checkShape(p.shape);
      if (!DTYPES.includes(p.dtype)) fail(`unknown dtype ${String(p.dtype)}`);
      checkValue(p.value, p.dtype, 'value');
      return { dtype: p.dtype, shape: p.shape };
    },
    interp: (_i, p) => new Float64Array(numel(p.shape)).fill(p.value),
    vjp: () => [],
  },
  iota: {
    arity: 0,
    type: (_i, p) => {
      checkShape(p.shape);
      if (!Number.isInteger(p.axis) || p.axis < 0 || p.axis >= p.shape.length) fail(`axis ${p.axis} out of range`);
      if (p.dtype !== 'f32' && p.dtype !== 'i32') fail(`iota must be f32 or i32, got ${String(p.dtype)}`);
      return { dtype: p.dtype, shape: p.shape };
    },
    interp: (_i, p) => {
      const r = new Float64Array(numel(p.shape));
      const st = stridesOf(p.shape)[p.axis];
      const d = p.shape[p.axis];
      for (let i = 0; i < r.length; i++) r[i] = Math.floor(i / st) % d;
      return r;
    },
    vjp: () => [],
  },
  random_uniform: {
    arity: 1,
    type: ([key], p) => {
      checkShape(p.shape);
      expectDType(key, ['i32'], 'key');
      if (key.shape.length !== 0) fail(`key must be a scalar, got rank ${key.shape.length}`);
      if (!Number.isInteger(p.seed)) fail(`seed must be an integer`);
      return { dtype: 'f32', shape: p.shape };
    },
    interp: ([key], p) => {
      const r = new Float64Array(numel(p.shape));
      const k = key.data[0] | 0;
      for (let i = 0; i < r.length; i++) r[i] = uniformAt(p.seed, k, i);
      return r;
    },
    vjp: () => [null],
  },
};
