/**
 * @file Tests for the IR text format (ir/print.ts, ir/parse.ts) and the verifier (ir/verify.ts).
 *
 * The round-trip graphs together use every op in `ALL_OPS`, and a test compares the set of ops they
 * use with `ALL_OPS`, so adding an op without round-trip coverage fails here. Each graph must print,
 * parse and print again to the same bytes, pass the verifier before and after, and compute the same
 * values in the reference interpreter (so the parsed graph is not merely printed alike but means the
 * same). Verifier tests forge malformed nodes as object literals, since `apply` cannot make them.
 */
import { describe, expect, it } from 'vitest';
import { grad } from '../ir/autodiff.ts';
import { simplify } from '../compiler/passes/simplify.ts';
import { model as mnistCnn } from '../examples/mnist-cnn.ts';
import * as b from '../ir/builders.ts';
import { funcNodes, makeFunc } from '../ir/graph.ts';
import { interpret } from '../ir/interp.ts';
import { apply, input } from '../ir/node.ts';
import { ALL_OPS } from '../ir/optable.ts';
import { ParseError, parseFunc } from '../ir/parse.ts';
import { fmtParams, printFunc } from '../ir/print.ts';
import type { DType, Func, InputNode, Node, Shape } from '../ir/types.ts';
import { numel } from '../ir/types.ts';
import { VerifyError, verifyFunc } from '../ir/verify.ts';

const inp = (name: string, dtype: DType, shape: Shape): InputNode => input(name, dtype, shape) as InputNode;

// ---------------------------------------------------------------------------------------------
// Round-trip graphs

function elementwiseGraph(): Func {
  const x = inp('x', 'f32', [2, 3]);
  const y = inp('y', 'f32', [2, 3]);
  const n = inp('n', 'i32', [2, 3]);
  const a = b.add(b.neg(b.abs(x)), b.exp(y));
  const c = b.sub(b.log(b.sqrt(b.mul(x, x))), b.recip(b.tanh(y)));
  const d = b.div(b.max(a, c), b.min(a, c));
  const e = b.pow(d, b.scalarLike(2, d));
  const lt = b.less(x, y);
  const eq = b.equal(n, b.constant(0, [2, 3], 'i32'));
  const sel = b.select(b.equal(lt, eq), e, x);
  const ints = b.add(b.mul(n, n), b.cast(x, 'i32'));
  return makeFunc('elementwise', [x, y, n], [sel, b.cast(ints, 'f32'), b.cast(lt, 'f32'), eq], ['sel', 'ints', 'lt', 'eq']);
}

function reduceLeafGraph(): Func {
  const x = inp('x', 'f32', [4, 3]);
  const key = inp('step', 'i32', []);
  const r = b.randomUniform(key, [4, 3], 7);
  const s = b.reduceSum(b.add(b.mul(x, r), b.iota([4, 3], 0, 'f32')), [1]);
  const m = b.reduceMax(x, [0, 1]);
  const si = b.reduceSum(b.iota([4, 3], 1), [0]);
  // Builders drop empty axis lists, so `axes=()` only appears when made through `apply` directly.
  const none = apply('reduce_sum', [x], { axes: [] });
  return makeFunc('reduce_leaf', [x, key], [s, m, si, none], ['s', 'm', 'si', 'none']);
}

function movementGraph(): Func {
  const x = inp('x', 'f32', [2, 3, 4]);
  const bias = inp('bias', 'f32', [4]);
  const s = inp('s', 'f32', []);
  const r = b.reshape(x, [6, 4]);
  const t = b.transpose(x, [2, 0, 1]);
  const bc = b.add(x, b.broadcast(bias, [2, 3, 4], [2]));
  const sl = b.slice(x, [0, 1, 0], [2, 3, 4]);
  const pd = b.pad(x, [1, 0, 0], [0, 2, 1], -1.5);
  const cat = b.concat([x, sl, x], 1);
  const rev = b.reverse(x, [0, 2]);
  // Scalars give the empty lists: broadcast axes=(), reshape shape=(), transpose perm=().
  const sb = b.add(b.broadcast(s, [2, 3, 4], []), rev);
  const ss = b.reshape(b.reshape(s, [1, 1]), []);
  const st = apply('transpose', [s], { perm: [] });
  const rv = apply('reverse', [x], { axes: [] });
  return makeFunc('movement', [x, bias, s], [r, t, bc, pd, cat, sb, ss, st, rv], ['r', 't', 'bc', 'pd', 'cat', 'sb', 'ss', 'st', 'rv']);
}

function cnnGraph(): Func {
  const x = inp('x', 'f32', [2, 6, 6, 1]);
  const w = inp('conv2d_1.kernel', 'f32', [3, 3, 1, 4]);
  const c = b.conv(x, w, { strides: [1, 1], padding: [[1, 1], [1, 1]], lhsDilation: [1, 1], rhsDilation: [1, 1] });
  const c2 = b.conv(x, w, { strides: [2, 1], padding: [[0, 1], [2, 0]], lhsDilation: [2, 1], rhsDilation: [1, 2] });
  const pool = { window: [2, 2], strides: [2, 2], padding: [[0, 0], [0, 0]] } as const;
  const mp = b.reduceWindow(c, { op: 'max', ...pool });
  const ap = b.reduceWindow(c, { op: 'sum', window: [3, 3], strides: [1, 2], padding: [[1, 1], [0, 1]] });
  const g = b.reduceWindowGrad(c, mp, { op: 'max', ...pool });
  return makeFunc('cnn', [x, w], [mp, ap, g, c2], ['mp', 'ap', 'g', 'c2']);
}

/** Awkward names and numbers: every value here must survive the text exactly. */
function awkwardGraph(): Func {
  const names = ['adam.m.dense.bias', 'has space', 'quote"and\\slash', '0starts_with_digit', 'true', 'NaN', 'ünï', 'line\nbreak'];
  const xs = names.map((n) => inp(n, 'f32', [2]));
  const consts = [-0, Infinity, -Infinity, NaN, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3, -2.5e21].map((v) => b.constant(v, [2]));
  const i32 = b.cast(b.constant(-2147483648, [2], 'i32'), 'f32');
  const boolc = b.cast(b.constant(1, [2], 'bool'), 'f32');
  let acc = b.add(i32, boolc);
  for (const n of [...xs, ...consts]) acc = b.add(acc, n);
  const padded = b.pad(xs[0], [1], [1], NaN);
  return makeFunc('weird fn/name', xs, [acc, padded, b.pad(xs[1], [0], [2], -0)], ['out "one"', 'a.b', '2']);
}

/** Unused inputs, an input returned directly, one node under two names, and an empty function. */
function edgeGraphs(): Func[] {
  const x = inp('x', 'f32', [3]);
  const unused = inp('unused', 'i32', [5]);
  const y = b.exp(x);
  const f = makeFunc('edges', [unused, x], [y, x, y], ['y', 'x.same', 'y.again']);
  const empty = makeFunc('empty', [inp('only', 'bool', [])], [], []);
  const none = makeFunc('nothing', [], [b.constant(3, [2, 2], 'i32')], ['c']);
  return [f, empty, none];
}

/** A small training step made by autodiff: the shape of graph `dlc ir` prints in practice. */
function trainStepGraph(): Func {
  const x = inp('x', 'f32', [2, 4, 4, 1]);
  const y = inp('y', 'f32', [2, 3]);
  const k = inp('conv2d.kernel', 'f32', [3, 3, 1, 2]);
  const w = inp('dense.kernel', 'f32', [8, 3]);
  const c = b.conv(x, k, { strides: [1, 1], padding: [[1, 1], [1, 1]], lhsDilation: [1, 1], rhsDilation: [1, 1] });
  const h = b.max(c, b.scalarLike(0, c));
  const p = b.reduceWindow(h, { op: 'max', window: [2, 2], strides: [2, 2], padding: [[0, 0], [0, 0]] });
  const logits = b.dot(b.reshape(p, [2, 8]), w);
  const z = b.sub(logits, b.broadcastTo(b.reshape(b.reduceMax(logits, [1]), [2, 1]), [2, 3]));
  const lse = b.log(b.reduceSum(b.exp(z), [1]));
  const ll = b.sub(b.reduceSum(b.mul(z, y), [1]), lse);
  const loss = b.neg(b.div(b.reduceSum(ll, [0]), b.constant(2, [])));
  const [gk, gw] = grad(loss, [k, w]);
  const lr = (g: Node) => b.mul(g, b.scalarLike(0.01, g));
  return makeFunc('train_step', [x, y, k, w], [loss, b.sub(k, lr(gk)), b.sub(w, lr(gw))], ['loss', 'conv2d.kernel.next', 'dense.kernel.next']);
}

/** A recurrent loop and its gradient: scan bodies print nested, the VJP adds a reverse scan. */
function scanGraph(): Func {
  const xs = inp('xs', 'f32', [3, 2, 2]);
  const h0 = inp('h0', 'f32', [2, 2]);
  const w = inp('rnn.kernel', 'f32', [2, 2]);
  const r = b.scan(([h], [x]) => {
    const h2 = b.tanh(b.add(b.dot(x, w), h));
    return { carry: [h2], ys: [b.mul(h2, h2)] };
  }, [h0], [xs], { name: 'rnn_cell', carryNames: ['h'], xsNames: ['x'] });
  const loss = b.reduceSum(r.ys[0], [0, 1, 2]);
  const [gw] = grad(loss, [w]);
  return makeFunc('scan_train', [xs, h0, w], [r.carry[0], loss, gw], ['h', 'loss', 'rnn.kernel.grad']);
}

const GRAPHS: readonly Func[] = [elementwiseGraph(), reduceLeafGraph(), movementGraph(), cnnGraph(), awkwardGraph(), ...edgeGraphs(), trainStepGraph(), scanGraph()];

/** Deterministic arguments: positive floats (so log and sqrt stay real), small ints, 0/1 bools. */
function argsFor(f: Func): number[][] {
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  return f.inputs.map((i) =>
    Array.from({ length: numel(i.shape) }, () => (i.dtype === 'f32' ? 0.5 + rnd() : i.dtype === 'i32' ? Math.floor(rnd() * 7) - 3 : rnd() < 0.5 ? 0 : 1)),
  );
}

describe('IR text round trip', () => {
  it.each(GRAPHS.map((f) => [f.name, f] as const))('%s: print, parse, print is byte-identical', (_name, f) => {
    const text = printFunc(f);
    const g = parseFunc(text);
    expect(printFunc(g)).toBe(text);
    expect(g.name).toBe(f.name);
    expect(g.inputs.map((i) => i.params.name)).toEqual(f.inputs.map((i) => i.params.name));
    expect(g.outputNames).toEqual(f.outputNames);
    verifyFunc(f);
    verifyFunc(g);
  });

  it.each(GRAPHS.map((f) => [f.name, f] as const))('%s: the parsed graph computes the same values', (_name, f) => {
    const g = parseFunc(printFunc(f));
    const args = argsFor(f);
    const want = interpret(f, args);
    const got = interpret(g, args);
    expect(got.map((t) => [t.dtype, t.shape, Array.from(t.data)])).toEqual(want.map((t) => [t.dtype, t.shape, Array.from(t.data)]));
  });

  it("round-trips the reference model's train step, before and after simplify", () => {
    const f = mnistCnn.stepFunction('train', 2).func;
    for (const g of [f, simplify(f)]) {
      verifyFunc(g);
      const text = printFunc(g);
      const h = parseFunc(text);
      verifyFunc(h);
      expect(printFunc(h)).toBe(text);
    }
  });

  it('the round-trip graphs cover every op in ALL_OPS', () => {
    const used = new Set<string>();
    for (const f of GRAPHS) for (const n of funcNodes(f)) used.add(n.op);
    expect([...used].sort()).toEqual([...ALL_OPS].sort());
  });

  it('keeps awkward numbers and names exactly', () => {
    const f = awkwardGraph();
    const g = parseFunc(printFunc(f));
    const values = (h: Func) => funcNodes(h).flatMap((n) => (n.op === 'constant' ? [n.params.value] : n.op === 'pad' ? [n.params.value] : []));
    const got = values(g);
    const want = values(f);
    expect(got.length).toBe(want.length);
    got.forEach((v, i) => expect(Object.is(v, want[i])).toBe(true));
    expect(g.name).toBe('weird fn/name');
    expect(g.outputNames).toEqual(['out "one"', 'a.b', '2']);
  });

  it('prints two separately built equal graphs identically, whatever order their nodes were made in', () => {
    expect(printFunc(elementwiseGraph())).toBe(printFunc(elementwiseGraph()));
    expect(printFunc(trainStepGraph())).toBe(printFunc(trainStepGraph()));
    const build = (flip: boolean) => {
      const x = inp('x', 'f32', [2]);
      const y = inp('y', 'f32', [2]);
      const [a, c] = flip ? [b.exp(y), b.neg(x)].reverse() : [b.neg(x), b.exp(y)];
      return makeFunc('f', [x, y], [b.add(a, c)], ['out']);
    };
    expect(printFunc(build(true))).toBe(printFunc(build(false)));
  });

  it('pins the printed text of a small graph', () => {
    const x = inp('x', 'f32', [2, 3]);
    const w = inp('dense.kernel', 'f32', [3, 4]);
    const h = b.dot(x, w);
    const r = b.max(h, b.constant(0, [2, 4]));
    const s = b.reduceSum(r, [0, 1]);
    const t = b.broadcast(inp('s', 'f32', [4]), [2, 4], [1]);
    const f = makeFunc('tiny', [x, w], [s, r], ['loss', 'h.relu']);
    expect(printFunc(f)).toBe(
      [
        'func @tiny(%0 x: f32[2,3], %1 dense.kernel: f32[3,4]) -> (loss: f32[], h.relu: f32[2,4]) {',
        '  %2: f32[2,4] = dot %0, %1',
        '  %3: f32[2,4] = constant[value=0]',
        '  %4: f32[2,4] = max %2, %3',
        '  %5: f32[] = reduce_sum[axes=(0,1)] %4',
        '  return %5, %4',
        '}',
        '',
      ].join('\n'),
    );
    expect(fmtParams(t.op, t.params)).toBe('[axes=(1),shape=(2,4)]');
    const c = b.conv(inp('a', 'f32', [1, 3, 3, 1]), inp('k', 'f32', [3, 3, 1, 1]), { strides: [1, 1], padding: [[0, 0], [1, 1]], lhsDilation: [1, 1], rhsDilation: [1, 1] });
    expect(fmtParams(c.op, c.params)).toBe('[lhsDilation=(1,1),padding=((0,0),(1,1)),rhsDilation=(1,1),strides=(1,1)]');
    expect(fmtParams('reduce_window', { op: 'max', to: 'f32', s: 'a b' })).toBe('[op=max,s="a b",to=f32]');
  });
});

// ---------------------------------------------------------------------------------------------
// Parser

const SIG = 'func @f(%0 x: f32[2], %1 n: i32[]) -> (out: f32[2]) {';

function parseError(text: string): ParseError {
  try {
    parseFunc(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ParseError);
    return e as ParseError;
  }
  throw new Error('expected a parse error');
}

describe('parseFunc', () => {
  it('accepts comments, blank lines, hand-picked value names and params spread over lines', () => {
    const text = [
      '// a hand-written function',
      'func @f(%x x: f32[2], %step n: i32[]) -> (out: f32[2]) {',
      '',
      '  %a.1: f32[2] = exp %x   // trailing comment',
      '  %b: f32[2] = constant[value=2]',
      '  %c: f32[2] = add %a.1, %b',
      '  %d: f32[2] = random_uniform[',
      '    seed=3] %step',
      '  return %c',
      '}',
    ].join('\n');
    const f = parseFunc(text);
    expect(printFunc(f)).toBe(
      [
        'func @f(%0 x: f32[2], %1 n: i32[]) -> (out: f32[2]) {',
        '  %2: f32[2] = exp %0',
        '  %3: f32[2] = constant[value=2]',
        '  %4: f32[2] = add %2, %3',
        '  return %4',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('fills the implied leaf params from the declared type', () => {
    const f = parseFunc([SIG, '  %2: i32[2] = iota[axis=0]', '  %3: f32[2] = cast[to=f32] %2', '  return %3', '}'].join('\n'));
    const iota = f.outputs[0].inputs[0];
    expect(iota.op === 'iota' && iota.params).toEqual({ axis: 0, dtype: 'i32', shape: [2] });
  });

  it('names the line and column of an unknown op', () => {
    const e = parseError([SIG, '  %2: f32[2] = frobnicate %0', '  return %2', '}'].join('\n'));
    expect(e.message).toBe("line 2, col 16: unknown op 'frobnicate'");
    expect([e.line, e.col]).toEqual([2, 16]);
  });

  it('names the line and node of a declared type that disagrees with the type rule', () => {
    const e = parseError([SIG, '  %2: f32[2] = exp %0', '  %7: f32[3] = add %2, %0', '  return %2', '}'].join('\n'));
    expect(e.message).toBe('line 3, %7: declared f32[3] but add gives f32[2]');
  });

  it('names the line and node when the type rule rejects the operands', () => {
    const e = parseError([SIG, '  %2: f32[2] = dot %0, %0', '  return %2', '}'].join('\n'));
    expect(e.message).toMatch(/^line 2, %2: dot\(f32\[2\], f32\[2\]\): operands must have the same rank >= 2/);
  });

  it('rejects undefined values, redefinitions and inputs in the body', () => {
    expect(parseError([SIG, '  %2: f32[2] = exp %9', '  return %2', '}'].join('\n')).message).toBe('line 2, col 20: undefined value %9');
    expect(parseError([SIG, '  %2: f32[2] = exp %0', '  %2: f32[2] = exp %0', '  return %2', '}'].join('\n')).message).toBe(
      'line 3, col 3: %2 is already defined on line 2',
    );
    expect(parseError([SIG, '  %0: f32[2] = exp %0', '  return %0', '}'].join('\n')).message).toBe('line 2, col 3: %0 is already defined on line 1');
    expect(parseError([SIG, '  %2: f32[2] = input[name=z]', '  return %2', '}'].join('\n')).message).toMatch(/^line 2, %2: inputs are declared in the function signature/);
    expect(parseError([SIG, '  return %5', '}'].join('\n')).message).toBe('line 2, col 10: undefined value %5');
  });

  it('names line and column of syntax errors', () => {
    expect(parseError([SIG, '  %2: f32[2] exp %0', '  return %2', '}'].join('\n')).message).toBe("line 2, col 14: expected '=' but found 'exp'");
    expect(parseError([SIG, '  %2: f64[2] = exp %0'].join('\n')).message).toBe("line 2, col 7: unknown dtype 'f64' (expected f32, i32, bool)");
    expect(parseError([SIG, '  %2: f32[2] = pad[lo=(1),hi=(1) %0', '  return %2', '}'].join('\n')).message).toBe("line 2, col 34: expected ',' or ']' but found %0");
    expect(parseError([SIG, '  %2: f32[2] = exp %0 %0', '  return %2', '}'].join('\n')).message).toBe('line 2, col 23: expected a new line but found %0');
    expect(parseError([SIG + ' return %0', '}'].join('\n')).message).toBe(`line 1, col ${SIG.length + 2}: expected a new line but found 'return'`);
    expect(parseError('func @f() -> () {\n  return\n}\n}').message).toBe("line 4, col 1: expected end of input after '}' but found '}'");
    expect(parseError('func @f() -> () {\n  return\n').message).toBe("line 3, col 1: expected '}' but found end of input");
    expect(parseError('func @f(%0 "x: f32[2]) -> () {').message).toBe('line 1, col 12: unterminated string');
    expect(parseError('func @f() -> () {\n  %1: f32[] = constant[value=1x]').message).toBe('line 2, col 30: malformed number');
    expect(parseError('func @f() -> () {\n  %1: f32[] = constant[value=1] ?').message).toBe('line 2, col 33: unexpected character "?"');
  });

  it('checks the signature against the body', () => {
    expect(parseError([SIG, '  return %0, %0', '}'].join('\n')).message).toBe('line 2, col 3: return gives 2 values but the signature declares 1 outputs');
    expect(parseError([SIG, '  return %1', '}'].join('\n')).message).toBe('line 2, col 10: output out is declared f32[2] but %1 is i32[]');
    expect(parseError('func @f(%0 x: f32[2], %1 x: f32[2]) -> () {\n  return\n}').message).toBe('line 1, col 26: input name "x" is already used by input 0');
    expect(parseError('func @f(%0 x: f32[2]) -> (a: f32[2], a: f32[2]) {\n  return %0, %0\n}').message).toBe('line 1, col 38: output name "a" is used twice');
  });

  it('reports a missing param through the type rule, naming the node', () => {
    const e = parseError([SIG, '  %2: f32[2] = transpose %0', '  return %2', '}'].join('\n'));
    expect(e.message).toMatch(/^line 2, %2: transpose: bad params/);
  });
});

// ---------------------------------------------------------------------------------------------
// Verifier

let forgedId = 1_000_000_000;

/** A node made without `apply`, so none of its invariants are checked. */
function forge(op: string, dtype: DType, shape: Shape, inputs: readonly Node[], params: object = {}, opts: { id?: number; freeze?: boolean } = {}): Node {
  return Object.freeze({
    id: opts.id ?? forgedId++,
    op,
    dtype,
    shape: Object.freeze([...shape]),
    inputs: Object.freeze([...inputs]),
    params: opts.freeze === false ? { ...params } : Object.freeze({ ...params }),
  }) as unknown as Node;
}

function verifyError(f: Func): VerifyError {
  try {
    verifyFunc(f);
  } catch (e) {
    expect(e).toBeInstanceOf(VerifyError);
    return e as VerifyError;
  }
  throw new Error('expected a verify error');
}

describe('verifyFunc', () => {
  it('rejects a stored shape or dtype that the type rule disagrees with, naming the node as printed', () => {
    const x = inp('x', 'f32', [2, 3]);
    const bad = forge('add', 'f32', [3, 2], [x, x]);
    const e = verifyError(makeFunc('f', [x], [b.neg(bad)], ['y']));
    expect(e.message).toBe('verify @f: `%1: f32[3,2] = add %0, %0`: stored f32[3,2] but add gives f32[2,3]');
    expect(e.node).toBe(bad);
    const lt = forge('less', 'f32', [2, 3], [x, x]);
    expect(verifyError(makeFunc('f', [x], [lt], ['y'])).message).toBe('verify @f: `%1: f32[2,3] = less %0, %0`: stored f32[2,3] but less gives bool[2,3]');
  });

  it('rejects a node whose type rule throws, and a wrong operand count', () => {
    const x = inp('x', 'f32', [2, 3]);
    const w = inp('w', 'f32', [2, 3]);
    const conv = forge('conv', 'f32', [1, 1, 1, 1], [x, w], { strides: [1, 1], padding: [[0, 0], [0, 0]], lhsDilation: [1, 1], rhsDilation: [1, 1] });
    expect(verifyError(makeFunc('f', [x, w], [conv], ['y'])).message).toBe(
      "verify @f: `%2: f32[1,1,1,1] = conv[lhsDilation=(1,1),padding=((0,0),(0,0)),rhsDilation=(1,1),strides=(1,1)] %0, %1`: conv's type rule rejects it: input must be NHWC (rank 4), got [2,3]",
    );
    const neg = forge('neg', 'f32', [2, 3], [x, w]);
    expect(verifyError(makeFunc('f', [x, w], [neg], ['y'])).message).toBe('verify @f: `%2: f32[2,3] = neg %0, %1`: neg takes 1 operands, got 2');
  });

  it('rejects an unknown op', () => {
    const x = inp('x', 'f32', [2]);
    const e = verifyError(makeFunc('f', [x], [forge('frobnicate', 'f32', [2], [x])], ['y']));
    expect(e.message).toBe('verify @f: `%1: f32[2] = frobnicate %0`: unknown op "frobnicate"');
  });

  it('rejects an input reachable from the outputs that is not among the inputs', () => {
    const x = inp('x', 'f32', [2]);
    const stray = inp('stray', 'f32', [2]);
    const e = verifyError(makeFunc('f', [x], [b.add(x, stray)], ['y']));
    expect(e.message).toBe("verify @f: `%1: f32[2] = input[name=stray]` is reachable from the outputs but is not one of the function's inputs");
    expect(e.node).toBe(stray);
  });

  it('rejects duplicate input nodes and duplicate input names', () => {
    const x = inp('x', 'f32', [2]);
    expect(verifyError(makeFunc('f', [x, x], [x], ['y'])).message).toBe('verify @f: input 1 `%0: f32[2] = input[name=x]` is listed twice');
    const x2 = inp('x', 'f32', [2]);
    expect(verifyError(makeFunc('f', [x, x2], [b.add(x, x2)], ['y'])).message).toBe('verify @f: inputs 0 and 1 are both named x');
  });

  it('rejects output names that do not match the outputs', () => {
    const x = inp('x', 'f32', [2]);
    const forged = { name: 'f', inputs: [x], outputs: [x, x], outputNames: ['a'] } as unknown as Func;
    expect(verifyError(forged).message).toBe('verify @f: 2 outputs but 1 output names');
    expect(verifyError(makeFunc('f', [x], [x, b.neg(x)], ['a', 'a'])).message).toBe('verify @f: output name a is used twice');
  });

  it('rejects params that are not frozen plain data', () => {
    const x = inp('x', 'f32', [2, 3]);
    const unfrozen = forge('reduce_sum', 'f32', [2], [x], { axes: [1] }, { freeze: false });
    expect(verifyError(makeFunc('f', [x], [unfrozen], ['y'])).message).toBe('verify @f: `%1: f32[2] = reduce_sum[axes=(1)] %0`: params are not frozen');
    const objectParam = forge('reduce_sum', 'f32', [2], [x], { axes: { 0: 1 } });
    expect(verifyError(makeFunc('f', [x], [objectParam], ['y'])).message).toMatch(/^verify @f: `%1: f32\[2\] = reduce_sum\[axes=<object>\] %0`: param axes is not plain data/);
  });

  it('rejects two nodes sharing an id, and cycles', () => {
    const x = inp('x', 'f32', [2]);
    const twin = forge('neg', 'f32', [2], [x], {}, { id: x.id });
    expect(verifyError(makeFunc('f', [x], [b.add(twin, x)], ['y'])).message).toMatch(/share id/);
    const loop = { id: forgedId++, op: 'neg', dtype: 'f32', shape: [2], inputs: [] as unknown[], params: Object.freeze({}) };
    loop.inputs.push(loop);
    const e = verifyError(makeFunc('f', [x], [loop as unknown as Node], ['y']));
    expect(e.message).toMatch(/is part of a cycle$/);
  });

  it('accepts graphs made through apply', () => {
    for (const f of GRAPHS) expect(() => verifyFunc(f)).not.toThrow();
  });
});
