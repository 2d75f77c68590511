/**
 * @file Op-table conformance tests: one row per op in `ALL_OPS` (ir/optable.ts).
 *
 * Each row holds (1) forward cases whose expected values are small tensors computed by hand and
 * written out literally, run through the f64 reference interpreter; (2) type-rule cases (result
 * types and rejections); and (3) for differentiable ops, VJP cases checked against central finite
 * differences with the inner-product identity `<c, J v> = <J^T c, v>` (see helpers/gradcheck.ts),
 * or, for non-differentiable ops, the reason and a check that the rule returns null cotangents.
 * The table is a mapped type over `Op`, so adding an op without a row is a type error, and a test
 * compares its keys with `ALL_OPS` at run time too.
 */
import { describe, expect, it } from 'vitest';
import { makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { IRTypeError } from '../ir/opdef.ts';
import { apply, input } from '../ir/node.ts';
import { ALL_OPS } from '../ir/optable.ts';
import type { DType, InputNode, Op, OpParams, Padding2, Shape, TensorType } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import type { ArgSpec } from './helpers/gradcheck.ts';
import { evalOp, seedOf, vjpCheck, vjpOf, vjpValues } from './helpers/gradcheck.ts';

// ---------------------------------------------------------------------------------------------
// Row types

/** A literal tensor: values written out in row-major order (bool as 0/1). */
interface Lit {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly data: readonly number[];
}

interface FwdCase<O extends Op> {
  readonly name: string;
  readonly args: readonly Lit[];
  readonly params: OpParams[O];
  readonly want: Lit;
  /** Relative tolerance for transcendental results; exact (===) when absent. */
  readonly tol?: number;
}

interface TypeCase<O extends Op> {
  readonly name: string;
  readonly args: readonly TensorType[];
  readonly params: OpParams[O];
  /** The inferred result type, or a pattern the IRTypeError message must match. */
  readonly want: TensorType | RegExp;
}

interface GradCase<O extends Op> {
  readonly name: string;
  readonly args: readonly ArgSpec[];
  readonly params: OpParams[O];
}

interface NullCase<O extends Op> {
  readonly name: string;
  readonly args: readonly ArgSpec[];
  readonly params: OpParams[O];
  /** Per input: the rule must return null, or pass the cotangent through unchanged ('ct'). */
  readonly want: readonly ('null' | 'ct')[];
}

interface ThrowCase<O extends Op> {
  readonly name: string;
  readonly args: readonly ArgSpec[];
  readonly params: OpParams[O];
  readonly message: RegExp;
}

/** A free-form property check, for ops whose values cannot be written out by hand. */
interface Prop {
  readonly name: string;
  readonly run: () => void;
}

interface RowBase<O extends Op> {
  readonly forward: readonly FwdCase<O>[];
  readonly types?: readonly TypeCase<O>[];
  readonly props?: readonly Prop[];
}

interface Differentiable<O extends Op> extends RowBase<O> {
  /** VJP cases checked against central finite differences. */
  readonly grad: readonly GradCase<O>[];
  /** Parameterisations whose VJP is refused on purpose, with the reason in `why`. */
  readonly vjpThrows?: { readonly why: string; readonly cases: readonly ThrowCase<O>[] };
}

interface NonDifferentiable<O extends Op> extends RowBase<O> {
  readonly grad: 'none';
  readonly reason: string;
  readonly nullGrad: readonly NullCase<O>[];
}

type Row<O extends Op> = Differentiable<O> | NonDifferentiable<O>;

/** Ops deliberately without a row, with the reason. */
const EXCLUDED = {
  input: 'a function parameter bound to an argument by the interpreter, not an op to evaluate: its type rule and interp refuse to run',
  scan: 'has several results and a body function; test/scan.test.ts checks it whole (interpreter against the loop unrolled, VJP against finite differences)',
  scan_result: 'reads one result of a scan; tested with scan in test/scan.test.ts',
} as const satisfies Partial<Record<Op, string>>;

type RowOp = Exclude<Op, keyof typeof EXCLUDED>;

// ---------------------------------------------------------------------------------------------
// Small constructors

const NONE = {} as Record<string, never>;
const f32 = (shape: Shape, data: readonly number[]): Lit => ({ dtype: 'f32', shape, data });
const i32 = (shape: Shape, data: readonly number[]): Lit => ({ dtype: 'i32', shape, data });
const bool = (shape: Shape, data: readonly number[]): Lit => ({ dtype: 'bool', shape, data });
const ty = (dtype: DType, shape: Shape): TensorType => ({ dtype, shape });
/** A random f32 argument for gradient checks. */
const g = (shape: Shape, gen: ArgSpec['gen'] = 'uniform'): ArgSpec => ({ dtype: 'f32', shape, gen });
const DISTINCT = { distinct: 0 } as const;
const DISTINCT_OFF = { distinct: 0.5 } as const;
const conv = (strides: readonly number[], padding: Padding2, lhsDilation = [1, 1], rhsDilation = [1, 1]): OpParams['conv'] => ({
  strides,
  padding,
  lhsDilation,
  rhsDilation,
});
const win = (op: 'max' | 'sum', window: readonly number[], strides: readonly number[], padding: Padding2): OpParams['reduce_window'] => ({
  op,
  window,
  strides,
  padding,
});
const iota1 = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);

/** Unary float op row pieces. */
const unaryGrad = <O extends 'neg' | 'exp' | 'log' | 'sqrt' | 'recip' | 'tanh'>(gen: ArgSpec['gen']): readonly GradCase<O>[] => [
  { name: 'f32[3,4]', args: [g([3, 4], gen)], params: NONE as OpParams[O] },
  { name: 'scalar', args: [g([], gen)], params: NONE as OpParams[O] },
];

// ---------------------------------------------------------------------------------------------
// The table

const ROWS: { readonly [O in RowOp]: Row<O> } = {
  // ---- leaves ----
  constant: {
    forward: [
      { name: 'f32 fill', args: [], params: { value: 2.5, dtype: 'f32', shape: [2, 2] }, want: f32([2, 2], [2.5, 2.5, 2.5, 2.5]) },
      { name: 'i32 fill', args: [], params: { value: -3, dtype: 'i32', shape: [3] }, want: i32([3], [-3, -3, -3]) },
      { name: 'bool scalar', args: [], params: { value: 1, dtype: 'bool', shape: [] }, want: bool([], [1]) },
      { name: 'empty', args: [], params: { value: 1, dtype: 'f32', shape: [2, 0] }, want: f32([2, 0], []) },
    ],
    types: [
      { name: 'i32 constant must be an integer', args: [], params: { value: 0.5, dtype: 'i32', shape: [1] }, want: /is not an i32/ },
      // Regression (fixed): accepted today; the node then holds 2147483648, which no i32 can.
      { name: 'i32 constant must be within i32 range', args: [], params: { value: 2 ** 31, dtype: 'i32', shape: [1] }, want: /value 2147483648 is not an i32$/ },
      // Regression (fixed): accepted today; the "bool" then holds 2, so equal(it, true) is false.
      { name: 'bool constant must be 0 or 1', args: [], params: { value: 2, dtype: 'bool', shape: [1] }, want: /value 2 is not a bool \(0 or 1\)$/ },
    ],
    grad: 'none',
    reason: 'a leaf: no inputs, so nothing to differentiate',
    nullGrad: [{ name: 'no inputs', args: [], params: { value: 1, dtype: 'f32', shape: [2] }, want: [] }],
  },
  iota: {
    forward: [
      { name: 'i32 along axis 1', args: [], params: { axis: 1, dtype: 'i32', shape: [2, 3] }, want: i32([2, 3], [0, 1, 2, 0, 1, 2]) },
      { name: 'i32 along axis 0', args: [], params: { axis: 0, dtype: 'i32', shape: [2, 3] }, want: i32([2, 3], [0, 0, 0, 1, 1, 1]) },
      {
        name: 'f32 along the middle axis of rank 3',
        args: [],
        params: { axis: 1, dtype: 'f32', shape: [2, 3, 2] },
        want: f32([2, 3, 2], [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]),
      },
    ],
    types: [
      { name: 'bool rejected', args: [], params: { axis: 0, dtype: 'bool', shape: [2] }, want: /f32 or i32/ },
      { name: 'axis out of range', args: [], params: { axis: 2, dtype: 'i32', shape: [2, 3] }, want: /axis 2 out of range/ },
      // Regression (fixed): only 'bool' is rejected, so a parsed unknown dtype makes a node of dtype 'x'.
      { name: 'unknown dtype rejected', args: [], params: { axis: 0, dtype: 'x' as DType, shape: [2] }, want: /iota must be f32 or i32, got x$/ },
    ],
    grad: 'none',
    reason: 'a leaf: no inputs, so nothing to differentiate',
    nullGrad: [{ name: 'no inputs', args: [], params: { axis: 0, dtype: 'f32', shape: [3] }, want: [] }],
  },
  random_uniform: {
    // Values are hash outputs, so they cannot be written out by hand; the properties below pin
    // down range, exactness, determinism, key/seed sensitivity and the distribution's moments.
    forward: [],
    props: [
      {
        name: 'values lie in [0, 1) and are multiples of 2^-24 (exact in f32)',
        run: () => {
          const r = uniform(7, 3, [100, 100]);
          expect(r.dtype).toBe('f32');
          expect(r.shape).toEqual([100, 100]);
          for (const v of r.data) {
            if (!(v >= 0 && v < 1) || Math.fround(v) !== v || !Number.isInteger(v * 2 ** 24)) {
              expect.unreachable(`value ${v} is not in [0,1) on the 2^-24 grid`);
            }
          }
        },
      },
      {
        name: 'same (seed, key) gives the same numbers, also for a different shape',
        run: () => {
          const a = uniform(5, 11, [64]).data;
          expect(Array.from(uniform(5, 11, [64]).data)).toEqual(Array.from(a));
          // element i is a function of (seed, key, i) only
          expect(Array.from(uniform(5, 11, [8, 8]).data)).toEqual(Array.from(a));
        },
      },
      {
        name: 'different keys and different seeds give different numbers',
        run: () => {
          const a = uniform(5, 11, [256]).data;
          const sameAs = (b: Float64Array) => b.filter((v, i) => v === a[i]).length;
          expect(sameAs(uniform(5, 12, [256]).data)).toBeLessThan(3);
          expect(sameAs(uniform(6, 11, [256]).data)).toBeLessThan(3);
          expect(sameAs(uniform(5, -11, [256]).data)).toBeLessThan(3);
          // and the elements of one draw are not all the same
          expect(new Set(a).size).toBeGreaterThan(250);
        },
      },
      {
        name: 'mean is about 1/2 and variance about 1/12 over 10k samples',
        run: () => {
          const d = uniform(1, 0, [10_000]).data;
          const mean = d.reduce((s, v) => s + v, 0) / d.length;
          const vari = d.reduce((s, v) => s + (v - mean) ** 2, 0) / d.length;
          // std of the mean is 0.289/100 = 0.003; 0.015 is five of those.
          expect(Math.abs(mean - 0.5)).toBeLessThan(0.015);
          expect(Math.abs(vari - 1 / 12)).toBeLessThan(0.005);
        },
      },
    ],
    types: [
      { name: 'key must be i32', args: [ty('f32', [])], params: { seed: 1, shape: [2] }, want: /key must be i32/ },
      { name: 'key must be a scalar', args: [ty('i32', [1])], params: { seed: 1, shape: [2] }, want: /key must be a scalar/ },
      { name: 'result is f32 of the given shape', args: [ty('i32', [])], params: { seed: 1, shape: [2, 3] }, want: ty('f32', [2, 3]) },
    ],
    grad: 'none',
    reason: 'its only input is an integer key; the output is piecewise constant in everything',
    nullGrad: [{ name: 'key', args: [{ dtype: 'i32', shape: [], gen: [3] }], params: { seed: 1, shape: [4] }, want: ['null'] }],
  },

  // ---- elementwise unary ----
  neg: {
    forward: [
      { name: 'f32', args: [f32([4], [1, -2, 0.5, 3.5])], params: NONE, want: f32([4], [-1, 2, -0.5, -3.5]) },
      { name: 'i32 wraps at INT_MIN', args: [i32([2], [-2147483648, 5])], params: NONE, want: i32([2], [-2147483648, -5]) },
    ],
    types: [{ name: 'bool rejected', args: [ty('bool', [2])], params: NONE, want: /operand must be f32 or i32/ }],
    grad: unaryGrad('uniform'),
  },
  abs: {
    forward: [
      { name: 'f32', args: [f32([5], [1.5, -2, 0, -0.25, 3])], params: NONE, want: f32([5], [1.5, 2, 0, 0.25, 3]) },
      { name: 'i32 wraps at INT_MIN', args: [i32([3], [-2147483648, -5, 7])], params: NONE, want: i32([3], [-2147483648, 5, 7]) },
    ],
    types: [{ name: 'bool rejected', args: [ty('bool', [2])], params: NONE, want: /operand must be f32 or i32/ }],
    // Away from the kink at 0 (DISTINCT_OFF keeps every value at least 0.02 from it).
    grad: [
      { name: 'f32[3,4], both signs', args: [g([3, 4], DISTINCT_OFF)], params: NONE },
      { name: 'negative scalar', args: [{ dtype: 'f32', shape: [], gen: [-0.7] }], params: NONE },
    ],
  },
  exp: {
    forward: [
      {
        name: 'f32',
        args: [f32([4], [0, 1, -1, 0.5])],
        params: NONE,
        want: f32([4], [1, 2.718281828459045, 0.36787944117144233, 1.6487212707001282]),
        tol: 1e-15,
      },
    ],
    types: [{ name: 'i32 rejected', args: [ty('i32', [2])], params: NONE, want: /operand must be f32, got i32/ }],
    grad: unaryGrad('uniform'),
  },
  log: {
    forward: [
      {
        name: 'f32',
        args: [f32([4], [1, 2, 0.5, 10])],
        params: NONE,
        want: f32([4], [0, 0.6931471805599453, -0.6931471805599453, 2.302585092994046]),
        tol: 1e-15,
      },
    ],
    grad: unaryGrad('positive'),
  },
  sqrt: {
    forward: [{ name: 'f32', args: [f32([4], [4, 2.25, 0, 2])], params: NONE, want: f32([4], [2, 1.5, 0, 1.4142135623730951]), tol: 1e-15 }],
    grad: unaryGrad('positive'),
  },
  recip: {
    forward: [{ name: 'f32', args: [f32([3], [2, -0.25, 4])], params: NONE, want: f32([3], [0.5, -4, 0.25]) }],
    grad: unaryGrad('positive'),
  },
  tanh: {
    forward: [
      {
        name: 'f32',
        args: [f32([4], [0, 1, -2, 20])],
        params: NONE,
        want: f32([4], [0, 0.7615941559557649, -0.9640275800758169, 1]),
        tol: 1e-15,
      },
    ],
    grad: unaryGrad('uniform'),
  },

  // ---- elementwise binary ----
  add: {
    forward: [
      { name: 'f32', args: [f32([2], [1.5, -2]), f32([2], [0.25, 3])], params: NONE, want: f32([2], [1.75, 1]) },
      {
        name: 'i32 wraps',
        args: [i32([3], [2147483647, -2147483648, 5]), i32([3], [1, -1, -7])],
        params: NONE,
        want: i32([3], [-2147483648, 2147483647, -2]),
      },
    ],
    types: [
      { name: 'shapes must match (no implicit broadcast)', args: [ty('f32', [2]), ty('f32', [1])], params: NONE, want: /operand shapes differ/ },
      { name: 'dtypes must match', args: [ty('f32', [2]), ty('i32', [2])], params: NONE, want: /operand dtypes differ/ },
    ],
    grad: [{ name: 'f32[2,3]', args: [g([2, 3]), g([2, 3])], params: NONE }],
  },
  sub: {
    forward: [
      { name: 'f32', args: [f32([2], [5, 1]), f32([2], [2, 3])], params: NONE, want: f32([2], [3, -2]) },
      { name: 'i32 wraps', args: [i32([2], [-2147483648, 3]), i32([2], [1, 5])], params: NONE, want: i32([2], [2147483647, -2]) },
    ],
    grad: [{ name: 'f32[2,3]', args: [g([2, 3]), g([2, 3])], params: NONE }],
  },
  mul: {
    forward: [
      { name: 'f32', args: [f32([2], [1.5, -2]), f32([2], [4, 0.5])], params: NONE, want: f32([2], [6, -1]) },
      {
        // 65536^2 = 2^32 wraps to 0; 46341^2 = 2147488281 wraps to 2147488281 - 2^32.
        name: 'i32 wraps',
        args: [i32([3], [65536, 46341, -3]), i32([3], [65536, 46341, 7])],
        params: NONE,
        want: i32([3], [0, -2147479015, -21]),
      },
    ],
    grad: [{ name: 'f32[2,3]', args: [g([2, 3]), g([2, 3])], params: NONE }],
  },
  div: {
    forward: [
      { name: 'f32', args: [f32([2], [7, -1]), f32([2], [2, 4])], params: NONE, want: f32([2], [3.5, -0.25]) },
      {
        name: 'i32 truncates toward zero',
        args: [i32([5], [7, -7, 7, -7, 6]), i32([5], [2, 2, -2, -2, 3])],
        params: NONE,
        want: i32([5], [3, -3, -3, 3, 2]),
      },
      { name: 'i32 INT_MIN / -1 wraps', args: [i32([1], [-2147483648]), i32([1], [-1])], params: NONE, want: i32([1], [-2147483648]) },
    ],
    grad: [{ name: 'f32[2,3], wrt numerator and denominator', args: [g([2, 3]), g([2, 3], 'positive')], params: NONE }],
  },
  max: {
    forward: [
      { name: 'f32', args: [f32([3], [1, -2, 3]), f32([3], [0.5, 4, 3])], params: NONE, want: f32([3], [1, 4, 3]) },
      { name: 'i32', args: [i32([2], [-5, 7]), i32([2], [-6, 8])], params: NONE, want: i32([2], [-5, 8]) },
    ],
    // no ties: the two operands are drawn on interleaved grids at least 0.02 apart
    grad: [{ name: 'f32[3,4] without ties', args: [g([3, 4], DISTINCT), g([3, 4], DISTINCT_OFF)], params: NONE }],
    props: [
      {
        name: 'vjp at a tie sends the whole cotangent to the first operand',
        run: () => expect(vjpValues('max', [g([2]), g([2])], NONE, [[1, 2], [1, 3]], [5, 7])).toEqual([[5, 0], [0, 7]]),
      },
    ],
  },
  min: {
    forward: [
      { name: 'f32', args: [f32([3], [1, -2, 3]), f32([3], [0.5, 4, 3])], params: NONE, want: f32([3], [0.5, -2, 3]) },
      { name: 'i32', args: [i32([2], [-5, 7]), i32([2], [-6, 8])], params: NONE, want: i32([2], [-6, 7]) },
    ],
    grad: [{ name: 'f32[3,4] without ties', args: [g([3, 4], DISTINCT), g([3, 4], DISTINCT_OFF)], params: NONE }],
    props: [
      {
        name: 'vjp at a tie sends the whole cotangent to the first operand',
        run: () => expect(vjpValues('min', [g([2]), g([2])], NONE, [[1, 3], [1, 2]], [5, 7])).toEqual([[5, 0], [0, 7]]),
      },
    ],
  },
  pow: {
    forward: [{ name: 'f32', args: [f32([3], [2, 9, 4]), f32([3], [3, 0.5, -1])], params: NONE, want: f32([3], [8, 3, 0.25]), tol: 1e-15 }],
    types: [{ name: 'i32 rejected', args: [ty('i32', [2]), ty('i32', [2])], params: NONE, want: /operands must be f32/ }],
    grad: [{ name: 'f32[2,3], wrt base (positive) and exponent', args: [g([2, 3], 'positive'), g([2, 3])], params: NONE }],
    props: [
      {
        // Regression (fixed): for x = 0, y > 0, y -> 0^y is identically 0 near y, so d/dy is 0, but the rule
        // computes ct * log(0) * 0^y = -inf * 0 = NaN (JAX guards this with where(x == 0, 0, log x)).
        name: 'vjp at base 0 with a positive exponent is finite (0 for the exponent)',
        run: () => {
          const [dx, dy] = vjpValues('pow', [g([3]), g([3])], NONE, [[0, 0, 0], [2, 3, 1]], [1, 1, 1]);
          expect(dx).toEqual([0, 0, 1]);
          expect(dy).toEqual([0, 0, 0]);
        },
      },
    ],
  },
  less: {
    forward: [
      { name: 'f32 returns bool', args: [f32([3], [1, 2, 3]), f32([3], [2, 2, 1])], params: NONE, want: bool([3], [1, 0, 0]) },
      { name: 'i32 returns bool', args: [i32([2], [-1, 5]), i32([2], [0, 5])], params: NONE, want: bool([2], [1, 0]) },
    ],
    types: [{ name: 'bool operands rejected', args: [ty('bool', [2]), ty('bool', [2])], params: NONE, want: /operands must be f32 or i32/ }],
    grad: 'none',
    reason: 'a comparison: piecewise constant with a bool result',
    nullGrad: [{ name: 'f32 operands', args: [g([3]), g([3])], params: NONE, want: ['null', 'null'] }],
  },
  equal: {
    forward: [
      { name: 'f32 returns bool', args: [f32([3], [1, 2, 3]), f32([3], [1, 5, 3])], params: NONE, want: bool([3], [1, 0, 1]) },
      { name: 'bool operands', args: [bool([4], [1, 0, 1, 0]), bool([4], [1, 1, 0, 0])], params: NONE, want: bool([4], [1, 0, 0, 1]) },
    ],
    grad: 'none',
    reason: 'a comparison: piecewise constant with a bool result',
    nullGrad: [{ name: 'f32 operands', args: [g([3]), g([3])], params: NONE, want: ['null', 'null'] }],
  },

  // ---- select and cast ----
  select: {
    forward: [
      {
        name: 'f32',
        args: [bool([3], [1, 0, 1]), f32([3], [1, 2, 3]), f32([3], [10, 20, 30])],
        params: NONE,
        want: f32([3], [1, 20, 3]),
      },
      { name: 'i32', args: [bool([2], [0, 1]), i32([2], [1, 2]), i32([2], [-1, -2])], params: NONE, want: i32([2], [-1, 2]) },
    ],
    types: [
      { name: 'condition must be bool', args: [ty('f32', [2]), ty('f32', [2]), ty('f32', [2])], params: NONE, want: /condition must be bool/ },
    ],
    grad: [
      {
        name: 'wrt both branches',
        args: [{ dtype: 'bool', shape: [2, 3], gen: [1, 0, 0, 1, 1, 0] }, g([2, 3]), g([2, 3])],
        params: NONE,
      },
    ],
  },
  cast: {
    forward: [
      { name: 'f32 -> i32 truncates', args: [f32([5], [1.9, -1.9, 0.5, -0.5, 3])], params: { to: 'i32' }, want: i32([5], [1, -1, 0, 0, 3]) },
      { name: 'f32 -> bool', args: [f32([4], [0, -0.5, 2, -0])], params: { to: 'bool' }, want: bool([4], [0, 1, 1, 0]) },
      { name: 'i32 -> f32', args: [i32([2], [3, -4])], params: { to: 'f32' }, want: f32([2], [3, -4]) },
      { name: 'bool -> i32', args: [bool([2], [1, 0])], params: { to: 'i32' }, want: i32([2], [1, 0]) },
    ],
    grad: 'none',
    reason:
      'casts to or from i32/bool cut gradients (integers carry no cotangent); an f32 -> f32 cast is the identity ' +
      '(builders.cast never emits one) and passes the cotangent through',
    nullGrad: [
      { name: 'f32 -> i32', args: [g([3])], params: { to: 'i32' }, want: ['null'] },
      { name: 'f32 -> bool', args: [g([3])], params: { to: 'bool' }, want: ['null'] },
      { name: 'i32 -> f32', args: [{ dtype: 'i32', shape: [3], gen: [1, 2, 3] }], params: { to: 'f32' }, want: ['null'] },
      { name: 'f32 -> f32 passes ct through', args: [g([3])], params: { to: 'f32' }, want: ['ct'] },
    ],
  },

  // ---- reductions ----
  reduce_sum: {
    forward: [
      { name: 'axis 1', args: [f32([2, 3], [1, 2, 3, 4, 5, 6])], params: { axes: [1] }, want: f32([2], [6, 15]) },
      { name: 'axis 0', args: [f32([2, 3], [1, 2, 3, 4, 5, 6])], params: { axes: [0] }, want: f32([3], [5, 7, 9]) },
      { name: 'all axes to a scalar', args: [f32([2, 3], [1, 2, 3, 4, 5, 6])], params: { axes: [0, 1] }, want: f32([], [21]) },
      { name: 'axes 0 and 2 of rank 3', args: [f32([2, 2, 2], iota1(8))], params: { axes: [0, 2] }, want: f32([2], [14, 22]) },
      { name: 'i32 wraps', args: [i32([2], [2147483647, 1])], params: { axes: [0] }, want: i32([], [-2147483648]) },
    ],
    types: [
      { name: 'repeated axis', args: [ty('f32', [2, 3])], params: { axes: [1, 1] }, want: /axis 1 repeated/ },
      { name: 'axis out of range', args: [ty('f32', [2, 3])], params: { axes: [2] }, want: /axis 2 out of range/ },
    ],
    grad: [
      { name: 'axes 0 and 2 of [2,3,4]', args: [g([2, 3, 4])], params: { axes: [0, 2] } },
      { name: 'all axes', args: [g([3, 2])], params: { axes: [0, 1] } },
      { name: 'unsorted axes [2,0]', args: [g([2, 3, 2])], params: { axes: [2, 0] } },
    ],
  },
  reduce_max: {
    forward: [
      { name: 'axis 1', args: [f32([2, 3], [1, 5, 3, 4, 2, 6])], params: { axes: [1] }, want: f32([2], [5, 6]) },
      { name: 'axis 0', args: [f32([2, 3], [1, 5, 3, 4, 2, 6])], params: { axes: [0] }, want: f32([3], [4, 5, 6]) },
      { name: 'all axes', args: [f32([2, 3], [1, 5, 3, 4, 2, 6])], params: { axes: [0, 1] }, want: f32([], [6]) },
      { name: 'all negative', args: [f32([3], [-3, -1, -2])], params: { axes: [0] }, want: f32([], [-1]) },
    ],
    grad: [
      { name: 'axes 0 and 2 of [3,2,4], no ties', args: [g([3, 2, 4], DISTINCT)], params: { axes: [0, 2] } },
      { name: 'axis 1 of [4,5], no ties', args: [g([4, 5], DISTINCT)], params: { axes: [1] } },
      { name: 'unsorted axes [2,0], no ties', args: [g([2, 3, 2], DISTINCT)], params: { axes: [2, 0] } },
    ],
    props: [
      {
        name: 'vjp splits the cotangent evenly between tied maxima',
        run: () => expect(vjpValues('reduce_max', [g([2, 3])], { axes: [1] }, [[1, 3, 3, 2, 2, 2]], [6, 9])).toEqual([[0, 3, 3, 3, 3, 3]]),
      },
    ],
  },

  // ---- movement ----
  reshape: {
    forward: [{ name: '[2,3] -> [3,2]', args: [f32([2, 3], iota1(6))], params: { shape: [3, 2] }, want: f32([3, 2], iota1(6)) }],
    types: [{ name: 'element count must match', args: [ty('f32', [2, 3])], params: { shape: [4] }, want: /cannot reshape/ }],
    grad: [{ name: '[2,6] -> [3,4]', args: [g([2, 6])], params: { shape: [3, 4] } }],
  },
  transpose: {
    forward: [
      { name: '2-D', args: [f32([2, 3], iota1(6))], params: { perm: [1, 0] }, want: f32([3, 2], [1, 4, 2, 5, 3, 6]) },
      {
        // out[a,b,c] = x[c,a,b] with x[i,j,k] = 6i + 2j + k + 1
        name: 'rank 3, perm [1,2,0]',
        args: [f32([2, 3, 2], iota1(12))],
        params: { perm: [1, 2, 0] },
        want: f32([3, 2, 2], [1, 7, 2, 8, 3, 9, 4, 10, 5, 11, 6, 12]),
      },
    ],
    types: [{ name: 'perm must be a permutation', args: [ty('f32', [2, 3])], params: { perm: [0, 0] }, want: /repeated/ }],
    grad: [{ name: 'rank 3, perm [2,0,1]', args: [g([2, 3, 4])], params: { perm: [2, 0, 1] } }],
  },
  broadcast: {
    forward: [
      {
        name: 'adds a leading axis and stretches a size-1 axis',
        args: [f32([1, 3], [1, 2, 3])],
        params: { shape: [2, 2, 3], axes: [1, 2] },
        want: f32([2, 2, 3], [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3]),
      },
      { name: 'adds a trailing axis', args: [f32([2], [5, 6])], params: { shape: [2, 3], axes: [0] }, want: f32([2, 3], [5, 5, 5, 6, 6, 6]) },
      { name: 'stretches [2,1] to [2,3]', args: [f32([2, 1], [1, 2])], params: { shape: [2, 3], axes: [0, 1] }, want: f32([2, 3], [1, 1, 1, 2, 2, 2]) },
      { name: 'scalar', args: [f32([], [7])], params: { shape: [2], axes: [] }, want: f32([2], [7, 7]) },
    ],
    types: [
      { name: 'axes must increase', args: [ty('f32', [2, 3])], params: { shape: [3, 2], axes: [1, 0] }, want: /must increase/ },
      { name: 'sizes must match or be 1', args: [ty('f32', [2])], params: { shape: [3], axes: [0] }, want: /cannot broadcast/ },
      // Regression (fixed): the result shape is never validated; [2.5] is accepted (and interp makes 2
      // elements), [-1] is accepted and interp dies with a RangeError.
      { name: 'result shape must be non-negative integers (fraction)', args: [ty('f32', [])], params: { shape: [2.5], axes: [] }, want: /shape: bad shape \[2\.5\]$/ },
      { name: 'result shape must be non-negative integers (negative)', args: [ty('f32', [])], params: { shape: [-1], axes: [] }, want: /shape: bad shape \[-1\]$/ },
    ],
    grad: [
      { name: '[3,1] -> [2,3,4]: adds axis 0 and stretches axis 2', args: [g([3, 1])], params: { shape: [2, 3, 4], axes: [1, 2] } },
      { name: '[3] -> [3,2]', args: [g([3])], params: { shape: [3, 2], axes: [0] } },
      { name: '[1,1] -> [1,3]: size-1 kept and size-1 stretched', args: [g([1, 1])], params: { shape: [1, 3], axes: [0, 1] } },
    ],
  },
  slice: {
    forward: [
      { name: 'interior block', args: [f32([3, 4], iota1(12, 0))], params: { start: [1, 1], limit: [3, 3] }, want: f32([2, 2], [5, 6, 9, 10]) },
      { name: 'last column', args: [f32([3, 4], iota1(12, 0))], params: { start: [0, 3], limit: [3, 4] }, want: f32([3, 1], [3, 7, 11]) },
    ],
    types: [{ name: 'limit within the operand', args: [ty('f32', [3, 4])], params: { start: [0, 0], limit: [3, 5] }, want: /not within/ }],
    grad: [{ name: '[4,5] [1:3, 2:5]', args: [g([4, 5])], params: { start: [1, 2], limit: [3, 5] } }],
  },
  pad: {
    forward: [
      {
        name: 'with a value',
        args: [f32([2, 2], [1, 2, 3, 4])],
        params: { lo: [1, 0], hi: [0, 2], value: -1 },
        want: f32([3, 4], [-1, -1, -1, -1, 1, 2, -1, -1, 3, 4, -1, -1]),
      },
    ],
    types: [
      { name: 'negative padding rejected', args: [ty('f32', [2])], params: { lo: [-1], hi: [0], value: 0 }, want: /non-negative/ },
      // Regression (fixed): the fill value is not checked against the dtype, so an i32 tensor can hold 0.5
      // and a bool tensor 2 (constant rejects the first of these).
      { name: 'i32 fill value must be an integer', args: [ty('i32', [2])], params: { lo: [1], hi: [0], value: 0.5 }, want: /value 0\.5 is not an i32$/ },
      { name: 'bool fill value must be 0 or 1', args: [ty('bool', [2])], params: { lo: [1], hi: [0], value: 2 }, want: /value 2 is not a bool \(0 or 1\)$/ },
    ],
    grad: [{ name: '[2,3] lo [1,0] hi [2,1] value 0.5', args: [g([2, 3])], params: { lo: [1, 0], hi: [2, 1], value: 0.5 } }],
  },
  concat: {
    forward: [
      {
        name: '3 inputs along axis 1',
        args: [f32([2, 1], [1, 2]), f32([2, 2], [3, 4, 5, 6]), f32([2, 1], [7, 8])],
        params: { axis: 1 },
        want: f32([2, 4], [1, 3, 4, 7, 2, 5, 6, 8]),
      },
      {
        name: '3 inputs along axis 0',
        args: [f32([1, 2], [1, 2]), f32([2, 2], [3, 4, 5, 6]), f32([1, 2], [7, 8])],
        params: { axis: 0 },
        want: f32([4, 2], iota1(8)),
      },
    ],
    types: [{ name: 'off-axis sizes must match', args: [ty('f32', [2, 1]), ty('f32', [3, 1])], params: { axis: 1 }, want: /does not match/ }],
    grad: [
      { name: '3 inputs along axis 1', args: [g([2, 1, 3]), g([2, 2, 3]), g([2, 3, 3])], params: { axis: 1 } },
      { name: '2 inputs along axis 0', args: [g([1, 4]), g([3, 4])], params: { axis: 0 } },
    ],
  },
  reverse: {
    forward: [
      { name: 'axis 1', args: [f32([2, 3], iota1(6))], params: { axes: [1] }, want: f32([2, 3], [3, 2, 1, 6, 5, 4]) },
      { name: 'axis 0', args: [f32([2, 3], iota1(6))], params: { axes: [0] }, want: f32([2, 3], [4, 5, 6, 1, 2, 3]) },
      { name: 'both axes', args: [f32([2, 3], iota1(6))], params: { axes: [0, 1] }, want: f32([2, 3], [6, 5, 4, 3, 2, 1]) },
    ],
    grad: [
      { name: '[3,4] both axes', args: [g([3, 4])], params: { axes: [0, 1] } },
      { name: '[2,3,2] middle axis', args: [g([2, 3, 2])], params: { axes: [1] } },
    ],
  },

  // ---- contractions ----
  dot: {
    forward: [
      {
        name: '[2,3] x [3,2]',
        args: [f32([2, 3], iota1(6)), f32([3, 2], [7, 8, 9, 10, 11, 12])],
        params: NONE,
        want: f32([2, 2], [58, 64, 139, 154]),
      },
      {
        name: 'batch axis: [2,2,2] x [2,2,1]',
        args: [f32([2, 2, 2], iota1(8)), f32([2, 2, 1], [1, 1, 1, -1])],
        params: NONE,
        want: f32([2, 2, 1], [3, 7, -1, -1]),
      },
      // 65536 * 65536 + 65536 * 1 = 2^32 + 65536 wraps to 65536
      { name: 'i32 wraps', args: [i32([1, 2], [65536, 65536]), i32([2, 1], [65536, 1])], params: NONE, want: i32([1, 1], [65536]) },
    ],
    types: [
      { name: 'contracting sizes must match', args: [ty('f32', [2, 3]), ty('f32', [2, 2])], params: NONE, want: /contracting sizes differ/ },
      { name: 'batch axes must match', args: [ty('f32', [2, 2, 3]), ty('f32', [3, 3, 2])], params: NONE, want: /batch axis 0 differs/ },
    ],
    grad: [
      { name: '[3,4] x [4,2]', args: [g([3, 4]), g([4, 2])], params: NONE },
      { name: 'batch axis: [2,3,4] x [2,4,5]', args: [g([2, 3, 4]), g([2, 4, 5])], params: NONE },
      { name: 'two batch axes: [2,2,2,3] x [2,2,3,2]', args: [g([2, 2, 2, 3]), g([2, 2, 3, 2])], params: NONE },
    ],
  },
  conv: {
    forward: [
      {
        // padded input (one zero row on top, one zero column on the left):
        //   0 0 0 0 / 0 1 2 3 / 0 4 5 6 / 0 7 8 9, kernel [[1,2],[3,4]], stride 2
        name: 'stride 2 with padding',
        args: [f32([1, 3, 3, 1], iota1(9)), f32([2, 2, 1, 1], [1, 2, 3, 4])],
        params: conv([2, 2], [[1, 0], [1, 0]]),
        want: f32([1, 2, 2, 1], [4, 18, 36, 77]),
      },
      {
        // 1x1 kernel mixes channels: out[o] = sum_c x[c] w[c][o]
        name: 'channels (1x1 kernel, 2 in, 2 out)',
        args: [f32([1, 1, 2, 2], [1, 2, 3, 4]), f32([1, 1, 2, 2], [1, 10, 100, 1000])],
        params: conv([1, 1], [[0, 0], [0, 0]]),
        want: f32([1, 1, 2, 2], [201, 2010, 403, 4030]),
      },
      {
        // dilated input: 1 0 2 / 0 0 0 / 3 0 4; each output sees exactly one input
        name: 'lhsDilation 2',
        args: [f32([1, 2, 2, 1], [1, 2, 3, 4]), f32([2, 2, 1, 1], [1, 2, 3, 4])],
        params: conv([1, 1], [[0, 0], [0, 0]], [2, 2]),
        want: f32([1, 2, 2, 1], [1, 4, 9, 16]),
      },
      {
        // kernel taps at (0,0),(0,2),(2,0),(2,2) over x = 1..12 as 3 rows of 4
        name: 'rhsDilation 2',
        args: [f32([1, 3, 4, 1], iota1(12)), f32([2, 2, 1, 1], [1, 2, 3, 4])],
        params: conv([1, 1], [[0, 0], [0, 0]], [1, 1], [2, 2]),
        want: f32([1, 1, 2, 1], [78, 88]),
      },
      {
        // lhs dilated: 1 0 2 / 0 0 0 / 3 0 4; 1x2 kernel [1,10] dilated along W to taps at columns 0 and 2
        name: 'lhsDilation and rhsDilation together',
        args: [f32([1, 2, 2, 1], [1, 2, 3, 4]), f32([1, 2, 1, 1], [1, 10])],
        params: conv([1, 1], [[0, 0], [0, 0]], [2, 2], [1, 2]),
        want: f32([1, 3, 1, 1], [21, 0, 43]),
      },
      {
        // the gradient rules emit negative padding, so the forward must crop: rows 1-2, columns 0-1
        name: 'negative padding crops',
        args: [f32([1, 3, 3, 1], iota1(9)), f32([1, 1, 1, 1], [1])],
        params: conv([1, 1], [[-1, 0], [0, -1]]),
        want: f32([1, 2, 2, 1], [4, 5, 7, 8]),
      },
    ],
    types: [
      { name: 'channels must match', args: [ty('f32', [1, 4, 4, 2]), ty('f32', [3, 3, 3, 1])], params: conv([1, 1], [[0, 0], [0, 0]]), want: /channels/ },
      {
        name: 'output size floors (H+pad-K) / stride',
        args: [ty('f32', [1, 7, 6, 1]), ty('f32', [3, 2, 1, 2])],
        params: conv([2, 3], [[0, 1], [1, 0]]),
        want: ty('f32', [1, 3, 2, 2]),
      },
    ],
    grad: [
      { name: 'stride 2, asymmetric padding', args: [g([2, 6, 6, 2]), g([3, 3, 2, 3])], params: conv([2, 2], [[1, 0], [2, 1]]) },
      { name: 'rhsDilation 2', args: [g([1, 7, 6, 2]), g([2, 3, 2, 2])], params: conv([1, 1], [[1, 1], [0, 0]], [1, 1], [2, 2]) },
      {
        // H: 7+1-3 = 5 leaves 1 over stride 2; W: 6+1-2 = 5 leaves 2 over stride 3 (more than the high pad)
        name: '(H+pad-K) not divisible by the stride',
        args: [g([1, 7, 6, 1]), g([3, 2, 1, 2])],
        params: conv([2, 3], [[0, 1], [1, 0]]),
      },
      { name: 'lhsDilation 2 with padding', args: [g([1, 3, 3, 2]), g([2, 2, 2, 1])], params: conv([1, 1], [[1, 1], [0, 1]], [2, 2]) },
      {
        name: 'lhsDilation, rhsDilation, stride and padding at once',
        args: [g([1, 4, 5, 1]), g([2, 2, 1, 2])],
        params: conv([2, 2], [[2, 0], [1, 1]], [2, 1], [1, 2]),
      },
      { name: 'kernel larger than the input (same padding)', args: [g([1, 2, 2, 1]), g([3, 3, 1, 2])], params: conv([1, 1], [[1, 1], [1, 1]]) },
      // Unit stride, no dilation: the input gradient takes the col2im form (dy @ Wᵀ, then a sum of taps).
      { name: 'valid padding, unit stride (col2im)', args: [g([2, 5, 6, 2]), g([3, 2, 2, 3])], params: conv([1, 1], [[0, 0], [0, 0]]) },
      { name: 'uneven padding, unit stride (col2im)', args: [g([1, 6, 5, 2]), g([3, 3, 2, 2])], params: conv([1, 1], [[1, 0], [0, 1]]) },
      { name: '1x1 kernel, stride 3 skips inputs', args: [g([1, 5, 5, 2]), g([1, 1, 2, 2])], params: conv([3, 3], [[0, 0], [0, 0]]) },
      { name: 'negative padding', args: [g([1, 5, 5, 1]), g([2, 2, 1, 1])], params: conv([1, 2], [[-1, 0], [0, -2]]) },
    ],
  },

  // ---- pooling ----
  reduce_window: {
    forward: [
      {
        // x = 1 5 2 / 4 3 8 / 7 0 6, padded by one row below and one column right
        name: 'max, stride 2, padding',
        args: [f32([1, 3, 3, 1], [1, 5, 2, 4, 3, 8, 7, 0, 6])],
        params: win('max', [2, 2], [2, 2], [[0, 1], [0, 1]]),
        want: f32([1, 2, 2, 1], [5, 8, 7, 6]),
      },
      {
        name: 'max: padding never wins over negative values',
        args: [f32([1, 2, 2, 1], [-1, -2, -3, -4])],
        params: win('max', [2, 2], [1, 1], [[0, 1], [0, 1]]),
        want: f32([1, 2, 2, 1], [-1, -2, -3, -4]),
      },
      {
        name: 'sum with padding on top',
        args: [f32([1, 3, 3, 1], [1, 5, 2, 4, 3, 8, 7, 0, 6])],
        params: win('sum', [2, 2], [1, 1], [[1, 0], [0, 0]]),
        want: f32([1, 3, 2, 1], [6, 7, 13, 18, 14, 17]),
      },
      {
        name: 'sum and max keep channels apart',
        args: [f32([1, 2, 2, 2], [1, 10, 2, 20, 3, 30, 4, 40])],
        params: win('sum', [2, 2], [1, 1], [[0, 0], [0, 0]]),
        want: f32([1, 1, 1, 2], [10, 100]),
      },
    ],
    types: [
      { name: 'window larger than the input', args: [ty('f32', [1, 2, 2, 1])], params: win('max', [3, 3], [1, 1], [[0, 0], [0, 0]]), want: /larger than/ },
    ],
    grad: [
      { name: 'max, window 3, stride 2, padding', args: [g([1, 5, 5, 2], DISTINCT)], params: win('max', [3, 3], [2, 2], [[1, 1], [0, 1]]) },
      { name: 'max, uneven stride/padding, batch 2', args: [g([2, 5, 4, 1], DISTINCT)], params: win('max', [2, 3], [2, 2], [[0, 1], [1, 0]]) },
      { name: 'sum, window 3, stride 2, padding', args: [g([1, 5, 5, 2])], params: win('sum', [3, 3], [2, 2], [[1, 1], [0, 1]]) },
    ],
  },
  reduce_window_grad: {
    forward: [
      {
        name: 'max routes to the first maximum',
        args: [f32([1, 2, 2, 1], [3, 3, 1, 3]), f32([1, 1, 1, 1], [5])],
        params: win('max', [2, 2], [1, 1], [[0, 0], [0, 0]]),
        want: f32([1, 2, 2, 1], [5, 0, 0, 0]),
      },
      {
        // windows (pad,1) (1,3) (3,2) (2,pad): argmaxes 0, 1, 1, 2
        name: 'max, overlapping windows with padding accumulate',
        args: [f32([1, 1, 3, 1], [1, 3, 2]), f32([1, 1, 4, 1], [1, 10, 100, 1000])],
        params: win('max', [1, 2], [1, 1], [[0, 0], [1, 1]]),
        want: f32([1, 1, 3, 1], [1, 110, 1000]),
      },
      {
        name: 'max: padding never takes the gradient',
        args: [f32([1, 1, 2, 1], [-5, -7]), f32([1, 1, 2, 1], [1, 2])],
        params: win('max', [1, 2], [1, 1], [[0, 0], [1, 0]]),
        want: f32([1, 1, 2, 1], [3, 0]),
      },
      {
        name: 'sum sends dy to every element of the window',
        args: [f32([1, 1, 3, 1], [9, 9, 9]), f32([1, 1, 4, 1], [1, 10, 100, 1000])],
        params: win('sum', [1, 2], [1, 1], [[0, 0], [1, 1]]),
        want: f32([1, 1, 3, 1], [11, 110, 1100]),
      },
    ],
    types: [
      {
        name: 'dy must have the pooled shape',
        args: [ty('f32', [1, 4, 4, 1]), ty('f32', [1, 4, 4, 1])],
        params: win('sum', [2, 2], [2, 2], [[0, 0], [0, 0]]),
        want: /cotangent must be f32\[1,2,2,1\]/,
      },
    ],
    // For sum the result is linear in dy and independent of x (the rule returns null for x, which
    // the finite differences confirm by being zero along x).
    grad: [
      {
        name: 'sum: wrt dy, stride 2, padding',
        args: [g([1, 5, 5, 2]), g([1, 3, 2, 2])],
        params: win('sum', [3, 3], [2, 2], [[1, 1], [0, 1]]),
      },
      { name: 'sum: wrt dy, overlapping windows, batch 2', args: [g([2, 4, 3, 1]), g([2, 3, 2, 1])], params: win('sum', [2, 2], [1, 1], [[0, 0], [0, 0]]) },
    ],
    vjpThrows: {
      why: 'second-order gradients through max pooling (scatter to argmax) are refused on purpose',
      cases: [
        {
          name: 'max',
          args: [g([1, 4, 4, 1]), g([1, 2, 2, 1])],
          params: win('max', [2, 2], [2, 2], [[0, 0], [0, 0]]),
          message: /second-order gradients through max pooling are not supported/,
        },
      ],
    },
  },
};

/** `random_uniform[seed](key)` of `shape`, evaluated by the interpreter. */
function uniform(seed: number, key: number, shape: Shape) {
  return evalOp('random_uniform', [{ dtype: 'i32', shape: [], gen: [key] }], { seed, shape }, [Float64Array.of(key)]);
}

// ---------------------------------------------------------------------------------------------
// Checks

/**
 * VJP tolerance. Central differences in f64 have O(eps^2) truncation error (~1e-12 at eps = 1e-6)
 * and O(1e-16 / eps) = O(1e-10) rounding error, so 1e-6 relative leaves four orders of margin while
 * still catching any wrong rule (a wrong index, sign or scale is an O(1) relative error). The small
 * absolute floor covers inputs whose directional derivative is exactly zero (a null cotangent).
 */
const EPS = 1e-6;
const RTOL = 1e-6;
const ATOL = 1e-9;

const OPS = Object.keys(ROWS) as RowOp[];
const rowOf = (op: RowOp) => ROWS[op] as unknown as Row<RowOp>;

function lit(a: Lit): ArgSpec {
  return { dtype: a.dtype, shape: a.shape, gen: a.data };
}

function close(got: ArrayLike<number>, want: readonly number[], tol: number | undefined): boolean {
  if (got.length !== want.length) return false;
  for (let i = 0; i < want.length; i++) {
    const ok = tol === undefined ? got[i] === want[i] : Math.abs(got[i] - want[i]) <= tol * Math.max(1, Math.abs(want[i]));
    if (!ok) return false;
  }
  return true;
}

describe('op table', () => {
  it('has one row per op in ALL_OPS, except the documented exclusions', () => {
    const excluded = Object.keys(EXCLUDED);
    for (const o of excluded) expect(ALL_OPS).toContain(o);
    expect([...OPS].sort()).toEqual(ALL_OPS.filter((o) => !excluded.includes(o)).sort());
  });

  it('every row has forward checks, and every row either checks its VJP or says why not', () => {
    for (const op of OPS) {
      const row = rowOf(op);
      expect(row.forward.length + (row.props?.length ?? 0), `${op}: no forward checks`).toBeGreaterThan(0);
      if (row.grad === 'none') {
        expect(row.reason.length, `${op}: no reason`).toBeGreaterThan(0);
        expect(row.nullGrad.length, `${op}: no null-cotangent check`).toBeGreaterThan(0);
      } else {
        expect(row.grad.length, `${op}: no VJP cases`).toBeGreaterThan(0);
      }
    }
  });

  it('input (excluded) is refused by apply: it is made by input() and bound by the interpreter', () => {
    expect(() => apply('input', [], { name: 'x' })).toThrow(/made by input\(\)/);
    const x = input('x', 'f32', [2]) as InputNode;
    expect(Array.from(interpret(makeFunc('id', [x], [x]), [[1, 2]])[0].data)).toEqual([1, 2]);
  });
});

describe.each(OPS)('%s', (op) => {
  const row = rowOf(op);

  if (row.forward.length) {
    it.each(row.forward)('forward: $name', (c) => {
      const r = evalOp(op, c.args.map(lit), c.params, c.args.map((a) => Float64Array.from(a.data)));
      expect({ dtype: r.dtype, shape: [...r.shape] }).toEqual({ dtype: c.want.dtype, shape: [...c.want.shape] });
      expect(r.data.length).toBe(numel(c.want.shape));
      if (!close(r.data, c.want.data, c.tol)) expect(Array.from(r.data)).toEqual(c.want.data);
    });
  }

  if (row.props?.length) {
    it.each(row.props)('property: $name', (p) => p.run());
  }

  if (row.types?.length) {
    it.each(row.types)('type rule: $name', (c) => {
      const build = () => apply(op, c.args.map((t, i) => input(`x${i}`, t.dtype, t.shape)), c.params);
      if (c.want instanceof RegExp) {
        expect(build).toThrow(IRTypeError);
        expect(build).toThrow(c.want);
      } else {
        const n = build();
        expect({ dtype: n.dtype, shape: [...n.shape] }).toEqual({ dtype: c.want.dtype, shape: [...c.want.shape] });
      }
    });
  }

  if (row.grad === 'none') {
    const nd = row;
    it.each(nd.nullGrad)(`no gradient (${nd.reason}): $name`, (c) => {
      const { ct, cts } = vjpOf(op, c.args, c.params);
      expect(cts.length).toBe(c.want.length);
      c.want.forEach((w, i) => {
        if (w === 'null') expect(cts[i], `cotangent ${i}`).toBeNull();
        else expect(cts[i], `cotangent ${i}`).toBe(ct);
      });
    });
  } else {
    const d = row;
    if (d.grad.length) {
      it.each(d.grad)('vjp vs finite differences: $name', (c) => {
        const { checks, shapeErrors } = vjpCheck(op, c.args, c.params, seedOf(`${op}/${c.name}`), EPS);
        expect(shapeErrors).toEqual([]);
        const report = checks.map((k) => ({ input: k.index, fd: k.fd, vjp: k.vjp, isNull: k.isNull }));
        for (const k of checks) {
          const err = Math.abs(k.fd - k.vjp);
          const tol = RTOL * Math.max(Math.abs(k.fd), Math.abs(k.vjp)) + ATOL;
          expect(err, `input ${k.index}: ${JSON.stringify(report)}`).toBeLessThanOrEqual(tol);
        }
        // Guard against a vacuous pass: some input must have a non-zero directional derivative.
        expect(Math.max(...checks.map((k) => Math.abs(k.fd)))).toBeGreaterThan(1e-3);
      });
    }
    if (d.vjpThrows) {
      const { why, cases } = d.vjpThrows;
      it.each(cases)(`vjp throws (${why}): $name`, (c) => {
        expect(() => vjpOf(op, c.args, c.params)).toThrow(c.message);
      });
    }
  }
});
