/**
 * @file Weights as safetensors files: the one place that maps a model's weights to tensor names and
 * back, used by `model.saveWeights()/loadWeights()`, `dlc train --save/--weights` and `dlc compile
 * --weights`.
 *
 * Names are the model's weight names (`<layer>.<weight>`, e.g. `conv2d.kernel`), shapes are the
 * model's (Keras layout: HWIO kernels, [in, out] dense kernels). Loading matches by name, so a file
 * written by another tool loads when it uses the same names and shapes; extra tensors are ignored (a
 * file may carry optimizer state or metadata), a missing or mis-shaped one is refused naming it.
 * F64/F16/BF16 tensors are converted to f32 by the reader (runtime/safetensors.ts).
 */
import { readSafetensors, SafetensorsError, writeSafetensors } from '../runtime/safetensors.ts';
import type { SafeTensor } from '../runtime/safetensors.ts';
import { fail } from './frontend/errors.ts';
import type { WeightInfo } from './frontend/model.ts';

const shapeOf = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Safetensors bytes holding `values[i]` as `infos[i].name` (sorted, deterministic). */
export function weightsToSafetensors(infos: readonly WeightInfo[], values: readonly Float32Array[], metadata: Readonly<Record<string, string>> = { format: 'dlc' }): Uint8Array {
  const tensors: Record<string, SafeTensor> = {};
  infos.forEach((w, i) => (tensors[w.name] = { dtype: 'F32', shape: w.shape, data: values[i] }));
  return writeSafetensors(tensors, metadata);
}

/** The weights named by `infos`, in that order, from safetensors `bytes`; `file` names the source in errors. */
export function weightsFromSafetensors(infos: readonly WeightInfo[], bytes: Uint8Array, file: string): Float32Array[] {
  let tensors: ReadonlyMap<string, SafeTensor>;
  try {
    tensors = readSafetensors(bytes, file).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) fail(e.message);
    throw e;
  }
  return infos.map((w) => {
    const t = tensors.get(w.name);
    if (!t) fail(`${file}: missing tensor '${w.name}' (f32${shapeOf(w.shape)}); it has ${[...tensors.keys()].join(', ') || 'none'}`);
    if (t.dtype !== 'F32' || t.shape.join() !== w.shape.join()) {
      fail(`${file}: tensor '${w.name}' is ${t.stored ?? t.dtype}${shapeOf(t.shape)}, the model expects F32${shapeOf(w.shape)}`);
    }
    return t.data as Float32Array;
  });
}
