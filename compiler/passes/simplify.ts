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
import { substitute } from '../../ir/builders.ts';
import { funcNodes, makeFunc } from '../../ir/graph.ts';
import type { Func, InputNode, Node, NodeWith } from '../../ir/types.ts';
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

/**
 * State shared by one `simplify` call and every scan body inside it: the canonical node of each node
 * seen, the CSE table and the simplified bodies. Sharing it makes a body node that two bodies hold
 * (a forward scan and autodiff's copy that also saves its carries) simplify to one node in both, so
 * `mergeScans` still recognises the copy after simplification.
 */
interface Ctx {
  readonly canon: Map<number, Node>;
  readonly byKey: Map<string, Node>;
  readonly bodies: Map<Func, Func>;
}
const bodyIds = new WeakMap<Func, number>();
let nextBodyId = 0;
const bodyId = (f: Func) => bodyIds.get(f) ?? (bodyIds.set(f, nextBodyId++), nextBodyId - 1);

/** The CSE key of a node's params; a scan's body counts by identity (its text could be huge). */
function paramKey(n: Node, body: Func | null): string {
  if (n.op !== 'scan') return JSON.stringify(n.params);
  const { body: _b, ...rest } = n.params;
  return `${JSON.stringify(rest)}#${bodyId(body ?? n.params.body)}`;
}

/**
 * Autodiff differentiates a scan through a second forward scan that also returns each step's carry
 * (ir/autodiff.ts). That scan has the same operands and a body with the same inputs whose outputs
 * extend the original's, so every result of the original is a result of it: read them there, and
 * the original is left dead. Nested bodies get the same treatment when they are simplified.
 */
function mergeScans(f: Func): Func {
  const scans = funcNodes(f).filter((n): n is NodeWith<'scan'> => n.op === 'scan');
  if (scans.length < 2) return f;
  const key = (s: NodeWith<'scan'>) => {
    const p = s.params;
    return [p.length, p.reverse, p.carries, p.xs, s.inputs.map((i) => i.id).join(','), p.body.inputs.map((i) => i.id).join(',')].join('|');
  };
  const groups = new Map<string, NodeWith<'scan'>[]>();
  for (const s of scans) {
    const k = key(s);
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(s);
  }
  const cover = new Map<number, Node>();
  for (const g of groups.values()) {
    for (const s of g) {
      const outs = s.params.body.outputs;
      let best: NodeWith<'scan'> = s;
      for (const t of g) {
        const tOuts = t.params.body.outputs;
        if (tOuts.length > best.params.body.outputs.length && outs.every((o, i) => tOuts[i] === o)) best = t;
      }
      if (best !== s) cover.set(s.id, best);
    }
  }
  if (cover.size === 0) return f;
  const replace = new Map<number, Node>();
  for (const n of funcNodes(f)) {
    const c = n.op === 'scan_result' ? cover.get(n.inputs[0].id) : undefined;
    if (c && n.op === 'scan_result') replace.set(n.id, apply('scan_result', [c], n.params));
  }
  return makeFunc(f.name, f.inputs, substitute(f.outputs, replace), f.outputNames);
}

export function simplify(input: Func): Func {
  return simplifyIn(input, { canon: new Map(), byKey: new Map(), bodies: new Map() });
}

function simplifyIn(input: Func, ctx: Ctx): Func {
  // Merging a scan can make two later scans read the same values, which CSE shows and the next
  // merge uses (an LSTM stacked on a GRU merges once the GRU has): repeat to a fixed point.
  let f = cse(mergeScans(input), ctx);
  for (let round = 0; round < 16; round++) {
    const merged = mergeScans(f);
    if (merged === f) break;
    f = cse(merged, ctx);
  }
  return pruneScans(f);
}

/** CSE with the algebraic folds, one bottom-up rebuild. */
function cse(f: Func, ctx: Ctx): Func {
  const { canon, byKey } = ctx;
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
    // A scan's body is simplified on its own (memoized, so shared bodies stay shared).
    let body: Func | null = null;
    if (n.op === 'scan') {
      body = ctx.bodies.get(n.params.body) ?? null;
      if (!body) {
        body = simplifyIn(n.params.body, ctx);
        ctx.bodies.set(n.params.body, body);
      }
    }
    const params = n.op === 'scan' && body !== n.params.body ? { ...n.params, body } : n.params;
    const key = cv !== null ? `constant|${JSON.stringify({ value: cv, dtype: n.dtype, shape: n.shape })}` : `${n.op}|${paramKey(n, body)}|${ins.map((i) => i.id).join(',')}`;
    let m = byKey.get(key);
    if (!m) {
      m = cv !== null ? apply('constant', [], { value: cv, dtype: n.dtype, shape: n.shape }) : ins.every((x, i) => x === n.inputs[i]) && params === n.params ? n : apply(n.op, ins, params as never);
      byKey.set(key, m);
    }
    canon.set(n.id, m);
  }
  return makeFunc(f.name, f.inputs.map((i) => canon.get(i.id) as InputNode), f.outputs.map((o) => canon.get(o.id)!), f.outputNames);
}

/**
 * Drop the ys of a scan that nothing reads (an LSTM that returns only its last output still
 * writes every step's output in its body), so the loop neither computes nor stores them.
 */
function pruneScans(f: Func): Func {
  const nodes = funcNodes(f);
  const used = new Map<number, Set<number>>();
  for (const n of nodes) if (n.op === 'scan_result') (used.get(n.inputs[0].id) ?? used.set(n.inputs[0].id, new Set()).get(n.inputs[0].id)!).add(n.params.index);
  const replace = new Map<number, Node>();
  const rebuilt = new Map<number, { scan: Node; index: Map<number, number> }>();
  for (const n of nodes) {
    if (n.op === 'scan') {
      const { body, carries: C } = n.params;
      const keep = body.outputs.map((_, i) => i).filter((i) => i < C || used.get(n.id)?.has(i));
      if (keep.length === body.outputs.length) continue;
      const nb = makeFunc(body.name, body.inputs, keep.map((i) => body.outputs[i]), keep.map((i) => body.outputNames[i]));
      rebuilt.set(n.id, { scan: apply('scan', n.inputs, { ...n.params, body: nb }), index: new Map(keep.map((i, k) => [i, k])) });
    } else if (n.op === 'scan_result' && rebuilt.has(n.inputs[0].id)) {
      const r = rebuilt.get(n.inputs[0].id)!;
      replace.set(n.id, apply('scan_result', [r.scan], { index: r.index.get(n.params.index)! }));
    }
  }
  if (replace.size === 0) return f;
  return makeFunc(f.name, f.inputs, substitute(f.outputs, replace), f.outputNames);
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
