/**
 * @file The memory plan: no two buffers that are live at the same time overlap, no kernel writes over
 * one of its own inputs, inputs and outputs keep their own regions, and reuse makes the arena of the
 * reference train step much smaller than the sum of its temporaries.
 */
import { describe, expect, it } from 'vitest';
import model from '../examples/mnist-cnn.ts';
import { fuse } from '../compiler/kernel/fuse.ts';
import { bufferBytes, planMemory } from '../compiler/kernel/plan.ts';
import { simplify } from '../compiler/passes/simplify.ts';

describe('memory plan', () => {
  for (const kind of ['predict', 'train'] as const) {
    it(`${kind} step at batch 32: live buffers never overlap`, () => {
      const p = fuse(simplify(model.stepFunction(kind, 32).func));
      const plan = planMemory(p);
      const live = new Map<number, [number, number]>();
      const fixed = new Set([...p.inputs, ...p.outputs]);
      p.kernels.forEach((k, i) => {
        for (const b of [k.output, ...k.inputs]) {
          const s = live.get(b);
          live.set(b, s ? [s[0], i] : [fixed.has(b) ? -1 : i, i]);
        }
      });
      for (const b of fixed) live.set(b, [-1, p.kernels.length]);
      const ids = [...live.keys()];
      for (const a of ids)
        for (const c of ids) {
          if (a >= c) continue;
          const [a0, a1] = live.get(a)!;
          const [c0, c1] = live.get(c)!;
          if (a1 < c0 || c1 < a0) continue; // lifetimes disjoint (a write at i after a last read at i-1)
          const ra = [plan.offsets[a], plan.offsets[a] + bufferBytes(p.buffers[a].shape)];
          const rc = [plan.offsets[c], plan.offsets[c] + bufferBytes(p.buffers[c].shape)];
          const overlap = ra[0] < rc[1] && rc[0] < ra[1];
          if (overlap) throw new Error(`buffers ${a} and ${c} overlap while both live (${a0}-${a1}, ${c0}-${c1})`);
        }
      for (const o of plan.offsets) expect(o % 16).toBe(0);
      expect(plan.totalBytes).toBeGreaterThanOrEqual(Math.max(...plan.offsets));
      if (kind === 'train') expect(plan.stats.tempBytes).toBeLessThan(0.7 * plan.stats.tempBytesUnshared);
    });
  }
});

describe('state updates in place', () => {
  it('every state update of the reference train step writes over its input; training is unchanged', async () => {
    const { compileStep } = await import('../compiler/pipeline.ts');
    const c = compileStep(model, 'train', 8);
    expect(c.plan.aliased).toBe(model.stepFunction('train', 8).updates.length);
    expect(c.plan.totalBytes).toBeLessThan(planMemory(c.program).totalBytes);
  });
  it('an update is not aliased when a later kernel still reads the old value', async () => {
    const b = await import('../ir/builders.ts');
    const { input } = await import('../ir/node.ts');
    const { makeFunc } = await import('../ir/graph.ts');
    const w = input('w', 'f32', [4]);
    const next = b.mul(w, b.scalarLike(2, w));
    // `late` reads w in a separate kernel (a reduction). Neither kernel reads the other's output, so
    // both orders are valid schedules; each is planned, so both answers are checked.
    const late = b.reduceSum(b.exp(w), [0]);
    const p = fuse(makeFunc('f', [w], [next, late], ['w.next', 'late']));
    expect(p.kernels.map((k) => k.kind).sort()).toEqual(['elementwise', 'reduce']);
    const nextKernel = p.kernels.find((k) => k.output === p.outputs[0])!;
    const lateKernel = p.kernels.find((k) => k.output === p.outputs[1])!;
    const alias = { output: p.outputs[0], input: p.inputs[0] };
    // w.next first, then `late` reads w: writing w.next over w would feed `late` the new values.
    expect(planMemory({ ...p, kernels: [nextKernel, lateKernel] }, [alias]).aliased).toBe(0);
    // `late` first: w is dead once w.next is written, so the update goes in place.
    expect(planMemory({ ...p, kernels: [lateKernel, nextKernel] }, [alias]).aliased).toBe(1);
  });
});
