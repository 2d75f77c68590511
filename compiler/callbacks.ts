/**
 * @file Keras's training callbacks for `fit`: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
 * LearningRateScheduler and CSVLogger, with Keras 3's semantics and defaults
 * (keras/src/callbacks/*.py). A callback is an object with optional hooks; `fit` calls them in
 * order with the epoch's logs (`loss`, metrics, `val_*`) and gives each the model first. A callback
 * stops training by setting `model.stopTraining`, and changes the learning rate through
 * `model.optimizer.learningRate`, which the next step uses without recompiling.
 *
 * Files (ModelCheckpoint, CSVLogger) are written through `node:fs`, loaded only when a file is
 * written, so the library still bundles for the browser; pass `write` to send them elsewhere.
 */
import { fail } from './frontend/errors.ts';

/** What a callback sees of the model: weights, the learning rate, and the stop flag. */
export interface CallbackModel {
  stopTraining: boolean;
  readonly optimizer: { learningRate: number };
  getWeights(): { readonly data: Float32Array | Int32Array; readonly shape: readonly number[] }[];
  setWeights(ws: readonly ({ readonly data: Float32Array | Int32Array; readonly shape: readonly number[] } | Float32Array)[]): void;
  saveWeights(): Promise<Uint8Array> | Uint8Array;
}

export interface Callback {
  setModel?(model: CallbackModel): void;
  onTrainBegin?(): void | Promise<void>;
  onEpochBegin?(epoch: number): void | Promise<void>;
  onEpochEnd?(epoch: number, logs: Readonly<Record<string, number>>): void | Promise<void>;
  onBatchEnd?(batch: number, logs: Readonly<Record<string, number>>): void | Promise<void>;
  onTrainEnd?(logs: Readonly<Record<string, number>>): void | Promise<void>;
}

export type Mode = 'auto' | 'min' | 'max';
export type FileWriter = (path: string, bytes: Uint8Array | string) => void | Promise<void>;

/** Keras's mode 'auto': maximize accuracy-like quantities, minimize the rest. */
function resolveMode(mode: Mode | undefined, monitor: string, who: string): 'min' | 'max' {
  const m = mode ?? 'auto';
  if (m !== 'auto' && m !== 'min' && m !== 'max') fail(`${who}: mode must be auto, min or max, got ${String(m)}`);
  if (m !== 'auto') return m;
  return /acc|auc|precision|recall/.test(monitor) ? 'max' : 'min';
}

const defaultWriter: FileWriter = async (path, bytes) => {
  const fs = await import('node:fs');
  // Through a temporary file and a rename, so a crash never leaves half a checkpoint.
  const tmp = `${path}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, path);
};

function monitored(logs: Readonly<Record<string, number>>, monitor: string, who: string): number | null {
  const v = logs[monitor];
  if (v === undefined) {
    console.warn(`${who}: the metric '${monitor}' is not in the logs (${Object.keys(logs).join(', ')}); skipping`);
    return null;
  }
  return v;
}

export interface EarlyStoppingOptions {
  monitor?: string;
  minDelta?: number;
  patience?: number;
  mode?: Mode;
  baseline?: number;
  restoreBestWeights?: boolean;
  startFromEpoch?: number;
}

/**
 * Stop when `monitor` has not improved by more than `minDelta` for `patience` epochs (Keras 3's
 * `EarlyStopping`: the wait counts up every epoch and resets on an improvement; it never stops at
 * epoch 0). `restoreBestWeights` puts back the weights of the best epoch when it stops.
 */
export function EarlyStopping(o: EarlyStoppingOptions = {}): Callback & { readonly stoppedEpoch: number; readonly bestEpoch: number } {
  const who = 'EarlyStopping';
  const monitor = o.monitor ?? 'val_loss';
  const mode = resolveMode(o.mode, monitor, who);
  const minDelta = Math.abs(o.minDelta ?? 0);
  const patience = o.patience ?? 0;
  if (!Number.isInteger(patience) || patience < 0) fail(`${who}: patience must be a non-negative integer, got ${String(o.patience)}`);
  const better = (a: number, b: number) => (mode === 'min' ? a + minDelta < b : a - minDelta > b);
  let model: CallbackModel;
  let best = Infinity;
  let wait = 0;
  let bestWeights: ReturnType<CallbackModel['getWeights']> | null = null;
  const state = { stoppedEpoch: 0, bestEpoch: 0 };
  return {
    get stoppedEpoch() {
      return state.stoppedEpoch;
    },
    get bestEpoch() {
      return state.bestEpoch;
    },
    setModel(m) {
      model = m;
    },
    onTrainBegin() {
      wait = 0;
      best = mode === 'min' ? Infinity : -Infinity;
      bestWeights = null;
      state.stoppedEpoch = 0;
    },
    onEpochEnd(epoch, logs) {
      const current = monitored(logs, monitor, who);
      if (current === null || epoch < (o.startFromEpoch ?? 0)) return;
      if (o.restoreBestWeights && bestWeights === null) bestWeights = model.getWeights().map((t) => ({ data: t.data.slice(), shape: t.shape }));
      wait++;
      if (better(current, best)) {
        best = current;
        state.bestEpoch = epoch;
        if (o.restoreBestWeights) bestWeights = model.getWeights().map((t) => ({ data: t.data.slice(), shape: t.shape }));
        if (o.baseline === undefined || better(current, o.baseline)) wait = 0;
        return;
      }
      if (wait >= patience && epoch > 0) {
        state.stoppedEpoch = epoch;
        model.stopTraining = true;
        if (o.restoreBestWeights && bestWeights) model.setWeights(bestWeights);
      }
    },
  };
}

export interface ModelCheckpointOptions {
  /** The file, safetensors; `{epoch}` is replaced by the epoch number from 1 (Keras's convention). */
  filepath: string;
  monitor?: string;
  saveBestOnly?: boolean;
  mode?: Mode;
  write?: FileWriter;
}

/** Save the weights (safetensors, as `model.saveWeights()`) after every epoch, or only on improvement. */
export function ModelCheckpoint(o: ModelCheckpointOptions): Callback {
  const who = 'ModelCheckpoint';
  if (!o || typeof o.filepath !== 'string' || !o.filepath) fail(`${who}: filepath must be a non-empty string, got ${JSON.stringify(o?.filepath)}`);
  const monitor = o.monitor ?? 'val_loss';
  const mode = resolveMode(o.mode, monitor, who);
  const write = o.write ?? defaultWriter;
  let model: CallbackModel;
  let best = mode === 'min' ? Infinity : -Infinity;
  return {
    setModel(m) {
      model = m;
    },
    async onEpochEnd(epoch, logs) {
      if (o.saveBestOnly) {
        const current = monitored(logs, monitor, who);
        if (current === null || !(mode === 'min' ? current < best : current > best)) return;
        best = current;
      }
      await write(o.filepath.replaceAll('{epoch}', String(epoch + 1)), await model.saveWeights());
    },
  };
}

export interface ReduceLROnPlateauOptions {
  monitor?: string;
  factor?: number;
  patience?: number;
  mode?: Mode;
  minDelta?: number;
  cooldown?: number;
  minLr?: number;
}

/** Multiply the learning rate by `factor` when `monitor` stalls for `patience` epochs (Keras 3's rule). */
export function ReduceLROnPlateau(o: ReduceLROnPlateauOptions = {}): Callback {
  const who = 'ReduceLROnPlateau';
  const monitor = o.monitor ?? 'val_loss';
  const factor = o.factor ?? 0.1;
  if (!(factor < 1 && factor >= 0)) fail(`${who}: factor must be in [0, 1), got ${String(o.factor)}`);
  const mode = resolveMode(o.mode, monitor, who);
  const minDelta = o.minDelta ?? 1e-4;
  const patience = o.patience ?? 10;
  const cooldown = o.cooldown ?? 0;
  const minLr = o.minLr ?? 0;
  const better = (a: number, b: number) => (mode === 'min' ? a < b - minDelta : a > b + minDelta);
  let model: CallbackModel;
  let best = mode === 'min' ? Infinity : -Infinity;
  let wait = 0;
  let cooldownCounter = 0;
  return {
    setModel(m) {
      model = m;
    },
    onTrainBegin() {
      best = mode === 'min' ? Infinity : -Infinity;
      wait = 0;
      cooldownCounter = 0;
    },
    onEpochEnd(_epoch, logs) {
      const current = monitored(logs, monitor, who);
      if (current === null) return;
      if (cooldownCounter > 0) {
        cooldownCounter--;
        wait = 0;
      }
      if (better(current, best)) {
        best = current;
        wait = 0;
      } else if (cooldownCounter <= 0) {
        wait++;
        if (wait >= patience) {
          const old = model.optimizer.learningRate;
          if (old > minLr) {
            model.optimizer.learningRate = Math.max(old * factor, minLr);
            cooldownCounter = cooldown;
            wait = 0;
          }
        }
      }
    },
  };
}

/** Set the learning rate at the start of each epoch from `schedule(epoch, currentRate)`. */
export function LearningRateScheduler(schedule: (epoch: number, lr: number) => number): Callback {
  if (typeof schedule !== 'function') fail(`LearningRateScheduler: schedule must be a function (epoch, lr) => lr, got ${typeof schedule}`);
  let model: CallbackModel;
  return {
    setModel(m) {
      model = m;
    },
    onEpochBegin(epoch) {
      const lr = schedule(epoch, model.optimizer.learningRate);
      if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) fail(`LearningRateScheduler: the schedule returned ${String(lr)} for epoch ${epoch}; expected a non-negative number`);
      model.optimizer.learningRate = lr;
    },
  };
}

/** The history as CSV: a header `epoch,<metrics...>` and one row per epoch (Keras's CSVLogger format). */
export function historyCsv(history: { readonly epoch: readonly number[]; readonly history: Readonly<Record<string, readonly number[]>> }): string {
  const keys = Object.keys(history.history).sort();
  const rows = history.epoch.map((e, i) => [String(e), ...keys.map((k) => String(history.history[k][i] ?? ''))].join(','));
  return [['epoch', ...keys].join(','), ...rows].join('\n') + '\n';
}

/** Write every epoch's logs to a CSV file as training goes (the whole file each epoch). */
export function CSVLogger(filename: string, o: { write?: FileWriter } = {}): Callback {
  if (typeof filename !== 'string' || !filename) fail(`CSVLogger: filename must be a non-empty string, got ${JSON.stringify(filename)}`);
  const write = o.write ?? defaultWriter;
  const h = { epoch: [] as number[], history: {} as Record<string, number[]> };
  return {
    onTrainBegin() {
      h.epoch.length = 0;
      for (const k of Object.keys(h.history)) delete h.history[k];
    },
    async onEpochEnd(epoch, logs) {
      h.epoch.push(epoch);
      for (const [k, v] of Object.entries(logs)) (h.history[k] ??= []).push(v);
      await write(filename, historyCsv(h));
    },
  };
}
