/**
 * @file The shape of one op-table entry.
 *
 * Each op has exactly one `OpDef`: its type rule (dtype and shape inference, which also validates
 * params), its f64 reference implementation (the living definition of what the op means, used by the
 * interpreter) and its VJP rule (used by autodiff). The table in `optable.ts` is a mapped type over
 * `Op`, so adding an op without all three is a type error. Code generators keep their own tables
 * keyed the same way.
 */
import type { DType, Node, NodeWith, Op, OpParams, Shape, TensorType } from './types.ts';

/** Thrown by type rules; `apply` prefixes the op name and the input types. */
export class IRTypeError extends Error {
  override name = 'IRTypeError';
}

/** A tensor in the reference interpreter: every dtype is held in f64 (i32 and bool exactly). */
export interface Tensor64 {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly data: Float64Array;
}

/** Cotangent for each input; `null` means no gradient flows to that input (integer, or zero). */
export type Cotangents = readonly (Node | null)[];

export interface OpDef<O extends Op> {
  /** Number of inputs, or 'variadic' (at least one). */
  readonly arity: number | 'variadic';
  /** Result type, or throws IRTypeError with a message naming what does not fit. */
  type(inputs: readonly TensorType[], params: OpParams[O]): TensorType;
  /** f64 reference implementation: returns the result's elements in row-major order. */
  interp(inputs: readonly Tensor64[], params: OpParams[O], out: TensorType): Float64Array;
  /** Reverse-mode rule: given the cotangent of the result, the cotangent of each input. */
  vjp(ct: Node, node: NodeWith<O>): Cotangents;
}

export type OpTable = { readonly [O in Op]: OpDef<O> };

export function fail(msg: string): never {
  throw new IRTypeError(msg);
}

export function expectDType(t: TensorType, allowed: readonly DType[], what: string): void {
  if (!allowed.includes(t.dtype)) fail(`${what} must be ${allowed.join(' or ')}, got ${t.dtype}`);
}

export function checkAxes(axes: readonly number[], rank: number, what: string): void {
  const seen = new Set<number>();
  for (const a of axes) {
    if (!Number.isInteger(a) || a < 0 || a >= rank) fail(`${what}: axis ${a} out of range for rank ${rank}`);
    if (seen.has(a)) fail(`${what}: axis ${a} repeated`);
    seen.add(a);
  }
}

/** A scalar `value` must be representable in `dtype` (constants and pad values). */
export function checkValue(value: unknown, dtype: string, what: string): void {
  if (typeof value !== 'number') fail(`${what} must be a number, got ${String(value)}`);
  if (dtype === 'i32' && !(Number.isInteger(value) && value >= -2147483648 && value <= 2147483647)) fail(`${what} ${value} is not an i32`);
  if (dtype === 'bool' && value !== 0 && value !== 1) fail(`${what} ${value} is not a bool (0 or 1)`);
}

export function checkShapeDims(shape: unknown, what: string): void {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`${what}: bad shape [${String(shape)}]`);
}
