/**
 * @file The IR verifier: `verifyFunc` checks the invariants that `apply`, `input` and `makeFunc`
 * establish, for graphs that may not have come through them (hand-forged nodes in tests, a pass that
 * assembles nodes itself, a corrupted deserialisation). A function is well formed when every node
 * reachable from its outputs has a known op, a unique id, frozen plain-data params, the right number
 * of operands and a stored type equal to what its op's type rule gives now; when the graph is
 * acyclic; when every reachable `input` node is one of the function's inputs, and those inputs are
 * distinct nodes with distinct names; and when there is exactly one distinct name per output. The
 * first violation found, in print order, throws a `VerifyError` that shows the offending node as
 * `printFunc` would print it, so the message can be matched against a `dlc ir` dump.
 */
import { OP_TABLE } from './optable.ts';
import type { Naming } from './print.ts';
import { fmtName, nameValues, printNode } from './print.ts';
import type { Func, Node, TensorType } from './types.ts';
import { DTYPES, fmtType, shapeEq } from './types.ts';

export class VerifyError extends Error {
  override name = 'VerifyError';
  constructor(
    message: string,
    /** The offending node, where the violation is about one. */
    readonly node: Node | null = null,
  ) {
    super(message);
  }
}

/** The op-table entry seen through the one signature every op shares, for checking nodes of any op. */
interface AnyOpDef {
  readonly arity: number | 'variadic';
  type(inputs: readonly TensorType[], params: unknown): TensorType;
}

function isNodeLike(x: unknown): x is Node {
  if (typeof x !== 'object' || x === null) return false;
  const n = x as { op?: unknown; inputs?: unknown };
  return typeof n.op === 'string' && Array.isArray(n.inputs);
}

const isNumberList = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'number');

/** Exactly the shapes `ParamValue` (types.ts) allows, which are what the text format can carry. */
function isParamValue(v: unknown): boolean {
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return true;
  return isNumberList(v) || (Array.isArray(v) && v.every(isNumberList));
}

function paramsProblem(p: unknown, op: string): string | null {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) return 'params are not an object';
  const proto: unknown = Object.getPrototypeOf(p);
  if (proto !== Object.prototype && proto !== null) return 'params are not a plain object';
  // Nodes are shared between graphs, so a mutable params object would let one pass change another's graph.
  if (!Object.isFrozen(p)) return 'params are not frozen';
  for (const [k, v] of Object.entries(p)) {
    // A scan's body is a function, verified on its own below.
    if (op === 'scan' && k === 'body') continue;
    if (!isParamValue(v)) return `param ${k} is not plain data (a number, string, boolean, or list of numbers or of number lists)`;
  }
  return null;
}

function typeProblem(n: Node): string | null {
  if (!(DTYPES as readonly unknown[]).includes(n.dtype)) return `unknown dtype ${String(n.dtype)}`;
  if (!Array.isArray(n.shape) || !n.shape.every((d) => Number.isInteger(d) && d >= 0)) return `bad shape [${String(n.shape)}]`;
  return null;
}

export function verifyFunc(f: Func): void {
  const fail = (msg: string, node: Node | null = null): never => {
    throw new VerifyError(`verify @${fmtName(f.name)}: ${msg}`, node);
  };
  // Naming walks the whole graph, so it is only done once something is wrong.
  let naming: Naming | null = null;
  const show = (n: Node): string => {
    try {
      naming ??= nameValues(f);
      return `\`${printNode(n, naming.names)}\``;
    } catch {
      // The graph is too broken to print (an operand that is not a node); fall back to what we know.
      return `\`${String(n.op)} node (id ${String(n.id)})\``;
    }
  };

  // ---- signature ----
  if (f.outputNames.length !== f.outputs.length) fail(`${f.outputs.length} outputs but ${f.outputNames.length} output names`);
  const outNames = new Set<string>();
  f.outputNames.forEach((name, k) => {
    if (typeof name !== 'string') fail(`output name ${k} is not a string`);
    if (outNames.has(name)) fail(`output name ${fmtName(name)} is used twice`);
    outNames.add(name);
  });
  const inputSet = new Set<Node>();
  const inputNames = new Map<string, number>();
  f.inputs.forEach((inp, k) => {
    if (!isNodeLike(inp) || inp.op !== 'input') fail(`input ${k} is not an input node`);
    if (inputSet.has(inp)) fail(`input ${k} ${show(inp)} is listed twice`, inp);
    inputSet.add(inp);
    const name: unknown = inp.params?.name;
    if (typeof name !== 'string') fail(`input ${k} has no string name`, inp);
    const prev = inputNames.get(name as string);
    if (prev !== undefined) fail(`inputs ${prev} and ${k} are both named ${fmtName(name as string)}`, inp);
    inputNames.set(name as string, k);
    const tp = typeProblem(inp);
    if (tp) fail(`input ${k} ${fmtName(name as string)}: ${tp}`, inp);
  });

  // ---- reachable nodes, operands before users; identity, not id, so forged duplicate ids are caught ----
  const state = new Map<Node, 'open' | 'done'>();
  const order: Node[] = [];
  f.outputs.forEach((root, k) => {
    if (!isNodeLike(root)) fail(`output ${k} is not a node`);
    if (state.has(root)) return;
    state.set(root, 'open');
    const stack: { n: Node; i: number }[] = [{ n: root, i: 0 }];
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.i < top.n.inputs.length) {
        const k2 = top.i++;
        const next: unknown = top.n.inputs[k2];
        if (!isNodeLike(next)) fail(`operand ${k2} of ${show(top.n)} is not a node`, top.n);
        const s = state.get(next as Node);
        if (s === 'open') fail(`${show(top.n)} is part of a cycle`, top.n);
        if (s === undefined) {
          state.set(next as Node, 'open');
          stack.push({ n: next as Node, i: 0 });
        }
      } else {
        state.set(top.n, 'done');
        order.push(top.n);
        stack.pop();
      }
    }
  });

  // ---- each node ----
  const byId = new Map<number, Node>();
  for (const n of order) {
    if (!Object.hasOwn(OP_TABLE, n.op)) fail(`${show(n)}: unknown op ${JSON.stringify(n.op)}`, n);
    const other = byId.get(n.id);
    // Passes key maps and sets by id (graph.ts), so two nodes sharing one would be merged silently.
    if (other !== undefined) fail(`${show(n)} and ${show(other)} share id ${n.id}`, n);
    byId.set(n.id, n);
    const tp = typeProblem(n);
    if (tp) fail(`${show(n)}: ${tp}`, n);
    const pp = paramsProblem(n.params, n.op);
    if (pp) fail(`${show(n)}: ${pp}`, n);
    if (n.op === 'scan') {
      try {
        verifyFunc(n.params.body);
      } catch (e) {
        if (e instanceof VerifyError) fail(`in the body of ${show(n).split('\n')[0]}: ${e.message}`, e.node ?? n);
        throw e;
      }
    }
    for (const x of n.inputs) {
      if (isNodeLike(x) && x.op === 'scan' && n.op !== 'scan_result') fail(`${show(n)} uses a scan directly; a scan's results are read through scan_result`, n);
    }
    if (n.op === 'input') {
      if (!inputSet.has(n)) fail(`${show(n)} is reachable from the outputs but is not one of the function's inputs`, n);
      continue;
    }
    const def = OP_TABLE[n.op] as unknown as AnyOpDef;
    const arityOk = def.arity === 'variadic' ? n.inputs.length >= 1 : n.inputs.length === def.arity;
    if (!arityOk) fail(`${show(n)}: ${n.op} takes ${def.arity === 'variadic' ? 'at least 1' : def.arity} operands, got ${n.inputs.length}`, n);
    let t: TensorType;
    try {
      t = def.type(n.inputs, n.params);
    } catch (e) {
      return fail(`${show(n)}: ${n.op}'s type rule rejects it: ${e instanceof Error ? e.message : String(e)}`, n);
    }
    if (t.dtype !== n.dtype || !shapeEq(t.shape, n.shape)) fail(`${show(n)}: stored ${fmtType(n)} but ${n.op} gives ${fmtType(t)}`, n);
  }
}
