/**
 * @file Expression units: one kernel-IR expression tree emitted in a loop nest, with loop-invariant
 * hoisting, common-subexpression caching, reassociation of index sums and the decision whether the
 * tree can run 4 lanes at a time (see `Unit`).
 */
import { RNG_KEY_MUL } from '../../../ir/random.ts';
import type { DType } from '../../../ir/types.ts';
import type { Expr } from '../../kernel/types.ts';
import type { Alu } from './alu.ts';
import { F32, scalarTy, V128, v128Bytes, type Fn, type Ref } from './core.ts';

export function kids(e: Expr): readonly Expr[] {
  switch (e.k) {
    case 'load':
      return [e.index];
    case 'un':
    case 'cast':
      return [e.a];
    case 'bin':
      return [e.a, e.b];
    case 'select':
      return [e.c, e.a, e.b];
    case 'rand':
      return [e.key, e.index];
    default:
      return [];
  }
}

/** `e` with its children replaced (same order as `kids`). */
export function withKids(e: Expr, c: readonly Expr[]): Expr {
  switch (e.k) {
    case 'load':
      return { ...e, index: c[0] };
    case 'un':
    case 'cast':
      return { ...e, a: c[0] };
    case 'bin':
      return { ...e, a: c[0], b: c[1] };
    case 'select':
      return { ...e, c: c[0], a: c[1], b: c[2] };
    case 'rand':
      return { ...e, key: c[0], index: c[1] };
    default:
      return e;
  }
}

export function dtypeOf(e: Expr): DType {
  return e.k === 'idx' || e.k === 'ridx' ? 'i32' : e.k === 'acc' ? 'f32' : e.dtype;
}

/** Dependency bits: grid axis a, reduction axis a, the accumulator. */
export const IDX_BIT = (a: number) => 1 << a;
export const RIDX_BIT = (a: number) => 1 << (15 + a);
const ACC_BIT = 1 << 30;

const S = 0;
const V = 1;
type Form = typeof S | typeof V;

interface NodeInfo {
  deps: number;
  /** Contains a load whose index is not provably in range (so it must not run speculatively). */
  risky: boolean;
  /** Parent edges in the DAG (plus one for the root's consumer). */
  uses: number;
}

/** What a unit reads from its surroundings: index variables (lane 0 in vector code) and the accumulator. */
export interface Ctx {
  readonly inputAddr: readonly number[];
  /** Elements in each input buffer (bounds for the speculation check). */
  readonly inputLen: readonly number[];
  idx(axis: number): Ref;
  ridx(axis: number): Ref;
  acc(): Ref;
  accVec(): Ref;
}

export interface UnitSpec {
  /** Extents of the grid and reduction axes (bounds for index ranges). */
  readonly grid: readonly number[];
  readonly rgrid?: readonly number[];
  /** Dependency bits that become available at loop level l + 1 (outermost first). Level L = length is the element point. */
  readonly axisBits: readonly number[];
  /** Grid axis run 4 lanes at a time, or -1 for scalar code. */
  readonly laneAxis: number;
  /** The accumulator is a v128 (epilogues of matmuls and of 4-lane reductions). */
  readonly accVector?: boolean;
}

/** How a load's index moves along the vectorised axis. */
export type LoadClass = 'invariant' | 'contiguous' | 'gather';

/**
 * One expression tree to emit in a loop nest. Planning decides, per node and form (scalar or v128),
 * whether it lives in a local computed at some loop level: nodes that do not depend on the inner loops
 * are hoisted to the level where their last index variable is set, and nodes used more than once are
 * computed once. A node is only hoisted when evaluating it early is safe: it is reached on a path that
 * always evaluates it, or it contains no "risky" load (one whose index range analysis cannot keep
 * inside its buffer, as in the untaken arm of a padding select). In vector mode the unit also
 * decides whether 4-lane code is possible at all (`ok`), classifying every lane-varying load.
 */
export class Unit {
  /** False when the vector form is impossible (a gather, or a lane-varying select over risky loads). */
  readonly ok: boolean;
  private readonly info = new Map<Expr, NodeInfo>();
  private readonly order: Expr[] = [];
  private readonly coefMemo = new Map<Expr, number | null>();
  private readonly rangeMemo = new Map<Expr, readonly [number, number] | null>();
  private readonly visited = new Map<Expr, number>();
  private readonly uncond = new Set<Expr>();
  private readonly demand = new Map<Expr, number>();
  private readonly slots = new Map<Expr, { local: number; level: number }[]>();
  private readonly laneMask: number;
  private readonly L: number;
  private readonly root: Expr;
  private readonly depsMemo = new Map<Expr, number>();

  constructor(
    private readonly alu: Alu,
    private readonly fn: Fn,
    root: Expr,
    private readonly spec: UnitSpec,
    private readonly ctx: Ctx,
  ) {
    this.L = spec.axisBits.length;
    this.laneMask = spec.laneAxis < 0 ? 0 : IDX_BIT(spec.laneAxis) | (spec.accVector ? ACC_BIT : 0);
    this.root = this.reassociate(root, new Map());
    this.analyse(this.root).uses++;
    this.ok = this.need(this.root, this.vectorMode ? V : S, false);
    if (this.ok) this.planSlots();
  }

  get vectorMode(): boolean {
    return this.laneMask !== 0;
  }

  /** Classify a load for the vectorised axis. */
  classify(load: Expr & { k: 'load' }): LoadClass {
    const c = this.coef(load.index);
    return c === 0 ? 'invariant' : c === 1 ? 'contiguous' : 'gather';
  }

  /** Statements computing the locals of loop level `level`; call for every level 0..L, in place. */
  stmts(level: number): Ref[] {
    const out: Ref[] = [];
    for (const e of this.order) {
      const s = this.slots.get(e);
      if (!s) continue;
      for (const form of [S, V] as const) {
        const slot = s[form];
        if (slot && slot.level === level) out.push(this.fn.set(slot.local, this.compute(e, form)));
      }
    }
    return out;
  }

  /** The root's value at the element point, converted to `dt`. */
  value(dt: DType): Ref {
    const form = this.vectorMode ? V : S;
    const v = this.get(this.root, form);
    return form === V ? this.alu.convV(v, dtypeOf(this.root), dt) : this.alu.convS(v, dtypeOf(this.root), dt);
  }

  // -- planning --

  private deps(e: Expr): number {
    let d = this.depsMemo.get(e);
    if (d === undefined) {
      d = e.k === 'idx' ? IDX_BIT(e.axis) : e.k === 'ridx' ? RIDX_BIT(e.axis) : e.k === 'acc' ? ACC_BIT : 0;
      for (const c of kids(e)) d |= this.deps(c);
      this.depsMemo.set(e, d);
    }
    return d;
  }

  /**
   * Rewrite i32 sums so their terms are added outermost loop level first: ((a(i) + b(j)) + c(k)).
   * Each partial sum then depends on one loop level fewer and is hoisted with it, so the innermost
   * loop adds one term instead of recomputing the whole flattened index. Wrapping i32 addition is
   * associative and commutative, so values are unchanged. Shared subtrees stay shared (memo).
   */
  private reassociate(e: Expr, memo: Map<Expr, Expr>): Expr {
    const hit = memo.get(e);
    if (hit) return hit;
    let out: Expr;
    const isSum = (x: Expr): x is Expr & { k: 'bin' } => x.k === 'bin' && x.op === 'add' && x.dtype === 'i32';
    if (isSum(e)) {
      const terms: Expr[] = [];
      const collect = (x: Expr): void => {
        if (isSum(x)) {
          collect(x.a);
          collect(x.b);
        } else terms.push(this.reassociate(x, memo));
      };
      collect(e);
      const lv = terms.map((t) => this.levelOf(this.deps(t)));
      const order = terms.map((_, i) => i).sort((i, j) => lv[i] - lv[j] || i - j);
      out = order.map((i) => terms[i]).reduce((a, b): Expr => ({ k: 'bin', op: 'add', a, b, dtype: 'i32' }));
    } else {
      const ks = kids(e);
      const nk = ks.map((c) => this.reassociate(c, memo));
      out = nk.every((c, i) => c === ks[i]) ? e : withKids(e, nk);
    }
    memo.set(e, out);
    return out;
  }

  private analyse(e: Expr): NodeInfo {
    const known = this.info.get(e);
    if (known) return known;
    let deps = e.k === 'idx' ? IDX_BIT(e.axis) : e.k === 'ridx' ? RIDX_BIT(e.axis) : e.k === 'acc' ? ACC_BIT : 0;
    let risky = e.k === 'load' && !this.inBounds(e);
    for (const c of kids(e)) {
      const ci = this.analyse(c);
      ci.uses++;
      deps |= ci.deps;
      risky ||= ci.risky;
    }
    const inf: NodeInfo = { deps, risky, uses: 0 };
    this.info.set(e, inf);
    this.order.push(e);
    return inf;
  }

  /** Whether a load's index provably stays inside its buffer for every grid point. */
  private inBounds(e: Expr & { k: 'load' }): boolean {
    const r = this.range(e.index);
    return r !== null && r[0] >= 0 && r[1] < this.ctx.inputLen[e.input];
  }

  /** Interval of an i32 index expression over the grid, or null when unknown (or beyond i32). */
  private range(e: Expr): readonly [number, number] | null {
    if (this.rangeMemo.has(e)) return this.rangeMemo.get(e)!;
    let r: readonly [number, number] | null = null;
    if (e.k === 'const') r = [e.value, e.value];
    else if (e.k === 'idx') r = [0, this.spec.grid[e.axis] - 1];
    else if (e.k === 'ridx') r = [0, (this.spec.rgrid ?? [])[e.axis] - 1];
    else if (e.k === 'select') {
      const a = this.range(e.a);
      const b = this.range(e.b);
      r = a && b ? [Math.min(a[0], b[0]), Math.max(a[1], b[1])] : null;
    } else if (e.k === 'bin' && e.dtype === 'i32') {
      const a = this.range(e.a);
      const b = this.range(e.b);
      if (a && b) {
        if (e.op === 'add') r = [a[0] + b[0], a[1] + b[1]];
        else if (e.op === 'sub') r = [a[0] - b[1], a[1] - b[0]];
        else if (e.op === 'mul') {
          const p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]];
          r = [Math.min(...p), Math.max(...p)];
        } else if (e.op === 'div' && a[0] >= 0 && b[0] > 0) r = [Math.floor(a[0] / b[1]), Math.floor(a[1] / b[0])];
        else if (e.op === 'mod' && a[0] >= 0 && b[0] > 0) r = [0, Math.min(a[1], b[1] - 1)];
        else if (e.op === 'max') r = [Math.max(a[0], b[0]), Math.max(a[1], b[1])];
        else if (e.op === 'min') r = [Math.min(a[0], b[0]), Math.min(a[1], b[1])];
      }
    }
    if (r && (Number.isNaN(r[0]) || r[0] < -(2 ** 31) || r[1] >= 2 ** 31)) r = null;
    this.rangeMemo.set(e, r);
    return r;
  }

  private varying(e: Expr): boolean {
    return (this.info.get(e)!.deps & this.laneMask) !== 0;
  }

  private level(e: Expr): number {
    return this.levelOf(this.info.get(e)!.deps);
  }

  /** Loop level at which every index variable in `d` is set (L for the accumulator). */
  private levelOf(d: number): number {
    if (d & ACC_BIT) return this.L;
    for (let l = this.L; l > 0; l--) if (d & this.spec.axisBits[l - 1]) return l;
    return 0;
  }

  /** Coefficient of the lane index in an i32 expression affine in it, 0 when invariant, null otherwise. */
  private coef(e: Expr): number | null {
    if (this.coefMemo.has(e)) return this.coefMemo.get(e)!;
    let c: number | null = null;
    if (!this.varying(e)) c = 0;
    else if (e.k === 'idx') c = 1;
    else if (e.k === 'un' && e.op === 'neg' && e.dtype === 'i32') {
      const a = this.coef(e.a);
      c = a === null ? null : -a;
    } else if (e.k === 'bin' && e.dtype === 'i32') {
      const a = this.coef(e.a);
      const b = this.coef(e.b);
      if (a !== null && b !== null) {
        if (e.op === 'add') c = a + b;
        else if (e.op === 'sub') c = a - b;
        else if (e.op === 'mul' && a === 0 && e.a.k === 'const') c = e.a.value * b;
        else if (e.op === 'mul' && b === 0 && e.b.k === 'const') c = a * e.b.value;
      }
    }
    this.coefMemo.set(e, c);
    return c;
  }

  /** Record that `e` is needed in `form`; `guarded` = only under a select arm evaluated on demand. */
  private need(e: Expr, form: Form, guarded: boolean): boolean {
    const bit = 1 << (form * 2 + (guarded ? 1 : 0));
    const seen = this.visited.get(e) ?? 0;
    if (seen & bit) return true;
    this.visited.set(e, seen | bit);
    this.demand.set(e, (this.demand.get(e) ?? 0) | (1 << form));
    if (!guarded) this.uncond.add(e);
    if (form === V && !this.varying(e)) return this.need(e, S, guarded);
    const risky = (x: Expr) => this.info.get(x)!.risky;
    switch (e.k) {
      case 'load':
        if (form === V && this.classify(e) !== 'contiguous') return false;
        return this.need(e.index, S, guarded);
      case 'select': {
        const armsLoad = risky(e.a) || risky(e.b);
        if (form === V && this.varying(e.c)) {
          // Both arms are evaluated for every lane: only possible when neither can load out of range.
          if (armsLoad) return false;
          return this.need(e.c, V, guarded) && this.need(e.a, V, guarded) && this.need(e.b, V, guarded);
        }
        return this.need(e.c, S, guarded) && this.need(e.a, form, guarded || armsLoad) && this.need(e.b, form, guarded || armsLoad);
      }
      default:
        return kids(e).every((c) => this.need(c, form, guarded));
    }
  }

  private planSlots(): void {
    for (const e of this.order) {
      const d = this.demand.get(e) ?? 0;
      const inf = this.info.get(e)!;
      if (!d || !(this.uncond.has(e) || !inf.risky)) continue;
      const lvl = this.level(e);
      for (const form of [S, V] as const) {
        if (!(d & (1 << form))) continue;
        const trivial = e.k === 'const' || e.k === 'acc' || (form === S && (e.k === 'idx' || e.k === 'ridx'));
        if (trivial || !(lvl < this.L || inf.uses > 1)) continue;
        const s = this.slots.get(e) ?? [];
        s[form] = { local: this.fn.local(form === V ? V128 : scalarTy(dtypeOf(e))), level: lvl };
        this.slots.set(e, s);
      }
    }
  }

  // -- emission --

  private get(e: Expr, form: Form): Ref {
    const slot = this.slots.get(e)?.[form];
    return slot ? this.fn.get(slot.local) : this.compute(e, form);
  }

  private compute(e: Expr, form: Form): Ref {
    if (form === S) return this.scalar(e);
    return this.varying(e) ? this.vector(e) : this.alu.splat(dtypeOf(e), this.get(e, S));
  }

  private guardedSelect(e: Expr & { k: 'select' }): boolean {
    return this.info.get(e.a)!.risky || this.info.get(e.b)!.risky;
  }

  private scalar(e: Expr): Ref {
    const { alu, ctx } = this;
    const m = alu.m;
    switch (e.k) {
      case 'const':
        return alu.constS(e.dtype, e.value);
      case 'idx':
        return ctx.idx(e.axis);
      case 'ridx':
        return ctx.ridx(e.axis);
      case 'acc':
        return ctx.acc();
      case 'load':
        return alu.loadS(e.dtype, ctx.inputAddr[e.input], this.get(e.index, S));
      case 'un':
        return alu.unS(e.op, e.dtype, this.get(e.a, S));
      case 'bin':
        return alu.binS(e.op, dtypeOf(e.a), this.get(e.a, S), this.get(e.b, S), e.b.k === 'const' ? e.b.value : null);
      case 'select': {
        const c = this.get(e.c, S);
        const a = this.get(e.a, S);
        const b = this.get(e.b, S);
        return this.guardedSelect(e) ? m.if(c, a, b) : m.select(c, a, b);
      }
      case 'cast':
        return alu.convS(this.get(e.a, S), dtypeOf(e.a), e.dtype);
      case 'rand':
        return m.call(alu.h.use('rand'), [m.i32.xor(this.get(e.key, S), m.i32.const(Math.imul(e.seed, RNG_KEY_MUL))), this.get(e.index, S)], F32);
      default:
        return e satisfies never;
    }
  }

  private vector(e: Expr): Ref {
    const { alu, ctx } = this;
    const m = alu.m;
    switch (e.k) {
      case 'idx':
        return m.i32x4.add(m.i32x4.splat(ctx.idx(e.axis)), m.v128.const(v128Bytes([0, 1, 2, 3], 'i32')));
      case 'acc':
        return ctx.accVec();
      case 'load':
        return m.v128.load(ctx.inputAddr[e.input], 4, m.i32.shl(this.get(e.index, S), m.i32.const(2)));
      case 'un':
        return alu.unV(e.op, e.dtype, this.get(e.a, V));
      case 'bin':
        return alu.binV(e.op, dtypeOf(e.a), this.get(e.a, V), this.get(e.b, V));
      case 'select': {
        if (!this.varying(e.c)) {
          const c = this.get(e.c, S);
          const a = this.get(e.a, V);
          const b = this.get(e.b, V);
          return this.guardedSelect(e) ? m.if(c, a, b) : m.select(c, a, b);
        }
        const mask = m.i32x4.neg(this.get(e.c, V));
        return m.v128.bitselect(this.get(e.a, V), this.get(e.b, V), mask);
      }
      case 'cast':
        return alu.convV(this.get(e.a, V), dtypeOf(e.a), e.dtype);
      case 'rand':
        return m.call(alu.h.use('rand4'), [m.v128.xor(this.get(e.key, V), alu.constV('i32', Math.imul(e.seed, RNG_KEY_MUL))), this.get(e.index, V)], V128);
      case 'const':
      case 'ridx':
        throw new Error(`wasm codegen: ${e.k} cannot vary along a lane`);
      default:
        return e satisfies never;
    }
  }
}
