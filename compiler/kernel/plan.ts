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
import type { Program } from './types.ts';

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

export function planMemory(p: Program): MemoryPlan & { readonly stats: PlanStats } {
  const offsets = new Array<number>(p.buffers.length).fill(-1);
  let at = 0;
  const fixed = new Set<number>([...p.inputs, ...p.outputs]);
  for (const b of p.buffers) {
    if (fixed.has(b.id)) {
      offsets[b.id] = at;
      at += bufferBytes(b.shape);
    }
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
  // Free list of [offset, size] within the temporary region, kept sorted by offset.
  let free: [number, number][] = [];
  let top = 0;
  let unshared = 0;
  const release = new Map<number, number[]>();
  for (const [b, i] of last) if (!fixed.has(b)) (release.get(i) ?? release.set(i, []).get(i)!).push(b);
  p.kernels.forEach((k, i) => {
    const b = k.output;
    if (!fixed.has(b) && offsets[b] < 0) {
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
  return { offsets, totalBytes: fixedBytes + top, stats: { fixedBytes, tempBytes: top, tempBytesUnshared: unshared } };
}
