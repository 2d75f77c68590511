/**
 * @file A kernel program's loops in the runtime's terms: the byte copies each executor performs,
 * from the buffer-level `LoopCopy`s and the memory plan. The walk itself is `walkSchedule` in
 * runtime/schedule.ts, shared with the runtimes.
 */
import type { ByteCopy, ScheduleLoop } from '../../runtime/schedule.ts';
import type { MemoryPlan } from './plan.ts';
import type { LoopCopy, Program } from './types.ts';

export function byteLoops(p: Program, plan: Pick<MemoryPlan, 'offsets'>): ScheduleLoop<ByteCopy>[] {
  const bc = (c: LoopCopy): ByteCopy => ({ from: plan.offsets[c.from], to: plan.offsets[c.to], fromStep: c.fromStep, toStep: c.toStep, bytes: c.elements * 4 });
  return p.loops.map((L) => ({ ...L, init: L.init.map(bc), enter: L.enter.map(bc), exit: L.exit.map(bc) }));
}
