/**
 * @file Core IR types: dtypes, static shapes, the op enum with per-op params, and the graph node.
 *
 * The graph IR is an immutable SSA graph. A `Node` is a value: it names its op, its result type
 * (dtype and static shape) and its inputs, which are other nodes. Nodes never change after they are
 * made; passes build new nodes. A node's `id` only gives it identity inside this process (for maps and
 * sets); it is never printed, so dumps do not depend on creation order. `Node` is a discriminated union
 * on `op`, so a `switch (node.op)` narrows `node.params` to that op's params.
 */

export type DType = 'f32' | 'i32' | 'bool';
export const DTYPES: readonly DType[] = ['f32', 'i32', 'bool'];

export type Shape = readonly number[];

/** A tensor's static type. */
export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

/** A padding amount per spatial dimension: [low, high]. */
export type Padding2 = readonly (readonly [number, number])[];

/** Param values are plain data so the text format can print and parse them. */
export type ParamValue = number | string | boolean | readonly number[] | readonly (readonly number[])[];

/**
 * The elementwise unary ops: one operand, a result of the operand's dtype, no params. This list is
 * where such an op is declared: `OpParams` gets its key from it, and the kernel IR's ALU ops (`UnOp`
 * in compiler/kernel/types.ts) include it, so every table keyed by them (the op table, the kernel
 * interpreter, Wasm and WGSL codegen) fails to type-check until it has an entry for the new op.
 * Fusion lowers these ops generically and needs no entry.
 */
export const UNARY_OPS = ['neg', 'abs', 'exp', 'log', 'sqrt', 'recip', 'tanh'] as const;
/** The elementwise binary ops: two operands of one dtype and shape, no params (see `UNARY_OPS`). */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'less', 'equal'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];
export type BinaryOp = (typeof BINARY_OPS)[number];

/** Params of the unary and binary ops, which have none, keyed by the lists above. */
type AluOpParams = { readonly [O in UnaryOp | BinaryOp]: Record<string, never> };

/** Every op and its params. The key is the op's printed name. */
export interface OpParams extends AluOpParams {
  // function parameters (graph inputs)
  input: { readonly name: string };
  // leaves
  // Leaves carry their result type in params; the text format leaves `dtype`/`shape` implied.
  constant: { readonly value: number; readonly dtype: DType; readonly shape: Shape };
  iota: { readonly axis: number; readonly dtype: DType; readonly shape: Shape };
  random_uniform: { readonly seed: number; readonly shape: Shape };
  // elementwise unary and binary: from UNARY_OPS and BINARY_OPS (AluOpParams)
  // elementwise ternary and conversion
  select: Record<string, never>;
  cast: { readonly to: DType };
  // reductions
  reduce_sum: { readonly axes: readonly number[] };
  reduce_max: { readonly axes: readonly number[] };
  // movement
  reshape: { readonly shape: Shape };
  transpose: { readonly perm: readonly number[] };
  broadcast: { readonly shape: Shape; readonly axes: readonly number[] };
  slice: { readonly start: readonly number[]; readonly limit: readonly number[] };
  pad: { readonly lo: readonly number[]; readonly hi: readonly number[]; readonly value: number };
  concat: { readonly axis: number };
  reverse: { readonly axes: readonly number[] };
  // contractions
  dot: Record<string, never>;
  conv: {
    readonly strides: readonly number[];
    readonly padding: Padding2;
    readonly lhsDilation: readonly number[];
    readonly rhsDilation: readonly number[];
  };
  // pooling
  reduce_window: {
    readonly op: WindowOp;
    readonly window: readonly number[];
    readonly strides: readonly number[];
    readonly padding: Padding2;
  };
  reduce_window_grad: {
    readonly op: WindowOp;
    readonly window: readonly number[];
    readonly strides: readonly number[];
    readonly padding: Padding2;
  };
  // loops (ops/scan.ts)
  /**
   * `lax.scan`: operands are `carries` initial carries, then `xs` stacked sequences (leading axis
   * `length`), then loop-invariant consts. `body` maps (carries, one slice of each xs, consts) to
   * (next carries, one slice of each ys). A scan has several results, read only through
   * `scan_result`; the scan node's own type is that of its first result.
   */
  scan: { readonly body: Func; readonly length: number; readonly reverse: boolean; readonly carries: number; readonly xs: number };
  /** Result `index` of a scan: the final carries first, then the stacked ys ([length, ...slice]). */
  scan_result: { readonly index: number };
}

export type WindowOp = 'max' | 'sum';
export type Op = keyof OpParams;

const UNARY_SET: ReadonlySet<string> = new Set(UNARY_OPS);
const BINARY_SET: ReadonlySet<string> = new Set(BINARY_OPS);
export const isUnaryOp = (op: string): op is UnaryOp => UNARY_SET.has(op);
export const isBinaryOp = (op: string): op is BinaryOp => BINARY_SET.has(op);

interface NodeOf<O extends Op> {
  readonly id: number;
  readonly op: O;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly inputs: readonly Node[];
  readonly params: OpParams[O];
}

/** A graph node, discriminated by `op`. */
export type Node = { [O in Op]: NodeOf<O> }[Op];
export type NodeWith<O extends Op> = NodeOf<O>;
export type InputNode = NodeOf<'input'>;

/** A function in the graph IR: named inputs, ordered outputs. */
export interface Func {
  readonly name: string;
  readonly inputs: readonly InputNode[];
  readonly outputs: readonly Node[];
  /** One name per output, used by runtimes and dumps (e.g. `loss`, `w0.next`). */
  readonly outputNames: readonly string[];
}

// ---- shape helpers (kept here so every layer of the IR shares one definition) ----

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmtType(t: TensorType): string {
  return `${t.dtype}[${t.shape.join(',')}]`;
}

export function fmtShape(s: Shape): string {
  return `[${s.join(',')}]`;
}
