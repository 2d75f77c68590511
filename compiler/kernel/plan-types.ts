/**
 * @file The memory-plan contract between the planner and the code generators.
 *
 * A plan places every buffer of a `Program` in ONE linear memory: `offsets[id]` is the byte offset
 * of buffer `id`, 16-byte aligned, and `totalBytes` bounds every buffer's end. Every element takes 4
 * bytes (f32, i32, and bool stored as i32 0/1), so a buffer of shape S occupies 4·numel(S) bytes
 * from its offset. The plan must never make a kernel's output overlap one of that kernel's inputs;
 * code generators rely on it (they write outputs while still reading inputs). Anything a code
 * generator needs beyond the plan (scratch space) goes after `totalBytes`.
 */
export interface MemoryPlan {
  /** Byte offset of each buffer, by buffer id (16-byte aligned). */
  readonly offsets: readonly number[];
  /** Bytes of the arena holding every buffer. */
  readonly totalBytes: number;
}
