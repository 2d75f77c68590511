/**
 * @file Graph utilities over `Func`: topological order, use counts and function construction.
 *
 * The order is deterministic: a depth-first post-order from the outputs in output order, visiting
 * inputs left to right. Printing, interpretation and every pass walk nodes in this order, which is
 * what makes dumps of the same graph byte-identical.
 */
import type { Func, InputNode, Node } from './types.ts';

/** All nodes reachable from the outputs, inputs first, each after its operands. */
export function topoOrder(outputs: readonly Node[]): Node[] {
  const seen = new Set<number>();
  const order: Node[] = [];
  // Iterative DFS: graphs of real models are deep enough to overflow a recursive walk.
  const stack: { n: Node; i: number }[] = [];
  for (const root of outputs) {
    if (seen.has(root.id)) continue;
    seen.add(root.id);
    stack.push({ n: root, i: 0 });
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.i < top.n.inputs.length) {
        const next = top.n.inputs[top.i++];
        if (!seen.has(next.id)) {
          seen.add(next.id);
          stack.push({ n: next, i: 0 });
        }
      } else {
        order.push(top.n);
        stack.pop();
      }
    }
  }
  return order;
}

/** Number of uses of each node (by id) among `order`'s operands and the outputs. */
export function useCounts(order: readonly Node[], outputs: readonly Node[]): Map<number, number> {
  const uses = new Map<number, number>();
  const bump = (n: Node) => uses.set(n.id, (uses.get(n.id) ?? 0) + 1);
  for (const n of order) n.inputs.forEach(bump);
  outputs.forEach(bump);
  return uses;
}

export function makeFunc(name: string, inputs: readonly InputNode[], outputs: readonly Node[], outputNames?: readonly string[]): Func {
  const names = outputNames ?? outputs.map((_, i) => `out${i}`);
  if (names.length !== outputs.length) throw new Error(`makeFunc: ${outputs.length} outputs but ${names.length} names`);
  return Object.freeze({ name, inputs: Object.freeze([...inputs]), outputs: Object.freeze([...outputs]), outputNames: Object.freeze([...names]) });
}

/** Nodes of the function in topological order (unused inputs included, first). */
export function funcNodes(f: Func): Node[] {
  const order = topoOrder(f.outputs);
  const inOrder = new Set(order.map((n) => n.id));
  return [...f.inputs.filter((i) => !inOrder.has(i.id)), ...order];
}
