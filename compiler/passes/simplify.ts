/**
 * @file Graph simplification: common-subexpression elimination with algebraic identities, and dead
 * code elimination (implicit: only nodes reachable from the outputs are rebuilt).
 *
 * Autodiff and the frontend build the same value many times (the softmax of the forward pass is
 * rebuilt by its VJP; each Adam update builds its own `step + 1`), so without CSE fusion would
 * compute them repeatedly. Nodes are rebuilt bottom-up through `apply` with a key made of the op, the
 * params and the ids of the already-canonical inputs; equal keys give the same node. A few identities
 * that autodiff produces often are folded on the way: x*1, x+0, x-0, neg(neg(x)), reshape/transpose
 * to the identity.
 */
import { apply } from '../../ir/node.ts';
import { funcNodes, makeFunc } from '../../ir/graph.ts';
import type { Func, InputNode, Node } from '../../ir/types.ts';
import { shapeEq } from '../../ir/types.ts';

function isConst(n: Node, v: number): boolean {
  return n.op === 'constant' && n.params.value === v;
}

/** Broadcast of a constant is the constant at the larger shape. */
function constValue(n: Node): number | null {
  if (n.op === 'constant') return n.params.value;
  if (n.op === 'broadcast') return constValue(n.inputs[0]);
  return null;
}

export function simplify(f: Func): Func {
  const canon = new Map<number, Node>();
  const byKey = new Map<string, Node>();
  for (const n of funcNodes(f)) {
    if (n.op === 'input') {
      canon.set(n.id, n);
      continue;
    }
    const ins = n.inputs.map((i) => canon.get(i.id)!);
    const folded = fold(n, ins);
    if (folded) {
      canon.set(n.id, folded);
      continue;
    }
    // Broadcast constants are rebuilt as constants of the full shape: one leaf, no index math.
    const cv = n.op === 'broadcast' ? constValue(ins[0]) : null;
    const key = cv !== null ? `constant|${JSON.stringify({ value: cv, dtype: n.dtype, shape: n.shape })}` : `${n.op}|${JSON.stringify(n.params)}|${ins.map((i) => i.id).join(',')}`;
    let m = byKey.get(key);
    if (!m) {
      m = cv !== null ? apply('constant', [], { value: cv, dtype: n.dtype, shape: n.shape }) : ins.every((x, i) => x === n.inputs[i]) ? n : apply(n.op, ins, n.params as never);
      byKey.set(key, m);
    }
    canon.set(n.id, m);
  }
  return makeFunc(f.name, f.inputs.map((i) => canon.get(i.id) as InputNode), f.outputs.map((o) => canon.get(o.id)!), f.outputNames);
}

function fold(n: Node, ins: readonly Node[]): Node | null {
  const sameType = (x: Node) => x.dtype === n.dtype && shapeEq(x.shape, n.shape);
  switch (n.op) {
    case 'mul':
      if (isConst(ins[1], 1) && sameType(ins[0])) return ins[0];
      if (isConst(ins[0], 1) && sameType(ins[1])) return ins[1];
      return null;
    case 'add':
      if (isConst(ins[1], 0) && sameType(ins[0])) return ins[0];
      if (isConst(ins[0], 0) && sameType(ins[1])) return ins[1];
      return null;
    case 'sub':
      return isConst(ins[1], 0) && sameType(ins[0]) ? ins[0] : null;
    case 'neg':
      return ins[0].op === 'neg' ? ins[0].inputs[0] : null;
    case 'reshape':
      if (sameType(ins[0])) return ins[0];
      return null;
    case 'transpose':
      return n.params.perm.every((p, i) => p === i) ? ins[0] : null;
    default:
      return null;
  }
}
