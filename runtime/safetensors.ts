/**
 * @file Reading and writing safetensors files, the weight format the ecosystem reads (Hugging Face
 * `safetensors`): an 8-byte little-endian header length N, N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the raw
 * little-endian tensor bytes, offsets relative to the end of the header.
 *
 * Invariants: writing is deterministic (tensors and header keys in sorted name order, the header
 * padded with spaces to a multiple of 8 so the data is 8-byte aligned, as the reference writer
 * does); dlc writes only F32 and I32 (all dlc state is 4-byte). Reading also accepts F64, F16 and
 * BF16, converted to F32 on load, so weights saved by other tools (numpy's default float64, PyTorch
 * half precision) load by name; the converted tensor reports dtype F32 and keeps the file's dtype in
 * `stored`. Reading checks every offset against the file so a truncated or hand-edited file fails
 * naming the tensor, never with a RangeError. Imports nothing from compiler/: the runtime bundle uses it to load and save weights.
 */

export type SafeDType = 'F32' | 'I32';

export interface SafeTensor {
  readonly dtype: SafeDType;
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
  /** The dtype as stored in the file, when reading converted it (F64, F16 or BF16 to F32). */
  readonly stored?: string;
}

/** Bytes per element of each dtype the reader accepts, and how one element becomes a JS number. */
const READERS: Readonly<Record<string, { size: number; get: (dv: DataView, at: number) => number; to: SafeDType }>> = {
  F32: { size: 4, get: (dv, at) => dv.getFloat32(at, true), to: 'F32' },
  I32: { size: 4, get: (dv, at) => dv.getInt32(at, true), to: 'I32' },
  F64: { size: 8, get: (dv, at) => dv.getFloat64(at, true), to: 'F32' },
  F16: { size: 2, get: (dv, at) => halfToFloat(dv.getUint16(at, true)), to: 'F32' },
  // bfloat16 is the top half of an f32.
  BF16: { size: 2, get: (dv, at) => new Float32Array(new Uint32Array([dv.getUint16(at, true) << 16]).buffer)[0], to: 'F32' },
};

/** IEEE binary16 bits to a number (subnormals, infinities and NaN included). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
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
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v) || !Object.values(v).every((x) => typeof x === 'string')) bad('__metadata__ is not an object of strings');
      metadata = v as Record<string, string>;
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!t || typeof t !== 'object') bad(`tensor '${name}' has no description`);
    const rd = typeof t.dtype === 'string' && Object.hasOwn(READERS, t.dtype) ? READERS[t.dtype] : undefined;
    if (!rd) return bad(`tensor '${name}' has dtype ${String(t.dtype)}; dlc reads ${Object.keys(READERS).join(', ')}`);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) bad(`tensor '${name}' has a bad shape`);
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0)) bad(`tensor '${name}' has bad data_offsets`);
    const [b, e] = offs as [number, number];
    const count = numel(shape as number[]);
    if (e - b !== count * rd.size) bad(`tensor '${name}' spans ${e - b} bytes, its ${t.dtype} shape [${(shape as number[]).join(', ')}] needs ${count * rd.size}`);
    if (e > dataBytes) bad(`tensor '${name}' ends at byte ${e} but the data section has ${dataBytes} bytes (truncated?)`);
    const data = rd.to === 'F32' ? new Float32Array(count) : new Int32Array(count);
    for (let i = 0; i < count; i++) data[i] = rd.get(dv, base + b + i * rd.size);
    const converted = t.dtype !== rd.to ? { stored: t.dtype as string } : {};
    tensors.set(name, { dtype: rd.to, shape: [...(shape as number[])], data, ...converted });
  }
  return { tensors, metadata };
}
