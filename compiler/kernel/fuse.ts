/**
 * @file Fusion: graph IR `Func` → kernel IR `Program`.
 *
 * Decides which values live in buffers ("materialized") and builds one kernel per materialized
 * value, inlining everything else as expression trees:
 *  - function inputs and outputs are materialized; so is any non-trivial value with several uses
 *    (recomputing it in each consumer could multiply work);
 *  - each reduction (reduce_*, dot, conv, reduce_window) is fused into the kernel of the end of the
 *    single-use, same-shape elementwise chain that consumes it (its epilogue: conv + bias + relu is
 *    one kernel); a kernel holds at most one reduction, further ones are materialized;
 *  - `dot` operands must be strided views (reshape/transpose of a buffer), `conv` is lowered to an
 *    im2col kernel (padding and dilation become predicates) feeding a matmul kernel, or, where
 *    ir/winograd.ts's rule takes it, to Winograd F(2x2, 3x3) transform kernels around a batched
 *    matmul (winograd.ts), and `reduce_window_grad` reads its operands from buffers; operands that
 *    are not are materialized.
 * Movement ops never copy: they become index arithmetic (expr.ts simplifies it). Loads that a
 * predicate guards (pad, conv padding, concat) use clamped indices, because generated code evaluates
 * both sides of a select and must never read outside a buffer.
 */
import { funcNodes, makeFunc, useCounts } from '../../ir/graph.ts';
import type { BinaryOp, DType, Func, Node, NodeWith, Op, Shape, UnaryOp } from '../../ir/types.ts';
import { BINARY_OPS, isBinaryOp, isUnaryOp, numel, shapeEq, stridesOf, UNARY_OPS } from '../../ir/types.ts';
import { winogradFits, winogradPays } from '../../ir/winograd.ts';
import type { IndexSpace } from './expr.ts';
import * as E from './expr.ts';
import type { BufferInfo, Expr, Kernel, Loop, LoopCopy, Program } from './types.ts';
import * as WG from './winograd.ts';

/**
 * How fusion treats each op. A mapped type over every op, so a new op is a type error here until it
 * is classified; unary and binary ops are classified by their lists in ir/types.ts.
 */
type OpClass = 'leaf' | 'elementwise' | 'movement' | 'reduction' | 'loop';
const each = <K extends string, C extends OpClass>(ops: readonly K[], c: C) => Object.fromEntries(ops.map((o) => [o, c])) as Record<K, C>;
const OP_CLASS: { readonly [O in Op]: OpClass } = {
  input: 'leaf',
  constant: 'leaf',
  iota: 'leaf',
  random_uniform: 'leaf',
  ...each(UNARY_OPS, 'elementwise'),
  ...each(BINARY_OPS, 'elementwise'),
  select: 'elementwise',
  cast: 'elementwise',
  reduce_sum: 'reduction',
  reduce_max: 'reduction',
  reshape: 'movement',
  transpose: 'movement',
  broadcast: 'movement',
  slice: 'movement',
  pad: 'movement',
  concat: 'movement',
  reverse: 'movement',
  dot: 'reduction',
  conv: 'reduction',
  reduce_window: 'reduction',
  reduce_window_grad: 'reduction',
  scan: 'loop',
  scan_result: 'loop',
};
const isReduction = (n: Node) => OP_CLASS[n.op] === 'reduction';

/** Unary and binary nodes become `un`/`bin` expressions with the same op: the kernel IR's ALU ops include them. */
const isUnary = (n: Node): n is NodeWith<UnaryOp> => isUnaryOp(n.op);
const isBinary = (n: Node): n is NodeWith<BinaryOp> => isBinaryOp(n.op);

type ConvParams = (Node & { op: 'conv' })['params'];

/**
 * The shape autodiff gives a conv's kernel gradient: conv(transpose(x, [3,1,2,0]),
 * transpose(dy, [1,2,0,3])) without lhs dilation. Returns x and dy, or null.
 */
function kernelGradPattern(r: Node): { x: Node; ct: Node } | null {
  if (r.op !== 'conv' || r.params.lhsDilation.some((d) => d !== 1)) return null;
  const [a, w] = r.inputs;
  const is = (n: Node, perm: number[]) => n.op === 'transpose' && n.params.perm.every((p, i) => p === perm[i]);
  return is(a, [3, 1, 2, 0]) && is(w, [1, 2, 0, 3]) ? { x: a.inputs[0], ct: w.inputs[0] } : null;
}

/** Whether a conv (not a kernel gradient) is lowered with Winograd F(2x2, 3x3) (ir/winograd.ts's rule). */
function winogradConv(r: Node): boolean {
  if (r.op !== 'conv' || kernelGradPattern(r)) return false;
  const [x, w] = r.inputs;
  const [N, OH, OW, O] = r.shape;
  return winogradFits({ kernel: w.shape, ...r.params }) && winogradPays(N, OH, OW, x.shape[3], O);
}

/**
 * Whether a kernel gradient (`kernelGradPattern`) is computed with Winograd: the forward conv it
 * belongs to (x [N, H, W, C], kernel [3, 3, C, O], output [N, OH, OW, O] = ct's shape) qualifies.
 * The kernel-gradient conv carries the forward's strides as its rhs dilation and vice versa.
 */
function winogradKernelGrad(r: Node, x: Node, ct: Node): boolean {
  if (r.op !== 'conv') return false;
  const p = r.params;
  const [N, OH, OW, O] = ct.shape;
  return winogradFits({ kernel: r.shape.slice(1, 3), strides: p.rhsDilation, lhsDilation: p.lhsDilation, rhsDilation: p.strides }) && winogradPays(N, OH, OW, x.shape[3], O);
}

/** Replaces every `acc` in `e` by `v` (a reduction's epilogue around a value computed another way). */
function substAcc(e: Expr, v: Expr): Expr {
  switch (e.k) {
    case 'acc':
      return v;
    case 'load':
      return e;
    case 'un':
    case 'cast':
      return { ...e, a: substAcc(e.a, v) };
    case 'bin':
      return { ...e, a: substAcc(e.a, v), b: substAcc(e.b, v) };
    case 'select':
      return { ...e, c: substAcc(e.c, v), a: substAcc(e.a, v), b: substAcc(e.b, v) };
    default:
      return e;
  }
}

export function fuse(f: Func): Program {
  return new Fuser(f).run();
}

class Fuser {
  private readonly order: Node[];
  private readonly uses: Map<number, number>;
  private readonly users = new Map<number, Node[]>();
  /** Materialized nodes → buffer id. */
  private readonly buf = new Map<number, number>();
  private readonly materialized = new Set<number>();
  /** Chain root id → the reduction fused into its kernel. */
  private readonly owned = new Map<number, Node>();
  private readonly buffers: BufferInfo[] = [];
  private readonly kernels: Kernel[] = [];
  private readonly loops: Loop[] = [];
  /** A scan operand that is a reshape of a buffer → that buffer's node (see `decide`). */
  private readonly sameData = new Map<number, Node>();
  /** Scan node id → the buffer of each of its results. */
  private readonly scanResults = new Map<number, number[]>();
  private readonly names = new Map<string, number>();
  /**
   * Winograd input transforms already emitted, by input node, padding and output size: a conv's
   * kernel gradient reads the transform its forward pass made (the plan keeps it live in between).
   */
  private readonly winogradInputs = new Map<string, { id: number; T: number; TH: number; TW: number }>();

  constructor(private readonly f: Func) {
    this.order = funcNodes(f);
    this.uses = useCounts(this.order, f.outputs);
    for (const n of this.order) for (const i of n.inputs) (this.users.get(i.id) ?? this.users.set(i.id, []).get(i.id)!).push(n);
  }

  run(): Program {
    this.decide();
    const inputs = this.f.inputs.map((n) => this.bufferFor(n, n.op === 'input' ? 'input' : 'temp', n.params.name));
    const outIds = new Set(this.f.outputs.map((o) => o.id));
    for (const n of this.order) {
      if (!this.materialized.has(n.id) || n.op === 'input') continue;
      const outIdx = this.f.outputs.indexOf(n);
      if (n.op === 'scan') {
        this.emitScan(n);
        continue;
      }
      if (n.op === 'scan_result') {
        // The scan made this result's buffer; a function output takes it over as its own (two equal
        // scan_result nodes, if CSE has not merged them, share it, as they share the value).
        const id = this.scanResults.get(n.inputs[0].id)![n.params.index];
        if (outIdx >= 0 && this.buffers[id].role !== 'output') this.buffers[id] = { ...this.buffers[id], role: 'output', name: this.f.outputNames[outIdx] };
        this.buf.set(n.id, id);
        continue;
      }
      this.bufferFor(n, outIds.has(n.id) ? 'output' : 'temp', outIdx >= 0 ? this.f.outputNames[outIdx] : '');
      this.emit(n);
    }
    // An output that is a function input unchanged gets its own buffer through a copy kernel.
    const outputs = this.f.outputs.map((o, i) => {
      if (o.op !== 'input') return this.buf.get(o.id)!;
      const id = this.newBuffer(o.dtype, o.shape, 'output', this.f.outputNames[i]);
      this.emitCopy(this.buf.get(o.id)!, id, o.dtype, o.shape);
      return id;
    });
    return { name: this.f.name, buffers: this.buffers, kernels: this.loops.length ? this.uniqueNames() : this.kernels, loops: this.loops, inputs, outputs, outputNames: this.f.outputNames };
  }

  private emitCopy(from: number, to: number, dtype: DType, shape: Shape): void {
    this.kernels.push({
      kind: 'elementwise', name: this.kname('E', shape, ['copy']), ops: ['copy'], inputs: [from], output: to,
      shape, dtype, expr: { k: 'load', input: 0, index: E.linear(shape.map((_, a) => E.idx(a)), shape), dtype },
    });
  }

  /**
   * A scan: its body is fused on its own into a sub-program whose kernels are spliced in as a loop
   * range. The body's const inputs are the scan's operand buffers; its carry and xs inputs and every
   * other body buffer get fresh buffers here. The carry buffers hold the final carries after the
   * loop, so they are the scan's carry results; each ys result is a new stacked buffer.
   */
  private emitScan(n: NodeWith<'scan'>): void {
    const { body, length, reverse, carries: C, xs: X } = n.params;
    const outer = (i: number) => this.buf.get(n.inputs[i].id) ?? this.buf.get(this.sameData.get(n.inputs[i].id)!.id)!;
    // A ys that is a body input unchanged (autodiff's saved carries) is copied out of that input's
    // buffer by the loop itself rather than through a copy kernel in the body.
    const passThrough = body.outputs.map((o, i) => (i >= C && o.op === 'input' ? body.inputs.indexOf(o) : -1));
    const keptIdx = body.outputs.map((_, i) => i).filter((i) => passThrough[i] < 0);
    const fused = keptIdx.length === body.outputs.length ? body : makeFunc(body.name, body.inputs, keptIdx.map((i) => body.outputs[i]), keptIdx.map((i) => body.outputNames[i]));
    const sub = new Fuser(fused).run();
    const map = new Array<number>(sub.buffers.length).fill(-1);
    sub.inputs.forEach((bid, i) => {
      if (i >= C + X) map[bid] = outer(i);
    });
    for (const info of sub.buffers) {
      if (map[info.id] < 0) map[info.id] = this.newBuffer(info.dtype, info.shape, 'temp', info.role === 'temp' ? '' : `${body.name}.${info.name}`);
    }
    const start = this.kernels.length;
    for (const k of sub.kernels) this.kernels.push({ ...k, inputs: k.inputs.map((b) => map[b]), output: map[k.output] });
    const end = this.kernels.length;
    if (end === start) throw new Error(`fuse: the body of scan @${body.name} has no kernels`);
    const remap = (c: LoopCopy): LoopCopy => ({ ...c, from: map[c.from], to: map[c.to] });
    const inner = sub.loops.map((l) => ({ ...l, start: l.start + start, end: l.end + start, init: l.init.map(remap), enter: l.enter.map(remap), exit: l.exit.map(remap) }));
    const numelOf = (b: number) => numel(this.buffers[b].shape);
    const ys = body.outputs.slice(C).map((y) => this.newBuffer(y.dtype, [length, ...y.shape], 'temp', ''));
    const carryBufs = sub.inputs.slice(0, C).map((b) => map[b]);
    // The buffer holding body output i at the end of a step.
    const outBuf = (i: number) => (passThrough[i] >= 0 ? map[sub.inputs[passThrough[i]]] : map[sub.outputs[keptIdx.indexOf(i)]]);
    const loop: Loop = {
      start, end, length, reverse,
      init: carryBufs.map((to, j) => ({ from: outer(j), to, fromStep: false, toStep: false, elements: numelOf(to) })),
      enter: sub.inputs.slice(C, C + X).map((b, i) => ({ from: outer(C + i), to: map[b], fromStep: true, toStep: false, elements: numelOf(map[b]) })),
      // ys first: a saved carry is read before the next carry overwrites it.
      exit: [
        ...ys.map((to, i) => ({ from: outBuf(C + i), to, fromStep: false, toStep: true, elements: numelOf(outBuf(C + i)) })),
        ...carryBufs.map((to, j) => ({ from: outBuf(j), to, fromStep: false, toStep: false, elements: numelOf(to) })),
      ],
    };
    this.loops.push(loop, ...inner);
    this.scanResults.set(n.id, [...carryBufs, ...ys]);
  }

  /** Kernel names unique in the program: a spliced loop body brings names of its own. */
  private uniqueNames(): Kernel[] {
    const used = new Set<string>();
    return this.kernels.map((k) => {
      let name = k.name;
      for (let i = 1; used.has(name); i++) name = `${k.name}_L${i}`;
      used.add(name);
      return name === k.name ? k : { ...k, name };
    });
  }

  // ------------------------------------------------------------------ deciding what to materialize

  private cheap(n: Node): boolean {
    if (n.op === 'constant' || n.op === 'iota') return true;
    if (OP_CLASS[n.op] === 'movement' && n.op !== 'concat' && n.op !== 'pad') return n.inputs.every((i) => this.materialized.has(i.id) || this.cheap(i));
    return false;
  }

  private decide(): void {
    const M = this.materialized;
    for (const n of this.f.inputs) M.add(n.id);
    for (const n of this.f.outputs) M.add(n.id);
    // Pass 1 (topological): multi-use values and every reduction, tentatively. A scan reads and
    // writes whole buffers (its operands, its results), so all of those are materialized.
    for (const n of this.order) {
      if (n.op === 'input') continue;
      if (OP_CLASS[n.op] === 'loop') {
        M.add(n.id);
        continue;
      }
      if (isReduction(n)) M.add(n.id);
      // (A reshape read only by scans is left to the scan pass below, which reads its operand's buffer.)
      else if ((this.uses.get(n.id) ?? 0) > 1 && !this.cheap(n) && !(n.op === 'reshape' && this.users.get(n.id)!.every((u) => u.op === 'scan'))) M.add(n.id);
    }
    // Pass 2: fuse each reduction into the end of its single-use elementwise chain.
    for (const r of this.order) {
      if (!isReduction(r) || r.op === 'reduce_window_grad' || this.owned.has(r.id) || kernelGradPattern(r)) continue;
      let root: Node = r;
      for (;;) {
        if (root !== r && M.has(root.id)) break;
        if (root === r && this.f.outputs.includes(r)) break;
        const us: Node[] = this.users.get(root.id) ?? [];
        if ((this.uses.get(root.id) ?? 0) !== 1 || us.length !== 1) break;
        const u: Node = us[0];
        if (OP_CLASS[u.op] !== 'elementwise' || !shapeEq(u.shape, r.shape)) break;
        root = u;
      }
      if (root === r || this.owned.has(root.id)) continue;
      M.delete(r.id);
      M.add(root.id);
      this.owned.set(root.id, r);
    }
    for (const n of this.order) if (M.has(n.id) && isReduction(n) && !this.owned.has(n.id)) this.owned.set(n.id, n);
    // Pass 3: operands that must be buffers.
    for (const n of this.order) {
      if (n.op === 'dot') for (const x of n.inputs) if (!this.viewOf(x)) M.add(x.id);
      const kg = n.op === 'conv' ? kernelGradPattern(n) : null;
      if (kg) M.add(kg.ct.id);
      // (A Winograd conv reads its kernel through index math in the weight transform.)
      else if (n.op === 'conv' && !winogradConv(n) && !this.contiguous(n.inputs[1])) M.add(n.inputs[1].id);
      if (n.op === 'reduce_window_grad') for (const x of n.inputs) M.add(x.id);
    }
    // A scan reads whole buffers. A reshape has the row-major data of its operand, so an operand that
    // is a reshape of a buffer reads that buffer (no copy kernel for the reshape).
    for (const n of this.order) {
      if (n.op !== 'scan') continue;
      for (const x of n.inputs) {
        if (M.has(x.id)) continue;
        let y = x;
        while (y.op === 'reshape' && !M.has(y.id)) y = y.inputs[0];
        M.add(y.id);
        if (y !== x) this.sameData.set(x.id, y);
      }
    }
  }

  private contiguous(n: Node): boolean {
    let x = n;
    while (x.op === 'reshape' && !this.materialized.has(x.id)) x = x.inputs[0];
    return this.materialized.has(x.id);
  }

  /**
   * A strided view of `n` over its own row-major index space, if `n` is a chain of reshapes and
   * transposes over a materialized value: offset + Σ idx_i * strides[i].
   */
  private viewOf(n: Node): { base: Node; offset: number; strides: number[] } | null {
    if (this.materialized.has(n.id)) return { base: n, offset: 0, strides: stridesOf(n.shape) };
    if (n.op === 'transpose') {
      const v = this.viewOf(n.inputs[0]);
      return v && { base: v.base, offset: v.offset, strides: n.params.perm.map((p) => v.strides[p]) };
    }
    if (n.op === 'broadcast') {
      const v = this.viewOf(n.inputs[0]);
      if (!v) return null;
      const st = new Array<number>(n.shape.length).fill(0);
      n.params.axes.forEach((a, i) => (st[a] = n.inputs[0].shape[i] === 1 ? 0 : v.strides[i]));
      return { base: v.base, offset: v.offset, strides: st };
    }
    if (n.op === 'reshape') {
      const v = this.viewOf(n.inputs[0]);
      return v && reshapeStrides(n.inputs[0].shape, v.strides, n.shape) && { base: v.base, offset: v.offset, strides: reshapeStrides(n.inputs[0].shape, v.strides, n.shape)! };
    }
    return null;
  }

  // ------------------------------------------------------------------ buffers and names

  private newBuffer(dtype: DType, shape: Shape, role: BufferInfo['role'], name: string): number {
    const id = this.buffers.length;
    this.buffers.push({ id, dtype, shape, role, name });
    return id;
  }

  private bufferFor(n: Node, role: BufferInfo['role'], name: string): number {
    const have = this.buf.get(n.id);
    if (have !== undefined) return have;
    const id = this.newBuffer(n.dtype, n.shape, role, name);
    this.buf.set(n.id, id);
    return id;
  }

  private kname(prefix: string, shape: Shape, ops: readonly string[]): string {
    const uniq = [...new Set(ops)].slice(0, 4);
    const base = `${prefix}_${shape.join('_') || 's'}${uniq.length ? '_' + uniq.join('_') : ''}`;
    const k = this.names.get(base) ?? 0;
    this.names.set(base, k + 1);
    return k ? `${base}_${k}` : base;
  }

  // ------------------------------------------------------------------ kernel construction

  private emit(n: Node): void {
    const r = this.owned.get(n.id);
    const out = this.buf.get(n.id)!;
    const ctx = new KernelCtx(this, r ?? null);
    if (!r) {
      const sp: IndexSpace = { grid: n.shape, rgrid: [] };
      const expr = ctx.at(n, n.shape.map((_, a) => E.idx(a)), sp, true);
      this.kernels.push({ kind: 'elementwise', name: this.kname('E', n.shape, ctx.ops), ops: ctx.ops, inputs: ctx.inputs, output: out, shape: n.shape, dtype: n.dtype, expr });
      return;
    }
    switch (r.op) {
      case 'reduce_sum':
      case 'reduce_max': {
        const x = r.inputs[0];
        const axes = r.params.axes;
        const rshape = axes.map((a) => x.shape[a]);
        const sp: IndexSpace = { grid: n.shape, rgrid: rshape };
        const ix: Expr[] = [];
        let g = 0;
        for (let a = 0; a < x.shape.length; a++) ix.push(axes.includes(a) ? E.ridx(axes.indexOf(a)) : E.idx(g++));
        const body = ctx.at(x, ix, sp);
        ctx.ops.push(r.op);
        const epilogue = ctx.at(n, n.shape.map((_, a) => E.idx(a)), sp, true);
        this.kernels.push({
          kind: 'reduce', name: this.kname('r', [...n.shape, ...rshape], ctx.ops), ops: ctx.ops, inputs: ctx.inputs, output: out,
          shape: n.shape, dtype: n.dtype, op: r.op === 'reduce_sum' ? 'sum' : 'max', rshape, body, epilogue,
        });
        return;
      }
      case 'reduce_window': {
        const x = r.inputs[0];
        const p = r.params;
        const sp: IndexSpace = { grid: n.shape, rgrid: p.window };
        const [, H, W] = x.shape;
        const ih = E.isub(E.iadd(E.imul(E.idx(1), E.cI(p.strides[0])), E.ridx(0)), E.cI(p.padding[0][0]));
        const iw = E.isub(E.iadd(E.imul(E.idx(2), E.cI(p.strides[1])), E.ridx(1)), E.cI(p.padding[1][0]));
        const inb = E.bin('and', E.inBounds(ih, 0, H, sp), E.inBounds(iw, 0, W, sp), 'bool');
        const clamp = (e: Expr) => E.select(inb, e, E.cI(0), 'i32');
        const v = ctx.at(x, [E.idx(0), clamp(ih), clamp(iw), E.idx(3)], sp);
        const body = E.select(inb, v, E.cF(p.op === 'max' ? -Infinity : 0), 'f32');
        ctx.ops.push(`${r.op}_${p.op}`);
        const epilogue = ctx.at(n, n.shape.map((_, a) => E.idx(a)), sp, true);
        this.kernels.push({
          kind: 'reduce', name: this.kname('r', [...n.shape, ...p.window], ctx.ops), ops: ctx.ops, inputs: ctx.inputs, output: out,
          shape: n.shape, dtype: n.dtype, op: p.op, rshape: p.window, body, epilogue,
        });
        return;
      }
      case 'reduce_window_grad': {
        const [x, dy] = r.inputs;
        ctx.ops.push(`pool_grad_${r.params.op}`);
        this.kernels.push({
          kind: 'pool_grad', name: this.kname('P', x.shape, ctx.ops), ops: ctx.ops, inputs: [this.buf.get(x.id)!, this.buf.get(dy.id)!], output: out,
          shape: x.shape, dtype: 'f32', op: r.params.op, window: r.params.window, strides: r.params.strides, padding: r.params.padding, dyShape: dy.shape,
        });
        return;
      }
      case 'dot': {
        const [a, b] = r.inputs;
        const rank = r.shape.length;
        const M = r.shape[rank - 2];
        const N = r.shape[rank - 1];
        const K = a.shape[rank - 1];
        const batch = numel(r.shape.slice(0, rank - 2));
        const va = this.view3(a, batch);
        const vb = this.view3(b, batch);
        const grid = [batch, M, N];
        const sp: IndexSpace = { grid, rgrid: [] };
        const ia = ctx.inputIndex(va.base);
        const ib = ctx.inputIndex(vb.base);
        ctx.ops.push('dot');
        const outIx = [...E.unlinear(E.idx(0), r.shape.slice(0, rank - 2), sp), E.idx(1), E.idx(2)];
        const epilogue = ctx.at(n, outIx, sp, true);
        this.kernels.push({
          kind: 'matmul', name: this.kname('m', [batch, M, N, K], ctx.ops), ops: ctx.ops, inputs: ctx.inputs, output: out, shape: grid, dtype: 'f32', k: K,
          a: { input: ia, offset: va.offset, strides: va.strides }, b: { input: ib, offset: vb.offset, strides: vb.strides }, epilogue,
        });
        return;
      }
      case 'conv': {
        const kg = kernelGradPattern(r);
        if (kg) {
          this.emitKernelGrad(r, kg.x, kg.ct, out);
          return;
        }
        if (winogradConv(r)) {
          this.emitWinogradConv(n, r, ctx, out);
          return;
        }
        const [x, w] = r.inputs;
        const [N, , , C] = x.shape;
        const [KH, KW, , O] = w.shape;
        const [, OH, OW] = r.shape;
        const Mr = N * OH * OW;
        const Kq = KH * KW * C;
        const pid = this.emitIm2col(x, r.params, KH, KW, OH, OW);
        const grid = [1, Mr, O];
        const sp: IndexSpace = { grid, rgrid: [] };
        const ia = ctx.inputBuffer(pid);
        const vw = this.viewOf(w)!;
        const ib = ctx.inputIndex(vw.base);
        ctx.ops.push('conv');
        const outIx = [...E.unlinear(E.idx(1), [N, OH, OW], sp), E.idx(2)];
        const epilogue = ctx.at(n, outIx, sp, true);
        this.kernels.push({
          kind: 'matmul', name: this.kname('m', [1, Mr, O, Kq], ctx.ops), ops: ctx.ops, inputs: ctx.inputs, output: out, shape: grid, dtype: 'f32', k: Kq,
          a: { input: ia, offset: 0, strides: [0, Kq, 1] }, b: { input: ib, offset: vw.offset, strides: [0, O, 1] }, epilogue,
        });
        return;
      }
      default:
        throw new Error(`fuse: ${r.op} is not a reduction`);
    }
  }

  /**
   * im2col for a conv of `x` with a KHxKW kernel: patches[m, q], m = (n, oh, ow), q = (kh, kw, c),
   * zero where the window reads padding or a hole of the lhs dilation. Returns the patches buffer.
   */
  private emitIm2col(x: Node, p: ConvParams, KH: number, KW: number, OH: number, OW: number): number {
    const [N, H, W, C] = x.shape;
    const pshape = [N * OH * OW, KH * KW * C];
    const psp: IndexSpace = { grid: pshape, rgrid: [] };
    const pctx = new KernelCtx(this, null);
    const [nn, oh, ow] = E.unlinear(E.idx(0), [N, OH, OW], psp);
    const [kh, kw, c] = E.unlinear(E.idx(1), [KH, KW, C], psp);
    const conds: Expr[] = [];
    const coord = (o: Expr, k: Expr, i: 0 | 1, size: number) => {
      const d = E.isub(E.iadd(E.imul(o, E.cI(p.strides[i])), E.imul(k, E.cI(p.rhsDilation[i]))), E.cI(p.padding[i][0]));
      const ld = p.lhsDilation[i];
      const inside = E.inBounds(d, 0, (size - 1) * ld + 1, psp);
      conds.push(inside);
      if (ld === 1) return d;
      const safe = E.select(inside, d, E.cI(0), 'i32');
      conds.push(E.bin('equal', E.imod(safe, ld, psp), E.cI(0), 'bool'));
      return E.idiv(safe, ld, psp);
    };
    const ihRaw = coord(oh, kh, 0, H);
    const iwRaw = coord(ow, kw, 1, W);
    const inb = conds.reduce((acc, e) => E.bin('and', acc, e, 'bool'), E.cB(true));
    const clamp = (e: Expr) => E.select(inb, e, E.cI(0), 'i32');
    const v = pctx.at(x, [nn, clamp(ihRaw), clamp(iwRaw), c], psp);
    pctx.ops.push('im2col');
    const pid = this.newBuffer('f32', pshape, 'temp', '');
    this.kernels.push({
      kind: 'elementwise', name: this.kname('E', pshape, pctx.ops), ops: pctx.ops, inputs: pctx.inputs, output: pid, shape: pshape, dtype: 'f32',
      expr: E.select(inb, v, E.cF(0), 'f32'),
    });
    return pid;
  }

  /**
   * The kernel gradient of a conv, which autodiff writes as conv(transpose(x), transpose(dy)) with
   * batch and channels swapped. Computed directly as patches(x)^T @ dy: the forward im2col of x (a
   * contiguous gather that vectorises) read transposed through matmul strides, times dy as it is, into
   * an HWIO-ordered temporary; a small kernel then writes it in the conv's [C, KH, KW, O] order.
   */
  private emitKernelGrad(r: Node & { op: 'conv' }, x: Node, ct: Node, out: number): void {
    const p = r.params;
    const [N, , , C] = x.shape;
    const [, KH, KW, O] = r.shape;
    const [, OH, OW] = ct.shape;
    if (winogradKernelGrad(r, x, ct)) {
      this.emitWinogradKernelGrad(r, x, ct, out);
      return;
    }
    const fwd: ConvParams = { strides: p.rhsDilation, rhsDilation: p.strides, padding: p.padding, lhsDilation: [1, 1] };
    const pid = this.emitIm2col(x, fwd, KH, KW, OH, OW);
    const Mr = N * OH * OW;
    const Kq = KH * KW * C;
    const tid = this.newBuffer('f32', [Kq, O], 'temp', '');
    const ctBuf = this.bufferOf(ct);
    this.kernels.push({
      kind: 'matmul', name: this.kname('m', [1, Kq, O, Mr], ['conv_kernel_grad']), ops: ['conv_kernel_grad'], inputs: [pid, ctBuf], output: tid,
      shape: [1, Kq, O], dtype: 'f32', k: Mr, a: { input: 0, offset: 0, strides: [0, 1, Kq] }, b: { input: 1, offset: 0, strides: [0, O, 1] }, epilogue: { k: 'acc' },
    });
    const [c, kh, kw, o] = [0, 1, 2, 3].map(E.idx);
    const q = E.iadd(E.imul(E.iadd(E.imul(kh, E.cI(KW)), kw), E.cI(C)), c);
    this.kernels.push({
      kind: 'elementwise', name: this.kname('E', r.shape, ['transpose']), ops: ['transpose'], inputs: [tid], output: out, shape: r.shape, dtype: 'f32',
      expr: { k: 'load', input: 0, index: E.iadd(E.imul(q, E.cI(O)), o), dtype: 'f32' },
    });
  }

  /**
   * V = Bᵀ d B for every 4x4 input tile of a 3x3 unit-stride conv of `x` with output OHxOW and
   * padding `lo` before each spatial axis: a [4, 4, N, TH, TW, C] buffer (TH = ceil(OH/2)), i.e. 16
   * [T, C] matrices with T = N*TH*TW tiles. Tile (ti, tj) starts at input row 2*ti - lo; pixels
   * outside the input (the padding, and the row or column past the last output when OH or OW is
   * odd) read as zero, which only the outputs past OHxOW see.
   */
  private emitWinogradInput(x: Node, lo: readonly number[], OH: number, OW: number): { id: number; T: number; TH: number; TW: number } {
    const key = `${x.id}:${lo.join(',')}:${OH}x${OW}`;
    const have = this.winogradInputs.get(key);
    if (have) return have;
    const [N, H, W, C] = x.shape;
    const [TH, TW] = [Math.ceil(OH / 2), Math.ceil(OW / 2)];
    const shape = [4, 4, N, TH, TW, C];
    const sp: IndexSpace = { grid: shape, rgrid: [] };
    const vctx = new KernelCtx(this, null);
    const [a, bb, nn, ti, tj, c] = shape.map((_, i) => E.idx(i));
    const expr = WG.transform2(WG.BT, a, bb, (i, j) => {
      const ih = E.iadd(E.imul(ti, E.cI(2)), E.isub(i, E.cI(lo[0])));
      const iw = E.iadd(E.imul(tj, E.cI(2)), E.isub(j, E.cI(lo[1])));
      const inb = E.bin('and', E.inBounds(ih, 0, H, sp), E.inBounds(iw, 0, W, sp), 'bool');
      const clamp = (e: Expr) => E.select(inb, e, E.cI(0), 'i32');
      return E.select(inb, vctx.at(x, [nn, clamp(ih), clamp(iw), c], sp), E.cF(0), 'f32');
    });
    vctx.ops.push('winograd_input');
    const id = this.newBuffer('f32', shape, 'temp', '');
    this.kernels.push({ kind: 'elementwise', name: this.kname('E', shape, vctx.ops), ops: vctx.ops, inputs: vctx.inputs, output: id, shape, dtype: 'f32', expr });
    const v = { id, T: N * TH * TW, TH, TW };
    this.winogradInputs.set(key, v);
    return v;
  }

  /**
   * A conv by Winograd F(2x2, 3x3) (see winograd.ts): V = Bᵀ d B per input tile, U = G g Gᵀ per
   * kernel (read through index math, so a flipped or transposed kernel view costs nothing), M = 16
   * matmuls [T, C] x [C, O], then the kernel that writes the conv's result: Aᵀ M A for each output
   * pixel, inside the conv's fused epilogue (bias, activation), exactly where the im2col path's
   * matmul epilogue would run.
   */
  private emitWinogradConv(n: Node, r: Node & { op: 'conv' }, ctx: KernelCtx, out: number): void {
    const [x, w] = r.inputs;
    const C = x.shape[3];
    const [, OH, OW, O] = r.shape;
    const v = this.emitWinogradInput(x, r.params.padding.map((p) => p[0]), OH, OW);
    // U[a, b, c, o] = Σ G[a][i] G[b][j] w[i, j, c, o]
    const ushape = [4, 4, C, O];
    const usp: IndexSpace = { grid: ushape, rgrid: [] };
    const uctx = new KernelCtx(this, null);
    const [ua, ub, uc, uo] = ushape.map((_, i) => E.idx(i));
    const uexpr = WG.transform2(WG.G, ua, ub, (i, j) => uctx.at(w, [i, j, uc, uo], usp));
    uctx.ops.push('winograd_kernel');
    const uid = this.newBuffer('f32', ushape, 'temp', '');
    this.kernels.push({ kind: 'elementwise', name: this.kname('E', ushape, uctx.ops), ops: uctx.ops, inputs: uctx.inputs, output: uid, shape: ushape, dtype: 'f32', expr: uexpr });
    // M[ξ, t, o] = Σ_c V[ξ, t, c] U[ξ, c, o]
    const mid = this.newBuffer('f32', [16, v.T, O], 'temp', '');
    this.kernels.push({
      kind: 'matmul', name: this.kname('m', [16, v.T, O, C], ['winograd']), ops: ['winograd'], inputs: [v.id, uid], output: mid, shape: [16, v.T, O], dtype: 'f32', k: C,
      a: { input: 0, offset: 0, strides: [v.T * C, C, 1] }, b: { input: 1, offset: 0, strides: [C * O, O, 1] }, epilogue: { k: 'acc' },
    });
    // out[n, oh, ow, o] = epilogue(Σ Aᵀ[oh%2][a] Aᵀ[ow%2][b] M[(a, b), tile(n, oh/2, ow/2), o])
    const sp: IndexSpace = { grid: n.shape, rgrid: [] };
    const [nn, oh, ow, o] = n.shape.map((_, i) => E.idx(i));
    const im = ctx.inputBuffer(mid);
    const t = E.iadd(E.imul(E.iadd(E.imul(nn, E.cI(v.TH)), E.idiv(oh, 2, sp)), E.cI(v.TW)), E.idiv(ow, 2, sp));
    const y = WG.transform2(WG.AT, E.imod(oh, 2, sp), E.imod(ow, 2, sp), (a, b) => ({
      k: 'load', input: im, dtype: 'f32', index: E.iadd(E.imul(E.iadd(E.imul(E.iadd(E.imul(a, E.cI(4)), b), E.cI(v.T)), t), E.cI(O)), o),
    }));
    ctx.ops.push('conv_winograd');
    const expr = substAcc(ctx.at(n, [nn, oh, ow, o], sp, true), y);
    this.kernels.push({ kind: 'elementwise', name: this.kname('E', n.shape, ctx.ops), ops: ctx.ops, inputs: ctx.inputs, output: out, shape: n.shape, dtype: n.dtype, expr });
  }

  /**
   * The kernel gradient of a Winograd-eligible conv: dg = Gᵀ [Σ_tiles (A dy Aᵀ) ⊙ V] G (winograd.ts).
   * V is the forward's input transform (the same buffer when the forward conv is in this program), the
   * cotangent's 2x2 tiles are transformed to 4x4 (zero past OHxOW), 16 matmuls Vᵀ [C, T] x [T, O]
   * contract over the tiles, and the last kernel applies Gᵀ · G, writing the conv's [C, 3, 3, O].
   */
  private emitWinogradKernelGrad(r: Node & { op: 'conv' }, x: Node, ct: Node, out: number): void {
    const C = x.shape[3];
    const [N, OH, OW, O] = ct.shape;
    const v = this.emitWinogradInput(x, r.params.padding.map((p) => p[0]), OH, OW);
    // D[a, b, n, ti, tj, o] = Σ A[a][r] A[b][s] dy[n, 2ti + r, 2tj + s, o]
    const dshape = [4, 4, N, v.TH, v.TW, O];
    const dsp: IndexSpace = { grid: dshape, rgrid: [] };
    const [da, db, dn, ti, tj, dO] = dshape.map((_, i) => E.idx(i));
    const ctBuf = this.bufferOf(ct);
    const dexpr = WG.transform2(WG.A, da, db, (i, j) => {
      const oh = E.iadd(E.imul(ti, E.cI(2)), i);
      const ow = E.iadd(E.imul(tj, E.cI(2)), j);
      const inb = E.bin('and', E.inBounds(oh, 0, OH, dsp), E.inBounds(ow, 0, OW, dsp), 'bool');
      const clamp = (e: Expr) => E.select(inb, e, E.cI(0), 'i32');
      const ld: Expr = { k: 'load', input: 0, dtype: 'f32', index: E.linear([dn, clamp(oh), clamp(ow), dO], ct.shape) };
      return E.select(inb, ld, E.cF(0), 'f32');
    });
    const did = this.newBuffer('f32', dshape, 'temp', '');
    this.kernels.push({ kind: 'elementwise', name: this.kname('E', dshape, ['winograd_dy']), ops: ['winograd_dy'], inputs: [ctBuf], output: did, shape: dshape, dtype: 'f32', expr: dexpr });
    // X[ξ, c, o] = Σ_t V[ξ, t, c] D[ξ, t, o]: V read transposed through strides.
    const xid = this.newBuffer('f32', [16, C, O], 'temp', '');
    this.kernels.push({
      kind: 'matmul', name: this.kname('m', [16, C, O, v.T], ['conv_kernel_grad_winograd']), ops: ['conv_kernel_grad_winograd'], inputs: [v.id, did], output: xid,
      shape: [16, C, O], dtype: 'f32', k: v.T, a: { input: 0, offset: 0, strides: [v.T * C, 1, C] }, b: { input: 1, offset: 0, strides: [v.T * O, O, 1] }, epilogue: { k: 'acc' },
    });
    // out[c, i, j, o] = Σ Gᵀ[i][a] Gᵀ[j][b] X[(a, b), c, o]
    const [c, i, j, o] = r.shape.map((_, k) => E.idx(k));
    const expr = WG.transform2(WG.GT, i, j, (a, b) => ({
      k: 'load', input: 0, dtype: 'f32', index: E.iadd(E.imul(E.iadd(E.imul(E.iadd(E.imul(a, E.cI(4)), b), E.cI(C)), c), E.cI(O)), o),
    }));
    this.kernels.push({ kind: 'elementwise', name: this.kname('E', r.shape, ['winograd_kernel_grad']), ops: ['winograd_kernel_grad'], inputs: [xid], output: out, shape: r.shape, dtype: 'f32', expr });
  }

  /** (batch, rows, cols) strides of a dot operand whose leading axes flatten into the batch. */
  private view3(n: Node, batch: number): { base: Node; offset: number; strides: [number, number, number] } {
    const v = this.viewOf(n);
    if (!v) throw new Error(`fuse: dot operand ${n.op} is not a view (materialization rule missed it)`);
    const r = n.shape.length;
    const bshape = n.shape.slice(0, r - 2);
    const bst = reshapeStrides(bshape, v.strides.slice(0, r - 2), [batch]);
    if (!bst) throw new Error('fuse: dot batch axes do not flatten to one stride');
    return { base: v.base, offset: v.offset, strides: [batch === 1 ? 0 : bst[0], v.strides[r - 2], v.strides[r - 1]] };
  }

  isMaterialized(n: Node): boolean {
    return this.materialized.has(n.id);
  }
  bufferOf(n: Node): number {
    const b = this.buf.get(n.id);
    if (b === undefined) throw new Error(`fuse: ${n.op} is materialized but has no buffer yet (schedule order bug)`);
    return b;
  }
}

/**
 * Strides for viewing a strided tensor of `shape` as `to` without copying, or null when the axes
 * merged by the reshape are not laid out one inside the other (numpy's no-copy reshape rule).
 */
export function reshapeStrides(shape: Shape, strides: readonly number[], to: Shape): number[] | null {
  const od: number[] = [];
  const os: number[] = [];
  shape.forEach((d, i) => {
    if (d !== 1) {
      od.push(d);
      os.push(strides[i]);
    }
  });
  const keep = to.map((d, i) => (d !== 1 ? i : -1)).filter((i) => i >= 0);
  const nd = keep.map((i) => to[i]);
  const ns = new Array<number>(nd.length).fill(0);
  let oi = 0;
  let ni = 0;
  while (ni < nd.length && oi < od.length) {
    let np = nd[ni];
    let op = od[oi];
    let nj = ni + 1;
    let oj = oi + 1;
    while (np !== op) {
      if (np < op) np *= nd[nj++];
      else op *= od[oj++];
    }
    for (let k = oi; k < oj - 1; k++) if (os[k] !== od[k + 1] * os[k + 1]) return null;
    ns[nj - 1] = os[oj - 1];
    for (let k = nj - 1; k > ni; k--) ns[k - 1] = ns[k] * nd[k];
    ni = nj;
    oi = oj;
  }
  if (ni !== nd.length || oi !== od.length) return null;
  const out = new Array<number>(to.length).fill(0);
  keep.forEach((i, k) => (out[i] = ns[k]));
  return out;
}

/** Builds one kernel's expressions: tracks the kernel's input buffers and the fused ops. */
class KernelCtx {
  readonly inputs: number[] = [];
  readonly ops: string[] = [];
  constructor(private readonly fz: Fuser, private readonly reduction: Node | null) {}

  inputBuffer(id: number): number {
    let i = this.inputs.indexOf(id);
    if (i < 0) i = this.inputs.push(id) - 1;
    return i;
  }
  inputIndex(n: Node): number {
    return this.inputBuffer(this.fz.bufferOf(n));
  }

  private load(n: Node, lin: Expr): Expr {
    return { k: 'load', input: this.inputIndex(n), index: lin, dtype: n.dtype };
  }

  /** The value of element `ix` of node `n`, as an expression. */
  at(n: Node, ix: readonly Expr[], sp: IndexSpace, top = false): Expr {
    if (n === this.reduction && !top) return { k: 'acc' };
    if (this.fz.isMaterialized(n) && !top) return this.load(n, E.linear(ix, n.shape));
    if (n === this.reduction) return { k: 'acc' };
    const sub = (x: Node, i: readonly Expr[]) => this.at(x, i, sp);
    const rec = (op: string) => this.ops.push(op);
    if (isUnary(n)) {
      const a = sub(n.inputs[0], ix);
      rec(n.op);
      return E.un(n.op, a, n.dtype);
    }
    if (isBinary(n)) {
      const a = sub(n.inputs[0], ix);
      const b = sub(n.inputs[1], ix);
      rec(n.op);
      return E.bin(n.op, a, b, n.dtype);
    }
    switch (n.op) {
      case 'input':
        return this.load(n, E.linear(ix, n.shape));
      case 'constant':
        return { k: 'const', dtype: n.dtype, value: n.params.value };
      case 'iota':
        return n.dtype === 'i32' ? ix[n.params.axis] : { k: 'cast', a: ix[n.params.axis], dtype: n.dtype };
      case 'random_uniform':
        rec('random');
        return { k: 'rand', seed: n.params.seed, key: sub(n.inputs[0], []), index: E.linear(ix, n.shape), dtype: 'f32' };
      case 'select': {
        const [c, a, b] = n.inputs.map((x) => sub(x, ix));
        rec('select');
        return E.select(c, a, b, n.dtype);
      }
      case 'cast': {
        const a = sub(n.inputs[0], ix);
        rec('cast');
        return { k: 'cast', a, dtype: n.dtype };
      }
      case 'reshape': {
        const x = n.inputs[0];
        const lin = E.linear(ix, n.shape);
        if (this.fz.isMaterialized(x)) return this.load(x, lin);
        return sub(x, E.unlinear(lin, x.shape, sp));
      }
      case 'transpose': {
        const inIx = new Array<Expr>(ix.length);
        n.params.perm.forEach((p, i) => (inIx[p] = ix[i]));
        return sub(n.inputs[0], inIx);
      }
      case 'broadcast': {
        const x = n.inputs[0];
        return sub(x, n.params.axes.map((a, i) => (x.shape[i] === 1 ? E.cI(0) : ix[a])));
      }
      case 'slice':
        return sub(n.inputs[0], ix.map((e, i) => E.iadd(e, E.cI(n.params.start[i]))));
      case 'reverse':
        return sub(n.inputs[0], ix.map((e, i) => (n.params.axes.includes(i) ? E.isub(E.cI(n.shape[i] - 1), e) : e)));
      case 'pad': {
        const x = n.inputs[0];
        const shifted = ix.map((e, i) => E.isub(e, E.cI(n.params.lo[i])));
        const ok = shifted.map((e, i) => E.inBounds(e, 0, x.shape[i], sp));
        const inb = ok.reduce<Expr>((acc, c) => E.bin('and', acc, c, 'bool'), E.cB(true));
        // Clamp each axis by its own bound only: an axis that is always in range keeps its plain
        // index, and each clamped one has a known range, so the index math below still simplifies.
        const v = sub(x, shifted.map((e, i) => E.select(ok[i], e, E.cI(0), 'i32')));
        rec('pad');
        return E.select(inb, v, { k: 'const', dtype: n.dtype, value: n.params.value }, n.dtype);
      }
      case 'concat': {
        const axis = n.params.axis;
        let at = n.shape[axis];
        let acc: Expr | null = null;
        // Build from the last piece backwards: select(i < start_k, earlier, piece_k).
        for (let k = n.inputs.length - 1; k >= 0; k--) {
          const x = n.inputs[k];
          at -= x.shape[axis];
          const local = E.isub(ix[axis], E.cI(at));
          const inPiece = E.inBounds(local, 0, x.shape[axis], sp);
          const pix = ix.map((e, i) => (i === axis ? E.select(inPiece, local, E.cI(0), 'i32') : e));
          const v = sub(x, pix);
          acc = acc === null ? v : E.select(inPiece, v, acc, n.dtype);
        }
        rec('concat');
        return acc!;
      }
      case 'reduce_sum':
      case 'reduce_max':
      case 'dot':
      case 'conv':
      case 'reduce_window':
      case 'reduce_window_grad':
        throw new Error(`fuse: ${n.op}#${n.id} reached inside another kernel (reduction ${this.reduction?.op}#${this.reduction?.id}) without being materialized`);
      case 'scan':
      case 'scan_result':
        throw new Error(`fuse: ${n.op}#${n.id} reached inside a kernel: scans and their results are always buffers`);
      default:
        return n satisfies never;
    }
  }
}
