/**
 * @file Test helper: one small recurrent graph with its gradient, shared by the backend parity
 * suites (Wasm in test/backends.test.ts, WebGPU in test/webgpu.test.ts). An RNN over xs [T, 2, 3]
 * with two ys (the state, and the state times the previous one), a loss over both, and the gradients
 * of the loss with respect to the sequence, the initial state and both weights: a forward scan and
 * the reverse scan of its VJP. Inputs in order: xs [T,2,3], h0 [2,4], w [3,4], u [4,4].
 */
import { grad } from '../../ir/autodiff.ts';
import * as b from '../../ir/builders.ts';
import { makeFunc } from '../../ir/graph.ts';
import { input } from '../../ir/node.ts';
import type { Func, InputNode } from '../../ir/types.ts';

export function rnnTrainGraph(T: number, reverse: boolean): Func {
  const inp = (name: string, shape: number[]) => input(name, 'f32', shape) as InputNode;
  const xs = inp('xs', [T, 2, 3]);
  const h0 = inp('h0', [2, 4]);
  const w = inp('w', [3, 4]);
  const u = inp('u', [4, 4]);
  const r = b.scan(([h], [x]) => {
    const h2 = b.tanh(b.add(b.dot(x, w), b.dot(h, u)));
    return { carry: [h2], ys: [h2, b.mul(h2, h)] };
  }, [h0], [xs], { reverse });
  const loss = b.reduceSum(b.mul(r.ys[1], r.ys[0]), [0, 1, 2]);
  const g = grad(loss, [xs, h0, w, u]);
  return makeFunc(`scan_${reverse ? 'reverse' : 'forward'}`, [xs, h0, w, u], [r.carry[0], r.ys[0], r.ys[1], loss, ...g]);
}
