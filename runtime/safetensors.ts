/**
 * @file Reading and writing safetensors files, the weight format the ecosystem reads (Hugging Face
 * `safetensors`): an 8-byte little-endian header length N, N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the raw
 * little-endian tensor bytes, offsets relative to the end of the header.
 *
 * Invariants: writing is deterministic (tensors and header keys in sorted name order, the header
 * padded with spaces to a multiple of 8 so the data is 8-byte aligned, as the reference writer
 * does); only F32 and I32 are read or written (all dlc state is 4-byte), and reading checks every
 * offset against the file so a truncated or hand-edited file fails naming the tensor, never with a
 * RangeError. Imports nothing from compiler/: the runtime bundle uses it to load and save weights.
 */

export type SafeDType = 'F32' | 'I32';

export interface SafeTensor {
  readonly dtype: SafeDType;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

/** A malformed file or a tensor it lacks; `file` names it in the message. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

/** Safetensors bytes for `tensors` (sorted by name) with string `metadata` in `__metadata__`. */
export function writeSafetensors(tensors: Readonly<Record<string, SafeTensor>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = Object.fromEntries(Object.keys(metadata).sort().map((k) => [k, metadata[k]]));
  let at = 0;
  const parts: { data: Float32Array | Int32Array; at: number }[] = [];
  for (const name of names) {
    if (name === '__metadata__') throw new SafetensorsError("safetensors: '__metadata__' is not a tensor name");
    const { data, shape } = tensors[name];
    if (numel(shape) !== data.length) throw new SafetensorsError(`safetensors: tensor '${name}' has ${data.length} values but shape [${shape.join(', ')}]`);
    const dtype: SafeDType = data instanceof Int32Array ? 'I32' : 'F32';
    header[name] = { data_offsets: [at, at + data.byteLength], dtype, shape: [...shape] };
    parts.push({ data, at });
    at += data.byteLength;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let hbytes = enc.encode(json);
  const pad = (8 - (hbytes.length % 8)) % 8;
  if (pad) hbytes = enc.encode((json += ' '.repeat(pad)));
  const out = new Uint8Array(8 + hbytes.length + at);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(hbytes.length), true);
  out.set(hbytes, 8);
  const base = 8 + hbytes.length;
  for (const p of parts) {
    // Explicit little-endian writes: the format is LE whatever the host is.
    const isF = p.data instanceof Float32Array;
    for (let i = 0; i < p.data.length; i++) {
      if (isF) dv.setFloat32(base + p.at + i * 4, p.data[i], true);
      else dv.setInt32(base + p.at + i * 4, p.data[i], true);
    }
  }
  return out;
}

export interface SafetensorsFile {
  readonly tensors: ReadonlyMap<string, SafeTensor>;
  readonly metadata: Readonly<Record<string, string>>;
}

/** Parse safetensors bytes; `file` names the file in errors. Tensors are copied out (aligned). */
export function readSafetensors(bytes: Uint8Array, file = 'weights.safetensors'): SafetensorsFile {
  const bad = (why: string): never => {
    throw new SafetensorsError(`${file}: not a valid safetensors file: ${why}`);
  };
  if (bytes.length < 8) bad(`${bytes.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > bytes.length - 8) bad(`header length ${n} exceeds the file (${bytes.length} bytes)`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch (e) {
    return bad(`header is not JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) bad('header is not a JSON object');
  const base = 8 + n;
  const dataBytes = bytes.length - base;
  const tensors = new Map<string, SafeTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (v ?? {}) as Record<string, string>;
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!t || typeof t !== 'object') bad(`tensor '${name}' has no description`);
    if (t.dtype !== 'F32' && t.dtype !== 'I32') bad(`tensor '${name}' has dtype ${String(t.dtype)}; dlc reads F32 and I32`);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) bad(`tensor '${name}' has a bad shape`);
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0)) bad(`tensor '${name}' has bad data_offsets`);
    const [b, e] = offs as [number, number];
    const count = numel(shape as number[]);
    if (e - b !== count * 4) bad(`tensor '${name}' spans ${e - b} bytes, its shape [${(shape as number[]).join(', ')}] needs ${count * 4}`);
    if (e > dataBytes) bad(`tensor '${name}' ends at byte ${e} but the data section has ${dataBytes} bytes (truncated?)`);
    const data = t.dtype === 'F32' ? new Float32Array(count) : new Int32Array(count);
    for (let i = 0; i < count; i++) data[i] = t.dtype === 'F32' ? dv.getFloat32(base + b + i * 4, true) : dv.getInt32(base + b + i * 4, true);
    tensors.set(name, { dtype: t.dtype as SafeDType, shape: [...(shape as number[])], data });
  }
  return { tensors, metadata };
}
