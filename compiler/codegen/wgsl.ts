/**
 * @file WGSL code generation: one compute shader per kernel of a `Program`.
 *
 * Binding model: the whole memory plan is ONE storage buffer,
 * `@group(0) @binding(0) var<storage, read_write> mem: array<f32>`, and every buffer's offset is
 * baked into the shaders as a word index (byte offset / 4), like the Wasm backend bakes addresses.
 * f32 elements are stored as they are; i32 and bool (i32 0/1) go through `bitcast` (moves only, no
 * float arithmetic touches those bits). Each shader starts with a comment naming the kernel and the
 * graph ops fused into it, has entry point `main`, and comes with its dispatch size. Dispatches never
 * exceed 65535 workgroups per dimension: a linear workgroup count is folded into x and y, and the
 * shader rebuilds the linear id (`wg.x + wg.y * X`) and returns early past the end.
 *
 * Kernel strategies:
 *  - elementwise: one invocation per output element;
 *  - reduce: for a reduction longer than 64 elements, one workgroup per output element: each thread
 *    folds a strided slice, then a tree reduction in workgroup memory; otherwise one invocation per
 *    output element with the reduction loops nested in it. The epilogue runs once per output;
 *  - matmul: a tiled GEMM: a workgroup computes a BM x BN output tile, each thread a TM x TN
 *    register block (unrolled scalar accumulators), the K loop stages BK-deep slices of A and B in
 *    `var<workgroup>` arrays. Operands are arbitrary strided views (View3), loaded with bounds checks
 *    so edge tiles need no special case; the tile is chosen from the device limits and the shape;
 *  - pool_grad: one invocation per element of dx: it visits the windows that contain it and adds dy
 *    of each window whose first maximum it is (sum: every window), so no atomics are needed.
 *
 * Expression semantics follow compiler/kernel/interp.ts: i32 division and remainder by zero give 0,
 * f32 -> i32 casts saturate and map NaN to 0 (NaN tested on the bits, since WGSL lets compilers
 * assume finite math), bool is WGSL `bool` in registers and i32 0/1 in memory, `rand` reproduces
 * ir/random.ts bit for bit with u32 arithmetic. Both arms of a `select` are evaluated (fusion clamps
 * guarded indices, and WGSL's robust buffer access makes any stray index harmless). Expressions are
 * emitted as `let` chains with common subexpressions shared. Literals never meet in a constant
 * expression (WGSL rejects constant overflow, division by zero and infinities at compile time), so a
 * node whose operands are all literals gets one of them bound to a `let` first; infinities and NaN
 * come from runtime bitcasts. Codegen is deterministic: the same program gives the same text.
 */
import { RNG_KEY_MUL } from '../../ir/random.ts';
import { numel, type DType, type Shape } from '../../ir/types.ts';
import type { MemoryPlan } from '../kernel/plan.ts';
import type { BinOp, Expr, ElementwiseKernel, Kernel, MatmulKernel, PoolGradKernel, Program, ReduceKernel, UnOp, View3 } from '../kernel/types.ts';

export interface WgslLimits {
  /** Largest 1-D workgroup: min(maxComputeInvocationsPerWorkgroup, maxComputeWorkgroupSizeX). */
  readonly maxWorkgroupSize: number;
  /** maxComputeWorkgroupStorageSize, bytes. */
  readonly maxWorkgroupStorage: number;
}

export interface WgslKernel {
  readonly name: string;
  readonly code: string;
  readonly workgroups: [number, number, number];
}

/** Reductions longer than this get a workgroup per output element and a tree reduction. */
export const TREE_REDUCE_MIN = 64;
/** WebGPU's default (and minimum guaranteed) maxComputeWorkgroupsPerDimension. */
const MAX_DIM = 65535;

export interface WgslOptions {
  /** Force one matmul tile (benchmarks and tests); it must fit the limits. */
  readonly matmulTile?: MatmulTile;
}

export function emitWgsl(p: Program, plan: MemoryPlan, limits: WgslLimits, opts: WgslOptions = {}): { kernels: WgslKernel[] } {
  if (limits.maxWorkgroupSize < 1) throw new Error('wgsl: maxWorkgroupSize must be at least 1');
  return { kernels: p.kernels.map((k) => emitKernel(k, p, plan, limits, opts)) };
}

// ------------------------------------------------------------------ small utilities

const pow2Floor = (n: number) => 2 ** Math.floor(Math.log2(Math.max(1, n)));
const pow2Ceil = (n: number) => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** A linear workgroup count as an (x, y, 1) dispatch with x, y <= 65535; `x` is what shaders multiply y by. */
export function dispatch2d(count: number): [number, number, number] {
  if (count <= MAX_DIM) return [count, 1, 1];
  const y = Math.ceil(count / MAX_DIM);
  if (y > MAX_DIM) throw new Error(`wgsl: ${count} workgroups exceed 65535 x 65535`);
  return [Math.ceil(count / y), y, 1];
}

const wgslType = (dt: DType) => (dt === 'f32' ? 'f32' : dt === 'i32' ? 'i32' : 'bool');

function dtypeOf(e: Expr): DType {
  return e.k === 'idx' || e.k === 'ridx' ? 'i32' : e.k === 'acc' ? 'f32' : e.dtype;
}

const u = (n: number) => `${n >>> 0}u`;

function i32Lit(v: number): string {
  const n = v | 0;
  if (n === -2147483648) return '(-2147483647i - 1i)';
  return n < 0 ? `(${n}i)` : `${n}i`;
}

/** An f32 literal (exact: the printed double is the f32 value), or null for values WGSL cannot spell. */
function f32Lit(v: number): string | null {
  const f = Math.fround(v);
  if (!Number.isFinite(f)) return null;
  if (Object.is(f, -0)) return '(-0.0f)';
  const s = `${String(f)}f`;
  return f < 0 ? `(${s})` : s;
}

/** Word index of input `input` of kernel `k`. */
function baseOf(k: Kernel, input: number, plan: MemoryPlan): number {
  const off = plan.offsets[k.inputs[input]];
  if (off === undefined || off % 4 !== 0) throw new Error(`wgsl: kernel ${k.name}: buffer %b${k.inputs[input]} has no 4-byte aligned offset in the plan`);
  return off / 4;
}

function outBase(k: Kernel, plan: MemoryPlan): number {
  const off = plan.offsets[k.output];
  if (off === undefined || off % 4 !== 0) throw new Error(`wgsl: kernel ${k.name}: output %b${k.output} has no 4-byte aligned offset in the plan`);
  return off / 4;
}

/** WGSL statement storing `v` (of dtype `dt`) at word index expression `at` (u32). */
function storeStmt(at: string, v: string, dt: DType): string {
  if (dt === 'f32') return `mem[${at}] = ${v};`;
  if (dt === 'i32') return `mem[${at}] = bitcast<f32>(${v});`;
  return `mem[${at}] = bitcast<f32>(select(0i, 1i, ${v}));`;
}

/** `let` lines decoding a u32 linear index `flat` into i32 row-major indices `${prefix}0..`. */
function decode(flat: string, shape: Shape, prefix: string, indent: string): string[] {
  const out: string[] = [];
  let stride = numel(shape);
  shape.forEach((d, a) => {
    stride /= d;
    let e = flat;
    if (stride !== 1) e = `${e} / ${u(stride)}`;
    if (a > 0) e = stride !== 1 ? `(${e}) % ${u(d)}` : `${e} % ${u(d)}`;
    out.push(`${indent}let ${prefix}${a}: i32 = i32(${e});`);
  });
  return out;
}

// ------------------------------------------------------------------ helper functions (added on use)

type Helper = 'pow' | 'rand' | 'f2i' | 'inf' | 'nan';

const HELPERS: Record<Helper, string> = {
  // Runtime bitcasts: WGSL rejects infinities and NaN in constant expressions.
  inf: `fn dlc_inf() -> f32 {
  var bits = 0x7f800000u;
  return bitcast<f32>(bits);
}`,
  nan: `fn dlc_nan() -> f32 {
  var bits = 0x7fc00000u;
  return bitcast<f32>(bits);
}`,
  // WGSL's pow is exp2(b * log2(a)): undefined for a <= 0. Math.pow's cases are handled here.
  pow: `fn dlc_pow(a: f32, b: f32) -> f32 {
  if (b == 0.0f) { return 1.0f; }
  let ab = abs(a);
  var r: f32;
  if (ab == 0.0f) {
    r = select(0.0f, dlc_inf(), b < 0.0f);
  } else {
    r = pow(ab, b);
  }
  if (a < 0.0f) {
    if (trunc(b) != b) { return dlc_nan(); }
    if (abs(b) < 16777216.0f && (i32(b) & 1i) == 1i) { r = -r; }
  } else if ((bitcast<u32>(a) & 0x80000000u) != 0u && ab == 0.0f && abs(b) < 16777216.0f && trunc(b) == b && (i32(b) & 1i) == 1i) {
    r = -r;
  }
  return r;
}`,
  f2i: `fn dlc_f2i(x: f32) -> i32 {
  if ((bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u) { return 0i; }
  if (x >= 2147483648.0f) { return 2147483647i; }
  if (x <= -2147483648.0f) { return -2147483647i - 1i; }
  return i32(x);
}`,
  // ir/random.ts: two rounds of the murmur3 finalizer, top 24 bits scaled to [0, 1).
  rand: `fn dlc_fmix(x: u32) -> u32 {
  var h = x;
  h = h ^ (h >> 16u);
  h = h * 0x85ebca6bu;
  h = h ^ (h >> 13u);
  h = h * 0xc2b2ae35u;
  h = h ^ (h >> 16u);
  return h;
}
fn dlc_rand(seedmix: u32, key: i32, index: i32) -> f32 {
  let k = dlc_fmix(bitcast<u32>(key) ^ seedmix);
  let h = dlc_fmix(bitcast<u32>(index) * 0x9e3779b1u + k);
  return f32(h >> 8u) / 16777216.0f;
}`,
};
const HELPER_DEPS: Record<Helper, readonly Helper[]> = { pow: ['inf', 'nan'], rand: [], f2i: [], inf: [], nan: [] };
const HELPER_ORDER: readonly Helper[] = ['inf', 'nan', 'pow', 'f2i', 'rand'];

// ------------------------------------------------------------------ expression emission

/** A WGSL operand: a name bound by `let`, or a literal. */
interface Val {
  readonly s: string;
  readonly lit: boolean;
}

/** What the ALU tables need from the expression emitter. */
interface Emit {
  /** Binds `text` (of dtype `dt`) to a `let`, or returns the name it already has. */
  bind(text: string, dt: DType): Val;
  /** Adds a helper function (and those it calls) to the shader. */
  use(h: Helper): void;
  /** The value `v` converted from dtype `from` to `to` (the kernel contract's conversions). */
  convert(v: string, from: DType, to: DType): string;
}

type UnExpr = Extract<Expr, { k: 'un' }>;
type BinExpr = Extract<Expr, { k: 'bin' }>;

/**
 * The WGSL of each unary op: `a` is the operand's text; the result is bound to a `let`. A mapped
 * type over the kernel IR's `UnOp`, so an op added to the IR without an entry here is a type error.
 */
const UNARY: { readonly [O in UnOp]: (em: Emit, a: string, e: UnExpr) => Val } = {
  neg: (em, a, e) => em.bind(`-(${a})`, e.dtype),
  // abs of the most negative i32 is itself in WGSL, as in the reference.
  abs: (em, a, e) => em.bind(`abs(${a})`, e.dtype),
  exp: (em, a, e) => em.bind(`exp(${a})`, e.dtype),
  log: (em, a, e) => em.bind(`log(${a})`, e.dtype),
  sqrt: (em, a, e) => em.bind(`sqrt(${a})`, e.dtype),
  recip: (em, a, e) => em.bind(`1.0f / ${a}`, e.dtype),
  // Some drivers return NaN for tanh of large |x|; tanh(±15) is ±1 in f32 already.
  tanh: (em, a, e) => em.bind(`tanh(clamp(${a}, -15.0f, 15.0f))`, e.dtype),
  not: (em, a, e) => {
    const adt = dtypeOf(e.a);
    return em.bind(adt === 'bool' ? `!(${a})` : `(${a} == ${adt === 'i32' ? '0i' : '0.0f'})`, 'bool');
  },
};

/** The WGSL of each binary op on operand texts `a` and `b` (see `UNARY`); comparisons give bool. */
const BINARY: { readonly [O in BinOp]: (em: Emit, a: string, b: string, e: BinExpr) => Val } = {
  add: (em, a, b, e) => em.bind(`${a} + ${b}`, e.dtype),
  sub: (em, a, b, e) => em.bind(`${a} - ${b}`, e.dtype),
  mul: (em, a, b, e) => em.bind(`${a} * ${b}`, e.dtype),
  div: (em, a, b, e) => {
    if (dtypeOf(e.a) === 'f32') return em.bind(`${a} / ${b}`, e.dtype);
    // A literal divisor: no guard needed (and WGSL rejects a literal zero divisor).
    if (e.b.k === 'const') return e.b.value === 0 ? { s: '0i', lit: true } : em.bind(`${a} / ${b}`, e.dtype);
    return em.bind(`select(${a} / ${b}, 0i, ${b} == 0i)`, e.dtype);
  },
  mod: (em, a, b, e) => {
    const zero = dtypeOf(e.a) === 'f32' ? '0.0f' : '0i';
    if (e.b.k === 'const') return e.b.value === 0 ? { s: zero, lit: true } : em.bind(`${a} % ${b}`, e.dtype);
    return em.bind(`select(${a} % ${b}, ${zero}, ${b} == ${zero})`, e.dtype);
  },
  max: (em, a, b, e) => em.bind(dtypeOf(e.a) === 'bool' ? `(${a} || ${b})` : `max(${a}, ${b})`, e.dtype),
  min: (em, a, b, e) => em.bind(dtypeOf(e.a) === 'bool' ? `(${a} && ${b})` : `min(${a}, ${b})`, e.dtype),
  pow: (em, a, b, e) => {
    em.use('pow');
    return em.bind(`dlc_pow(${a}, ${b})`, e.dtype);
  },
  less: (em, a, b, e) => em.bind(dtypeOf(e.a) === 'bool' ? `(!(${a}) && ${b})` : `${a} < ${b}`, 'bool'),
  equal: (em, a, b) => em.bind(`${a} == ${b}`, 'bool'),
  and: (em, a, b, e) => em.bind(`${em.convert(a, dtypeOf(e.a), 'bool')} && ${em.convert(b, dtypeOf(e.b), 'bool')}`, 'bool'),
};

/** Emits one expression tree as a chain of `let`s inside a function body. */
class ExprEmitter implements Emit {
  readonly lines: string[] = [];
  private readonly byNode = new Map<Expr, Val>();
  private readonly byText = new Map<string, Val>();
  private n = 0;
  constructor(
    private readonly bases: readonly number[],
    private readonly helpers: Set<Helper>,
    private readonly indent = '  ',
  ) {}

  use(h: Helper): void {
    this.helpers.add(h);
    for (const d of HELPER_DEPS[h]) this.use(d);
  }

  bind(text: string, dt: DType): Val {
    const have = this.byText.get(text);
    if (have) return have;
    const v = { s: `v${this.n++}`, lit: false };
    this.lines.push(`${this.indent}let ${v.s}: ${wgslType(dt)} = ${text};`);
    this.byText.set(text, v);
    return v;
  }

  /** Operands with every literal but... none: if all are literals, the first is bound to a `let`. */
  private operands(es: readonly Expr[]): string[] {
    const vs = es.map((e) => this.val(e));
    if (vs.length && vs.every((v) => v.lit)) vs[0] = this.bind(vs[0].s, dtypeOf(es[0]));
    return vs.map((v) => v.s);
  }

  private literal(e: Expr & { k: 'const' }): Val {
    if (e.dtype === 'bool') return { s: e.value ? 'true' : 'false', lit: true };
    if (e.dtype === 'i32') return { s: i32Lit(e.value), lit: true };
    const s = f32Lit(e.value);
    if (s !== null) return { s, lit: true };
    // Infinities and NaN: runtime values (never constant-folded into an error).
    if (Number.isNaN(e.value)) {
      this.use('nan');
      return this.bind('dlc_nan()', 'f32');
    }
    this.use('inf');
    return this.bind(e.value > 0 ? 'dlc_inf()' : '-dlc_inf()', 'f32');
  }

  /** The value of `e` converted to dtype `to` (the kernel contract's conversions). */
  convert(v: string, from: DType, to: DType): string {
    if (from === to) return v;
    if (to === 'f32') return from === 'i32' ? `f32(${v})` : `select(0.0f, 1.0f, ${v})`;
    if (to === 'i32') {
      if (from === 'bool') return `select(0i, 1i, ${v})`;
      this.use('f2i');
      return `dlc_f2i(${v})`;
    }
    // On the bits: NaN is true (as in the reference) even where compilers assume finite math.
    return from === 'f32' ? `((bitcast<u32>(${v}) & 0x7fffffffu) != 0u)` : `(${v} != 0i)`;
  }

  val(e: Expr): Val {
    const have = this.byNode.get(e);
    if (have) return have;
    const v = this.compute(e);
    this.byNode.set(e, v);
    return v;
  }

  private compute(e: Expr): Val {
    switch (e.k) {
      case 'const':
        return this.literal(e);
      case 'idx':
        return { s: `g${e.axis}`, lit: false };
      case 'ridx':
        return { s: `r${e.axis}`, lit: false };
      case 'acc':
        return { s: 'acc', lit: false };
      case 'load': {
        const ix = this.val(e.index).s;
        const base = this.bases[e.input];
        if (base === undefined) throw new Error(`wgsl: load from input ${e.input}, which the kernel does not have`);
        const at = base ? `${u(base)} + u32(${ix})` : `u32(${ix})`;
        const raw = `mem[${at}]`;
        return this.bind(e.dtype === 'f32' ? raw : e.dtype === 'i32' ? `bitcast<i32>(${raw})` : `(bitcast<i32>(${raw}) != 0i)`, e.dtype);
      }
      case 'un': {
        const [a] = this.operands([e.a]);
        return UNARY[e.op](this, a, e);
      }
      case 'bin': {
        const [a, b] = this.operands([e.a, e.b]);
        return BINARY[e.op](this, a, b, e);
      }
      case 'select': {
        const [c, a, b] = this.operands([e.c, e.a, e.b]);
        return this.bind(`select(${b}, ${a}, ${this.convert(c, dtypeOf(e.c), 'bool')})`, e.dtype);
      }
      case 'cast': {
        const from = dtypeOf(e.a);
        if (from === e.dtype) return this.val(e.a);
        const [a] = this.operands([e.a]);
        return this.bind(this.convert(a, from, e.dtype), e.dtype);
      }
      case 'rand': {
        const [key, index] = this.operands([e.key, e.index]);
        this.use('rand');
        return this.bind(`dlc_rand(${u(Math.imul(e.seed, RNG_KEY_MUL))}, ${key}, ${index})`, 'f32');
      }
      default:
        return e satisfies never;
    }
  }
}

/**
 * A WGSL function `fn name(params) -> T` computing `e` (converted to `to`), with `params` given as
 * `name: type` strings. Returns its text.
 */
function exprFunction(name: string, params: readonly string[], e: Expr, to: DType, bases: readonly number[], helpers: Set<Helper>): string {
  const em = new ExprEmitter(bases, helpers);
  const v = em.val(e);
  const ret = em.convert(v.s, dtypeOf(e), to);
  return [`fn ${name}(${params.join(', ')}) -> ${wgslType(to)} {`, ...em.lines, `  return ${ret};`, '}'].join('\n');
}

const gParams = (rank: number) => Array.from({ length: rank }, (_, a) => `g${a}: i32`);
const rParams = (rank: number) => Array.from({ length: rank }, (_, a) => `r${a}: i32`);
const gArgs = (rank: number) => Array.from({ length: rank }, (_, a) => `g${a}`);
const rArgs = (rank: number) => Array.from({ length: rank }, (_, a) => `r${a}`);

// ------------------------------------------------------------------ kernels

function emitKernel(k: Kernel, p: Program, plan: MemoryPlan, limits: WgslLimits, opts: WgslOptions): WgslKernel {
  const bases = k.inputs.map((_, i) => baseOf(k, i, plan));
  const helpers = new Set<Helper>();
  let body: { code: string; workgroups: [number, number, number]; note: string };
  switch (k.kind) {
    case 'elementwise':
      body = elementwise(k, plan, limits, bases, helpers);
      break;
    case 'reduce':
      body = reduce(k, plan, limits, bases, helpers);
      break;
    case 'matmul':
      body = matmul(k, plan, limits, bases, helpers, opts.matmulTile);
      break;
    case 'pool_grad':
      body = poolGrad(k, plan, limits, bases);
      break;
    default:
      return k satisfies never;
  }
  const ins = k.inputs.map((b, i) => `%b${b}@${bases[i]}`).join(', ');
  const head = [
    `// kernel ${k.name}: ${k.ops.length ? k.ops.join(', ') : '(no ops)'}`,
    `// ${k.kind} ${body.note}; inputs ${ins || 'none'} -> %b${k.output}@${outBase(k, plan)} (${k.dtype}[${k.shape.join(',')}]); words are f32 indices into mem`,
    `// program ${p.name}`,
    '@group(0) @binding(0) var<storage, read_write> mem: array<f32>;',
  ];
  const helperText = HELPER_ORDER.filter((h) => helpers.has(h)).map((h) => HELPERS[h]);
  return { name: k.name, code: [head.join('\n'), ...helperText, body.code].join('\n\n') + '\n', workgroups: body.workgroups };
}

function elementwise(k: ElementwiseKernel, plan: MemoryPlan, limits: WgslLimits, bases: number[], helpers: Set<Helper>) {
  const n = numel(k.shape);
  const wg = Math.min(256, pow2Floor(limits.maxWorkgroupSize));
  const groups = dispatch2d(Math.ceil(n / wg));
  const rank = k.shape.length;
  const fn = exprFunction('value', gParams(rank), k.expr, k.dtype, bases, helpers);
  const main = [
    `@compute @workgroup_size(${wg})`,
    'fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {',
    `  let flat = (wg.x + wg.y * ${u(groups[0])}) * ${u(wg)} + lid;`,
    `  if (flat >= ${u(n)}) { return; }`,
    ...decode('flat', k.shape, 'g', '  '),
    `  ${storeStmt(`${u(outBase(k, plan))} + flat`, `value(${gArgs(rank).join(', ')})`, k.dtype)}`,
    '}',
  ].join('\n');
  return { code: `${fn}\n\n${main}`, workgroups: groups, note: `grid [${k.shape.join(',')}], one invocation per element, workgroup ${wg}` };
}

function reduce(k: ReduceKernel, plan: MemoryPlan, limits: WgslLimits, bases: number[], helpers: Set<Helper>) {
  const n = numel(k.shape);
  const r = numel(k.rshape);
  const rank = k.shape.length;
  const rrank = k.rshape.length;
  const isMax = k.op === 'max';
  if (isMax) helpers.add('inf');
  const init = isMax ? '-dlc_inf()' : '0.0f';
  const fold = (a: string, b: string) => (isMax ? `max(${a}, ${b})` : `${a} + ${b}`);
  const bodyFn = exprFunction('body', [...gParams(rank), ...rParams(rrank)], k.body, 'f32', bases, helpers);
  const epiFn = exprFunction('epilogue', [...gParams(rank), 'acc: f32'], k.epilogue, k.dtype, bases, helpers);
  const out = u(outBase(k, plan));
  const store = (accName: string) => storeStmt(`${out} + flat`, `epilogue(${[...gArgs(rank), accName].join(', ')})`, k.dtype);
  const call = `body(${[...gArgs(rank), ...rArgs(rrank)].join(', ')})`;
  const wgMax = pow2Floor(limits.maxWorkgroupSize);
  if (r > TREE_REDUCE_MIN && wgMax >= 2) {
    // One workgroup per output element; threads fold strided slices, then a tree in workgroup memory.
    const t = Math.min(256, wgMax, pow2Ceil(Math.ceil(r / 2)));
    const groups = dispatch2d(n);
    const main = [
      `var<workgroup> partial: array<f32, ${t}>;`,
      '',
      `@compute @workgroup_size(${t})`,
      'fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {',
      `  let flat = wg.x + wg.y * ${u(groups[0])};`,
      '  // uniform per workgroup, so the barriers below stay in uniform control flow',
      `  if (flat >= ${u(n)}) { return; }`,
      ...decode('flat', k.shape, 'g', '  '),
      `  var acc: f32 = ${init};`,
      `  for (var rf: u32 = lid; rf < ${u(r)}; rf = rf + ${u(t)}) {`,
      ...decode('rf', k.rshape, 'r', '    '),
      `    acc = ${fold('acc', call)};`,
      '  }',
      '  partial[lid] = acc;',
      '  workgroupBarrier();',
      `  for (var s: u32 = ${u(t / 2)}; s > 0u; s = s >> 1u) {`,
      `    if (lid < s) { partial[lid] = ${fold('partial[lid]', 'partial[lid + s]')}; }`,
      '    workgroupBarrier();',
      '  }',
      `  if (lid == 0u) { ${store('partial[0]')} }`,
      '}',
    ].join('\n');
    return { code: `${bodyFn}\n\n${epiFn}\n\n${main}`, workgroups: groups, note: `grid [${k.shape.join(',')}] ${k.op} over [${k.rshape.join(',')}], one workgroup of ${t} per output, tree reduction` };
  }
  const wg = Math.min(256, wgMax);
  const groups = dispatch2d(Math.ceil(n / wg));
  const loops: string[] = [];
  const close: string[] = [];
  k.rshape.forEach((d, a) => {
    const ind = '  '.repeat(a + 1);
    loops.push(`${ind}for (var r${a}: i32 = 0i; r${a} < ${i32Lit(d)}; r${a} = r${a} + 1i) {`);
    close.unshift(`${ind}}`);
  });
  const main = [
    `@compute @workgroup_size(${wg})`,
    'fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {',
    `  let flat = (wg.x + wg.y * ${u(groups[0])}) * ${u(wg)} + lid;`,
    `  if (flat >= ${u(n)}) { return; }`,
    ...decode('flat', k.shape, 'g', '  '),
    `  var acc: f32 = ${init};`,
    ...loops,
    `${'  '.repeat(rrank + 1)}acc = ${fold('acc', call)};`,
    ...close,
    `  ${store('acc')}`,
    '}',
  ].join('\n');
  return { code: `${bodyFn}\n\n${epiFn}\n\n${main}`, workgroups: groups, note: `grid [${k.shape.join(',')}] ${k.op} over [${k.rshape.join(',')}], one invocation per output` };
}

/** A matmul tiling: BM x BN output tile, BK-deep K slices, TM x TN outputs per thread. */
export interface MatmulTile {
  readonly bm: number;
  readonly bn: number;
  readonly bk: number;
  readonly tm: number;
  readonly tn: number;
}

/** Candidate tiles, most preferred (largest reuse) first. */
export const MATMUL_TILES: readonly MatmulTile[] = [
  { bm: 64, bn: 64, bk: 16, tm: 4, tn: 4 }, // 256 threads, 8 KiB of workgroup memory
  { bm: 32, bn: 32, bk: 16, tm: 2, tn: 2 }, // 256 threads, 4 KiB
  { bm: 16, bn: 16, bk: 16, tm: 1, tn: 1 }, // 256 threads, 2 KiB: small outputs
  { bm: 32, bn: 32, bk: 8, tm: 4, tn: 4 }, // 64 threads, for devices with small workgroups
  { bm: 16, bn: 16, bk: 8, tm: 4, tn: 4 }, // 16 threads
  { bm: 4, bn: 4, bk: 4, tm: 4, tn: 4 }, // 1 thread: always fits
];

/**
 * The tile for an M x N output (times `batch`). Cost = padded outputs, times a penalty for
 * workgroups under 64 threads (idle SIMD lanes). Among tiles within 12.5% of the cheapest, the first
 * (largest) that still gives at least 32 workgroups wins, else the one giving the most workgroups:
 * a big tile on a small output would leave most of the GPU idle.
 */
export function chooseTile(m: number, n: number, batch: number, limits: WgslLimits): MatmulTile {
  const threads = (t: MatmulTile) => (t.bm / t.tm) * (t.bn / t.tn);
  const fits = MATMUL_TILES.filter((t) => threads(t) <= limits.maxWorkgroupSize && (t.bm + t.bn) * t.bk * 4 <= limits.maxWorkgroupStorage);
  if (!fits.length) throw new Error(`wgsl: no matmul tile fits maxWorkgroupStorage=${limits.maxWorkgroupStorage}`);
  const groups = (t: MatmulTile) => Math.ceil(m / t.bm) * Math.ceil(n / t.bn) * batch;
  const cost = (t: MatmulTile) => groups(t) * t.bm * t.bn * Math.max(1, 64 / threads(t));
  const best = Math.min(...fits.map(cost));
  const near = fits.filter((t) => cost(t) <= best * 1.125);
  return near.find((t) => groups(t) >= 32) ?? near.reduce((a, t) => (groups(t) > groups(a) ? t : a));
}

function matmul(k: MatmulKernel, plan: MemoryPlan, limits: WgslLimits, bases: number[], helpers: Set<Helper>, force?: MatmulTile) {
  const [batch, M, N] = k.shape;
  const K = k.k;
  const t = force ?? chooseTile(M, N, batch, limits);
  const { bm, bn, bk, tm, tn } = t;
  const tx = bn / tn; // threads along n
  const ty = bm / tm; // threads along m
  const threads = tx * ty;
  const tilesM = Math.ceil(M / bm);
  const tilesN = Math.ceil(N / bn);
  const total = tilesM * tilesN * batch;
  const groups = dispatch2d(total);
  const epiFn = exprFunction('epilogue', ['g0: i32', 'g1: i32', 'g2: i32', 'acc: f32'], k.epilogue, k.dtype, bases, helpers);
  const out = outBase(k, plan);
  const L: string[] = [];
  L.push(`var<workgroup> tileA: array<f32, ${bk * bm}>; // [k][m]`);
  L.push(`var<workgroup> tileB: array<f32, ${bk * bn}>; // [k][n]`);
  L.push('');
  L.push(`@compute @workgroup_size(${threads})`);
  L.push('fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {');
  L.push(`  let wid = wg.x + wg.y * ${u(groups[0])};`);
  L.push('  // uniform per workgroup, so the barriers below stay in uniform control flow');
  L.push(`  if (wid >= ${u(total)}) { return; }`);
  L.push(`  let nt = wid % ${u(tilesN)};`);
  L.push(`  let mt = (wid / ${u(tilesN)}) % ${u(tilesM)};`);
  L.push(`  let b = i32(wid / ${u(tilesN * tilesM)});`);
  L.push(`  let mOrigin = i32(mt * ${u(bm)});`);
  L.push(`  let nOrigin = i32(nt * ${u(bn)});`);
  L.push(`  let tx = i32(lid % ${u(tx)});`);
  L.push(`  let ty = i32(lid / ${u(tx)});`);
  /** Address (i32 word index) of a view element. */
  const addr = (v: View3, base: number, i: string, j: string, l: string) => {
    const terms = [`${base + v.offset}`];
    const add = (s: number, x: string) => {
      if (s !== 0) terms.push(s === 1 ? x : `${x} * ${i32Lit(s)}`);
    };
    add(v.strides[0], i);
    add(v.strides[1], j);
    add(v.strides[2], l);
    return terms.map((x, q) => (q === 0 ? `${x}i` : x)).join(' + ');
  };
  // Batch part of each operand's address, hoisted out of the K loop.
  L.push(`  let aBase = ${addr({ ...k.a, strides: [k.a.strides[0], 0, 0] }, bases[k.a.input], 'b', '', '')};`);
  L.push(`  let bBase = ${addr({ ...k.b, strides: [k.b.strides[0], 0, 0] }, bases[k.b.input], 'b', '', '')};`);
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) L.push(`  var c${i}_${j}: f32 = 0.0f;`);
  // Cooperative tile loads. Consecutive threads walk the operand's unit-stride axis when it has one.
  const loadTile = (name: string, base: string, rows: number, rowVar: string, rowLimit: number, rowStride: number, kStride: number, rowOrigin: string) => {
    const count = rows * bk;
    const per = Math.ceil(count / threads);
    const kInner = !(rowStride === 1 && kStride !== 1);
    const out: string[] = [];
    for (let q = 0; q < per; q++) {
      const e = `lid + ${u(q * threads)}`;
      const ind = '    ';
      const guard = count % threads !== 0 && q === per - 1;
      const lines: string[] = [];
      lines.push(`let e${q} = ${e};`);
      if (kInner) {
        lines.push(`let kk${q} = i32(e${q} % ${u(bk)});`, `let rr${q} = i32(e${q} / ${u(bk)});`);
      } else {
        lines.push(`let rr${q} = i32(e${q} % ${u(rows)});`, `let kk${q} = i32(e${q} / ${u(rows)});`);
      }
      lines.push(`let ${rowVar}${q} = ${rowOrigin} + rr${q};`, `let kg${q} = k0 + kk${q};`);
      const terms = ['' + base];
      if (rowStride !== 0) terms.push(rowStride === 1 ? `${rowVar}${q}` : `${rowVar}${q} * ${i32Lit(rowStride)}`);
      if (kStride !== 0) terms.push(kStride === 1 ? `kg${q}` : `kg${q} * ${i32Lit(kStride)}`);
      lines.push(`var x${q}: f32 = 0.0f;`);
      lines.push(`if (${rowVar}${q} < ${i32Lit(rowLimit)} && kg${q} < ${i32Lit(K)}) { x${q} = mem[u32(${terms.join(' + ')})]; }`);
      lines.push(`${name}[u32(kk${q}) * ${u(rows)} + u32(rr${q})] = x${q};`);
      if (guard) out.push(`${ind}if (${e} < ${u(count)}) {`, ...lines.map((l) => `${ind}  ${l}`), `${ind}}`);
      else out.push(...lines.map((l) => `${ind}${l}`));
    }
    return out;
  };
  L.push(`  for (var k0: i32 = 0i; k0 < ${i32Lit(K)}; k0 = k0 + ${i32Lit(bk)}) {`);
  L.push('    {');
  L.push(...loadTile('tileA', 'aBase', bm, 'ma', M, k.a.strides[1], k.a.strides[2], 'mOrigin').map((l) => '  ' + l));
  L.push('    }');
  L.push('    {');
  L.push(...loadTile('tileB', 'bBase', bn, 'nb', N, k.b.strides[2], k.b.strides[1], 'nOrigin').map((l) => '  ' + l));
  L.push('    }');
  L.push('    workgroupBarrier();');
  L.push(`    for (var kk: u32 = 0u; kk < ${u(bk)}; kk = kk + 1u) {`);
  // Thread (tx, ty) owns rows ty + i*ty_count and columns tx + j*tx_count: neighbouring threads read
  // neighbouring words of the tiles.
  for (let i = 0; i < tm; i++) L.push(`      let a${i} = tileA[kk * ${u(bm)} + u32(ty) + ${u(i * ty)}];`);
  for (let j = 0; j < tn; j++) L.push(`      let b${j} = tileB[kk * ${u(bn)} + u32(tx) + ${u(j * tx)}];`);
  for (let i = 0; i < tm; i++) for (let j = 0; j < tn; j++) L.push(`      c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`);
  L.push('    }');
  L.push('    workgroupBarrier();');
  L.push('  }');
  for (let i = 0; i < tm; i++) {
    L.push(`  let m${i} = mOrigin + ty + ${i32Lit(i * ty)};`);
    L.push(`  if (m${i} < ${i32Lit(M)}) {`);
    for (let j = 0; j < tn; j++) {
      L.push(`    let n${i}_${j} = nOrigin + tx + ${i32Lit(j * tx)};`);
      L.push(`    if (n${i}_${j} < ${i32Lit(N)}) {`);
      L.push(`      ${storeStmt(`u32(${out}i + (b * ${i32Lit(M)} + m${i}) * ${i32Lit(N)} + n${i}_${j})`, `epilogue(b, m${i}, n${i}_${j}, c${i}_${j})`, k.dtype)}`);
      L.push('    }');
    }
    L.push('  }');
  }
  L.push('}');
  return {
    code: `${epiFn}\n\n${L.join('\n')}`,
    workgroups: groups,
    note: `[${batch}] x [${M},${K}] x [${K},${N}], tile ${bm}x${bn}x${bk}, ${tm}x${tn} per thread, ${threads} threads`,
  };
}

function poolGrad(k: PoolGradKernel, plan: MemoryPlan, limits: WgslLimits, bases: number[]) {
  const [N, H, W, C] = k.shape;
  const [, OH, OW] = k.dyShape;
  const [KH, KW] = k.window;
  const [SH, SW] = k.strides;
  const PH = k.padding[0][0];
  const PW = k.padding[1][0];
  const n = numel(k.shape);
  const wg = Math.min(256, pow2Floor(limits.maxWorkgroupSize));
  const groups = dispatch2d(Math.ceil(n / wg));
  const [xb, dyb] = bases;
  const I = i32Lit;
  const L: string[] = [
    `@compute @workgroup_size(${wg})`,
    'fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {',
    `  let flat = (wg.x + wg.y * ${u(groups[0])}) * ${u(wg)} + lid;`,
    `  if (flat >= ${u(n)}) { return; }`,
    ...decode('flat', k.shape, 'g', '  '),
    '  // g0..g3 = (n, ih, iw, c) of this dx element',
    '  let me = g1 * ' + I(W) + ' + g2;',
    '  var acc: f32 = 0.0f;',
    // kh descending makes oh ascending: the order in which the reference adds into dx.
    `  for (var kh: i32 = ${I(KH - 1)}; kh >= 0i; kh = kh - 1i) {`,
    `    let th = g1 + ${I(PH)} - kh;`,
    `    if (th < 0i || th % ${I(SH)} != 0i) { continue; }`,
    `    let oh = th / ${I(SH)};`,
    `    if (oh >= ${I(OH)}) { continue; }`,
    `    for (var kw: i32 = ${I(KW - 1)}; kw >= 0i; kw = kw - 1i) {`,
    `      let tw = g2 + ${I(PW)} - kw;`,
    `      if (tw < 0i || tw % ${I(SW)} != 0i) { continue; }`,
    `      let ow = tw / ${I(SW)};`,
    `      if (ow >= ${I(OW)}) { continue; }`,
    `      let d = mem[${u(dyb)} + u32(((g0 * ${I(OH)} + oh) * ${I(OW)} + ow) * ${I(C)} + g3)];`,
  ];
  if (k.op === 'sum') {
    L.push('      acc = acc + d;');
  } else {
    // The window's first maximum in scan order (strict >), as the reference picks it.
    L.push(
      '      var best: i32 = -1i;',
      '      var bv: f32 = 0.0f;',
      `      for (var qh: i32 = 0i; qh < ${I(KH)}; qh = qh + 1i) {`,
      `        let h = oh * ${I(SH)} + qh - ${I(PH)};`,
      `        if (h < 0i || h >= ${I(H)}) { continue; }`,
      `        for (var qw: i32 = 0i; qw < ${I(KW)}; qw = qw + 1i) {`,
      `          let w = ow * ${I(SW)} + qw - ${I(PW)};`,
      `          if (w < 0i || w >= ${I(W)}) { continue; }`,
      `          let v = mem[${u(xb)} + u32(((g0 * ${I(H)} + h) * ${I(W)} + w) * ${I(C)} + g3)];`,
      '          if (best < 0i || v > bv) { best = h * ' + I(W) + ' + w; bv = v; }',
      '        }',
      '      }',
      '      if (best == me) { acc = acc + d; }',
    );
  }
  L.push('    }', '  }', `  ${storeStmt(`${u(outBase(k, plan))} + flat`, 'acc', 'f32')}`, '}');
  return { code: L.join('\n'), workgroups: groups, note: `${k.op} pooling gradient, window [${k.window}], strides [${k.strides}], one invocation per dx element` };
}
