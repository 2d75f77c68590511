/**
 * @file Reading and writing NumPy `.npy` arrays for `dlc predict --input/--output`: the format a
 * Python user reaches for first (`np.save`). Reads versions 1-3, C order, little-endian
 * `f4`/`f8`/`i4`/`u1` (converted to f32 values as they are, no scaling); writes version 1 `<f4`.
 * Anything else is refused naming the file and what it holds. Stateless (the CLI bundles it).
 */
import { numel } from '../ir/types.ts';
import { CliError } from './load.ts';

export interface NpyArray {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const READ: Readonly<Record<string, { size: number; get: (dv: DataView, at: number) => number }>> = {
  '<f4': { size: 4, get: (dv, at) => dv.getFloat32(at, true) },
  '<f8': { size: 8, get: (dv, at) => dv.getFloat64(at, true) },
  '<i4': { size: 4, get: (dv, at) => dv.getInt32(at, true) },
  '|u1': { size: 1, get: (dv, at) => dv.getUint8(at) },
};

export function readNpy(bytes: Uint8Array, file: string): NpyArray {
  const bad = (why: string): never => {
    throw new CliError(`${file}: ${why}`, 1);
  };
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) bad('not a .npy file (no \\x93NUMPY magic)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  if (major < 1 || major > 3) bad(`unsupported .npy version ${major}`);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > bytes.length) bad('truncated header');
  const header = new TextDecoder().decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) bad(`cannot parse the header ${header.trim()}`);
  const rd = READ[descr!.replace(/^=/, '<')] ?? bad(`dtype '${descr}' is not supported; use float32, float64, int32 or uint8`);
  if (fortran === 'True') bad('Fortran-order arrays are not supported; save with np.ascontiguousarray');
  const shape = shapeText!.split(',').map((t) => t.trim()).filter((t) => t !== '').map(Number);
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) bad(`bad shape (${shapeText})`);
  const count = numel(shape);
  const base = hstart + hlen;
  if (base + count * rd.size > bytes.length) bad(`holds ${bytes.length - base} data bytes, its shape [${shape.join(', ')}] needs ${count * rd.size} (truncated?)`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = rd.get(dv, base + i * rd.size);
  return { shape, data };
}

export function writeNpy(shape: readonly number[], data: Float32Array): Uint8Array {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${dims}), }`;
  // The whole preamble (10 bytes + header + newline) is padded to a multiple of 64, as NumPy does.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = `${header.padEnd(total - 10 - 1)}\n`;
  const out = new Uint8Array(total + data.byteLength);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const dv = new DataView(out.buffer);
  dv.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  for (let i = 0; i < data.length; i++) dv.setFloat32(total + i * 4, data[i], true);
  return out;
}
