/**
 * @file binaryen, loaded on first need. Importing binaryen instantiates its whole Wasm build (about
 * 1.1 s and 110 MB of RSS in Node), which only Wasm emission needs; building models, printing IR, the
 * interpreter and WebGPU backends and running artifacts never do. So no file imports binaryen
 * statically (a static import anywhere would be hoisted into dist/dlc.js and load it eagerly):
 * `loadBinaryen()` imports it dynamically, once, and fills the live bindings below, which the code
 * generator in this folder reads. Invariant: those bindings are read only by code reached from
 * `emitWasm`/`emitWat` (codegen/wasm.ts), which call `requireBinaryen` first, so every caller that
 * emits Wasm awaits `loadBinaryen()` before (the Wasm backend, `buildArtifact`, `stepWat`, tests).
 */
import type Binaryen from 'binaryen';

export type BinaryenLib = typeof Binaryen;
export type Ty = Binaryen.Type;

/**
 * The binaryen module. Typed as loaded because every reader runs after `requireBinaryen` passed
 * (see the header); until `loadBinaryen()` resolves it is undefined.
 */
export let binaryen: BinaryenLib = undefined as unknown as BinaryenLib;

// Value types, numbers binaryen assigns when it loads (so they cannot be module constants here).
export let I32: Ty = 0;
export let I64: Ty = 0;
export let F32: Ty = 0;
export let F64: Ty = 0;
export let V128: Ty = 0;
export let NONE: Ty = 0;

let loading: Promise<void> | null = null;

/** Load binaryen (once; later calls return the same promise). Await it before emitting Wasm. */
export function loadBinaryen(): Promise<void> {
  loading ??= import('binaryen').then(
    (m) => {
      const b = m.default;
      I32 = b.i32;
      I64 = b.i64;
      F32 = b.f32;
      F64 = b.f64;
      V128 = b.v128;
      NONE = b.none;
      binaryen = b;
    },
    (e: unknown) => {
      // Let a later call try again rather than keep a failed import forever.
      loading = null;
      throw e;
    },
  );
  return loading;
}

/** Whether `loadBinaryen()` has resolved. */
export function binaryenLoaded(): boolean {
  return binaryen !== undefined;
}

/** Throw a clear error when `what` (emitWasm, emitWat) is called before `loadBinaryen()` resolved. */
export function requireBinaryen(what: string): void {
  if (!binaryenLoaded()) throw new Error(`${what}: binaryen is not loaded; await loadBinaryen() (exported by dlc and compiler/codegen/wasm.ts) before emitting Wasm`);
}
