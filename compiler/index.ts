/**
 * @file The public API of `dlc`: the Keras-like model API, tensors, backends, and the compiler's IR
 * entry points for those who want to read or transform graphs.
 */
export { Model, LayersModel, Sequential, SequentialModel, setDefaultBackend, getDefaultBackend, permutation } from './training.ts';
export type { FitOptions, History, RunOptions } from './training.ts';
export { Dense, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dropout, Activation, Input, Layer, SymbolicTensor } from './frontend/layers.ts';
export type { AnyLayer, LayerOutput } from './frontend/layers.ts';
export type { InputOptions } from './frontend/layers.ts';
export { BatchNormalization, LayerNormalization } from './frontend/layers/normalization.ts';
export type { BatchNormalizationOptions, LayerNormalizationOptions } from './frontend/layers/normalization.ts';
export { Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract } from './frontend/layers/merge.ts';
export type { ConcatenateOptions } from './frontend/layers/merge.ts';
export { Cropping2D, Permute, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D } from './frontend/layers/reshaping.ts';
export type { Interpolation, Padding2DOptions, UpSampling2DOptions } from './frontend/layers/reshaping.ts';
export {
  AveragePooling1D,
  GlobalAveragePooling1D,
  GlobalAveragePooling2D,
  GlobalMaxPooling1D,
  GlobalMaxPooling2D,
  MaxPooling1D,
} from './frontend/layers/pooling.ts';
export type { GlobalPoolingOptions, Pool1DOptions } from './frontend/layers/pooling.ts';
export { ELU, LeakyReLU, ReLU, Softmax } from './frontend/layers/activation.ts';
export { Bidirectional, Embedding, GRU, LSTM, Masking, SimpleRNN, TimeDistributed } from './frontend/layers/recurrent.ts';
export type { BidirectionalOptions, EmbeddingOptions, MaskingOptions, MergeMode, RNNOptions } from './frontend/layers/recurrent.ts';
export type { ReLUOptions } from './frontend/layers/activation.ts';
export { Conv1D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D } from './frontend/layers/conv.ts';
export type { Conv1DOptions, Conv2DTransposeOptions, DepthwiseConv2DOptions, SeparableConv2DOptions } from './frontend/layers/conv.ts';
export { SGD, Adam, AdamW, Adagrad, Adamax, Nadam, RMSprop, ExponentialDecay, PiecewiseConstantDecay, CosineDecay, InverseTimeDecay } from './frontend/optimizers.ts';
export type { CommonOptions as OptimizerOptions, LearningRate, Optimizer, Schedule } from './frontend/optimizers.ts';
export {
  BinaryCrossentropy,
  CategoricalCrossentropy,
  CategoricalHinge,
  CosineSimilarity,
  Hinge,
  Huber,
  KLDivergence,
  LogCosh,
  MeanAbsoluteError,
  MeanSquaredError,
  Poisson,
  SparseCategoricalCrossentropy,
  BinaryAccuracy,
  CategoricalAccuracy,
  SparseCategoricalAccuracy,
  SparseTopKCategoricalAccuracy,
  TopKCategoricalAccuracy,
} from './frontend/losses.ts';
export type { Loss, LossName, LossSpec, Metric, MetricName, MetricSpec } from './frontend/losses.ts';
export { tensor } from './frontend/tensor.ts';
export type { Tensor } from './frontend/tensor.ts';
export { GraphModel } from './frontend/model.ts';
export type { CompileConfig, ModelConfig, StepFunction, StepKind } from './frontend/model.ts';
export { DlcError } from './frontend/errors.ts';
export { registerBackend, availableBackends } from './backend.ts';
// Importing a backend registers it. WebGPU loads its Node driver only when a device is requested.
import './backends/wasm.ts';
import './backends/webgpu.ts';
export { setWasmThreads, wasmThreads } from './backends/wasm.ts';
export { webgpuAdapterInfo } from './backends/webgpu.ts';
export type { BackendName, Session } from './backend.ts';
export { loadMnist } from './mnist.ts';
export { printFunc } from '../ir/print.ts';
export { compileStep, PASS_NAMES } from './pipeline.ts';
export type { PassName, Compiled as CompiledStep } from './pipeline.ts';
export { printProgram } from './kernel/print.ts';
export { buildArtifact, checkArtifactTarget, DEFAULT_ARTIFACT_THREADS, stepWat, stepWgsl, writeArtifact } from './artifact.ts';
// binaryen loads on the first Wasm emission; a program may load it ahead (e.g. before timing a first step).
export { loadBinaryen } from './codegen/wasm.ts';
export type { Artifact, ArtifactEntry, ArtifactOptions } from './artifact.ts';
export type { PassRecord } from './pipeline.ts';
// The artifact runtime, for programs (and the CLI) that load what `dlc compile` wrote.
export { ArtifactError, chromeTrace, formatDispatch, loadArtifact, readSafetensors, setDispatchTrace, writeSafetensors } from '../runtime/index.ts';
export type { ArtifactInputs, ArtifactLabels, ArtifactModel, DispatchEvent, LoadOptions, Manifest, ModelSpec, ModelTensor } from '../runtime/index.ts';
export { detectRelaxedSimd } from '../runtime/wasm.ts';

export { CSVLogger, EarlyStopping, historyCsv, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau } from './callbacks.ts';
export type { Callback, CallbackModel, EarlyStoppingOptions, ModelCheckpointOptions, ReduceLROnPlateauOptions } from './callbacks.ts';
