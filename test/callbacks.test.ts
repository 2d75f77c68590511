/**
 * @file Keras callbacks and fit options: EarlyStopping, ReduceLROnPlateau, LearningRateScheduler,
 * ModelCheckpoint, CSVLogger (their Keras 3 rules on synthetic logs, then inside a real `fit`), and
 * `validationSplit` (Keras's last fraction, before shuffling) and `initialEpoch`.
 */
import { describe, expect, it } from 'vitest';
import type { CallbackModel } from '../compiler/index.ts';
import {
  CSVLogger,
  Dense,
  EarlyStopping,
  historyCsv,
  LearningRateScheduler,
  ModelCheckpoint,
  readSafetensors,
  ReduceLROnPlateau,
  SGD,
  Sequential,
  tensor,
} from '../compiler/index.ts';

/** A stand-in model whose "weights" record the epoch they were taken at. */
function fakeModel(lr = 0.1) {
  let epoch = 0;
  let restored: number | null = null;
  const m: CallbackModel & { epoch(e: number): void; restored(): number | null } = {
    stopTraining: false,
    optimizer: { learningRate: lr },
    getWeights: () => [{ data: Float32Array.of(epoch), shape: [1] }],
    setWeights: (ws) => {
      restored = (ws[0] as { data: Float32Array }).data[0];
    },
    saveWeights: () => Uint8Array.of(epoch),
    epoch: (e) => (epoch = e),
    restored: () => restored,
  };
  return m;
}

async function drive(cb: ReturnType<typeof EarlyStopping> | ReturnType<typeof ReduceLROnPlateau>, m: ReturnType<typeof fakeModel>, values: number[], key = 'val_loss') {
  cb.setModel?.(m);
  await cb.onTrainBegin?.();
  const lrs: number[] = [];
  for (let e = 0; e < values.length && !m.stopTraining; e++) {
    m.epoch(e);
    await cb.onEpochEnd?.(e, { [key]: values[e] });
    lrs.push(m.optimizer.learningRate);
  }
  return lrs;
}

describe('EarlyStopping (Keras 3 rules)', () => {
  it('stops once the wait reaches patience, never at epoch 0, and restores the best epoch', async () => {
    const m = fakeModel();
    const es = EarlyStopping({ patience: 2, restoreBestWeights: true });
    await drive(es, m, [1.0, 0.9, 0.95, 0.96, 0.97, 0.5]);
    expect(m.stopTraining).toBe(true);
    expect(es.stoppedEpoch).toBe(3);
    expect(es.bestEpoch).toBe(1);
    expect(m.restored()).toBe(1);
  });

  it('minDelta: an improvement smaller than it does not count; mode max for accuracy', async () => {
    const m = fakeModel();
    const es = EarlyStopping({ monitor: 'val_loss', patience: 1, minDelta: 0.1 });
    await drive(es, m, [1.0, 0.95, 0.9]);
    expect(es.stoppedEpoch).toBe(1);
    const m2 = fakeModel();
    const acc = EarlyStopping({ monitor: 'val_accuracy', patience: 1 });
    await drive(acc, m2, [0.5, 0.6, 0.55], 'val_accuracy');
    expect(acc.stoppedEpoch).toBe(2);
  });
});

describe('ReduceLROnPlateau (Keras 3 rules)', () => {
  it('multiplies the rate by factor after patience flat epochs, then waits out the cooldown', async () => {
    const m = fakeModel(0.1);
    const lrs = await drive(ReduceLROnPlateau({ patience: 2, factor: 0.5, cooldown: 1 }), m, [1, 1, 1, 1, 1, 1, 1]);
    // Keras: epoch 2 is the second flat epoch -> 0.05 and a cooldown of 1; epoch 3 spends the
    // cooldown (its wait restarts at 0, then counts 1, as the cooldown has just ended); epoch 4 -> 0.025.
    expect(lrs.map((v) => +v.toFixed(6))).toEqual([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125]);
  });

  it('never goes below minLr', async () => {
    const m = fakeModel(0.1);
    const lrs = await drive(ReduceLROnPlateau({ patience: 1, factor: 0.1, minLr: 0.005 }), m, [1, 1, 1, 1]);
    expect(lrs[lrs.length - 1]).toBe(0.005);
  });
});

const data = (n: number) => ({
  x: tensor(Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i * 0.37)), [n, 4]),
  y: tensor(Float32Array.from({ length: n * 2 }, (_, i) => Math.cos(i * 0.53)), [n, 2]),
});
const small = (lr = 0.05) => {
  const m = Sequential([Dense(6, { activation: 'tanh', inputShape: [4] }), Dense(2)], { seed: 2 });
  m.compile({ optimizer: SGD({ learningRate: lr }), loss: 'mse' });
  return m;
};

describe('callbacks inside fit', () => {
  it('EarlyStopping ends fit when nothing improves (a zero learning rate)', async () => {
    const m = small(0.05);
    m.optimizer.learningRate = 0;
    const { x, y } = data(16);
    const h = await m.fit(x, y, { epochs: 6, batchSize: 8, verbose: 0, callbacks: [EarlyStopping({ monitor: 'loss', patience: 1 })] });
    expect(h.epoch).toEqual([0, 1]);
  });

  it('LearningRateScheduler sets the rate each epoch, and the steps use it', async () => {
    const m = small(0.05);
    const seen: number[] = [];
    const { x, y } = data(16);
    await m.fit(x, y, {
      epochs: 3, batchSize: 16, verbose: 0, shuffle: false,
      callbacks: [LearningRateScheduler((e) => 0.1 / (e + 1)), { onEpochEnd: () => void seen.push(m.optimizer.learningRate) }],
    });
    seen.forEach((v, e) => expect(v).toBeCloseTo(0.1 / (e + 1), 7));
    // The same three steps by hand with those rates give the same weights.
    const ref = small(0.05);
    for (let e = 0; e < 3; e++) {
      ref.optimizer.learningRate = 0.1 / (e + 1);
      await ref.trainOnBatch(x, y);
    }
    m.getWeights().forEach((t, i) => Array.from(t.data as Float32Array).forEach((v, k) => expect(v).toBeCloseTo((ref.getWeights()[i].data as Float32Array)[k], 6)));
  });

  it('ModelCheckpoint writes safetensors per epoch ({epoch}) or only on improvement; CSVLogger the logs', async () => {
    const files = new Map<string, Uint8Array | string>();
    const write = (p: string, b: Uint8Array | string) => void files.set(p, b);
    const m = small(0.05);
    const { x, y } = data(20);
    const h = await m.fit(x, y, {
      epochs: 3, batchSize: 8, verbose: 0, validationSplit: 0.25,
      callbacks: [ModelCheckpoint({ filepath: 'ck-{epoch}.safetensors', write }), ModelCheckpoint({ filepath: 'best.safetensors', saveBestOnly: true, write }), CSVLogger('log.csv', { write })],
    });
    expect([...files.keys()].sort()).toEqual(['best.safetensors', 'ck-1.safetensors', 'ck-2.safetensors', 'ck-3.safetensors', 'log.csv']);
    const last = readSafetensors(files.get('ck-3.safetensors') as Uint8Array).tensors;
    expect(Array.from(last.get('dense.kernel')!.data)).toEqual(Array.from(m.getWeights()[0].data as Float32Array));
    expect(files.get('log.csv')).toBe(historyCsv(h));
    expect((files.get('log.csv') as string).split('\n')[0]).toBe('epoch,loss,val_loss');
  });
});

describe('fit options', () => {
  it('validationSplit holds out the last fraction, as validationData of those samples would', async () => {
    const { x, y } = data(20);
    const a = small();
    const b = small();
    const ha = await a.fit(x, y, { epochs: 2, batchSize: 5, verbose: 0, validationSplit: 0.25 });
    const head = (t: { data: Float32Array | Int32Array; shape: readonly number[] }, from: number, to: number) => tensor((t.data as Float32Array).slice(from * (t.data.length / 20), to * (t.data.length / 20)), [to - from, ...t.shape.slice(1)]);
    const hb = await b.fit(head(x, 0, 15), head(y, 0, 15), { epochs: 2, batchSize: 5, verbose: 0, validationData: [head(x, 15, 20), head(y, 15, 20)] });
    expect(ha.history).toEqual(hb.history);
    await expect(a.fit(x, y, { validationSplit: 1.5 })).rejects.toThrow(/fit: validationSplit must be in \(0, 1\), got 1.5/);
  });

  it('initialEpoch resumes the epoch count', async () => {
    const { x, y } = data(8);
    const h = await small().fit(x, y, { epochs: 3, initialEpoch: 1, verbose: 0 });
    expect(h.epoch).toEqual([1, 2]);
    await expect(small().fit(x, y, { epochs: 2, initialEpoch: 2 })).rejects.toThrow(/initialEpoch must be an integer in \[0, epochs\), got 2/);
  });
});
