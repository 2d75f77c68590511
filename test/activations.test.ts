/**
 * @file Activations (compiler/frontend/activations.ts), all in f64 through the reference interpreter:
 * every activation name against a plain-JS formula, including inputs far beyond where f32 overflows
 * (+-800 stands in for f32's e^88.7 limit: exp(800) is inf in f64 too); gradients against central
 * finite differences and finite everywhere; erf against a high-precision JS erf over [-6, 6]; exact
 * gelu's gradient against its analytic derivative; softmax / log_softmax along any axis; the
 * parameterized helpers against Keras's definitions (and its docstring examples); the fused kernel
 * program against the graph; every name compiled to Wasm and run in f32 (finite past exp overflow,
 * close to f64); and the error for an unknown name.
 *
 * The JS references are written from the definitions (expm1, log1p, erfc by series and continued
 * fraction), not copied from the graph formulas, so they check the compositions. Each tolerance is
 * stated, with why, where it is used.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ActivationName } from '../compiler/frontend/activations.ts';
import {
  ACTIVATIONS,
  activate,
  checkActivation,
  elu,
  erf,
  gelu,
  leakyRelu,
  logSoftmax,
  logSoftmaxAxis,
  reluCapped,
  softmax,
  softmaxAxis,
} from '../compiler/frontend/activations.ts';
import { DlcError } from '../compiler/frontend/errors.ts';
import { emitWasm, loadBinaryen } from '../compiler/codegen/wasm.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { runProgram } from '../compiler/kernel/interp.ts';
import { planMemory } from '../compiler/kernel/plan.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import { grad } from '../ir/autodiff.ts';
import * as b from '../ir/builders.ts';
import { makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import type { InputNode, Node, Shape } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { instantiateProgram } from '../runtime/wasm.ts';
import { mulberry32 } from './helpers/gradcheck.ts';

// emitWasm needs binaryen, which is loaded on demand (compiler/codegen/wasm/binaryen.ts).
beforeAll(loadBinaryen);

type Act = (x: Node) => Node;

// ---------------------------------------------------------------------------------------------
// High-precision references

/** erf by its everywhere-positive series (2/sqrt pi) e^{-x^2} sum (2x^2)^n x / (2n+1)!!: no cancellation. */
function erfSeries(x: number): number {
  const a = Math.abs(x);
  const a2 = a * a;
  let term = a;
  let sum = a;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * a2) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a2) * sum;
}

/** erfc(z) for z >= 2 by Laplace's continued fraction e^{-z^2}/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))). */
function erfcFraction(z: number): number {
  let f = z;
  for (let k = 100; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
}

/** erfc for z >= 0 to ~1e-15 relative: the series where erfc >= 4.7e-3, the fraction beyond. */
const erfcRef = (z: number): number => (z < 2 ? 1 - erfSeries(z) : erfcFraction(z));
const erfRef = (x: number): number => (Math.abs(x) < 2 ? erfSeries(x) : Math.sign(x) * (1 - erfcFraction(Math.abs(x))));
/** Standard normal CDF; for x < 0 straight from erfc, so it keeps relative accuracy in the tail. */
const normCdf = (x: number): number => (x < 0 ? 0.5 * erfcRef(-x / Math.SQRT2) : 1 - 0.5 * erfcRef(x / Math.SQRT2));

// Constants as written in keras/src/backend/numpy/nn.py (selu) and the tanh-gelu of Hendrycks & Gimpel.
const KERAS_SELU_ALPHA = 1.6732632423543772848170429916717;
const KERAS_SELU_SCALE = 1.0507009873554804934193349852946;
const geluTanhRef = (x: number): number => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

// ---------------------------------------------------------------------------------------------
// Running graphs

const inp = (name: string, shape: Shape): InputNode => input(name, 'f32', shape) as InputNode;

function evalAct(f: Act, xs: ArrayLike<number>, shape: Shape = [xs.length]): Float64Array {
  const x = inp('x', shape);
  return interpret(makeFunc('act', [x], [f(x)]), [Float64Array.from(xs)])[0].data;
}

/** The gradient of sum(w * f(x)) with respect to x, by `grad`. */
function gradAct(f: Act, xs: ArrayLike<number>, w: ArrayLike<number>, shape: Shape = [xs.length]): Float64Array {
  const x = inp('x', shape);
  const wn = inp('w', shape);
  const loss = b.reduceSum(b.mul(f(x), wn), shape.map((_, i) => i));
  const [g] = grad(loss, [x]);
  return interpret(makeFunc('grad', [x, wn], [g]), [Float64Array.from(xs), Float64Array.from(w)])[0].data;
}

function uniform(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = mulberry32(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

const range = (lo: number, hi: number, step: number): number[] =>
  Array.from({ length: Math.round((hi - lo) / step) + 1 }, (_, i) => lo + i * step);

/** Up to 5 mismatches as readable lines (an empty list passes). */
function mismatches(xs: ArrayLike<number>, got: ArrayLike<number>, want: ArrayLike<number>, tol: (want: number) => number): string[] {
  const out: string[] = [];
  for (let i = 0; i < got.length && out.length < 5; i++) {
    const ok = Number.isFinite(want[i]) ? Math.abs(got[i] - want[i]) <= tol(want[i]) : got[i] === want[i];
    if (!ok) out.push(`x=${xs[i]}: got ${got[i]}, want ${want[i]}`);
  }
  return out;
}

const maxAbsDiff = (a: ArrayLike<number>, c: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - c[i]));
  return m;
};

/** Magnitudes where f32 (e^88.7) or f64 (e^709.8) exp overflows if a formula lets it. */
const BIG = [10, 30, 80, 100, 800];
/** Dense [-8, 8] plus exact kinks (0, +-3, 6), tiny values and the large magnitudes. */
const VALUE_GRID = [...range(-8, 8, 0.01), 0, -3, 3, 6, 1e-10, -1e-10, 1e-3, -1e-3, ...BIG, ...BIG.map((v) => -v)];
/** For finite differences: a step-0.25 grid shifted by 0.0137 (>= 1e-3 away from every kink), plus large values. */
const FD_GRID = [...range(-8, 8, 0.25).map((v) => v + 0.0137), ...BIG.map((v) => v + 0.3), ...BIG.map((v) => -v - 0.3)];

// ---------------------------------------------------------------------------------------------
// Every elementwise activation name

interface Case {
  readonly name: ActivationName;
  readonly ref: (x: number) => number;
  /**
   * |got - want| <= atol + rtol |want|. Default 1e-15 + 1e-13 |want|: the compositions are a few
   * correctly rounded f64 ops, but e.g. exp(x) - 1 next to 0 (where the reference uses expm1) is
   * only good to ~1e-16 absolute, and outputs reach 800, so a mixed absolute/relative bound.
   */
  readonly atol?: number;
  readonly rtol?: number;
  /** Inputs where the derivative itself overflows (exponential beyond 709): skipped for gradients. */
  readonly gradDomain?: (x: number) => boolean;
  /** The same in f32 (exponential beyond 88.7). */
  readonly f32Domain?: (x: number) => boolean;
}

const CASES: readonly Case[] = [
  { name: 'relu', ref: (x) => Math.max(x, 0) },
  { name: 'sigmoid', ref: (x) => 1 / (1 + Math.exp(-x)) },
  { name: 'tanh', ref: Math.tanh },
  { name: 'linear', ref: (x) => x },
  // gelu: x times the error of Phi, which the erfc fit has to 9.6e-12 relative on erfc/2 <= 0.5:
  // measured 8.8e-13 absolute and 9.5e-12 relative (negative tail); 1e-11 + 5e-11 relative leaves
  // a five-fold margin.
  { name: 'gelu', ref: (x) => x * normCdf(x), atol: 1e-11, rtol: 5e-11 },
  { name: 'silu', ref: (x) => x / (1 + Math.exp(-x)) },
  { name: 'swish', ref: (x) => x / (1 + Math.exp(-x)) },
  { name: 'elu', ref: (x) => (x >= 0 ? x : Math.expm1(x)) },
  { name: 'selu', ref: (x) => KERAS_SELU_SCALE * (x >= 0 ? x : KERAS_SELU_ALPHA * Math.expm1(x)) },
  { name: 'softplus', ref: (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))) },
  { name: 'softsign', ref: (x) => x / (1 + Math.abs(x)) },
  { name: 'leaky_relu', ref: (x) => (x >= 0 ? x : 0.2 * x) },
  { name: 'relu6', ref: (x) => Math.min(Math.max(x, 0), 6) },
  // Keras 3's numpy backend form x / 6 + 0.5 clipped to [0, 1], equal to relu6(x + 3) / 6.
  { name: 'hard_sigmoid', ref: (x) => (x <= -3 ? 0 : x >= 3 ? 1 : x / 6 + 0.5) },
  { name: 'exponential', ref: Math.exp, gradDomain: (x) => x < 700, f32Domain: (x) => x < 88 },
];

describe('activation names', () => {
  it('are the Keras 3 names this compiler supports, each with a case here', () => {
    expect([...ACTIVATIONS].sort()).toEqual(
      ['elu', 'exponential', 'gelu', 'hard_sigmoid', 'leaky_relu', 'linear', 'log_softmax', 'relu', 'relu6', 'selu', 'sigmoid', 'silu', 'softmax', 'softplus', 'softsign', 'swish', 'tanh'],
    );
    expect([...CASES.map((c) => c.name), 'softmax', 'log_softmax'].sort()).toEqual([...ACTIVATIONS].sort());
  });

  it('checkActivation accepts each name, maps null/undefined to linear, and refuses others listing the valid ones', () => {
    for (const n of ACTIVATIONS) expect(checkActivation(n, 'Dense')).toBe(n);
    expect(checkActivation(undefined, 'Dense')).toBe('linear');
    expect(checkActivation(null, 'Dense')).toBe('linear');
    // 'mish' is a Keras name this compiler does not have; names are case-sensitive, as in Keras.
    for (const bad of ['mish', 'Gelu', 'gelu_approximate', 42]) {
      const call = () => checkActivation(bad, "Dense 'd'");
      expect(call).toThrow(DlcError);
      expect(call).toThrow(`Dense 'd': unknown activation '${String(bad)}'; expected one of ${ACTIVATIONS.join(', ')}`);
    }
  });
});

/** Compile `fn` like a backend does (simplify, fuse, plan, Wasm) and run it in f32. */
async function runWasmF32(fn: ReturnType<typeof makeFunc>, args: readonly Float32Array[]): Promise<Float32Array[]> {
  const p = fuse(simplify(fn));
  const plan = planMemory(p);
  const w = await instantiateProgram(emitWasm(p, plan, { relaxedSimd: false }));
  p.inputs.forEach((id, i) => w.f32(plan.offsets[id], numel(p.buffers[id].shape)).set(args[i]));
  w.run();
  return p.outputs.map((id) => w.f32(plan.offsets[id], numel(p.buffers[id].shape)).slice());
}

/** f32 exp overflows past 88.7: the grid straddles it. */
const F32_GRID = [...range(-8, 8, 0.01), ...[30, 80, 88, 89, 100, 800].flatMap((v) => [v, -v])];

describe.each(CASES)('$name', ({ name, ref, atol = 1e-15, rtol = 1e-13, gradDomain = () => true, f32Domain = () => true }) => {
  const f: Act = (x) => activate(name, x);

  it('matches the f64 formula, large magnitudes and kinks included', () => {
    const got = evalAct(f, VALUE_GRID);
    expect(mismatches(VALUE_GRID, got, VALUE_GRID.map(ref), (w) => atol + rtol * Math.abs(w))).toEqual([]);
  });

  it('gradient matches central differences', () => {
    const xs = FD_GRID.filter(gradDomain);
    const w = uniform(xs.length, 7);
    const g = gradAct(f, xs, w);
    // Elementwise, so one perturbation of all x at once gives every partial derivative. Step
    // h = 1e-6 max(1, |x|): truncation O(h^2 f''') and rounding O(2^-52 |f| / h) stay ~1e-9
    // relative to the larger of |fd|, |ad| and a 1e-2 floor (the floor keeps near-zero derivatives
    // from asking more than FD can give), so 1e-6 catches any wrong VJP (off by O(1)), as in
    // autodiff.test.ts.
    const h = xs.map((x) => 1e-6 * Math.max(1, Math.abs(x)));
    const up = evalAct(f, xs.map((x, i) => x + h[i]));
    const down = evalAct(f, xs.map((x, i) => x - h[i]));
    const fd = xs.map((_, i) => (w[i] * (up[i] - down[i])) / (2 * h[i]));
    expect(mismatches(xs, g, fd, (v) => 1e-6 * Math.max(Math.abs(v), 1e-2))).toEqual([]);
  });

  it('value and gradient stay finite where f32 (and f64) exp would overflow', () => {
    const xs = VALUE_GRID.filter(gradDomain);
    const y = evalAct(f, xs);
    const g = gradAct(f, xs, new Float64Array(xs.length).fill(1));
    const bad = xs.filter((_, i) => !Number.isFinite(y[i]) || !Number.isFinite(g[i]));
    expect(bad).toEqual([]);
  });

  it('the fused kernel program computes what the graph does (f64 both; 1e-12 relative for summation order)', () => {
    const x = inp('x', [VALUE_GRID.length]);
    const w = inp('w', [VALUE_GRID.length]);
    const y = f(x);
    const [g] = grad(b.reduceSum(b.mul(y, w), [0]), [x]);
    const fn = makeFunc('act', [x, w], [y, g]);
    const xs = VALUE_GRID.filter(gradDomain);
    const args = [Float64Array.from(VALUE_GRID, (v) => (gradDomain(v) ? v : 0)), uniform(VALUE_GRID.length, 3)];
    const ref = interpret(fn, args);
    const got = runProgram(fuse(simplify(fn)), args);
    expect(xs.length).toBeGreaterThan(0);
    ref.forEach((r, k) => expect(mismatches(VALUE_GRID, got[k], r.data, (v) => 1e-12 * Math.max(1, Math.abs(v)))).toEqual([]));
  });

  it('in f32 on the Wasm backend, value and gradient are finite past exp overflow and close to f64', async () => {
    const xs = Float32Array.from(F32_GRID.filter(f32Domain));
    const x = inp('x', [xs.length]);
    const w = inp('w', [xs.length]);
    const y = activate(name, x);
    const [g] = grad(b.reduceSum(b.mul(y, w), [0]), [x]);
    const fn = makeFunc('act', [x, w], [y, g]);
    const ws = Float32Array.from(uniform(xs.length, 3));
    const got = await runWasmF32(fn, [xs, ws]);
    // The interpreter on the same (f32) inputs. A few f32 roundings per formula: measured at most
    // 1.3e-7 relative to max(1, |v|) (about 2 ulp); 5e-7 leaves a four-fold margin. Without the
    // exp clamp, sigmoid's gradient here was NaN from x = -89 on.
    interpret(fn, [xs, ws]).forEach((r, k) => {
      expect(got[k].every(Number.isFinite)).toBe(true);
      expect(mismatches(xs, got[k], r.data, (v) => 5e-7 * Math.max(1, Math.abs(v)))).toEqual([]);
    });
  });
});

describe('gradients at kinks', () => {
  // Not differentiable there; the rule (max/min ties go to the first operand) must give one of the
  // one-sided derivatives, and the derivative itself where both sides agree.
  const at = (name: ActivationName, x: number) => gradAct((v) => activate(name, v), [x], [1])[0];
  it.each([
    ['relu', 0, [0, 1]],
    ['leaky_relu', 0, [0.2, 1]],
    ['relu6', 0, [0, 1]],
    ['relu6', 6, [1, 0]],
    ['hard_sigmoid', -3, [0, 1 / 6]],
    ['hard_sigmoid', 3, [1 / 6, 0]],
    ['selu', 0, [KERAS_SELU_SCALE * KERAS_SELU_ALPHA, KERAS_SELU_SCALE]],
  ] as const)('%s at %d is a one-sided derivative', (name, x, sides) => {
    const g = at(name, x);
    expect(sides.some((s) => Math.abs(g - s) < 1e-15)).toBe(true);
  });
  it.each([
    ['elu', 0, 1],
    ['softplus', 0, 0.5],
    ['softsign', 0, 1],
    ['gelu', 0, 0.5],
    ['silu', 0, 0.5],
  ] as const)('%s at %d (both sides agree) is %d', (name, x, want) => {
    // 1e-11: gelu'(0) = Phi(0) = (1 - erf fit at 0) / 2, which is 0.5 - 1.7e-12.
    expect(Math.abs(at(name, x) - want)).toBeLessThan(1e-11);
  });
});

// ---------------------------------------------------------------------------------------------
// erf and gelu

describe('erf', () => {
  it('the JS reference agrees with 20-digit values (mpmath) to 1e-15 relative', () => {
    const known: [number, number][] = [
      [0.001, 0.0011283787909692363799],
      [0.5, 0.52049987781304653768],
      [1, 0.84270079294971486934],
      [2, 0.99532226501895273416],
      [3, 0.99997790950300141456],
      [5, 0.99999999999846254021],
    ];
    for (const [x, v] of known) expect(Math.abs(erfRef(x) - v) / v).toBeLessThan(1e-15);
    const knownC: [number, number][] = [
      [0.5, 0.47950012218695346232],
      [2, 0.0046777349810472658379],
      [5, 1.5374597944280348502e-12],
      [10, 2.088487583762544757e-45],
      [20, 5.3958656116079009289e-176],
    ];
    // The series near 2 loses what 1 - erf cancels: 1e-13 relative there, 1e-15 for the fraction.
    for (const [z, v] of knownC) expect(Math.abs(erfcRef(z) - v) / v).toBeLessThan(z < 2 ? 1e-13 : 1e-15);
  });

  it('is within 1e-11 of erf on a 1e-3 grid over [-6, 6] (documented: 3.4e-12), odd, and 1 beyond', () => {
    const xs = range(-6, 6, 1e-3);
    const got = evalAct(erf, xs);
    const err = maxAbsDiff(got, xs.map(erfRef));
    // The fit's bound is 9.6e-12 relative on erfc(|x|) <= 1, plus f64 rounding; measured 3.4e-12.
    expect(err).toBeLessThan(1e-11);
    // Odd by construction (a sign times erfc(|x|)) except at 0, where the fit gives 3.4e-12, not 0.
    const nonzero = xs.filter((x) => x !== 0);
    expect(evalAct(erf, nonzero.map((x) => -x))).toEqual(evalAct(erf, nonzero).map((v) => -v));
    expect(Array.from(evalAct(erf, [-800, -30, 30, 800]))).toEqual([-1, -1, 1, 1]);
  });

  it('gradient is within 3e-9 of 2/sqrt(pi) e^{-x^2} (autodiff differentiates the fit, not erf)', () => {
    const xs = range(-6, 6, 1e-3);
    const g = gradAct(erf, xs, new Float64Array(xs.length).fill(1));
    // The fit's derivative vs the exact one: 1.1e-9 at most (measured here, and in exact arithmetic
    // with mpmath over [0, 8]); 3e-9 allows for that and rounding, and is 20 times finer than f32
    // can resolve erf' (<= 1.13, spacing ~6e-8 near 1).
    expect(maxAbsDiff(g, xs.map((x) => (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x)))).toBeLessThan(3e-9);
  });
});

describe('gelu', () => {
  it('exact: gradient is within 5e-11 of Phi(x) + x phi(x) on a 1e-3 grid over [-8, 8]', () => {
    const xs = range(-8, 8, 1e-3);
    const g = gradAct((x) => gelu(x, false), xs, new Float64Array(xs.length).fill(1));
    const want = xs.map((x) => normCdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));
    // d/dx x Phi(x) = Phi + x Phi'. The fit's erfc' is off by up to 1.1e-9 (see erf above), but
    // where that happens x Phi' is small: measured 9.2e-12 over the grid, so 5e-11 has a five-fold
    // margin and is still 1e3 times finer than f32 can resolve gelu' (<= 1.13).
    expect(maxAbsDiff(g, want)).toBeLessThan(5e-11);
  });

  it('exact: keeps 1e-10 relative accuracy in the negative tail (erfc, not 1 + erf)', () => {
    const xs = range(-35, -1, 0.01);
    const got = evalAct((x) => gelu(x, false), xs);
    // gelu(-35) = -35 Phi(-35) ~ 1e-267: 1 + erf(x / sqrt 2) would be 0 from x ~ -8.3 on.
    const worst = Math.max(...xs.map((x, i) => Math.abs(got[i] / (x * normCdf(x)) - 1)));
    expect(worst).toBeLessThan(1e-10);
  });

  it("approximate: the tanh form of Keras's ops.gelu, with gradients matching central differences", () => {
    const f: Act = (x) => gelu(x, true);
    expect(mismatches(VALUE_GRID, evalAct(f, VALUE_GRID), VALUE_GRID.map(geluTanhRef), (w) => 1e-15 + 1e-13 * Math.abs(w))).toEqual([]);
    const xs = FD_GRID;
    const h = xs.map((x) => 1e-6 * Math.max(1, Math.abs(x)));
    const up = evalAct(f, xs.map((x, i) => x + h[i]));
    const down = evalAct(f, xs.map((x, i) => x - h[i]));
    const g = gradAct(f, xs, new Float64Array(xs.length).fill(1));
    // Same FD tolerance as the per-name gradient checks above.
    expect(mismatches(xs, g, xs.map((_, i) => (up[i] - down[i]) / (2 * h[i])), (v) => 1e-6 * Math.max(Math.abs(v), 1e-2))).toEqual([]);
    expect(g.every(Number.isFinite)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// softmax / log_softmax

/** softmax or log-softmax of a row-major tensor along `axis`, with the max subtracted. */
function softmaxRef(x: ArrayLike<number>, shape: Shape, axis: number, log: boolean): Float64Array {
  const out = new Float64Array(x.length);
  const n = shape[axis];
  const inner = shape.slice(axis + 1).reduce((p, d) => p * d, 1);
  const outer = x.length / (n * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (j: number) => (o * n + j) * inner + i;
      let m = -Infinity;
      for (let j = 0; j < n; j++) m = Math.max(m, x[at(j)]);
      let s = 0;
      for (let j = 0; j < n; j++) s += Math.exp(x[at(j)] - m);
      for (let j = 0; j < n; j++) out[at(j)] = log ? x[at(j)] - m - Math.log(s) : Math.exp(x[at(j)] - m) / s;
    }
  }
  return out;
}

/** Per-coordinate central differences of sum(w * f(x)) (softmax couples the coordinates). */
function fdGradient(f: Act, xs: Float64Array, w: Float64Array, shape: Shape): Float64Array {
  const x = inp('x', shape);
  const wn = inp('w', shape);
  const lossFn = makeFunc('loss', [x, wn], [b.reduceSum(b.mul(f(x), wn), shape.map((_, i) => i))]);
  const loss = (v: Float64Array) => interpret(lossFn, [v, w])[0].data[0];
  return xs.map((v, i) => {
    const h = 1e-6 * Math.max(1, Math.abs(v));
    const up = Float64Array.from(xs);
    const down = Float64Array.from(xs);
    up[i] += h;
    down[i] -= h;
    return (loss(up) - loss(down)) / (2 * h);
  });
}

describe('softmax and log_softmax', () => {
  // Rows with +-800 (every exp would overflow without the max shift), ties, and ordinary values.
  const rows = [-800, 0, 800, 1, 2, 80, 80, 80, 80, 80, -30, -29.5, 30, 29.9, 0, 0.1, -0.2, 0.3, 0.05, -1.7];
  const shape = [4, 5];

  it.each([
    ['softmax', false],
    ['log_softmax', true],
  ] as const)('%s over the last axis matches the reference, and its gradient central differences', (name, log) => {
    const f: Act = (x) => activate(name, x);
    const got = evalAct(f, rows, shape);
    // A sum of five exps in a different order: 1e-14 relative, 1e-16 absolute for the zeros.
    expect(mismatches(rows, got, softmaxRef(rows, shape, 1, log), (v) => 1e-16 + 1e-14 * Math.abs(v))).toEqual([]);
    const xs = Float64Array.from(rows);
    const w = uniform(xs.length, 11);
    // FD tolerance as for the elementwise activations.
    expect(mismatches(rows, gradAct(f, xs, w, shape), fdGradient(f, xs, w, shape), (v) => 1e-6 * Math.max(Math.abs(v), 1e-2))).toEqual([]);
  });

  it('softmax / logSoftmax are the last-axis cases of softmaxAxis / logSoftmaxAxis', () => {
    expect(evalAct(softmax, rows, shape)).toEqual(evalAct((x) => softmaxAxis(x, 1), rows, shape));
    expect(evalAct(logSoftmax, rows, shape)).toEqual(evalAct((x) => logSoftmaxAxis(x, -1), rows, shape));
  });

  it.each([0, 1, 2, -1, -2, -3])('softmaxAxis / logSoftmaxAxis along axis %d of a rank-3 tensor', (axis) => {
    const shp = [2, 3, 4];
    const xs = uniform(numel(shp), 5 + axis, -40, 40);
    const a = axis < 0 ? axis + 3 : axis;
    for (const [f, log] of [
      [(x: Node) => softmaxAxis(x, axis), false],
      [(x: Node) => logSoftmaxAxis(x, axis), true],
    ] as const) {
      expect(mismatches(xs, evalAct(f, xs, shp), softmaxRef(xs, shp, a, log), (v) => 1e-16 + 1e-14 * Math.abs(v))).toEqual([]);
      const w = uniform(xs.length, 13);
      expect(mismatches(xs, gradAct(f, xs, w, shp), fdGradient(f, xs, w, shp), (v) => 1e-6 * Math.max(Math.abs(v), 1e-2))).toEqual([]);
    }
  });

  it('refuses an axis outside the rank', () => {
    const x = inp('x', [2, 3]);
    expect(() => softmaxAxis(x, 2)).toThrow(DlcError);
    expect(() => softmaxAxis(x, -3)).toThrow('softmax: axis -3 is out of range for an input of rank 2 (valid: -2 to 1)');
    expect(() => logSoftmaxAxis(x, 0.5)).toThrow('logSoftmax: axis 0.5 is out of range');
  });
});

// ---------------------------------------------------------------------------------------------
// Parameterized helpers

/** Keras 3's ReLU.static_call (keras/src/activations/activations.py), transcribed. */
function kerasRelu(x: number, negativeSlope = 0, maxValue?: number, threshold = 0): number {
  const negativePart = negativeSlope !== 0 ? Math.max(-x + threshold, 0) : 0;
  let y = threshold !== 0 ? x * (x > threshold ? 1 : 0) : Math.max(x, 0);
  if (maxValue !== undefined) y = Math.min(Math.max(y, 0), maxValue);
  return y - negativeSlope * negativePart;
}

describe('parameterized helpers', () => {
  const exact = (w: number) => 1e-15 + 1e-13 * Math.abs(w);
  const fdCheck = (f: Act) => {
    const xs = FD_GRID;
    const h = xs.map((x) => 1e-6 * Math.max(1, Math.abs(x)));
    const up = evalAct(f, xs.map((x, i) => x + h[i]));
    const down = evalAct(f, xs.map((x, i) => x - h[i]));
    const g = gradAct(f, xs, new Float64Array(xs.length).fill(1));
    return mismatches(xs, g, xs.map((_, i) => (up[i] - down[i]) / (2 * h[i])), (v) => 1e-6 * Math.max(Math.abs(v), 1e-2));
  };

  it.each([0, 0.01, 0.5, 1.5, -0.3])('leakyRelu with slope %d (a select: right for slopes above 1 too)', (s) => {
    const f: Act = (x) => leakyRelu(x, s);
    expect(mismatches(VALUE_GRID, evalAct(f, VALUE_GRID), VALUE_GRID.map((x) => (x >= 0 ? x : s * x)), exact)).toEqual([]);
    expect(fdCheck(f)).toEqual([]);
  });

  it.each([0.5, 1, 2.5])('elu with alpha %d', (alpha) => {
    const f: Act = (x) => elu(x, alpha);
    expect(mismatches(VALUE_GRID, evalAct(f, VALUE_GRID), VALUE_GRID.map((x) => (x >= 0 ? x : alpha * Math.expm1(x))), exact)).toEqual([]);
    expect(fdCheck(f)).toEqual([]);
  });

  it.each([
    [undefined, 0, 0],
    [6, 0, 0],
    [undefined, 0.1, 0],
    [6, 0.1, 0],
    [undefined, 0, 1],
    [undefined, 0, -1],
    [4, 0.3, 1.5],
    [4, 0.3, -1.5],
    [0, 0, 0],
  ] as const)('reluCapped(maxValue %s, negativeSlope %d, threshold %d) is Keras relu', (maxValue, slope, threshold) => {
    const f: Act = (x) => reluCapped(x, maxValue, slope, threshold);
    const want = VALUE_GRID.map((x) => kerasRelu(x, slope, maxValue, threshold));
    expect(mismatches(VALUE_GRID, evalAct(f, VALUE_GRID), want, exact)).toEqual([]);
    expect(fdCheck(f)).toEqual([]);
  });

  it("reproduces Keras's docstring examples", () => {
    const xs = [-10, -5, 0, 5, 10];
    expect(Array.from(evalAct((x) => reluCapped(x), xs))).toEqual([0, 0, 0, 5, 10]);
    expect(Array.from(evalAct((x) => reluCapped(x, undefined, 0.5), xs))).toEqual([-5, -2.5, 0, 5, 10]);
    expect(Array.from(evalAct((x) => reluCapped(x, 5), xs))).toEqual([0, 0, 0, 5, 5]);
    expect(Array.from(evalAct((x) => reluCapped(x, undefined, 0, 5), xs))).toEqual([0, 0, 0, 0, 10]);
    // keras/src/ops/nn.py examples, printed in f32 (hence 1e-6).
    const close = (name: ActivationName, x: number[], want: number[]) =>
      expect(mismatches(x, evalAct((v) => activate(name, v), x), want, () => 1e-6)).toEqual([]);
    close('leaky_relu', [-1, 0, 1], [-0.2, 0, 1]);
    close('elu', [-1, 0, 1], [-0.63212055, 0, 1]);
    close('selu', [-1, 0, 1], [-1.11133055, 0, 1.05070098]);
    close('softplus', [-0.555, 0, 0.555], [0.45366603, 0.6931472, 1.008666]);
    close('softsign', [-0.1, -10, 1, 0, 100], [-0.09090909, -0.90909094, 0.5, 0, 0.990099]);
    close('silu', [-6, 1, 0, 1, 6], [-0.0148357, 0.7310586, 0, 0.7310586, 5.9851646]);
    close('relu6', [-3, -2, 0.1, 0.2, 6, 8], [0, 0, 0.1, 0.2, 6, 6]);
  });

  it('refuses parameters that are not finite numbers, and a negative maxValue', () => {
    const x = inp('x', [3]);
    expect(() => leakyRelu(x, Number.NaN)).toThrow('leakyRelu: negativeSlope must be a finite number, got NaN');
    expect(() => elu(x, Infinity)).toThrow(DlcError);
    expect(() => reluCapped(x, -1)).toThrow('reluCapped: maxValue must be a finite number >= 0, got -1');
  });
});
