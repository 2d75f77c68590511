/**
 * @file The public API of `dlc`: the Keras-like model API, tensors, backends, and the compiler's IR
 * entry points for those who want to read or transform graphs.
 */
export { Sequential, SequentialModel, setDefaultBackend, getDefaultBackend, permutation } from './training.ts';
export type { FitOptions, History, RunOptions } from './training.ts';
export { Dense, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dropout, Activation, Layer } from './frontend/layers.ts';
export { SGD, Adam, RMSprop } from './frontend/optimizers.ts';
export type { Optimizer } from './frontend/optimizers.ts';
export { tensor } from './frontend/tensor.ts';
export type { Tensor } from './frontend/tensor.ts';
export { Model } from './frontend/model.ts';
export type { CompileConfig, StepFunction, StepKind } from './frontend/model.ts';
export { DlcError } from './frontend/errors.ts';
export { registerBackend, availableBackends } from './backend.ts';
// Importing a backend registers it. WebGPU loads its Node driver only when a device is requested.
import './backends/wasm.ts';
import './backends/webgpu.ts';
export { webgpuAdapterInfo } from './backends/webgpu.ts';
export type { BackendName, Session } from './backend.ts';
export { loadMnist } from './mnist.ts';
export { printFunc } from '../ir/print.ts';
export { compileStep, PASS_NAMES } from './pipeline.ts';
export type { PassName, Compiled as CompiledStep } from './pipeline.ts';
export { printProgram } from './kernel/print.ts';
export { buildArtifact, checkArtifactTarget, stepWat, stepWgsl, writeArtifact } from './artifact.ts';
export type { Artifact, ArtifactEntry, ArtifactOptions } from './artifact.ts';
export type { PassRecord } from './pipeline.ts';
// The artifact runtime, for programs (and the CLI) that load what `dlc compile` wrote.
export { ArtifactError, chromeTrace, formatDispatch, loadArtifact, readSafetensors, setDispatchTrace, writeSafetensors } from '../runtime/index.ts';
export type { ArtifactModel, DispatchEvent, LoadOptions, Manifest } from '../runtime/index.ts';
export { detectRelaxedSimd } from '../runtime/wasm.ts';
