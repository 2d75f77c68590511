/**
 * @file `grad` (ir/autodiff.ts) on composite functions, checked against central finite
 * differences with every value in f64 (the reference interpreter).
 *
 * Each case builds a scalar loss from graph inputs with the IR builders, asks `grad` for the
 * cotangent graph, interprets both, and compares every gradient element with
 * `(f(x + eps e_j) - f(x - eps e_j)) / 2 eps`. Cases: an MLP with softmax cross-entropy, a small
 * conv net (conv -> relu -> max pool -> reshape -> dot -> logsumexp), a value used many times
 * (cotangents must add up), a path through integer values (must carry no gradient), and weights the
 * loss does not depend on (zero gradients of the right shape).
 *
 * Tolerance: eps = 1e-6 and relative error 1e-6, i.e. |fd - ad| <= 1e-6 max(|fd|, |ad|, 1e-2)
 * (the 1e-2 floor keeps components near zero from demanding more than FD can give). Why this is
 * safe in f64: the central difference has truncation error O(eps^2 |f'''|) ~ 1e-12 and rounding
 * error ~ ulp(f) / eps ~ 2^-52 |f| / 1e-6 ~ 2e-10 |f|; the losses here are O(1), so FD is good to
 * ~1e-9 absolute (observed worst: 2e-8 relative to the floor), well below the tolerance, while a
 * wrong VJP (a missing term, a wrong transpose, a dropped accumulation) is off by O(1) relative.
 * The same check in f32 would be meaningless: ulp(f32) / eps ~ 0.1. The ReLU / max-pool kinks are
 * non-differentiable, so each case asserts that its inputs stay far (>= 1e-4 >> eps) from them.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../ir/autodiff.ts';
import * as b from '../ir/builders.ts';
import { makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { input } from '../ir/node.ts';
import type { DType, InputNode, Node, Shape } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { mulberry32 } from './helpers/gradcheck.ts';

const EPS = 1e-6;
const RTOL = 1e-6;
const FLOOR = 1e-2;

const inp = (name: string, shape: Shape, dtype: DType = 'f32'): InputNode => input(name, dtype, shape) as InputNode;

function uniform(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = mulberry32(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

interface GradReport {
  /** Largest |fd - ad| / max(|fd|, |ad|, FLOOR) over all checked elements. */
  readonly worst: number;
  readonly where: string;
  /** Gradient values from autodiff, per checked input. */
  readonly ad: Float64Array[];
  /** Finite differences, per checked input. */
  readonly fd: Float64Array[];
  readonly loss: number;
}

/**
 * Compare `grad(loss, wrt)` with central differences over every element of every `wrt` input.
 * `values` holds one array per graph input, in `inputs` order.
 */
function checkGrad(inputs: readonly InputNode[], values: readonly Float64Array[], loss: Node, wrt: readonly InputNode[]): GradReport {
  const grads = grad(loss, wrt);
  grads.forEach((g, i) => {
    expect(g.dtype).toBe('f32');
    expect(g.shape).toEqual(wrt[i].shape);
  });
  const fwd = makeFunc('f', inputs, [loss]);
  const bwd = makeFunc('df', inputs, [loss, ...grads]);
  const outs = interpret(bwd, values);
  const f = (vals: readonly Float64Array[]) => interpret(fwd, vals)[0].data[0];
  const ad = outs.slice(1).map((t) => t.data);
  const fd: Float64Array[] = [];
  let worst = 0;
  let where = '';
  wrt.forEach((w, wi) => {
    const k = inputs.indexOf(w);
    expect(k).toBeGreaterThanOrEqual(0);
    const d = new Float64Array(numel(w.shape));
    for (let j = 0; j < d.length; j++) {
      const plus = values.map((v, i) => (i === k ? Float64Array.from(v, (t, q) => (q === j ? t + EPS : t)) : v));
      const minus = values.map((v, i) => (i === k ? Float64Array.from(v, (t, q) => (q === j ? t - EPS : t)) : v));
      d[j] = (f(plus) - f(minus)) / (2 * EPS);
      const err = Math.abs(d[j] - ad[wi][j]) / Math.max(Math.abs(d[j]), Math.abs(ad[wi][j]), FLOOR);
      if (err > worst) {
        worst = err;
        where = `${w.params.name}[${j}]: fd ${d[j]} vs autodiff ${ad[wi][j]}`;
      }
    }
    fd.push(d);
  });
  return { worst, where, ad, fd, loss: outs[0].data[0] };
}

function expectClose(r: GradReport): void {
  expect(Number.isFinite(r.loss)).toBe(true);
  expect(r.worst, r.where).toBeLessThan(RTOL);
}

/** Values of extra nodes (to check distances from kinks). */
function evalNodes(inputs: readonly InputNode[], values: readonly Float64Array[], nodes: readonly Node[]): Float64Array[] {
  return interpret(makeFunc('probe', inputs, nodes), values).map((t) => t.data);
}

/** Dense layer on a rank-2 batch: x [N, in] · w [in, out] + bias [out]. */
const dense = (x: Node, w: Node, bias: Node): Node => {
  const y = b.dot(x, w);
  return b.add(y, b.broadcastTo(bias, y.shape));
};
const relu = (x: Node): Node => b.max(x, b.scalarLike(0, x));

/** Stable log-sum-exp over the last axis of a rank-2 tensor: [N, C] -> [N]. */
function logsumexp(z: Node): Node {
  const m = b.maxKeep(z, [1]);
  const s = b.log(b.reduceSum(b.exp(b.sub(z, b.broadcastTo(m, z.shape))), [1]));
  return b.add(s, b.reshape(m, [z.shape[0]]));
}

describe('grad against central finite differences (f64)', () => {
  it('MLP with softmax cross-entropy: every weight, bias and the input', () => {
    const [N, I, H, C] = [5, 4, 6, 3];
    const x = inp('x', [N, I]);
    const y = inp('y', [N], 'i32');
    const w1 = inp('w1', [I, H]);
    const b1 = inp('b1', [H]);
    const w2 = inp('w2', [H, C]);
    const b2 = inp('b2', [C]);
    const pre = dense(x, w1, b1);
    const h = relu(pre);
    const z = dense(h, w2, b2);
    // mean over the batch of -log softmax(z)[y] = mean(lse(z) - <onehot(y), z>)
    const oneHot = b.cast(b.equal(b.broadcast(y, [N, C], [0]), b.iota([N, C], 1, 'i32')), 'f32');
    const picked = b.reduceSum(b.mul(oneHot, z), [1]);
    const loss = b.div(b.reduceSum(b.sub(logsumexp(z), picked), [0]), b.constant(N, []));
    const inputs = [x, y, w1, b1, w2, b2];
    const values = [
      uniform(N * I, 1, -2, 2),
      Float64Array.from([0, 2, 1, 2, 0]),
      uniform(I * H, 2),
      uniform(H, 3, -0.3, 0.3),
      uniform(H * C, 4),
      uniform(C, 5, -0.3, 0.3),
    ];
    const [preV] = evalNodes(inputs, values, [pre]);
    expect(Math.min(...Array.from(preV, Math.abs)), 'a ReLU input is too close to its kink').toBeGreaterThan(1e-4);
    // Some units are active and some are not, so both sides of max(x, 0) are exercised.
    expect(preV.some((v) => v > 0) && preV.some((v) => v < 0)).toBe(true);
    const r = checkGrad(inputs, values, loss, [w1, b1, w2, b2, x]);
    expectClose(r);
    // The bias gradient of the softmax layer sums (softmax - onehot) over the batch: it sums to zero.
    expect(Math.abs(r.ad[3].reduce((a, v) => a + v, 0))).toBeLessThan(1e-12);
  });

  it('conv -> relu -> max pool -> reshape -> dot -> logsumexp', () => {
    const [N, Hs, Ws, Ci, Co, K] = [2, 6, 6, 2, 3, 4];
    const x = inp('x', [N, Hs, Ws, Ci]);
    const kern = inp('kernel', [3, 3, Ci, Co]);
    const cb = inp('conv_bias', [Co]);
    const w = inp('w', [2 * 2 * Co, K]);
    const conv = b.conv(x, kern, { strides: [1, 1], padding: [[0, 0], [0, 0]], lhsDilation: [1, 1], rhsDilation: [1, 1] });
    const pre = b.add(conv, b.broadcastTo(cb, conv.shape));
    const act = relu(pre); // [2, 4, 4, 3]
    const pooled = b.reduceWindow(act, { op: 'max', window: [2, 2], strides: [2, 2], padding: [[0, 0], [0, 0]] }); // [2, 2, 2, 3]
    const flat = b.reshape(pooled, [N, 2 * 2 * Co]);
    const z = b.dot(flat, w);
    const loss = b.reduceSum(logsumexp(z), [0]);
    const inputs = [x, kern, cb, w];
    const values = [uniform(N * Hs * Ws * Ci, 11), uniform(9 * Ci * Co, 12, -0.5, 0.5), uniform(Co, 13, -0.1, 0.1), uniform(4 * Co * K, 14)];

    // Stay away from the kinks: no ReLU input near 0, and in each pooling window with a positive
    // maximum the runner-up is clearly smaller (so the argmax does not flip under +-eps).
    const [preV, actV] = evalNodes(inputs, values, [pre, act]);
    expect(Math.min(...Array.from(preV, Math.abs))).toBeGreaterThan(1e-4);
    let positiveWindows = 0;
    for (let n = 0; n < N; n++)
      for (let oh = 0; oh < 2; oh++)
        for (let ow = 0; ow < 2; ow++)
          for (let c = 0; c < Co; c++) {
            const cell = [0, 1, 2, 3].map((k) => actV[((n * 4 + oh * 2 + (k >> 1)) * 4 + ow * 2 + (k & 1)) * Co + c]).sort((p, q) => q - p);
            if (cell[0] > 0) {
              positiveWindows++;
              expect(cell[0] - cell[1]).toBeGreaterThan(1e-4);
            }
          }
    expect(positiveWindows).toBeGreaterThan(8);

    expectClose(checkGrad(inputs, values, loss, [kern, cb, w, x]));
  });

  it('a value used several times: cotangents from every use add up', () => {
    const x = inp('x', [3, 4]);
    const w = inp('w', [4, 4]);
    const h = b.tanh(b.dot(x, w)); // used by four consumers below
    const hh = b.mul(h, h); // the same node on both sides of one op
    const twice = b.add(h, h);
    const viaT = b.transpose(h, [1, 0]);
    const loss = b.add(
      b.add(b.reduceSum(b.mul(hh, twice), [0, 1]), b.reduceSum(b.dot(viaT, h), [0, 1])),
      b.reduceSum(b.mul(b.exp(x), x), [0, 1]), // x also feeds the loss directly, not only via h
    );
    const values = [uniform(12, 21), uniform(16, 22, -0.7, 0.7)];
    expectClose(checkGrad([x, w], values, loss, [x, w]));
  });

  it('a value used several times: exact closed forms', () => {
    const x = inp('x', [5]);
    const xs = uniform(5, 31, -2, 2);
    // d/dx sum(x*x + x + x + x*x*x) = 2x + 2 + 3x^2
    const loss = b.reduceSum(b.add(b.add(b.mul(x, x), b.add(x, x)), b.mul(b.mul(x, x), x)), [0]);
    const [g] = grad(loss, [x]);
    const got = interpret(makeFunc('g', [x], [g]), [xs])[0].data;
    xs.forEach((v, i) => expect(got[i]).toBeCloseTo(2 * v + 2 + 3 * v * v, 12));
    // The same weight in two wrt slots gets the full gradient in both.
    const [g1, g2] = grad(loss, [x, x]);
    const both = interpret(makeFunc('g2', [x], [g1, g2]), [xs]);
    expect(Array.from(both[1].data)).toEqual(Array.from(both[0].data));
  });

  it('integer values carry no gradient', () => {
    const x = inp('x', [6]);
    const w = inp('w', [6]);
    // q = trunc(3x) as i32, back to f32: piecewise constant in x, so d/dx through q is 0.
    const q = b.cast(b.cast(b.mul(x, b.scalarLike(3, x)), 'i32'), 'f32');
    // An integer computation on the i32 value (i32 add, mul) before it comes back to f32.
    const qi = b.cast(b.mul(b.add(b.cast(x, 'i32'), b.constant(2, [6], 'i32')), b.constant(3, [6], 'i32')), 'f32');
    // A bool mask from a comparison: select's condition takes no cotangent.
    const sel = b.select(b.less(x, b.scalarLike(0, x)), b.mul(x, b.scalarLike(2, x)), b.mul(x, b.scalarLike(-3, x)));
    const loss = b.reduceSum(b.add(b.add(b.mul(q, w), b.mul(qi, w)), b.add(sel, b.mul(x, w))), [0]);
    // Values away from the steps of trunc(3x) and trunc(x), and from 0 for the select.
    const xs = Float64Array.from([-1.9, -0.55, -0.1, 0.12, 0.5, 1.45]);
    const ws = uniform(6, 41);
    const r = checkGrad([x, w], [xs, ws], loss, [x, w]);
    expectClose(r);
    // Exactly: dL/dx = w + (2 where x < 0, else -3); the integer paths add nothing.
    xs.forEach((v, i) => expect(r.ad[0][i]).toBeCloseTo(ws[i] + (v < 0 ? 2 : -3), 12));
    // dL/dw = trunc(3x) + (trunc(x) + 2) * 3 + x
    xs.forEach((v, i) => expect(r.ad[1][i]).toBeCloseTo(Math.trunc(3 * v) + (Math.trunc(v) + 2) * 3 + v, 12));

    // A loss that reaches x only through integers has an all-zero gradient for x.
    const onlyInt = b.reduceSum(b.mul(q, q), [0]);
    const [gx] = grad(onlyInt, [x]);
    expect(gx.shape).toEqual([6]);
    expect(Array.from(interpret(makeFunc('gx', [x], [gx]), [xs])[0].data)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('an unconnected weight gets a zero gradient of its own shape', () => {
    const x = inp('x', [3, 2]);
    const w = inp('w', [2, 2]);
    const unused = inp('unused', [4, 5]);
    const onlyOther = inp('only_other', [2]); // feeds a value that is not part of the loss
    const other = b.mul(b.reduceSum(x, [0]), onlyOther);
    void other;
    const loss = b.reduceSum(b.tanh(b.dot(x, w)), [0, 1]);
    const inputs = [x, w, unused, onlyOther];
    const values = [uniform(6, 51), uniform(4, 52), uniform(20, 53), uniform(2, 54)];
    const r = checkGrad(inputs, values, loss, [w, unused, onlyOther]);
    expectClose(r);
    expect(r.ad[1].length).toBe(20);
    expect(Array.from(r.ad[1]).every((v) => v === 0)).toBe(true);
    expect(Array.from(r.ad[2]).every((v) => v === 0)).toBe(true);
    expect(Array.from(r.ad[0]).some((v) => v !== 0)).toBe(true);
  });

  it('refuses a loss that is not an f32 scalar', () => {
    const x = inp('x', [3]);
    expect(() => grad(b.exp(x), [x])).toThrow(/grad: loss must be an f32 scalar, got f32\[3\]/);
    expect(() => grad(b.reduceSum(b.cast(x, 'i32'), [0]), [x])).toThrow(/f32 scalar, got i32\[\]/);
  });
});
