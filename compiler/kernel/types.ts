/**
 * @file Kernel IR: what fusion produces and what every code generator consumes.
 *
 * A `Program` is an ordered list of kernels over numbered buffers. Each kernel writes exactly one
 * buffer, row-major and contiguous, and reads any number of others. Scalar `Expr` trees say how one
 * output element is computed from index variables and loads; movement ops (reshape, transpose,
 * broadcast, slice, pad, reverse, concat) have already become index arithmetic inside them. Kernel
 * kinds:
 *  - `elementwise`: out[g] = expr(g), one output element per grid point;
 *  - `reduce`: out[g] = epilogue(g, acc), acc = fold(op, body(g, r)) over the reduction shape;
 *  - `matmul`: out[b,m,n] = epilogue(b,m,n, acc), acc = sum_k A[b,m,k] * B[b,k,n], A and B strided
 *    views of input buffers, so transposes cost nothing and codegen can use register-tiled GEMM;
 *  - `pool_grad`: the gradient of max/sum pooling (scatter to each window's arg-max), which does not
 *    fit the other kinds.
 * Expressions are immutable trees; index arithmetic is i32 with non-negative operands, so integer
 * division and remainder agree with floor semantics.
 */
import type { BinaryOp, DType, Padding2, Shape, UnaryOp, WindowOp } from '../../ir/types.ts';
import type { ScheduleLoop } from '../../runtime/schedule.ts';

/**
 * ALU ops of the kernel IR: the graph IR's unary and binary ops (`UNARY_OPS`, `BINARY_OPS` in
 * ir/types.ts), which fusion passes through unchanged, plus the ones only fusion makes, for
 * predicates (`not`, `and`) and index arithmetic (`mod`). The kernel interpreter and both code
 * generators key their ALU tables by these types (`{ [O in UnOp]: ... }`), so a new op is a type
 * error naming it in each until it has an entry there.
 */
export type UnOp = UnaryOp | 'not';
export type BinOp = BinaryOp | 'mod' | 'and';

export type Expr =
  | { readonly k: 'const'; readonly dtype: DType; readonly value: number }
  /** Grid index along output axis `axis`. */
  | { readonly k: 'idx'; readonly axis: number }
  /** Reduction index along reduction axis `axis` (reduce kernels, in `body` only). */
  | { readonly k: 'ridx'; readonly axis: number }
  /** The reduction's result (in `epilogue` only), f32. */
  | { readonly k: 'acc' }
  /** Element `index` (an i32 expression) of input `input` of the kernel. */
  | { readonly k: 'load'; readonly input: number; readonly index: Expr; readonly dtype: DType }
  | { readonly k: 'un'; readonly op: UnOp; readonly a: Expr; readonly dtype: DType }
  | { readonly k: 'bin'; readonly op: BinOp; readonly a: Expr; readonly b: Expr; readonly dtype: DType }
  | { readonly k: 'select'; readonly c: Expr; readonly a: Expr; readonly b: Expr; readonly dtype: DType }
  | { readonly k: 'cast'; readonly a: Expr; readonly dtype: DType }
  /** random_uniform element `index` for `key` (i32 expr) and `seed` (see ir/random.ts). */
  | { readonly k: 'rand'; readonly seed: number; readonly key: Expr; readonly index: Expr; readonly dtype: 'f32' };

/** A strided view of an input buffer: element (i, j, l) is at offset + i*strides[0] + j*strides[1] + l*strides[2]. */
export interface View3 {
  readonly input: number;
  readonly offset: number;
  readonly strides: readonly [number, number, number];
}

interface KernelBase {
  /** Encodes kind, shape and fused ops, e.g. `r_32_10_dot_add_max`. Unique within a program. */
  readonly name: string;
  /** Graph ops fused into this kernel, in evaluation order (for comments and dumps). */
  readonly ops: readonly string[];
  /** Buffers read, by program buffer id; `Expr` loads refer to positions in this list. */
  readonly inputs: readonly number[];
  /** Buffer written. */
  readonly output: number;
  /** Output shape (the grid); the output buffer holds numel(shape) elements. */
  readonly shape: Shape;
  readonly dtype: DType;
}

export interface ElementwiseKernel extends KernelBase {
  readonly kind: 'elementwise';
  readonly expr: Expr;
}

export interface ReduceKernel extends KernelBase {
  readonly kind: 'reduce';
  readonly op: 'sum' | 'max';
  readonly rshape: Shape;
  readonly body: Expr;
  readonly epilogue: Expr;
}

export interface MatmulKernel extends KernelBase {
  readonly kind: 'matmul';
  /** shape is [batch, M, N]; the output is that contiguous matrix stack. */
  readonly k: number;
  readonly a: View3; // (batch, m, k)
  readonly b: View3; // (batch, k, n)
  readonly epilogue: Expr;
}

export interface PoolGradKernel extends KernelBase {
  readonly kind: 'pool_grad';
  /** inputs[0] is x (NHWC, shape = this.shape), inputs[1] is dy (the pooled shape). */
  readonly op: WindowOp;
  readonly window: readonly number[];
  readonly strides: readonly number[];
  readonly padding: Padding2;
  readonly dyShape: Shape;
}

export type Kernel = ElementwiseKernel | ReduceKernel | MatmulKernel | PoolGradKernel;

export type BufferRole = 'input' | 'state' | 'output' | 'temp' | 'const';

export interface BufferInfo {
  readonly id: number;
  readonly dtype: DType;
  readonly shape: Shape;
  readonly role: BufferRole;
  /** Input/state/output name for program inputs, states and outputs. */
  readonly name: string;
}

/**
 * A copy of `elements` 4-byte elements from buffer `from` to buffer `to`. A side marked `step` is a
 * stacked buffer addressed at the current step's slice: element offset t * elements.
 */
export interface LoopCopy {
  readonly from: number;
  readonly to: number;
  readonly fromStep: boolean;
  readonly toStep: boolean;
  readonly elements: number;
}

/**
 * A scan lowered to the kernel program: kernels [start, end) are the body, run `length` times with t
 * = 0, 1, ... (or length-1 down to 0 when `reverse`). `init` copies run once before the first step
 * (initial carries into the carry buffers), `enter` copies at the start of every step (slice t of
 * each xs into the body's input), `exit` copies at the end of every step (the body's ys into slice t
 * of the stacked results, then the next carries over the carries). After the loop the carry buffers
 * hold the final carries. Loops may nest: an inner loop's range lies inside its outer loop's body.
 */
export type Loop = ScheduleLoop<LoopCopy>;

/** A compiled step function: kernels in execution order over buffers. */
export interface Program {
  readonly name: string;
  readonly buffers: readonly BufferInfo[];
  readonly kernels: readonly Kernel[];
  /** Loops over ranges of `kernels`, ordered by start (outer before inner at the same start). */
  readonly loops: readonly Loop[];
  /** Buffer of each function input, in input order. */
  readonly inputs: readonly number[];
  /** Buffer of each function output, in output order. */
  readonly outputs: readonly number[];
  readonly outputNames: readonly string[];
}
