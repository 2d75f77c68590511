/**
 * @file The f64 reference interpreter: runs any `Func` with every value held in f64.
 *
 * This is the definition every backend is tested against. It evaluates nodes in topological order
 * with each op's `interp` from the op table, and frees a value after its last use so that training a
 * small model in tests stays within memory. Arguments are checked against the input types.
 */
import { funcNodes, useCounts } from './graph.ts';
import type { Tensor64 } from './opdef.ts';
import { OP_TABLE } from './optable.ts';
import { scanResultTypes } from './ops/scan.ts';
import type { Func, Node, NodeWith, OpParams } from './types.ts';
import { fmtShape, numel } from './types.ts';

export type ArrayLike = Float32Array | Float64Array | Int32Array | Uint8Array | readonly number[];

/** Run `f` on `args` (one per input, row-major). Returns one f64 tensor per output. */
export function interpret(f: Func, args: readonly ArrayLike[]): Tensor64[] {
  if (args.length !== f.inputs.length) throw new Error(`interpret ${f.name}: expected ${f.inputs.length} arguments, got ${args.length}`);
  const env = new Map<number, Tensor64>();
  f.inputs.forEach((inp, i) => {
    const a = args[i];
    if (a.length !== numel(inp.shape)) {
      throw new Error(`interpret ${f.name}: argument ${i} (${inp.params.name}) has ${a.length} elements, expected ${numel(inp.shape)} for ${fmtShape(inp.shape)}`);
    }
    env.set(inp.id, { dtype: inp.dtype, shape: inp.shape, data: Float64Array.from(a as ArrayLike & Iterable<number>) });
  });
  const order = funcNodes(f);
  const uses = useCounts(order, f.outputs);
  // A scan's results, by scan node id, until its last scan_result has read them.
  const tuples = new Map<number, Tensor64[]>();
  for (const n of order) {
    if (n.op === 'input') continue;
    const ins = n.inputs.map((x) => env.get(x.id)!);
    if (n.op === 'scan') {
      const results = runScan(n, ins);
      tuples.set(n.id, results);
      env.set(n.id, results[0]);
    } else if (n.op === 'scan_result') {
      env.set(n.id, tuples.get(n.inputs[0].id)![n.params.index]);
    } else {
      env.set(n.id, { dtype: n.dtype, shape: n.shape, data: evalNode(n, ins) });
    }
    for (const x of n.inputs) {
      const left = uses.get(x.id)! - 1;
      uses.set(x.id, left);
      if (left === 0) {
        env.delete(x.id);
        tuples.delete(x.id);
      }
    }
  }
  return f.outputs.map((o) => env.get(o.id)!);
}

/**
 * The reference meaning of `scan` (ops/scan.ts): run the body once per step on (carries, slice t of
 * each xs, consts), stepping t downwards when `reverse`, and stack each step's ys at its slice index.
 */
function runScan(n: NodeWith<'scan'>, ins: readonly Tensor64[]): Tensor64[] {
  const { body, length: T, reverse, carries: C, xs: X } = n.params;
  let carry = ins.slice(0, C).map((t) => t.data);
  const xs = ins.slice(C, C + X);
  const consts = ins.slice(C + X).map((t) => t.data);
  const ysOut = body.outputs.slice(C).map((y) => new Float64Array(T * numel(y.shape)));
  for (let s = 0; s < T; s++) {
    const t = reverse ? T - 1 - s : s;
    const slices = xs.map((x) => {
      const size = numel(x.shape) / T;
      return x.data.subarray(t * size, (t + 1) * size);
    });
    const outs = interpret(body, [...carry, ...slices, ...consts]);
    carry = outs.slice(0, C).map((o) => o.data);
    outs.slice(C).forEach((y, i) => ysOut[i].set(y.data, t * y.data.length));
  }
  const results = scanResultTypes(ins, n.params);
  return results.map((r, i) => ({ dtype: r.dtype, shape: r.shape, data: i < C ? carry[i] : ysOut[i - C] }));
}

/** Evaluate one node given its operands' values. */
export function evalNode(n: Node, ins: readonly Tensor64[]): Float64Array {
  const def = OP_TABLE[n.op] as { interp(i: readonly Tensor64[], p: OpParams[typeof n.op], out: Node): Float64Array };
  return def.interp(ins, n.params, n);
}
