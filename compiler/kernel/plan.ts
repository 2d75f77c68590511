/**
 * @file The static memory plan: one arena for a whole program, every buffer at a fixed byte offset.
 *
 * Program inputs (data and persistent state) and outputs get their own regions for the program's
 * life, since the host writes and reads them between runs. Temporaries share the rest by liveness:
 * a buffer lives from the kernel that writes it to the last kernel that reads it, and a greedy
 * first-fit over the schedule reuses the space of dead buffers. Offsets are 16-byte aligned so SIMD
 * loads of a buffer's start are aligned. Every element is 4 bytes (f32, i32, and bool as i32).
 */
import { numel } from '../../ir/types.ts';
import { idx, linear } from './expr.ts';
import type { Expr, Program } from './types.ts';

export interface MemoryPlan {
  /** Byte offset of each buffer, by buffer id. */
  readonly offsets: readonly number[];
  /** Bytes of the whole arena. */
  readonly totalBytes: number;
}

export interface PlanStats {
  /** Bytes of input, state and output regions. */
  readonly fixedBytes: number;
  /** Bytes of the shared temporary region. */
  readonly tempBytes: number;
  /** What the temporaries would take without reuse. */
  readonly tempBytesUnshared: number;
}

const align = (n: number) => Math.ceil(n / 16) * 16;
export const bufferBytes = (shape: readonly number[]) => align(Math.max(numel(shape), 1) * 4);

/** An output that is the next value of an input (a train step's state update). */
export interface StateAlias {
  readonly output: number;
  readonly input: number;
}

/** Every load of kernel input `inputPos` in `e` reads exactly the element being written. */
function readsOnlyOwnElement(e: Expr, inputPos: number, own: string): boolean {
  switch (e.k) {
    case 'load':
      return (e.input !== inputPos || JSON.stringify(e.index) === own) && readsOnlyOwnElement(e.index, inputPos, own);
    case 'un':
    case 'cast':
      return readsOnlyOwnElement(e.a, inputPos, own);
    case 'bin':
      return readsOnlyOwnElement(e.a, inputPos, own) && readsOnlyOwnElement(e.b, inputPos, own);
    case 'select':
      return [e.c, e.a, e.b].every((x) => readsOnlyOwnElement(x, inputPos, own));
    case 'rand':
      return readsOnlyOwnElement(e.key, inputPos, own) && readsOnlyOwnElement(e.index, inputPos, own);
    default:
      return true;
  }
}

/**
 * Whether output `a.output` can be written straight over input `a.input`: its kernel is elementwise
 * over the same shape, reads the input only at the element it writes, and no later kernel reads the
 * input. Then the state update needs no copy and no second region.
 */
function canAlias(p: Program, a: StateAlias): boolean {
  const at = p.kernels.findIndex((k) => k.output === a.output);
  if (at < 0) return false;
  const k = p.kernels[at];
  const inBuf = p.buffers[a.input];
  if (k.kind !== 'elementwise' || k.shape.join() !== inBuf.shape.join() || p.outputs.filter((o) => o === a.output).length !== 1) return false;
  const pos = k.inputs.indexOf(a.input);
  const own = JSON.stringify(linear(k.shape.map((_, i) => idx(i)), k.shape));
  if (pos >= 0 && !readsOnlyOwnElement(k.expr, pos, own)) return false;
  return p.kernels.slice(at + 1).every((later) => !later.inputs.includes(a.input));
}

export function planMemory(p: Program, aliases: readonly StateAlias[] = []): MemoryPlan & { readonly stats: PlanStats; readonly aliased: number } {
  const offsets = new Array<number>(p.buffers.length).fill(-1);
  let at = 0;
  const fixed = new Set<number>([...p.inputs, ...p.outputs]);
  for (const id of p.inputs) {
    if (offsets[id] >= 0) continue;
    offsets[id] = at;
    at += bufferBytes(p.buffers[id].shape);
  }
  let aliased = 0;
  for (const a of aliases) {
    if (offsets[a.output] < 0 && canAlias(p, a)) {
      offsets[a.output] = offsets[a.input];
      aliased++;
    }
  }
  for (const id of p.outputs) {
    if (offsets[id] >= 0) continue;
    offsets[id] = at;
    at += bufferBytes(p.buffers[id].shape);
  }
  const fixedBytes = at;
  // Liveness over the schedule.
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  p.kernels.forEach((k, i) => {
    if (!first.has(k.output)) first.set(k.output, i);
    last.set(k.output, Math.max(last.get(k.output) ?? i, i));
    for (const b of k.inputs) last.set(b, Math.max(last.get(b) ?? i, i));
  });
  // Loops, innermost first: a buffer a loop copies lives through the whole loop, and so does one its
  // body reads but something before the loop wrote (the next step reads it again).
  for (const L of [...p.loops].sort((a, b) => a.end - a.start - (b.end - b.start))) {
    const span = (b: number) => {
      first.set(b, Math.min(first.get(b) ?? L.start, L.start));
      last.set(b, Math.max(last.get(b) ?? L.end - 1, L.end - 1));
    };
    for (const c of [...L.init, ...L.enter, ...L.exit]) {
      span(c.from);
      span(c.to);
    }
    for (let i = L.start; i < L.end; i++) {
      for (const b of p.kernels[i].inputs) if ((first.get(b) ?? -1) < L.start) last.set(b, Math.max(last.get(b)!, L.end - 1));
    }
  }
  const allocAt = new Map<number, number[]>();
  for (const [b, i] of first) (allocAt.get(i) ?? allocAt.set(i, []).get(i)!).push(b);
  // Free list of [offset, size] within the temporary region, kept sorted by offset.
  let free: [number, number][] = [];
  let top = 0;
  let unshared = 0;
  const release = new Map<number, number[]>();
  for (const [b, i] of last) if (!fixed.has(b)) (release.get(i) ?? release.set(i, []).get(i)!).push(b);
  p.kernels.forEach((_k, i) => {
    for (const b of allocAt.get(i) ?? []) {
      if (fixed.has(b) || offsets[b] >= 0) continue;
      const size = bufferBytes(p.buffers[b].shape);
      unshared += size;
      const slot = free.findIndex(([, s]) => s >= size);
      if (slot >= 0) {
        const [o, s] = free[slot];
        offsets[b] = o;
        if (s === size) free.splice(slot, 1);
        else free[slot] = [o + size, s - size];
      } else {
        offsets[b] = top;
        top += size;
      }
    }
    // Buffers whose last reader is this kernel are free for the next kernel (not this one: a kernel
    // must never write over its own inputs).
    for (const dead of release.get(i) ?? []) {
      if (offsets[dead] < 0) continue;
      free.push([offsets[dead], bufferBytes(p.buffers[dead].shape)]);
      free.sort((x, y) => x[0] - y[0]);
      // merge neighbours
      free = free.reduce<[number, number][]>((acc, cur) => {
        const prev = acc[acc.length - 1];
        if (prev && prev[0] + prev[1] === cur[0]) prev[1] += cur[1];
        else acc.push([cur[0], cur[1]]);
        return acc;
      }, []);
    }
  });
  // Temporaries sit after the fixed regions. A buffer no kernel writes is unused; park it at 0 size.
  for (const b of p.buffers) if (!fixed.has(b.id)) offsets[b.id] = offsets[b.id] < 0 ? fixedBytes : offsets[b.id] + fixedBytes;
  return { offsets, totalBytes: fixedBytes + top, stats: { fixedBytes, tempBytes: top, tempBytesUnshared: unshared }, aliased };
}
