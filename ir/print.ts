/**
 * @file The IR text format, printing side: `printFunc` renders a `Func` as text that `parseFunc`
 * (parse.ts) reads back into a structurally equal graph, and printing that graph again gives the
 * same bytes. Values are named `%N` at print time: the function's inputs first, in signature order,
 * then every other node in `funcNodes` order; node ids never appear, so the text depends only on the
 * graph's structure, never on the order nodes were created in. Params print as `op[k=v,...]` with
 * keys sorted; every number prints in a form `Number()` reads back exactly (-0, NaN and the
 * infinities included); strings print bare when they lex as an identifier and as JSON strings
 * otherwise. The leaf params that the result type already states (`IMPLIED_PARAMS`) are left out,
 * and the parser fills them back in from the declared type. Example:
 *
 * ```
 * func @predict(%0 x: f32[32,784], %1 dense.kernel: f32[784,10], %2 "odd name": f32[]) -> (logits: f32[32,10]) {
 *   %3: f32[32,10] = dot %0, %1
 *   %4: f32[32,10] = broadcast[axes=(),shape=(32,10)] %2
 *   %5: f32[32,10] = add %3, %4
 *   return %5
 * }
 * ```
 * A `scan`'s body function prints nested after its operands, between braces, with its own names:
 * ```
 *   %4: f32[2,3] = scan[carries=1,length=5,reverse=false,xs=1] %1, %2, %3 {
 *     func @rnn_cell(%0 c0: f32[2,3], %1 x0: f32[2,4], %2 k0: f32[4,3]) -> ("c0.next": f32[2,3], y0: f32[2,3]) {
 *       ...
 *     }
 *   }
 *   %5: f32[2,3] = scan_result[index=0] %4
 * ```
 */
import { funcNodes } from './graph.ts';
import type { Func, Node, Op } from './types.ts';
import { fmtType } from './types.ts';

/**
 * Params that the printed result type already carries, so printing them too would say the same
 * thing twice (and give a hand-edited file two places to disagree).
 */
export const IMPLIED_PARAMS: { readonly [O in Op]?: readonly string[] } = {
  constant: ['dtype', 'shape'],
  iota: ['dtype', 'shape'],
  random_uniform: ['shape'],
};

// Dots are allowed so that weight names such as `conv2d_1.kernel` and `adam.m.dense.bias` read bare.
const BARE = /^[A-Za-z_][A-Za-z0-9_.]*$/;
// Words the parser reads as booleans or numbers; a string spelled like one must be quoted.
const RESERVED: ReadonlySet<string> = new Set(['true', 'false', 'NaN', 'Infinity']);

/** A name or string: bare if it lexes as an identifier, else a JSON string (which `JSON.parse` inverts). */
export function fmtName(s: string): string {
  return BARE.test(s) && !RESERVED.has(s) ? s : JSON.stringify(s);
}

/** Shortest round-trip form; `String(-0)` is "0", so -0 needs its own case. */
export function fmtNumber(n: number): string {
  return Object.is(n, -0) ? '-0' : String(n);
}

/**
 * One param value. Anything outside `ParamValue` prints as `<typeof>`, which the parser rejects, so a
 * malformed node can still be shown in an error message but can never silently round-trip.
 */
export function fmtParamValue(v: unknown): string {
  if (typeof v === 'number') return fmtNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'string') return fmtName(v);
  if (Array.isArray(v)) return `(${v.map(fmtParamValue).join(',')})`;
  return `<${v === null ? 'null' : typeof v}>`;
}

/** `[k=v,...]` with keys sorted, or '' when there is nothing to print. */
export function fmtParams(op: string, params: object): string {
  const implied: readonly string[] = (IMPLIED_PARAMS as Readonly<Record<string, readonly string[]>>)[op] ?? [];
  const rec = params as Readonly<Record<string, unknown>>;
  const keys = Object.keys(rec)
    .filter((k) => !implied.includes(k))
    .sort();
  if (keys.length === 0) return '';
  return `[${keys.map((k) => `${fmtName(k)}=${fmtParamValue(rec[k])}`).join(',')}]`;
}

/** The print-time names of a function's values and the body nodes in print order. */
export interface Naming {
  /** `%N` for every input and every node reachable from the outputs. */
  readonly names: ReadonlyMap<Node, string>;
  /** Nodes printed as body lines: everything named except the signature's inputs. */
  readonly body: readonly Node[];
}

export function nameValues(f: Func): Naming {
  const names = new Map<Node, string>();
  let next = 0;
  // Inputs take the first numbers, in signature order, whether or not they are used, so the
  // signature always reads %0, %1, ... A duplicated input (invalid, see verify.ts) keeps its first name.
  for (const inp of f.inputs) if (!names.has(inp)) names.set(inp, `%${next++}`);
  const body: Node[] = [];
  for (const n of funcNodes(f)) {
    if (names.has(n)) continue;
    names.set(n, `%${next++}`);
    body.push(n);
  }
  return { names, body };
}

/**
 * One body line without indentation: `%7: f32[2,2] = op[k=v] %1, %2`. An `input` node only lands here
 * when it is missing from the signature, which the verifier reports and the parser refuses.
 */
export function printNode(n: Node, names: ReadonlyMap<Node, string>): string {
  const name = (x: Node) => names.get(x) ?? '%?';
  const operands = n.inputs.length ? ` ${n.inputs.map(name).join(', ')}` : '';
  if (n.op === 'scan') {
    // The body prints nested, in its own naming scope, between braces that end the line.
    const { body, ...rest } = n.params;
    const inner = printFunc(body).trimEnd().split('\n').map((l) => `  ${l}`);
    return [`${name(n)}: ${fmtType(n)} = ${n.op}${fmtParams(n.op, rest)}${operands} {`, ...inner, '}'].join('\n');
  }
  return `${name(n)}: ${fmtType(n)} = ${n.op}${fmtParams(n.op, n.params)}${operands}`;
}

/** The whole function, ending in a newline. */
export function printFunc(f: Func): string {
  const { names, body } = nameValues(f);
  // Malformed names go through fmtParamValue so they show up as unparseable rather than as made-up names.
  const params = f.inputs.map((i) => `${names.get(i)} ${fmtParamValue(i.params.name)}: ${fmtType(i)}`);
  const results = f.outputs.map((o, k) => `${fmtParamValue(f.outputNames[k])}: ${fmtType(o)}`);
  const lines = [`func @${fmtName(f.name)}(${params.join(', ')}) -> (${results.join(', ')}) {`];
  for (const n of body) for (const l of printNode(n, names).split('\n')) lines.push(`  ${l}`);
  const ret = f.outputs.map((o) => names.get(o) ?? '%?');
  lines.push(ret.length ? `  return ${ret.join(', ')}` : '  return', '}');
  return `${lines.join('\n')}\n`;
}
