/**
 * @file The reshaping layers (compiler/frontend/layers/reshaping.ts: Reshape, Permute, RepeatVector,
 * ZeroPadding2D, Cropping2D, UpSampling2D nearest and bilinear) and the pooling layers
 * (compiler/frontend/layers/pooling.ts: global average/max pooling 1D and 2D, MaxPooling1D,
 * AveragePooling1D) in functional models.
 *
 * Each case predicts on 'interp' (the f64 reference interpreter) and compares to a plain-JS f64
 * reference of the Keras 3 semantics at 1e-6 relative (only the final f32 rounding separates them),
 * then runs the same model on 'wasm' (fusion + codegen in f32) and compares to interp at 1e-5
 * relative plus 1e-6 absolute. The bilinear reference is written the way jax.image.resize computes
 * it (a triangle-kernel weight matrix per axis, renormalized over in-bounds pixels), independently of
 * the layer's shifted-slice formulation. Gradients: finite differences of the f64 forward pass
 * against `grad` (random directions for inputs and weights, plus one Dense kernel element), and one
 * SGD step with mse that must move the Dense kernel before the layer, equal on interp and wasm.
 */
import { describe, expect, it } from 'vitest';
import { Dense, DlcError, Input, Model, tensor } from '../compiler/index.ts';
import { Cropping2D, Permute, RepeatVector, Reshape, UpSampling2D, ZeroPadding2D } from '../compiler/frontend/layers/reshaping.ts';
import {
  AveragePooling1D,
  GlobalAveragePooling1D,
  GlobalAveragePooling2D,
  GlobalMaxPooling1D,
  GlobalMaxPooling2D,
  MaxPooling1D,
} from '../compiler/frontend/layers/pooling.ts';
import type { Layer } from '../compiler/frontend/layer.ts';

import { asArr, at, expectModel, expectTrains, fromFn, gradCheck, interp, uniform, wasm } from './helpers/layer-check.ts';
import type { Arr } from './helpers/layer-check.ts';

/** One layer applied to one input of per-sample `shape`: output shape, interp vs `ref`, wasm vs interp. */
async function unaryCase(layer: Layer, shape: readonly number[], ref: (x: Arr) => Arr, seed: number, what: string): Promise<void> {
  const N = 2;
  const x = Input({ shape: [...shape] });
  const y = layer.apply(x);
  const xt = uniform([N, ...shape], seed);
  const want = ref(asArr(xt));
  expect(y.shape, `${what} symbolic output shape`).toEqual(want.shape.slice(1));
  await expectModel(Model({ inputs: x, outputs: y }), [xt], [want], what);
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DlcError);
    return (e as Error).message;
  }
  return expect.fail('expected a DlcError');
}

const img = (shape: readonly number[]) => Input({ shape: [...shape] });

// ---------------------------------------------------------------- Reshape, Permute, RepeatVector

describe('Reshape', () => {
  const same = (shape: number[]) => (x: Arr): Arr => ({ data: x.data, shape: [x.shape[0], ...shape] });
  it('to an explicit shape, and with one -1 inferred', async () => {
    await unaryCase(Reshape([3, 4]), [12], same([3, 4]), 1, 'Reshape([3, 4])');
    await unaryCase(Reshape([-1, 2, 2]), [12], same([3, 2, 2]), 2, 'Reshape([-1, 2, 2])');
    await unaryCase(Reshape([-1]), [2, 3, 2], same([12]), 3, 'Reshape([-1])');
    await unaryCase(Reshape([4, -1]), [3, 2, 2], same([4, 3]), 4, 'Reshape([4, -1])');
  });
  it('errors', () => {
    expect(errorOf(() => Reshape([-1, -1]))).toMatch(/^Reshape: targetShape may hold at most one -1/);
    expect(errorOf(() => Reshape([0, 3]))).toMatch(/^Reshape: targetShape must be a list of positive integers/);
    expect(errorOf(() => Reshape([2.5] as never))).toMatch(/^Reshape:/);
    expect(errorOf(() => Reshape(3 as never, { name: 'r' }))).toMatch(/^Reshape 'r': targetShape/);
    expect(errorOf(() => Reshape([5, 3]).apply(img([12])))).toMatch(/^Reshape .*cannot reshape an input of shape \[12\] \(12 values per sample\) to target shape \[5,3\] \(15 values\)/);
    expect(errorOf(() => Reshape([5, -1]).apply(img([12])))).toMatch(/^Reshape .*\[12\].*\[5,-1\].*12 is not a multiple of 5/);
  });
});

describe('Permute', () => {
  const permRef = (dims: number[]) => (x: Arr): Arr => {
    const out = [x.shape[0], ...dims.map((d) => x.shape[d])];
    return fromFn(out, (idx) => {
      const j = x.shape.map(() => 0);
      j[0] = idx[0];
      dims.forEach((d, k) => (j[d] = idx[k + 1]));
      return at(x, j);
    });
  };
  it('swaps and rotates per-sample axes (1-based, no batch axis)', async () => {
    await unaryCase(Permute([2, 1]), [3, 4], permRef([2, 1]), 5, 'Permute([2, 1])');
    await unaryCase(Permute([3, 1, 2]), [2, 3, 4], permRef([3, 1, 2]), 6, 'Permute([3, 1, 2])');
  });
  it('errors', () => {
    expect(errorOf(() => Permute([1, 3]))).toMatch(/^Permute: dims must be a permutation of 1..n/);
    expect(errorOf(() => Permute([0, 1]))).toMatch(/^Permute: dims must be a permutation/);
    expect(errorOf(() => Permute([]))).toMatch(/^Permute: dims/);
    expect(errorOf(() => Permute([2, 1]).apply(img([2, 3, 4])))).toMatch(/^Permute .*dims \[2,1\] expect an input of rank 2 per sample, got \[2,3,4\]/);
  });
});

describe('RepeatVector', () => {
  it('[F] -> [n, F]', async () => {
    await unaryCase(RepeatVector(3), [4], (x) => fromFn([x.shape[0], 3, 4], ([n, , f]) => at(x, [n, f])), 7, 'RepeatVector(3)');
  });
  it('errors', () => {
    expect(errorOf(() => RepeatVector(0))).toMatch(/^RepeatVector: n must be a positive integer, got 0/);
    expect(errorOf(() => RepeatVector(1.5))).toMatch(/^RepeatVector: n must be a positive integer/);
    expect(errorOf(() => RepeatVector(2).apply(img([2, 3])))).toMatch(/^RepeatVector .*rank 1 per sample \[features\], got \[2,3\]/);
  });
});

// ---------------------------------------------------------------- ZeroPadding2D, Cropping2D

describe('ZeroPadding2D', () => {
  const padRef = (t: number, bo: number, l: number, r: number) => (x: Arr): Arr => {
    const [N, H, W, C] = x.shape;
    return fromFn([N, H + t + bo, W + l + r, C], ([n, h, w, c]) => {
      const ih = h - t;
      const iw = w - l;
      return ih >= 0 && ih < H && iw >= 0 && iw < W ? at(x, [n, ih, iw, c]) : 0;
    });
  };
  it('int, [h, w], [[top, bottom], [left, right]] and mixed forms; default 1', async () => {
    await unaryCase(ZeroPadding2D(), [2, 3, 2], padRef(1, 1, 1, 1), 8, 'ZeroPadding2D()');
    await unaryCase(ZeroPadding2D(2), [2, 3, 1], padRef(2, 2, 2, 2), 9, 'ZeroPadding2D(2)');
    await unaryCase(ZeroPadding2D([1, 2]), [2, 3, 2], padRef(1, 1, 2, 2), 10, 'ZeroPadding2D([1, 2])');
    await unaryCase(ZeroPadding2D([[0, 1], [2, 0]]), [3, 2, 2], padRef(0, 1, 2, 0), 11, 'ZeroPadding2D([[0, 1], [2, 0]])');
    await unaryCase(ZeroPadding2D([1, [0, 3]]), [2, 2, 1], padRef(1, 1, 0, 3), 12, 'ZeroPadding2D([1, [0, 3]])');
    await unaryCase(ZeroPadding2D(0), [2, 2, 1], padRef(0, 0, 0, 0), 13, 'ZeroPadding2D(0)');
  });
  it('errors', () => {
    expect(errorOf(() => ZeroPadding2D(-1))).toMatch(/^ZeroPadding2D: padding must be a non-negative integer, two of them/);
    expect(errorOf(() => ZeroPadding2D([1, 2, 3]))).toMatch(/^ZeroPadding2D: padding/);
    expect(errorOf(() => ZeroPadding2D([[1, 2, 3], [0, 0]]))).toMatch(/^ZeroPadding2D: padding/);
    expect(errorOf(() => ZeroPadding2D(1, { dataFormat: 'channels_first' as never, name: 'zp' }))).toMatch(/^ZeroPadding2D 'zp': dataFormat 'channels_first' is not supported/);
    expect(errorOf(() => ZeroPadding2D(1).apply(img([4, 4])))).toMatch(/^ZeroPadding2D .*rank 3 per sample \[height, width, channels\], got \[4,4\]/);
  });
});

describe('Cropping2D', () => {
  const cropRef = (t: number, bo: number, l: number, r: number) => (x: Arr): Arr => {
    const [N, H, W, C] = x.shape;
    return fromFn([N, H - t - bo, W - l - r, C], ([n, h, w, c]) => at(x, [n, h + t, w + l, c]));
  };
  it('int, [h, w], [[top, bottom], [left, right]] forms; default 0', async () => {
    await unaryCase(Cropping2D(), [3, 3, 1], cropRef(0, 0, 0, 0), 14, 'Cropping2D()');
    await unaryCase(Cropping2D(1), [4, 5, 2], cropRef(1, 1, 1, 1), 15, 'Cropping2D(1)');
    await unaryCase(Cropping2D([1, 2]), [4, 5, 2], cropRef(1, 1, 2, 2), 16, 'Cropping2D([1, 2])');
    await unaryCase(Cropping2D([[0, 2], [1, 0]]), [4, 5, 2], cropRef(0, 2, 1, 0), 17, 'Cropping2D([[0, 2], [1, 0]])');
  });
  it('errors', () => {
    expect(errorOf(() => Cropping2D(-2))).toMatch(/^Cropping2D: cropping must be a non-negative integer/);
    expect(errorOf(() => Cropping2D([[1], [1, 1]] as never))).toMatch(/^Cropping2D: cropping/);
    expect(errorOf(() => Cropping2D(1, { dataFormat: 'channels_first' as never }))).toMatch(/^Cropping2D: dataFormat 'channels_first'/);
    expect(errorOf(() => Cropping2D([[2, 2], [0, 0]]).apply(img([4, 5, 1])))).toMatch(/^Cropping2D .*cropping \[\[2, 2\], \[0, 0\]\] must leave at least one row and one column of the input \[4,5,1\]/);
    expect(errorOf(() => Cropping2D([0, 3]).apply(img([4, 5, 1])))).toMatch(/^Cropping2D .*must leave/);
    expect(errorOf(() => Cropping2D(1).apply(img([4, 5, 1, 1])))).toMatch(/^Cropping2D .*rank 3 per sample/);
  });
});

// ---------------------------------------------------------------- UpSampling2D

/** jax.image.resize's linear weight matrix [out][in] for an integer upscale (antialias off). */
function linearWeights(m: number, s: number): number[][] {
  const n = m * s;
  return Array.from({ length: n }, (_, o) => {
    const f = (o + 0.5) / s - 0.5;
    const w = Array.from({ length: m }, (_, i) => Math.max(0, 1 - Math.abs(f - i)));
    const sum = w.reduce((a, v) => a + v, 0);
    const inside = f >= -0.5 && f <= m - 0.5;
    return w.map((v) => (inside && sum > 1000 * 1.1920929e-7 ? v / sum : 0));
  });
}

function bilinearRef(sh: number, sw: number) {
  return (x: Arr): Arr => {
    const [N, H, W, C] = x.shape;
    const wh = linearWeights(H, sh);
    const ww = linearWeights(W, sw);
    return fromFn([N, H * sh, W * sw, C], ([n, oh, ow, c]) => {
      let acc = 0;
      for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) acc += wh[oh][i] * ww[ow][j] * at(x, [n, i, j, c]);
      return acc;
    });
  };
}

const nearestRef = (sh: number, sw: number) => (x: Arr): Arr => {
  const [N, H, W, C] = x.shape;
  return fromFn([N, H * sh, W * sw, C], ([n, h, w, c]) => at(x, [n, Math.floor(h / sh), Math.floor(w / sw), c]));
};

describe('UpSampling2D', () => {
  it('nearest (default) repeats rows and columns', async () => {
    await unaryCase(UpSampling2D(), [2, 3, 2], nearestRef(2, 2), 18, 'UpSampling2D()');
    await unaryCase(UpSampling2D([2, 3]), [3, 2, 1], nearestRef(2, 3), 19, 'UpSampling2D([2, 3])');
    await unaryCase(UpSampling2D({ size: [1, 2] }), [2, 2, 3], nearestRef(1, 2), 20, 'UpSampling2D({size: [1, 2]})');
  });
  it('bilinear: half-pixel centers, clamped edges (jax.image.resize / tf.image.resize)', async () => {
    // Scale 2 pins the "0.75 near + 0.25 far" rule on a ramp by hand, independent of the references.
    const x = Input({ shape: [1, 3, 1] });
    const m = Model({ inputs: x, outputs: UpSampling2D([1, 2], { interpolation: 'bilinear' }).apply(x) });
    const p = await m.predict(tensor(Float32Array.from([0, 4, 8]), [1, 1, 3, 1]), interp);
    expect(Array.from(p.data)).toEqual([0, 1, 3, 5, 7, 8]);
    await unaryCase(UpSampling2D(2, { interpolation: 'bilinear' }), [3, 4, 2], bilinearRef(2, 2), 21, 'UpSampling2D(2, bilinear)');
    await unaryCase(UpSampling2D([3, 2], { interpolation: 'bilinear' }), [2, 3, 1], bilinearRef(3, 2), 22, 'UpSampling2D([3, 2], bilinear)');
    await unaryCase(UpSampling2D({ size: [4, 1], interpolation: 'BILINEAR' as never }), [3, 2, 2], bilinearRef(4, 1), 23, 'UpSampling2D([4, 1], bilinear)');
    await unaryCase(UpSampling2D(2, { interpolation: 'bilinear' }), [1, 3, 2], bilinearRef(2, 2), 24, 'UpSampling2D(2, bilinear) of one row');
  });
  it('errors', () => {
    expect(errorOf(() => UpSampling2D(0))).toMatch(/^UpSampling2D: size must be a positive integer or two of them, got 0/);
    expect(errorOf(() => UpSampling2D([2, 2, 2]))).toMatch(/^UpSampling2D: size/);
    expect(errorOf(() => UpSampling2D(2, { size: 2 }))).toMatch(/^UpSampling2D: size given twice/);
    expect(errorOf(() => UpSampling2D({ size: 2 }, {}))).toMatch(/^UpSampling2D: pass the options once/);
    expect(errorOf(() => UpSampling2D(2, { interpolation: 'bicubic' as never }))).toMatch(/^UpSampling2D: interpolation must be 'nearest' or 'bilinear', got "bicubic" \(a Keras method dlc does not support\)/);
    expect(errorOf(() => UpSampling2D(2, { interpolation: 'cubic' as never, name: 'up' }))).toMatch(/^UpSampling2D 'up': interpolation/);
    expect(errorOf(() => UpSampling2D(2, { dataFormat: 'channels_first' as never }))).toMatch(/^UpSampling2D: dataFormat 'channels_first' is not supported/);
    expect(errorOf(() => UpSampling2D(2).apply(img([4, 4])))).toMatch(/^UpSampling2D .*rank 3 per sample \[height, width, channels\], got \[4,4\]/);
  });
});

describe('reshaping gradients', () => {
  it('UpSampling2D bilinear: finite differences, and a train step on interp and wasm', async () => {
    const make = () => {
      const x = Input({ shape: [3, 4, 2] });
      const h = Dense(3, { activation: 'tanh' }).apply(x);
      return Model({ inputs: x, outputs: UpSampling2D([2, 3], { interpolation: 'bilinear' }).apply(h) });
    };
    gradCheck(make(), 2, 31);
    await expectTrains(make, [uniform([2, 3, 4, 2], 32)], 33);
  });
  it('a chain of ZeroPadding2D, Cropping2D, UpSampling2D nearest, Permute, Reshape and RepeatVector', async () => {
    const make = () => {
      const x = Input({ shape: [3, 4, 2] });
      let h = Dense(3).apply(x);
      h = ZeroPadding2D([[1, 0], [0, 2]]).apply(h);
      h = Cropping2D([[0, 1], [1, 0]]).apply(h);
      h = UpSampling2D(2).apply(h);
      h = Permute([2, 1, 3]).apply(h);
      h = Reshape([-1, 6]).apply(h);
      const v = RepeatVector(2).apply(Reshape([-1]).apply(Dense(1).apply(GlobalAveragePooling2D().apply(x))));
      return Model({ inputs: x, outputs: [h, v] });
    };
    const m = make();
    expect(m.outputShapes).toEqual([[30, 6], [2, 1]]);
    gradCheck(m, 2, 34);
    const one = () => {
      const x = Input({ shape: [3, 4, 2] });
      let h = Dense(3).apply(x);
      h = Cropping2D([[0, 1], [1, 0]]).apply(ZeroPadding2D([[1, 0], [0, 2]]).apply(h));
      h = Reshape([-1, 6]).apply(Permute([2, 1, 3]).apply(UpSampling2D(2).apply(h)));
      return Model({ inputs: x, outputs: h });
    };
    await expectTrains(one, [uniform([2, 3, 4, 2], 35)], 36);
  });
});

// ---------------------------------------------------------------- pooling

describe('global pooling', () => {
  const globalRef = (axes: number[], op: 'mean' | 'max', keep: boolean) => (x: Arr): Arr => {
    const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const r = fromFn(kept, (idx) => {
      const vals: number[] = [];
      fromFn(axes.map((a) => x.shape[a]), (sub) => {
        const j = [...idx];
        axes.forEach((a, k) => (j[a] = sub[k]));
        vals.push(at(x, j));
        return 0;
      });
      return op === 'max' ? Math.max(...vals) : vals.reduce((a, v) => a + v, 0) / vals.length;
    });
    return keep ? r : { data: r.data, shape: r.shape.filter((_, i) => !axes.includes(i)) };
  };
  it('2D: [H, W, C] -> [C], keepdims [1, 1, C]', async () => {
    await unaryCase(GlobalAveragePooling2D(), [3, 4, 2], globalRef([1, 2], 'mean', false), 40, 'GlobalAveragePooling2D()');
    await unaryCase(GlobalMaxPooling2D(), [3, 4, 2], globalRef([1, 2], 'max', false), 41, 'GlobalMaxPooling2D()');
    await unaryCase(GlobalAveragePooling2D({ keepdims: true }), [3, 4, 2], globalRef([1, 2], 'mean', true), 42, 'GlobalAveragePooling2D(keepdims)');
    await unaryCase(GlobalMaxPooling2D({ keepdims: true }), [3, 4, 2], globalRef([1, 2], 'max', true), 43, 'GlobalMaxPooling2D(keepdims)');
  });
  it('1D: [T, C] -> [C], keepdims [1, C]', async () => {
    await unaryCase(GlobalAveragePooling1D(), [5, 3], globalRef([1], 'mean', false), 44, 'GlobalAveragePooling1D()');
    await unaryCase(GlobalMaxPooling1D(), [5, 3], globalRef([1], 'max', false), 45, 'GlobalMaxPooling1D()');
    await unaryCase(GlobalAveragePooling1D({ keepdims: true }), [5, 3], globalRef([1], 'mean', true), 46, 'GlobalAveragePooling1D(keepdims)');
    await unaryCase(GlobalMaxPooling1D({ keepdims: true }), [5, 3], globalRef([1], 'max', true), 47, 'GlobalMaxPooling1D(keepdims)');
  });
  it('errors', () => {
    expect(errorOf(() => GlobalAveragePooling2D().apply(img([4, 3])))).toMatch(/^GlobalAveragePooling2D .*rank 3 per sample \[height, width, channels\], got \[4,3\]/);
    expect(errorOf(() => GlobalMaxPooling2D().apply(img([4, 3, 2, 1])))).toMatch(/^GlobalMaxPooling2D .*rank 3 per sample/);
    expect(errorOf(() => GlobalAveragePooling1D().apply(img([4, 3, 2])))).toMatch(/^GlobalAveragePooling1D .*rank 2 per sample \[steps, features\], got \[4,3,2\]/);
    expect(errorOf(() => GlobalMaxPooling1D().apply(img([4])))).toMatch(/^GlobalMaxPooling1D .*rank 2 per sample/);
    expect(errorOf(() => GlobalMaxPooling1D({ keepdims: 1 as never }))).toMatch(/^GlobalMaxPooling1D: keepdims must be true or false/);
    expect(errorOf(() => GlobalAveragePooling2D({ dataFormat: 'channels_first' as never, name: 'gap' }))).toMatch(/^GlobalAveragePooling2D 'gap': dataFormat 'channels_first' is not supported/);
  });
});

describe('1D pooling', () => {
  /** Keras's pooling on [N, T, C]: windows of p every s; 'same' pads TensorFlow-style and averages in-bounds cells. */
  const poolRef = (op: 'max' | 'mean', p: number, s: number, same: boolean) => (x: Arr): Arr => {
    const [N, T, C] = x.shape;
    const out = same ? Math.ceil(T / s) : Math.floor((T - p) / s) + 1;
    const lo = same ? Math.floor(Math.max((out - 1) * s + p - T, 0) / 2) : 0;
    return fromFn([N, out, C], ([n, o, c]) => {
      const vals: number[] = [];
      for (let k = 0; k < p; k++) {
        const t = o * s - lo + k;
        if (t >= 0 && t < T) vals.push(at(x, [n, t, c]));
      }
      return op === 'max' ? Math.max(...vals) : vals.reduce((a, v) => a + v, 0) / vals.length;
    });
  };
  for (const [name, F, op] of [['MaxPooling1D', MaxPooling1D, 'max'], ['AveragePooling1D', AveragePooling1D, 'mean']] as const) {
    it(`${name}: defaults (pool 2, strides = pool, valid)`, async () => {
      await unaryCase(F(), [7, 3], poolRef(op, 2, 2, false), 50, `${name}()`);
    });
    it(`${name}: strides and 'same' padding`, async () => {
      await unaryCase(F(3, { strides: 1 }), [6, 2], poolRef(op, 3, 1, false), 51, `${name}(3, strides 1)`);
      await unaryCase(F(3, { strides: 2, padding: 'same' }), [7, 2], poolRef(op, 3, 2, true), 52, `${name}(3, strides 2, same)`);
      await unaryCase(F(2, { padding: 'same' }), [5, 2], poolRef(op, 2, 2, true), 53, `${name}(2, same)`);
      await unaryCase(F([4], { strides: [1], padding: 'SAME' as never }), [5, 1], poolRef(op, 4, 1, true), 54, `${name}([4], strides [1], SAME)`);
    });
    it(`${name}: errors`, () => {
      expect(errorOf(() => F(0))).toMatch(new RegExp(`^${name}: poolSize must be a positive integer, got 0`));
      expect(errorOf(() => F(2, { strides: 0 }))).toMatch(new RegExp(`^${name}: strides must be a positive integer, got 0`));
      expect(errorOf(() => F([2, 2]))).toMatch(new RegExp(`^${name}: poolSize`));
      expect(errorOf(() => F(2, { padding: 'full' as never, name: 'p' }))).toMatch(new RegExp(`^${name} 'p': padding must be 'valid' or 'same', got "full"`));
      expect(errorOf(() => F(2, { dataFormat: 'channels_first' as never }))).toMatch(new RegExp(`^${name}: dataFormat 'channels_first' is not supported`));
      expect(errorOf(() => F(2).apply(img([4, 4, 1])))).toMatch(new RegExp(`^${name} .*rank 2 per sample \\[steps, features\\], got \\[4,4,1\\]`));
      expect(errorOf(() => F(5).apply(img([4, 2])))).toMatch(new RegExp(`^${name} .*pool size 5 is larger than its input \\[4,2\\]`));
    });
  }
  it('default names follow Keras', () => {
    const x = Input({ shape: [6, 2] });
    const m = Model({ inputs: x, outputs: [MaxPooling1D().apply(x), AveragePooling1D().apply(x), GlobalMaxPooling1D().apply(x), GlobalAveragePooling1D().apply(x)] });
    expect(m.layers.slice(1).map((l) => `${l.name}:${l.className}`)).toEqual([
      'max_pooling1d:MaxPooling1D', 'average_pooling1d:AveragePooling1D', 'global_max_pooling1d:GlobalMaxPooling1D', 'global_average_pooling1d:GlobalAveragePooling1D',
    ]);
  });
});

describe('pooling gradients', () => {
  it('finite differences through MaxPooling1D, AveragePooling1D (same), and global max/average pooling', () => {
    const x = Input({ shape: [6, 2] });
    const h = Dense(3, { activation: 'tanh' }).apply(x);
    const im = Input({ shape: [3, 4, 2] });
    const g = Dense(2).apply(im);
    const m = Model({
      inputs: [x, im],
      outputs: [
        MaxPooling1D(2).apply(h),
        AveragePooling1D(3, { strides: 2, padding: 'same' }).apply(h),
        MaxPooling1D(3, { strides: 2, padding: 'same' }).apply(h),
        GlobalMaxPooling1D().apply(h),
        GlobalAveragePooling1D({ keepdims: true }).apply(h),
        GlobalMaxPooling2D().apply(g),
        GlobalAveragePooling2D().apply(g),
      ],
    });
    gradCheck(m, 2, 60);
  });
  it('training moves the Dense kernel, the same on interp and wasm', async () => {
    const seq = (pool: () => Layer) => () => {
      const x = Input({ shape: [7, 2] });
      return Model({ inputs: x, outputs: pool().apply(Dense(3).apply(x)) });
    };
    const xs = [uniform([3, 7, 2], 61)];
    await expectTrains(seq(() => MaxPooling1D(2)), xs, 62);
    await expectTrains(seq(() => AveragePooling1D(3, { strides: 2, padding: 'same' })), xs, 63);
    await expectTrains(seq(() => GlobalMaxPooling1D()), xs, 64);
    const two = (pool: () => Layer) => () => {
      const x = Input({ shape: [3, 4, 2] });
      return Model({ inputs: x, outputs: pool().apply(Dense(3).apply(x)) });
    };
    const xi = [uniform([2, 3, 4, 2], 65)];
    await expectTrains(two(() => GlobalMaxPooling2D()), xi, 66);
    await expectTrains(two(() => GlobalAveragePooling2D({ keepdims: true })), xi, 67);
  });
});
