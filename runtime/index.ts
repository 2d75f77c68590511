/**
 * @file Entry point of the runtime bundle `dist/dlc-runtime.js`: what a compiled artifact's
 * `index.js` (and any page or Node program) needs to load and run an artifact, and nothing more.
 *
 * Invariant: nothing here reaches compiler/ or ir/, and no npm package is bundled; the build checks
 * the bundle's inputs (scripts/build.mjs). WebGPU in Node comes from the `webgpu` package, loaded
 * only when a WebGPU model is loaded (runtime/webgpu.ts).
 */
export { ARTIFACT_FORMAT, ARTIFACT_VERSION, ARTIFACT_VERSION_LOOPS, ARTIFACT_VERSION_NAMED_IO, ARTIFACT_VERSION_SINGLE_IO, ArtifactError, checkManifest, loadArtifact } from './artifact.ts';
export type {
  ArtifactBackend,
  ArtifactInputs,
  ArtifactLabels,
  ArtifactModel,
  EntryInput,
  EntryManifest,
  EntryName,
  EntryOutput,
  LoadOptions,
  Manifest,
  ModelSpec,
  ModelTensor,
  PlannedBuffer,
  ScheduledKernel,
  StateSpec,
} from './artifact.ts';
export { readSafetensors, SafetensorsError, writeSafetensors } from './safetensors.ts';
export type { SafeTensor, SafetensorsFile } from './safetensors.ts';
export { chromeTrace, formatDispatch, setDispatchTrace } from './trace.ts';
export type { DispatchEvent, DispatchSink } from './trace.ts';
