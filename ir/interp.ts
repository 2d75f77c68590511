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
import type { Func, Node, OpParams } from './types.ts';
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
  for (const n of order) {
    if (n.op === 'input') continue;
    const ins = n.inputs.map((x) => env.get(x.id)!);
    env.set(n.id, { dtype: n.dtype, shape: n.shape, data: evalNode(n, ins) });
    for (const x of n.inputs) {
      const left = uses.get(x.id)! - 1;
      uses.set(x.id, left);
      if (left === 0) env.delete(x.id);
    }
  }
  return f.outputs.map((o) => env.get(o.id)!);
}

/** Evaluate one node given its operands' values. */
export function evalNode(n: Node, ins: readonly Tensor64[]): Float64Array {
  const def = OP_TABLE[n.op] as { interp(i: readonly Tensor64[], p: OpParams[typeof n.op], out: Node): Float64Array };
  return def.interp(ins, n.params, n);
}
