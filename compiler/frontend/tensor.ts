/**
 * @file The small tensor value users pass in and get back: typed array + shape + dtype.
 */
import type { Shape } from '../../ir/types.ts';
import { fmtShape, numel } from '../../ir/types.ts';
import { fail } from './errors.ts';

export interface Tensor {
  readonly dtype: 'f32' | 'i32';
  readonly shape: Shape;
  readonly data: Float32Array | Int32Array;
}

/** Make a tensor; `data` may be a typed array or plain numbers (copied into f32 or i32). */
export function tensor(data: Float32Array | Int32Array | readonly number[], shape: readonly number[], dtype?: 'f32' | 'i32'): Tensor {
  const dt = dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  const arr = dt === 'i32' ? (data instanceof Int32Array ? data : Int32Array.from(data)) : data instanceof Float32Array ? data : Float32Array.from(data);
  if (arr.length !== numel(shape)) fail(`tensor: ${arr.length} values do not fill shape ${fmtShape(shape)} (${numel(shape)} elements)`);
  return Object.freeze({ dtype: dt, shape: Object.freeze([...shape]), data: arr });
}
