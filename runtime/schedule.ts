/**
 * @file The execution order of a program with loops, shared by every executor: the kernel
 * interpreter, the traced Wasm path and the WebGPU command recorder walk this one sequence, so a
 * loop means the same thing everywhere. A loop runs kernels [start, end) `length` times with slice
 * index t = 0, 1, ... (length-1 down to 0 when `reverse`): its `init` copies once before the first
 * step, its `enter` copies at the start of each step and its `exit` copies at the end of each.
 * Loops may nest (an inner loop's range lies inside its outer loop's); they are listed by start,
 * outer before inner. The event sequence grows with the trip counts; the program does not.
 */

export interface ScheduleLoop<C> {
  readonly start: number;
  readonly end: number;
  readonly length: number;
  readonly reverse: boolean;
  readonly init: readonly C[];
  readonly enter: readonly C[];
  readonly exit: readonly C[];
}

/** A loop copy in bytes, as runtimes see it: a side marked `step` is offset by t * bytes. */
export interface ByteCopy {
  readonly from: number;
  readonly to: number;
  readonly fromStep: boolean;
  readonly toStep: boolean;
  readonly bytes: number;
}

export type ScheduleEvent<C> = { readonly k: 'kernel'; readonly index: number } | { readonly k: 'copy'; readonly copy: C; readonly step: number };

/** Visit kernels and copies in execution order. */
export function walkSchedule<C>(kernels: number, loops: readonly ScheduleLoop<C>[], visit: (e: ScheduleEvent<C>) => void): void {
  const opened = new Set<ScheduleLoop<C>>();
  const run = (from: number, to: number) => {
    let i = from;
    while (i < to) {
      const L = loops.find((l) => l.start === i && l.end <= to && !opened.has(l));
      if (!L) {
        visit({ k: 'kernel', index: i++ });
        continue;
      }
      opened.add(L);
      for (const c of L.init) visit({ k: 'copy', copy: c, step: 0 });
      for (let s = 0; s < L.length; s++) {
        const t = L.reverse ? L.length - 1 - s : s;
        for (const c of L.enter) visit({ k: 'copy', copy: c, step: t });
        run(L.start, L.end);
        for (const c of L.exit) visit({ k: 'copy', copy: c, step: t });
      }
      opened.delete(L);
      i = L.end;
    }
  };
  run(0, kernels);
}

/** Byte ranges of a byte copy at step t. */
export function byteCopyAt(c: ByteCopy, t: number): { src: number; dst: number; bytes: number } {
  return { src: c.from + (c.fromStep ? t * c.bytes : 0), dst: c.to + (c.toStep ? t * c.bytes : 0), bytes: c.bytes };
}

/** Check loops against a program of `kernels` kernels and an arena of `arenaBytes` (artifacts, runtimes). */
export function checkLoops(loops: readonly ScheduleLoop<ByteCopy>[], kernels: number, arenaBytes: number, what: string): void {
  loops.forEach((L, i) => {
    const bad = (m: string) => {
      throw new Error(`${what}: loop ${i}: ${m}`);
    };
    if (!Number.isInteger(L.start) || !Number.isInteger(L.end) || L.start < 0 || L.end <= L.start || L.end > kernels) bad(`kernel range [${L.start}, ${L.end}) is not inside the ${kernels} kernels`);
    if (!Number.isInteger(L.length) || L.length < 1) bad(`length ${L.length} is not a positive integer`);
    for (const c of [...L.init, ...L.enter, ...L.exit]) {
      const end = (at: number, step: boolean) => at + (step ? L.length : 1) * c.bytes;
      if (c.bytes % 4 || c.from % 4 || c.to % 4 || c.from < 0 || c.to < 0 || end(c.from, c.fromStep) > arenaBytes || end(c.to, c.toStep) > arenaBytes) {
        bad(`copy [${c.from}] -> [${c.to}] of ${c.bytes} bytes leaves the ${arenaBytes}-byte arena or is not 4-byte aligned`);
      }
    }
  });
}
