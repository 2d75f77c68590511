/**
 * @file Wasm binary → WebAssembly text, with wabt: what `--dump-after`/`--dump-dir` write as
 * `<entry>.wat` and `--debug 4` prints. Printing the emitted bytes (rather than binaryen's view of
 * the module before emission) shows exactly what an engine loads, names from the module's name
 * section included. wabt is imported dynamically and loads its own Wasm once, on the first dump, so
 * nothing else pays for it (a static import would load its JS, about 0.1 s and 14 MB, with the library).
 */
import type wabtInit from 'wabt';

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
let wabt: Promise<Wabt> | null = null;

/** The text format of a module dlc emitted (SIMD, relaxed SIMD and the MVP extensions binaryen uses). */
export async function wasmText(bytes: Uint8Array): Promise<string> {
  wabt ??= import('wabt').then((m) => m.default());
  const w = await wabt;
  const m = w.readWasm(bytes, {
    readDebugNames: true,
    simd: true,
    relaxed_simd: true,
    bulk_memory: true,
    sat_float_to_int: true,
    sign_extension: true,
    mutable_globals: true,
    multi_value: true,
  });
  try {
    m.generateNames();
    m.applyNames();
    return m.toText({ foldExprs: false, inlineExport: false });
  } finally {
    m.destroy();
  }
}
