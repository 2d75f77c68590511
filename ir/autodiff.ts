/**
 * @file Reverse-mode automatic differentiation as a graph-to-graph transformation.
 *
 * `grad(loss, wrt)` walks the nodes that lie between `wrt` and the scalar `loss` in reverse topological
 * order, calls each op's VJP rule from the op table, and sums cotangents where a value has several
 * uses. The result is ordinary graph IR (new nodes sharing the forward nodes), so the train step is
 * one graph that later passes simplify and fuse as a whole. Only f32 values carry cotangents: integer
 * and bool values (labels, masks, comparisons) are cut, and a VJP returning `null` means "zero".
 */
import * as b from './builders.ts';
import { topoOrder } from './graph.ts';
import { OP_TABLE } from './optable.ts';
import type { Node, NodeWith, Op } from './types.ts';
import { fmtShape, shapeEq } from './types.ts';

/** Gradients of the scalar `loss` with respect to each node of `wrt` (zeros where unconnected). */
export function grad(loss: Node, wrt: readonly Node[]): Node[] {
  if (loss.shape.length !== 0 || loss.dtype !== 'f32') {
    throw new Error(`grad: loss must be an f32 scalar, got ${loss.dtype}${fmtShape(loss.shape)}`);
  }
  const order = topoOrder([loss]);
  // Only nodes on a path from some `wrt` to the loss need cotangents.
  const wrtIds = new Set(wrt.map((w) => w.id));
  const reaches = new Set<number>();
  for (const n of order) {
    if (wrtIds.has(n.id) || n.inputs.some((i) => reaches.has(i.id))) reaches.add(n.id);
  }
  const cts = new Map<number, Node>();
  cts.set(loss.id, b.constant(1, [], 'f32'));
  for (let k = order.length - 1; k >= 0; k--) {
    const n = order[k];
    const ct = cts.get(n.id);
    if (!ct || n.inputs.length === 0 || !reaches.has(n.id)) continue;
    if (!n.inputs.some((i) => reaches.has(i.id) && i.dtype === 'f32')) continue;
    const rule = OP_TABLE[n.op].vjp as (ct: Node, node: NodeWith<Op>) => readonly (Node | null)[];
    const inCts = rule(ct, n);
    n.inputs.forEach((x, i) => {
      const c = inCts[i];
      if (!c || x.dtype !== 'f32' || !reaches.has(x.id)) return;
      if (!shapeEq(c.shape, x.shape)) {
        throw new Error(`grad: VJP of ${n.op} gave a cotangent of shape ${fmtShape(c.shape)} for input ${i} of shape ${fmtShape(x.shape)}`);
      }
      const prev = cts.get(x.id);
      cts.set(x.id, prev ? b.add(prev, c) : c);
    });
  }
  return wrt.map((w) => cts.get(w.id) ?? b.constant(0, w.shape, 'f32'));
}
