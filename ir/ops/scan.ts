/**
 * @file Loops: `scan` (JAX's `lax.scan`) and `scan_result`, the projection that reads one of a
 * scan's several results.
 *
 * `scan[length, reverse, carries, xs](init..., xs..., consts...)` runs `body` `length` times. Its
 * operands are `carries` initial carries, `xs` stacked sequences whose leading axis is `length`, and
 * loop-invariant consts (weights). Step t (t counts down from length-1 when `reverse`) calls `body`
 * with (carries, slice t of each xs, consts) and gets (next carries, one slice of each ys). The
 * results, in order, are the final carries and then each ys stacked along a new leading axis. The
 * body is a closed `Func`: it reads outer values only through its const operands (`b.scan` in
 * builders.ts lifts captured values into consts).
 *
 * A scan has several results, so its own node stands for the whole tuple and is used only by
 * `scan_result[index]` nodes; its stored type is that of its first result (a convention that keeps
 * every node typed). Evaluation lives in interp.ts, which runs the body with the interpreter, and the
 * VJP lives in autodiff.ts, which needs the cotangents of all results at once; the entries below
 * refuse both so a caller that bypasses those paths fails loudly.
 */
import type { OpDef } from '../opdef.ts';
import { fail } from '../opdef.ts';
import type { Node, OpParams, TensorType } from '../types.ts';
import { fmtType, shapeEq } from '../types.ts';

/** The result types of a scan with these operand types and params: final carries, then stacked ys. */
export function scanResultTypes(inputs: readonly TensorType[], p: OpParams['scan']): TensorType[] {
  const { body, length, carries, xs } = p;
  if (!Number.isInteger(length) || length < 1) fail(`length must be a positive integer, got ${String(length)}`);
  if (typeof p.reverse !== 'boolean') fail(`reverse must be a boolean, got ${String(p.reverse)}`);
  if (!Number.isInteger(carries) || carries < 0 || !Number.isInteger(xs) || xs < 0 || carries + xs > inputs.length) {
    fail(`carries=${String(carries)} and xs=${String(xs)} do not fit ${inputs.length} operands`);
  }
  if (typeof body !== 'object' || body === null || !Array.isArray(body.inputs) || !Array.isArray(body.outputs)) fail('body must be a function');
  if (body.inputs.length !== inputs.length) fail(`body @${body.name} takes ${body.inputs.length} inputs but the scan has ${inputs.length} operands`);
  inputs.forEach((t, i) => {
    const want: TensorType = i >= carries && i < carries + xs ? { dtype: t.dtype, shape: t.shape.slice(1) } : t;
    if (i >= carries && i < carries + xs && t.shape[0] !== length) fail(`xs operand ${i - carries} ${fmtType(t)} does not have leading axis ${length}`);
    const got = body.inputs[i];
    if (got.dtype !== want.dtype || !shapeEq(got.shape, want.shape)) {
      const role = i < carries ? `carry ${i}` : i < carries + xs ? `xs ${i - carries} (one step)` : `const ${i - carries - xs}`;
      fail(`body input ${i} (${role}) is ${fmtType(got)}, expected ${fmtType(want)}`);
    }
  });
  if (body.outputs.length < carries) fail(`body @${body.name} returns ${body.outputs.length} values, fewer than its ${carries} carries`);
  for (let i = 0; i < carries; i++) {
    const o = body.outputs[i];
    if (o.dtype !== inputs[i].dtype || !shapeEq(o.shape, inputs[i].shape)) fail(`body output ${i} (next carry) is ${fmtType(o)}, but the carry is ${fmtType(inputs[i])}`);
  }
  const results: TensorType[] = inputs.slice(0, carries).map((t) => ({ dtype: t.dtype, shape: t.shape }));
  for (const y of body.outputs.slice(carries)) results.push({ dtype: y.dtype, shape: [length, ...y.shape] });
  if (results.length === 0) fail('a scan must have at least one result');
  return results;
}

/** The result types of a scan node. */
export function scanResults(n: Node & { op: 'scan' }): TensorType[] {
  return scanResultTypes(n.inputs, n.params);
}

export const scanOps: { readonly [O in 'scan' | 'scan_result']: OpDef<O> } = {
  scan: {
    arity: 'variadic',
    type: (inputs, p) => scanResultTypes(inputs, p)[0],
    interp: () => fail('scan has several results: ir/interp.ts evaluates it as a whole'),
    vjp: () => fail('scan has several results: ir/autodiff.ts differentiates it as a whole'),
  },
  scan_result: {
    arity: 1,
    type: (inputs, p) => {
      // Type rules see operands as types; every operand is in fact a node (apply passes nodes).
      const s = inputs[0] as Node;
      if (s.op !== 'scan') fail(`operand must be a scan, got ${String(s.op)}`);
      const results = scanResults(s);
      if (!Number.isInteger(p.index) || p.index < 0 || p.index >= results.length) fail(`index ${String(p.index)} out of range for a scan of ${results.length} results`);
      return results[p.index];
    },
    interp: () => fail('scan_result is read from its scan by ir/interp.ts'),
    vjp: () => fail('scan_result cotangents are gathered by ir/autodiff.ts'),
  },
};
