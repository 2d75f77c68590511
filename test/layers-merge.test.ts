/**
 * @file The merge layers (compiler/frontend/layers/merge.ts) in functional models: Add, Subtract,
 * Multiply, Average, Maximum, Minimum (with numpy-style broadcasting of per-sample shapes, as Keras 3)
 * and Concatenate (axis counted with the batch axis, as Keras).
 *
 * Each case builds a tiny `Model({inputs, outputs})`, predicts on the 'interp' backend (the f64
 * reference interpreter) and compares to a plain-JS f64 reference of the Keras semantics at 1e-6
 * relative (the interpreter rounds its f64 result to f32 once, so only that rounding separates
 * them), then runs the same model on 'wasm' (fusion + codegen, f32 arithmetic) and compares to
 * interp at 1e-5 relative plus 1e-6 absolute (f32 sums of values of size ~1 lose ~1e-7 absolute).
 * Gradients: a finite-difference check of the whole forward pass (f64 interpreter, central
 * differences) against `grad`, along random directions for every input and weight and for one
 * Dense kernel element; and an SGD `trainOnBatch` step with mse on interp and on wasm that must
 * change the Dense kernel before the merge and agree between the backends.
 */
import { describe, expect, it } from 'vitest';
import { Dense, DlcError, Input, Model } from '../compiler/index.ts';
import { Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract } from '../compiler/frontend/layers/merge.ts';
import type { SymbolicTensor } from '../compiler/frontend/layer.ts';

import { asArr, at, expectModel, expectTrains, fromFn, gradCheck, interp, uniform, wasm } from './helpers/layer-check.ts';
import type { Arr } from './helpers/layer-check.ts';

/** Numpy broadcasting read: `a` (batched) at `idx` of a batched result of rank idx.length. */
function atBroadcast(a: Arr, idx: readonly number[]): number {
  const off = idx.length - a.shape.length;
  const j = a.shape.map((d, i) => (i === 0 ? idx[0] : d === 1 ? 0 : idx[i + off]));
  return at(a, j);
}

type Kind = 'Add' | 'Subtract' | 'Multiply' | 'Average' | 'Maximum' | 'Minimum';
const FACTORY = { Add, Subtract, Multiply, Average, Maximum, Minimum } as const;
const REF: Record<Kind, (vs: number[]) => number> = {
  Add: (vs) => vs.reduce((a, v) => a + v),
  Subtract: (vs) => vs[0] - vs[1],
  Multiply: (vs) => vs.reduce((a, v) => a * v),
  Average: (vs) => vs.reduce((a, v) => a + v) / vs.length,
  Maximum: (vs) => Math.max(...vs),
  Minimum: (vs) => Math.min(...vs),
};

/** The per-sample result shape of numpy broadcasting (reference, written independently). */
function refBroadcastShape(shapes: readonly (readonly number[])[]): number[] {
  const r = Math.max(...shapes.map((s) => s.length));
  return Array.from({ length: r }, (_, i) => Math.max(...shapes.map((s) => s[i - (r - s.length)] ?? 1)));
}

async function elementwiseCase(kind: Kind, shapes: readonly (readonly number[])[], seed: number): Promise<void> {
  const N = 3;
  const ins = shapes.map((s) => Input({ shape: [...s] }));
  const out = FACTORY[kind]().apply(ins);
  const outShape = refBroadcastShape(shapes);
  expect(out.shape).toEqual(outShape);
  const m = Model({ inputs: ins, outputs: out });
  const xs = shapes.map((s, i) => uniform([N, ...s], seed + i));
  const arrs = xs.map(asArr);
  const want = fromFn([N, ...outShape], (idx) => REF[kind](arrs.map((a) => atBroadcast(a, idx))));
  await expectModel(m, xs, [want], `${kind}(${shapes.map((s) => `[${s}]`).join(', ')})`);
}

describe('elementwise merge layers', () => {
  for (const kind of Object.keys(FACTORY) as Kind[]) {
    it(`${kind}: two inputs of equal shape`, async () => {
      await elementwiseCase(kind, [[3, 4], [3, 4]], 10);
    });
    if (kind !== 'Subtract') {
      it(`${kind}: three inputs`, async () => {
        await elementwiseCase(kind, [[2, 3], [2, 3], [2, 3]], 20);
      });
    }
    it(`${kind}: broadcasts size-1 axes and lower ranks as Keras does`, async () => {
      await elementwiseCase(kind, [[3, 4], [1, 4]], 30);
      if (kind !== 'Subtract') await elementwiseCase(kind, [[2, 1, 4], [3, 1], [4]], 40);
    });
  }

  it('layer names and class names follow Keras', () => {
    const a = Input({ shape: [2] });
    const c = Input({ shape: [2] });
    const outs = (Object.keys(FACTORY) as Kind[]).map((k) => FACTORY[k]().apply([a, c]));
    const m = Model({ inputs: [a, c], outputs: outs });
    expect(m.layers.slice(2).map((l) => `${l.name}:${l.className}`)).toEqual([
      'add:Add', 'subtract:Subtract', 'multiply:Multiply', 'average:Average', 'maximum:Maximum', 'minimum:Minimum',
    ]);
    expect(m.countParams()).toBe(0);
  });

  it('gradients: Dense branches into Multiply, Maximum and Subtract (finite differences)', () => {
    const a = Input({ shape: [3] });
    const c = Input({ shape: [4] });
    const h1 = Dense(4, { activation: 'tanh' }).apply(a);
    const h2 = Dense(4).apply(c);
    const out = Add().apply([Multiply().apply([h1, h2]), Maximum().apply([h1, c]), Subtract().apply([Minimum().apply([h2, c]), Average().apply([h1, h2, c])])]);
    gradCheck(Model({ inputs: [a, c], outputs: out }), 2, 7);
  });

  it('training through Multiply and Maximum moves the Dense kernel, on interp and wasm alike', async () => {
    const make = () => {
      const a = Input({ shape: [3] });
      const c = Input({ shape: [4] });
      const h = Dense(4).apply(a);
      return Model({ inputs: [a, c], outputs: Maximum().apply([Multiply().apply([h, c]), Average().apply([h, c])]) });
    };
    await expectTrains(make, [uniform([5, 3], 1), uniform([5, 4], 2)], 3);
  });

  describe('errors name the layer and the shapes', () => {
    const a = () => Input({ shape: [3, 4] });
    it('Subtract needs exactly 2 inputs', () => {
      expect(() => Subtract().apply([a(), a(), a()])).toThrow(DlcError);
      expect(() => Subtract().apply([a(), a(), a()])).toThrow(/^Subtract .*exactly 2 inputs, got 3 \(\[3, ?4\]/);
      expect(() => Subtract().apply(a())).toThrow(/^Subtract .*exactly 2 inputs, got 1/);
    });
    it('the others need at least 2', () => {
      for (const k of ['Add', 'Multiply', 'Average', 'Maximum', 'Minimum'] as const) {
        expect(() => FACTORY[k]().apply(a())).toThrow(new RegExp(`^${k} .*at least 2 inputs, got 1`));
        expect(() => FACTORY[k]().apply([])).toThrow(new RegExp(`^${k} .*at least 2 inputs, got 0`));
      }
    });
    it('incompatible shapes', () => {
      const err = (() => {
        try {
          Add({ name: 'sum' }).apply([a(), Input({ shape: [2, 4] }), a()]);
        } catch (e) {
          return e;
        }
        return null;
      })();
      expect(err).toBeInstanceOf(DlcError);
      expect((err as Error).message).toMatch(/^Add 'sum': inputs have incompatible shapes/);
      for (const s of ['[3,4]', '[2,4]']) expect((err as Error).message).toContain(s);
      expect(() => Maximum().apply([Input({ shape: [4] }), Input({ shape: [5] })])).toThrow(/^Maximum .*incompatible shapes \[4\], \[5\]/);
    });
    it('a shared layer keeps its input shapes', () => {
      const l = Add();
      l.apply([a(), a()]);
      expect(() => l.apply([Input({ shape: [4] }), Input({ shape: [4] })])).toThrow(/^Add .*already built/);
    });
    it('bad names', () => {
      expect(() => Add({ name: '1x' })).toThrow(DlcError);
    });
  });
});

// ---------------------------------------------------------------- Concatenate

async function concatCase(shapes: readonly (readonly number[])[], axis: number | undefined, seed: number): Promise<SymbolicTensor> {
  const N = 2;
  const ins = shapes.map((s) => Input({ shape: [...s] }));
  const out = (axis === undefined ? Concatenate() : Concatenate({ axis })).apply(ins);
  const rank = shapes[0].length + 1;
  const ax = axis === undefined ? rank - 1 : axis < 0 ? axis + rank : axis;
  const xs = shapes.map((s, i) => uniform([N, ...s], seed + i));
  const arrs = xs.map(asArr);
  const outShape = [N, ...shapes[0]];
  outShape[ax] = shapes.reduce((acc, s) => acc + s[ax - 1], 0);
  expect(out.shape).toEqual(outShape.slice(1));
  const want = fromFn(outShape, (idx) => {
    let k = idx[ax];
    for (const arr of arrs) {
      if (k < arr.shape[ax]) return at(arr, idx.map((v, i) => (i === ax ? k : v)));
      k -= arr.shape[ax];
    }
    throw new Error('index past the end');
  });
  await expectModel(Model({ inputs: ins, outputs: out }), xs, [want], `Concatenate(axis ${axis}) of ${shapes.map((s) => `[${s}]`).join(', ')}`);
  return out;
}

describe('Concatenate', () => {
  it('default axis -1 joins the last axis', async () => {
    await concatCase([[2, 3], [2, 5]], undefined, 1);
  });
  it('axis 1 (the first per-sample axis), three inputs', async () => {
    await concatCase([[2, 3], [4, 3], [1, 3]], 1, 2);
  });
  it('axis -2 and axis 2 on rank-3 samples', async () => {
    await concatCase([[2, 3, 2], [2, 1, 2]], -2, 3);
    await concatCase([[2, 3, 2], [2, 4, 2]], 2, 4);
  });
  it('the positional form Concatenate(axis)', () => {
    const out = Concatenate(1).apply([Input({ shape: [2, 3] }), Input({ shape: [5, 3] })]);
    expect(out.shape).toEqual([7, 3]);
  });

  it('gradients flow to both branches (finite differences) and training moves the Dense kernel', async () => {
    const make = () => {
      const a = Input({ shape: [3] });
      const c = Input({ shape: [2, 2] });
      const h = Dense(4, { activation: 'tanh' }).apply(a);
      const hc = Dense(2).apply(c);
      const left = Concatenate().apply([h, Dense(3).apply(a)]);
      const right = Concatenate({ axis: 1 }).apply([hc, c]);
      return Model({ inputs: [a, c], outputs: [left, right] });
    };
    gradCheck(make(), 2, 11);
    const one = () => {
      const a = Input({ shape: [3] });
      const c = Input({ shape: [2] });
      return Model({ inputs: [a, c], outputs: Dense(2).apply(Concatenate().apply([Dense(4).apply(a), c])) });
    };
    await expectTrains(one, [uniform([4, 3], 5), uniform([4, 2], 6)], 7);
  });

  describe('errors name the layer, the axis and the shapes', () => {
    it('axis 0 is the batch axis', () => {
      expect(() => Concatenate({ axis: 0 })).toThrow(DlcError);
      expect(() => Concatenate({ axis: 0 })).toThrow(/^Concatenate: axis 0 is the batch axis/);
      expect(() => Concatenate(0)).toThrow(/batch axis/);
      // -3 on rank-2 samples (batched rank 3) is the batch axis too.
      expect(() => Concatenate({ axis: -3 }).apply([Input({ shape: [2, 3] }), Input({ shape: [2, 3] })])).toThrow(/^Concatenate .*axis -3 is the batch axis/);
    });
    it('non-integer axis and bad options', () => {
      expect(() => Concatenate({ axis: 1.5 })).toThrow(/^Concatenate: axis must be an integer/);
      expect(() => Concatenate({ axis: 1, name: 'cat' } as never)).not.toThrow();
      expect(() => Concatenate('x' as never)).toThrow(/^Concatenate: expected an axis or options/);
    });
    it('axis out of range', () => {
      expect(() => Concatenate({ axis: 3 }).apply([Input({ shape: [2, 3] }), Input({ shape: [2, 3] })])).toThrow(/^Concatenate .*axis 3 is out of range for inputs of rank 2/);
      expect(() => Concatenate({ axis: -4 }).apply([Input({ shape: [2, 3] }), Input({ shape: [2, 3] })])).toThrow(/axis -4 is out of range/);
    });
    it('mismatched shapes off the axis', () => {
      expect(() => Concatenate({ name: 'cat' }).apply([Input({ shape: [2, 3] }), Input({ shape: [4, 3] })])).toThrow(
        /^Concatenate 'cat': inputs must match on every axis except the concatenation axis -1, got \[2, ?3\], \[4, ?3\]/,
      );
    });
    it('different ranks', () => {
      expect(() => Concatenate().apply([Input({ shape: [2, 3] }), Input({ shape: [3] })])).toThrow(/^Concatenate .*same rank.*\[2, ?3\], \[3\]/);
    });
    it('fewer than 2 inputs', () => {
      expect(() => Concatenate().apply(Input({ shape: [3] }))).toThrow(/^Concatenate .*at least 2 inputs, got 1/);
    });
  });
});
