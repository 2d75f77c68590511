/**
 * @file A sequence model over integer tokens: a GRU reads a variable-length sequence of digits and
 * predicts the tens of their sum (sum // 10, classes 0 to 10). The task is generated (no text data set
 * ships in an npm package this repository can rely on offline), so the right answer is known for
 * every sample: the model must keep a running total through the whole sequence, and the padding
 * must not count. Sequences hold 4 to 12 digits (tokens 1-10 stand for digits 0-9) and are padded
 * with token 0, which `maskZero` masks. (The last digit of the sum, a count modulo 10, is the
 * harder classic; this GRU does not learn it in a few epochs.)
 *
 *   npx dlc train examples/digit-sum-gru.ts --epochs 10
 *
 * `dlc train` takes the samples from `dataset` below instead of MNIST.
 */
import { Dense, Embedding, GRU, Input, Model } from 'dlc';

const T = 12;
const tokens = Input({ shape: [T], name: 'digits' });
const embedded = Embedding(11, 16, { maskZero: true }).apply(tokens);
const state = GRU(64).apply(embedded);
const tens = Dense(11, { activation: 'softmax' }).apply(state);

export const model = Model({ inputs: tokens, outputs: tens, name: 'digit_sum_gru' });
model.compile({ optimizer: 'adam', loss: 'sparse_categorical_crossentropy', metrics: ['accuracy'] });
export default model;

/** `n` sequences and the tens of each one's sum, from a small seeded generator (mulberry32). */
function samples(n: number, seed: number): { x: Float32Array; y: Int32Array } {
  let a = seed >>> 0;
  const rand = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const x = new Float32Array(n * T);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const len = 4 + Math.floor(rand() * (T - 3));
    let sum = 0;
    for (let t = 0; t < len; t++) {
      const d = Math.floor(rand() * 10);
      x[i * T + t] = d + 1;
      sum += d;
    }
    y[i] = Math.floor(sum / 10);
  }
  return { x, y };
}

/** The data `dlc train` and `dlc eval` use for this model: train and test samples from different seeds. */
export function dataset(train: number, test: number): { train: { x: Float32Array; y: Int32Array }; test: { x: Float32Array; y: Int32Array } } {
  return { train: samples(train, 1), test: samples(test, 2) };
}
