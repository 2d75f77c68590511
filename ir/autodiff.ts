/**
 * @file Reverse-mode automatic differentiation as a graph-to-graph transformation.
 *
 * `grad(loss, wrt)` walks the nodes that lie between `wrt` and the scalar `loss` in reverse topological
 * order, calls each op's VJP rule from the op table, and sums cotangents where a value has several
 * uses. The result is ordinary graph IR (new nodes sharing the forward nodes), so the train step is
 * one graph that later passes simplify and fuse as a whole. Only f32 values carry cotangents: integer
 * and bool values (labels, masks, comparisons) are cut, and a VJP returning `null` means "zero".
 *
 * A `scan` has several results, so its rule lives here rather than in the op table: the cotangents of
 * its `scan_result`s are gathered first, and `scanVjp` turns them into one reverse scan. That scan's
 * body recomputes the forward step's elementwise work from the carry saved at that step, reads the
 * step's matmul results saved by the forward pass (JAX's "save dots" policy), and pulls the
 * cotangents back through it (`vjp` on the body). The saved values come from a copy of the forward
 * scan that also returns them, which `simplify` merges with the original
 * (compiler/passes/simplify.ts).
 */
import * as b from './builders.ts';
import { makeFunc, topoOrder } from './graph.ts';
import { apply, input } from './node.ts';
import { OP_TABLE } from './optable.ts';
import type { Node, NodeWith, Op } from './types.ts';
import { fmtShape, shapeEq } from './types.ts';

/** Gradients of the scalar `loss` with respect to each node of `wrt` (zeros where unconnected). */
export function grad(loss: Node, wrt: readonly Node[]): Node[] {
  if (loss.shape.length !== 0 || loss.dtype !== 'f32') {
    throw new Error(`grad: loss must be an f32 scalar, got ${loss.dtype}${fmtShape(loss.shape)}`);
  }
  return vjp([loss], [b.constant(1, [], 'f32')], wrt);
}

/**
 * The vector-Jacobian product: cotangents of each `wrt` node given a cotangent for each of `outputs`
 * (`null`: none flows from that output). Unconnected `wrt` nodes get zeros.
 */
export function vjp(outputs: readonly Node[], outCts: readonly (Node | null)[], wrt: readonly Node[]): Node[] {
  const order = topoOrder(outputs);
  // Only nodes on a path from some `wrt` to an output need cotangents.
  const wrtIds = new Set(wrt.map((w) => w.id));
  const reaches = new Set<number>();
  for (const n of order) {
    if (wrtIds.has(n.id) || n.inputs.some((i) => reaches.has(i.id))) reaches.add(n.id);
  }
  const cts = new Map<number, Node>();
  const addCt = (x: Node, c: Node) => {
    const prev = cts.get(x.id);
    cts.set(x.id, prev ? b.add(prev, c) : c);
  };
  outputs.forEach((o, i) => {
    const c = outCts[i];
    if (!c) return;
    if (c.dtype !== 'f32' || !shapeEq(c.shape, o.shape)) throw new Error(`vjp: cotangent ${i} is ${c.dtype}${fmtShape(c.shape)}, output is ${o.dtype}${fmtShape(o.shape)}`);
    addCt(o, c);
  });
  // Cotangents of each scan's results, gathered from its scan_result nodes.
  const tupleCts = new Map<number, (Node | null)[]>();
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    if (!reaches.has(n.id) || n.inputs.length === 0) continue;
    if (n.op === 'scan_result') {
      const ct = cts.get(n.id);
      if (!ct) continue;
      const s = n.inputs[0];
      const list = tupleCts.get(s.id) ?? tupleCts.set(s.id, []).get(s.id)!;
      list[n.params.index] = list[n.params.index] ? b.add(list[n.params.index]!, ct) : ct;
      continue;
    }
    let inCts: readonly (Node | null)[];
    if (n.op === 'scan') {
      const list = tupleCts.get(n.id);
      if (!list) continue;
      inCts = scanVjp(n, list, n.inputs.map((x) => reaches.has(x.id) && x.dtype === 'f32'));
    } else {
      const ct = cts.get(n.id);
      if (!ct) continue;
      if (!n.inputs.some((i) => reaches.has(i.id) && i.dtype === 'f32')) continue;
      const rule = OP_TABLE[n.op].vjp as (ct: Node, node: NodeWith<Op>) => readonly (Node | null)[];
      inCts = rule(ct, n);
    }
    n.inputs.forEach((x, i) => {
      const c = inCts[i];
      if (!c || x.dtype !== 'f32' || !reaches.has(x.id)) return;
      if (!shapeEq(c.shape, x.shape)) {
        throw new Error(`grad: VJP of ${n.op} gave a cotangent of shape ${fmtShape(c.shape)} for input ${i} of shape ${fmtShape(x.shape)}`);
      }
      addCt(x, c);
    });
  }
  return wrt.map((w) => cts.get(w.id) ?? b.constant(0, w.shape, 'f32'));
}

/**
 * The VJP of a scan: one reverse scan. `resultCts` holds a cotangent per result (missing or null:
 * none); `needed[i]` says whether operand i wants its cotangent. Its body takes (cotangents of the
 * carries, running sums of the consts' cotangents) as carries and (the carry saved at that step,
 * each xs slice, the ys cotangents) as xs, recomputes the step and pulls the cotangents through it.
 */
function scanVjp(s: NodeWith<'scan'>, resultCts: readonly (Node | null | undefined)[], needed: readonly boolean[]): (Node | null)[] {
  const { body, length: T, reverse, carries: C, xs: X } = s.params;
  const K = s.inputs.length - C - X;
  const isF = (n: Node) => n.dtype === 'f32';
  // Residuals (JAX's "save dots" checkpoint policy): the body's matmuls whose value changes from step
  // to step are saved by the forward scan, so the backward body reads them rather than multiplying
  // again; everything elementwise is recomputed from the saved carry.
  const order = topoOrder(body.outputs);
  const varying = new Set(body.inputs.slice(0, C + X).map((n) => n.id));
  for (const n of order) if (!varying.has(n.id) && n.inputs.some((i) => varying.has(i.id))) varying.add(n.id);
  const users = new Map<number, Node[]>();
  for (const n of order) for (const i of n.inputs) (users.get(i.id) ?? users.set(i.id, []).get(i.id)!).push(n);
  // A sum the matmul feeds alone (LSTM's x·W + h·U) is saved instead: the VJP of add and sub reads no
  // operand values, so the matmul's own value is then not needed, and the forward kernel keeps the
  // add in its epilogue.
  const residual = (d: Node): Node => {
    let r = d;
    for (;;) {
      const us = users.get(r.id) ?? [];
      const out = body.outputs.includes(r);
      if (out || us.length !== 1 || (us[0].op !== 'add' && us[0].op !== 'sub') || us[0].dtype !== r.dtype) return r;
      r = us[0];
    }
  };
  const dots = [...new Set(order.filter((n) => (n.op === 'dot' || n.op === 'conv') && varying.has(n.id)).map(residual))];
  // The forward scan again, also returning the carry each step started from and the residuals
  // (merged with `s` later: its outputs extend the original's).
  const saving = makeFunc(body.name, body.inputs, [...body.outputs, ...body.inputs.slice(0, C), ...dots], [
    ...body.outputNames,
    ...body.inputs.slice(0, C).map((c) => `${c.params.name}.saved`),
    ...dots.map((_, i) => `dot${i}.saved`),
  ]);
  const fwd = apply('scan', s.inputs, { ...s.params, body: saving });
  const Y = body.outputs.length - C;
  const saved = body.inputs.slice(0, C).map((_, j) => apply('scan_result', [fwd], { index: C + Y + j }));
  const savedDots = dots.map((_, i) => apply('scan_result', [fwd], { index: C + Y + C + i }));

  // Which carries and consts carry cotangents, and which ys have one.
  const fC = [...Array(C).keys()].filter((j) => isF(s.inputs[j]));
  const fK = [...Array(K).keys()].filter((k) => isF(s.inputs[C + X + k]) && needed[C + X + k]);
  const fX = [...Array(X).keys()].filter((i) => isF(s.inputs[C + i]) && needed[C + i]);
  const withY = [...Array(Y).keys()].filter((i) => resultCts[C + i]);
  if (fC.length + fK.length + fX.length === 0) return s.inputs.map(() => null);

  // The backward body's inputs.
  const dc = fC.map((j) => input(`d${body.inputs[j].params.name}`, 'f32', body.inputs[j].shape));
  const dkAcc = fK.map((k) => input(`d${body.inputs[C + X + k].params.name}`, 'f32', body.inputs[C + X + k].shape));
  const cSaved = body.inputs.slice(0, C).map((c) => input(`${c.params.name}.saved`, c.dtype, c.shape));
  const rIn = dots.map((d, i) => input(`dot${i}.saved`, d.dtype, d.shape));
  const xIn = body.inputs.slice(C, C + X).map((x) => input(x.params.name, x.dtype, x.shape));
  const dy = withY.map((i) => input(`d${body.outputNames[C + i]}`, 'f32', body.outputs[C + i].shape));
  const kIn = body.inputs.slice(C + X).map((k) => input(k.params.name, k.dtype, k.shape));
  // Recompute the step from the saved carry, then pull the cotangents back through it.
  const replace = new Map<number, Node>(body.inputs.map((inp, i) => [inp.id, i < C ? cSaved[i] : i < C + X ? xIn[i - C] : kIn[i - C - X]]));
  const recomputed = b.substitute([...body.outputs, ...dots], replace);
  const outs = recomputed.slice(0, body.outputs.length);
  const outCts: (Node | null)[] = outs.map(() => null);
  fC.forEach((j, q) => (outCts[j] = isF(outs[j]) ? dc[q] : null));
  withY.forEach((i, q) => (outCts[C + i] = isF(outs[C + i]) ? dy[q] : null));
  const wrt = [...fC.map((j) => cSaved[j]), ...fX.map((i) => xIn[i]), ...fK.map((k) => kIn[k])];
  // A dot's VJP reads its operands, never its value (nor do add's and sub's), so swapping the
  // recomputed residuals for the saved ones afterwards leaves the gradients intact and the
  // recomputation dead.
  const g = b.substitute(vjp(outs, outCts, wrt), new Map(recomputed.slice(body.outputs.length).map((d, i) => [d.id, rIn[i] as Node])));
  const gC = g.slice(0, fC.length);
  const gX = g.slice(fC.length, fC.length + fX.length);
  const gK = g.slice(fC.length + fX.length);
  const bodyB = makeFunc(`${body.name}_vjp`, [...dc, ...dkAcc, ...cSaved, ...rIn, ...xIn, ...dy, ...kIn], [...gC, ...gK.map((gk, q) => b.add(dkAcc[q], gk)), ...gX], [
    ...dc.map((d) => `${d.params.name}.next`),
    ...dkAcc.map((d) => `${d.params.name}.next`),
    ...fX.map((i) => `d${body.inputs[C + i].params.name}`),
  ]);
  const init = [
    ...fC.map((j) => resultCts[j] ?? b.constant(0, s.inputs[j].shape, 'f32')),
    ...fK.map((k) => b.constant(0, s.inputs[C + X + k].shape, 'f32')),
  ];
  const bxs = [...saved, ...savedDots, ...s.inputs.slice(C, C + X), ...withY.map((i) => resultCts[C + i]!)];
  const back = apply('scan', [...init, ...bxs, ...s.inputs.slice(C + X)], { body: bodyB, length: T, reverse: !reverse, carries: init.length, xs: bxs.length });
  const res = (i: number) => apply('scan_result', [back], { index: i });
  const out: (Node | null)[] = s.inputs.map(() => null);
  fC.forEach((j, q) => (out[j] = res(q)));
  fK.forEach((k, q) => (out[C + X + k] = res(fC.length + q)));
  fX.forEach((i, q) => (out[C + i] = res(init.length + q)));
  return out;
}
