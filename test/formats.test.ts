/**
 * @file File formats at the edges: safetensors written by other tools (F64, F16, BF16 tensors are
 * read as f32, by name) and NumPy .npy arrays (`dlc predict --input/--output`). Byte layouts are
 * built by hand here, independently of the readers, so a reader bug cannot hide behind a writer bug.
 */
import { describe, expect, it } from 'vitest';
import { readNpy, writeNpy } from '../cli/npy.ts';
import { readSafetensors, writeSafetensors } from '../runtime/safetensors.ts';

/** A safetensors file from a header object and raw little-endian data, as another tool writes it. */
function safetensors(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const h = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors from other tools', () => {
  it('reads F64, F16 and BF16 as f32, keeping the stored dtype', () => {
    const f64 = new Uint8Array(new Float64Array([0.1, -2.5]).buffer);
    // binary16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]).buffer);
    // bfloat16: 1.0 = 0x3f80, -0.5 = 0xbf00
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xbf00]).buffer);
    const data = new Uint8Array([...f64, ...f16, ...bf16]);
    const file = safetensors(
      {
        a: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
        b: { dtype: 'F16', shape: [2, 2], data_offsets: [16, 24] },
        c: { dtype: 'BF16', shape: [2], data_offsets: [24, 28] },
        __metadata__: { format: 'pt' },
      },
      data,
    );
    const t = readSafetensors(file, 'other.safetensors').tensors;
    expect(t.get('a')).toMatchObject({ dtype: 'F32', stored: 'F64', shape: [2] });
    expect(Array.from(t.get('a')!.data)).toEqual([Math.fround(0.1), -2.5]);
    expect(Array.from(t.get('b')!.data)).toEqual([1, -2, 65504, 2 ** -24]);
    expect(Array.from(t.get('c')!.data)).toEqual([1, -0.5]);
  });

  it('refuses a dtype it cannot read and a size that does not match the dtype, naming the tensor', () => {
    const i64 = safetensors({ w: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => readSafetensors(i64, 'x.safetensors')).toThrow(/x\.safetensors: .*tensor 'w' has dtype I64; dlc reads F32, I32, F64, F16, BF16/);
    const short = safetensors({ w: { dtype: 'F16', shape: [3], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => readSafetensors(short, 'x.safetensors')).toThrow(/tensor 'w' spans 4 bytes, its F16 shape \[3\] needs 6/);
  });

  it('what dlc writes it reads back exactly', () => {
    const w = new Float32Array([1.5, -0, 3e-39, Infinity]);
    const back = readSafetensors(writeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: w } })).tensors.get('w')!;
    expect(Object.is(back.data[1], -0)).toBe(true);
    expect(Array.from(back.data)).toEqual(Array.from(w));
    expect(back.stored).toBeUndefined();
  });
});

describe('.npy', () => {
  /** A version-1 .npy file as NumPy writes it. */
  function npy(descr: string, shape: string, data: Uint8Array, fortran = 'False'): Uint8Array {
    let header = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
    header = `${header.padEnd(Math.ceil((header.length + 11) / 64) * 64 - 11)}\n`;
    const out = new Uint8Array(10 + header.length + data.length);
    out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
    new DataView(out.buffer).setUint16(8, header.length, true);
    out.set(new TextEncoder().encode(header), 10);
    out.set(data, 10 + header.length);
    return out;
  }

  it('reads float64, uint8 and 1-d shapes; writes float32 that it reads back', () => {
    const a = readNpy(npy('<f8', '(2, 1)', new Uint8Array(new Float64Array([0.25, -1]).buffer)), 'a.npy');
    expect(a).toEqual({ shape: [2, 1], data: new Float32Array([0.25, -1]) });
    const b = readNpy(npy('|u1', '(3,)', new Uint8Array([0, 128, 255])), 'b.npy');
    expect(b).toEqual({ shape: [3], data: new Float32Array([0, 128, 255]) });
    const w = writeNpy([2, 3], new Float32Array([1, 2, 3, 4, 5, 6]));
    // NumPy pads the preamble to 64 bytes.
    expect((10 + new DataView(w.buffer).getUint16(8, true)) % 64).toBe(0);
    expect(readNpy(w, 'w.npy')).toEqual({ shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
    expect(readNpy(writeNpy([4], new Float32Array(4)), 'v.npy').shape).toEqual([4]);
  });

  it('refuses what it cannot read, naming the file', () => {
    expect(() => readNpy(new Uint8Array(16), 'z.npy')).toThrow(/z\.npy: not a \.npy file/);
    expect(() => readNpy(npy('<c8', '(1,)', new Uint8Array(8)), 'c.npy')).toThrow(/c\.npy: dtype '<c8' is not supported/);
    expect(() => readNpy(npy('<f4', '(2, 2)', new Uint8Array(16), 'True'), 'f.npy')).toThrow(/Fortran-order/);
    expect(() => readNpy(npy('<f4', '(4,)', new Uint8Array(8)), 't.npy')).toThrow(/t\.npy: holds 8 data bytes, its shape \[4\] needs 16/);
  });
});
