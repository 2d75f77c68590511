/**
 * @file Wasm binary → WebAssembly text, with wabt: what `--dump-after`/`--dump-dir` write as
 * `<entry>.wat` and `--debug 4` prints. Printing the emitted bytes (rather than binaryen's view of
 * the module before emission) shows exactly what an engine loads, names from the module's name
 * section included. wabt loads its own Wasm once, lazily, so nothing pays for it unless a dump is
 * asked for.
 */
import wabtInit from 'wabt';

type Wabt = Awaited<ReturnType<typeof wabtInit>>;
let wabt: Promise<Wabt> | null = null;

/** The text format of a module dlc emitted (SIMD, relaxed SIMD and the MVP extensions binaryen uses). */
export async function wasmText(bytes: Uint8Array): Promise<string> {
  wabt ??= wabtInit();
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
