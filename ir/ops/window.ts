/**
 * @file Pooling: `reduce_window` (max or sum over 2-D windows of an NHWC tensor) and its gradient
 * `reduce_window_grad(x, dy)`, which routes each window's cotangent back to the input.
 *
 * For max the cotangent goes to the first maximum of the window in row-major order (padding never
 * wins), as XLA's select-and-scatter does; for sum it goes to every in-bounds element. The gradient
 * is its own primitive because scatter-to-argmax is not a composition of the other ops without a
 * scatter. Second-order gradients through max pooling are refused with a clear error.
 */
import * as b from '../builders.ts';
import type { OpDef, Tensor64 } from '../opdef.ts';
import { expectDType, fail } from '../opdef.ts';
import type { OpParams, TensorType } from '../types.ts';
import { fmtShape, numel, shapeEq } from '../types.ts';

type WinParams = OpParams['reduce_window'];

function windowType(x: TensorType, p: WinParams): TensorType {
  if (p.op !== 'max' && p.op !== 'sum') fail(`op must be max or sum, got ${String(p.op)}`);
  expectDType(x, ['f32'], 'operand');
  if (x.shape.length !== 4) fail(`operand must be NHWC (rank 4), got ${fmtShape(x.shape)}`);
  for (const [v, what, min] of [[p.window, 'window', 1], [p.strides, 'strides', 1]] as const) {
    if (!Array.isArray(v) || v.length !== 2 || !v.every((s) => Number.isInteger(s) && s >= min)) fail(`${what} must be two integers >= ${min}, got (${String(v)})`);
  }
  if (!Array.isArray(p.padding) || p.padding.length !== 2 || !p.padding.every((q) => q.length === 2 && q.every((v: number) => Number.isInteger(v) && v >= 0))) {
    fail('padding must be two non-negative [lo, hi] pairs');
  }
  const hw = [0, 1].map((i) => Math.floor((x.shape[1 + i] + p.padding[i][0] + p.padding[i][1] - p.window[i]) / p.strides[i]) + 1);
  if (hw.some((d) => d < 1)) fail(`window ${fmtShape(p.window)} is larger than the (padded) input ${fmtShape(x.shape.slice(1, 3))}`);
  return { dtype: 'f32', shape: [x.shape[0], hw[0], hw[1], x.shape[3]] };
}

/** Visit every (output element, input element) pair of the windows, skipping padding. */
function forEachWindow(
  x: Tensor64,
  p: WinParams,
  outShape: readonly number[],
  visit: (o: number, window: readonly number[]) => void,
): void {
  const [N, H, W, C] = x.shape;
  const [, OH, OW] = outShape;
  const cells: number[] = [];
  for (let n = 0; n < N; n++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++)
        for (let c = 0; c < C; c++) {
          cells.length = 0;
          for (let kh = 0; kh < p.window[0]; kh++) {
            const ih = oh * p.strides[0] + kh - p.padding[0][0];
            if (ih < 0 || ih >= H) continue;
            for (let kw = 0; kw < p.window[1]; kw++) {
              const iw = ow * p.strides[1] + kw - p.padding[1][0];
              if (iw < 0 || iw >= W) continue;
              cells.push(((n * H + ih) * W + iw) * C + c);
            }
          }
          visit(((n * OH + oh) * OW + ow) * C + c, cells);
        }
}

export const windowOps: { readonly [O in 'reduce_window' | 'reduce_window_grad']: OpDef<O> } = {
  reduce_window: {
    arity: 1,
    type: ([x], p) => windowType(x, p),
    interp: ([x], p, out) => {
      const r = new Float64Array(numel(out.shape));
      forEachWindow(x, p, out.shape, (o, cells) => {
        let acc = p.op === 'max' ? -Infinity : 0;
        for (const i of cells) acc = p.op === 'max' ? Math.max(acc, x.data[i]) : acc + x.data[i];
        r[o] = acc;
      });
      return r;
    },
    vjp: (ct, n) => [b.reduceWindowGrad(n.inputs[0], ct, n.params)],
  },
  reduce_window_grad: {
    arity: 2,
    type: ([x, dy], p) => {
      const y = windowType(x, p);
      if (!shapeEq(dy.shape, y.shape) || dy.dtype !== 'f32') fail(`cotangent must be f32${fmtShape(y.shape)}, got ${dy.dtype}${fmtShape(dy.shape)}`);
      return { dtype: 'f32', shape: x.shape };
    },
    interp: ([x, dy], p) => {
      const r = new Float64Array(x.data.length);
      forEachWindow(x, p, dy.shape, (o, cells) => {
        if (p.op === 'sum') {
          for (const i of cells) r[i] += dy.data[o];
          return;
        }
        let best = -1;
        for (const i of cells) if (best < 0 || x.data[i] > x.data[best]) best = i;
        if (best >= 0) r[best] += dy.data[o];
      });
      return r;
    },
    vjp: (ct, n) => {
      if (n.params.op === 'max') {
        throw new Error('reduce_window_grad: second-order gradients through max pooling are not supported');
      }
      // For sum pooling the gradient is linear in dy and independent of x: its adjoint is sum pooling.
      return [null, b.reduceWindow(ct, n.params)];
    },
  },
};
