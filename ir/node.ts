/**
 * @file Making nodes: `apply(op, inputs, params)` runs the op's type rule and returns a new node.
 *
 * This is the only place nodes are constructed, so every node in every graph has passed its type
 * rule. Node ids come from a process-wide counter; they give identity, never meaning (printers
 * renumber names). Nodes are frozen.
 */
import { IRTypeError } from './opdef.ts';
import { OP_TABLE } from './optable.ts';
import type { Node, Op, OpParams } from './types.ts';
import { fmtType } from './types.ts';

let nextId = 0;

export function apply<O extends Op>(op: O, inputs: readonly Node[], params: OpParams[O]): Node {
  const def = OP_TABLE[op];
  if (def.arity === 'variadic' ? inputs.length < 1 : inputs.length !== def.arity) {
    throw new IRTypeError(`${op}: expected ${def.arity === 'variadic' ? 'at least 1' : def.arity} inputs, got ${inputs.length}`);
  }
  let t;
  try {
    t = def.type(inputs, params);
  } catch (e) {
    if (e instanceof IRTypeError) {
      throw new IRTypeError(`${op}(${inputs.map((x) => fmtType(x)).join(', ')}): ${e.message}`);
    }
    throw e;
  }
  const node = {
    id: nextId++,
    op,
    dtype: t.dtype,
    shape: Object.freeze([...t.shape]),
    inputs: Object.freeze([...inputs]),
    params: Object.freeze({ ...params }),
  } as unknown as Node;
  return Object.freeze(node);
}

/** An input (function parameter) node. */
export function input(name: string, dtype: Node['dtype'], shape: readonly number[]): Node & { op: 'input' } {
  const node = {
    id: nextId++,
    op: 'input' as const,
    dtype,
    shape: Object.freeze([...shape]),
    inputs: Object.freeze([]),
    params: Object.freeze({ name }),
  };
  return Object.freeze(node);
}
