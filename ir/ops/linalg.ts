/**
 * @file Contractions: batched `dot` and general 2-D `conv`.
 *
 * `dot`: lhs [..., M, K] times rhs [..., K, N] gives [..., M, N]; batch axes must match exactly.
 * `conv`: input NHWC, kernel HWIO (kh, kw, in, out), output NHWC, with per-axis strides, explicit
 * [lo, hi] padding, lhs (input) dilation and rhs (kernel) dilation. Dilations make the conv general
 * enough that both of its gradients are convs again (the rules follow the usual transposed-conv
 * identities), so codegen needs only one conv. The reference loops keep the innermost loop on the
 * contiguous output-channel axis so the interpreter can train small models in tests.
 */
import * as b from '../builders.ts';
import type { OpDef } from '../opdef.ts';
import { winogradFits, winogradPays } from '../winograd.ts';
import { expectDType, fail } from '../opdef.ts';
import type { Node, OpParams, Padding2, Shape } from '../types.ts';
import { fmtShape, numel } from '../types.ts';

type ConvParams = OpParams['conv'];

const dilate = (n: number, d: number) => (n === 0 ? 0 : (n - 1) * d + 1);

/** Output spatial size of a conv along one axis. */
export function convOutSize(inSize: number, k: number, stride: number, lo: number, hi: number, ld: number, rd: number): number {
  return Math.floor((dilate(inSize, ld) + lo + hi - dilate(k, rd)) / stride) + 1;
}

function checkConvParams(p: ConvParams): void {
  const two = (v: readonly number[] | undefined, what: string, min: number) => {
    if (!Array.isArray(v) || v.length !== 2 || !v.every((s) => Number.isInteger(s) && s >= min)) fail(`${what} must be two integers >= ${min}, got (${String(v)})`);
  };
  two(p.strides, 'strides', 1);
  two(p.lhsDilation, 'lhsDilation', 1);
  two(p.rhsDilation, 'rhsDilation', 1);
  if (!Array.isArray(p.padding) || p.padding.length !== 2 || !p.padding.every((q) => q.length === 2 && q.every(Number.isInteger))) {
    fail(`padding must be two [lo, hi] pairs`);
  }
}

export const linalgOps: { readonly [O in 'dot' | 'conv']: OpDef<O> } = {
  dot: {
    arity: 2,
    type: ([x, y]) => {
      if (x.dtype !== y.dtype) fail(`operand dtypes differ: ${x.dtype} vs ${y.dtype}`);
      expectDType(x, ['f32', 'i32'], 'operands');
      const r = x.shape.length;
      if (r < 2 || y.shape.length !== r) fail(`operands must have the same rank >= 2, got ${fmtShape(x.shape)} and ${fmtShape(y.shape)}`);
      for (let i = 0; i < r - 2; i++) if (x.shape[i] !== y.shape[i]) fail(`batch axis ${i} differs: ${x.shape[i]} vs ${y.shape[i]}`);
      if (x.shape[r - 1] !== y.shape[r - 2]) fail(`contracting sizes differ: lhs ${fmtShape(x.shape)} has K=${x.shape[r - 1]}, rhs ${fmtShape(y.shape)} has K=${y.shape[r - 2]}`);
      return { dtype: x.dtype, shape: [...x.shape.slice(0, r - 1), y.shape[r - 1]] };
    },
    interp: ([x, y], _p, out) => {
      const r = x.shape.length;
      const [M, K, N] = [x.shape[r - 2], x.shape[r - 1], y.shape[r - 1]];
      const B = numel(x.shape.slice(0, r - 2));
      const o = new Float64Array(numel(out.shape));
      for (let bi = 0; bi < B; bi++) {
        for (let m = 0; m < M; m++) {
          const orow = (bi * M + m) * N;
          for (let k = 0; k < K; k++) {
            const a = x.data[(bi * M + m) * K + k];
            if (a === 0) continue;
            const yrow = (bi * K + k) * N;
            for (let n = 0; n < N; n++) o[orow + n] += a * y.data[yrow + n];
          }
        }
      }
      if (out.dtype === 'i32') for (let i = 0; i < o.length; i++) o[i] |= 0;
      return o;
    },
    vjp: (ct, n) => {
      const [x, y] = n.inputs;
      return [b.dot(ct, b.mT(y)), b.dot(b.mT(x), ct)];
    },
  },

  conv: {
    arity: 2,
    type: ([x, w], p) => {
      checkConvParams(p);
      expectDType(x, ['f32'], 'input');
      expectDType(w, ['f32'], 'kernel');
      if (x.shape.length !== 4) fail(`input must be NHWC (rank 4), got ${fmtShape(x.shape)}`);
      if (w.shape.length !== 4) fail(`kernel must be HWIO (rank 4), got ${fmtShape(w.shape)}`);
      if (x.shape[3] !== w.shape[2]) fail(`input has ${x.shape[3]} channels, kernel expects ${w.shape[2]}`);
      const hw = [0, 1].map((i) => convOutSize(x.shape[1 + i], w.shape[i], p.strides[i], p.padding[i][0], p.padding[i][1], p.lhsDilation[i], p.rhsDilation[i]));
      if (hw.some((d) => d < 1)) fail(`kernel ${fmtShape(w.shape.slice(0, 2))} does not fit input ${fmtShape(x.shape.slice(1, 3))} with this padding`);
      return { dtype: 'f32', shape: [x.shape[0], hw[0], hw[1], w.shape[3]] };
    },
    interp: ([x, w], p, out) => {
      const [N, H, W, C] = x.shape;
      const [KH, KW, , O] = w.shape;
      const [, OH, OW] = out.shape;
      const [sh, sw] = p.strides;
      const [[plh], [plw]] = p.padding;
      const [ldh, ldw] = p.lhsDilation;
      const [rdh, rdw] = p.rhsDilation;
      const Hd = dilate(H, ldh);
      const Wd = dilate(W, ldw);
      const o = new Float64Array(numel(out.shape));
      const xd = x.data;
      const wd = w.data;
      for (let n = 0; n < N; n++)
        for (let oh = 0; oh < OH; oh++)
          for (let kh = 0; kh < KH; kh++) {
            const ihd = oh * sh + kh * rdh - plh;
            if (ihd < 0 || ihd >= Hd || ihd % ldh !== 0) continue;
            const ih = ihd / ldh;
            for (let ow = 0; ow < OW; ow++) {
              const obase = ((n * OH + oh) * OW + ow) * O;
              for (let kw = 0; kw < KW; kw++) {
                const iwd = ow * sw + kw * rdw - plw;
                if (iwd < 0 || iwd >= Wd || iwd % ldw !== 0) continue;
                const iw = iwd / ldw;
                const xbase = ((n * H + ih) * W + iw) * C;
                const wbase = (kh * KW + kw) * C * O;
                for (let c = 0; c < C; c++) {
                  const a = xd[xbase + c];
                  if (a === 0) continue;
                  const wrow = wbase + c * O;
                  for (let oc = 0; oc < O; oc++) o[obase + oc] += a * wd[wrow + oc];
                }
              }
            }
          }
      return o;
    },
    vjp: (ct, n) => [convInputGrad(ct, n.inputs[0].shape, n.inputs[1], n.params), convKernelGrad(ct, n.inputs[0], n.inputs[1].shape, n.params)],
  },
};

/** Largest kernel window (KH*KW) for which the input gradient is written as col2im: one term per tap. */
const COL2IM_MAX_TAPS = 25;

/**
 * d(conv)/d(input). For a unit-stride, undilated conv whose output is no larger than its input
 * ('valid' or 'same' padding) it is col2im: patch gradients dP = dy @ Wᵀ over the OUTPUT positions
 * ([B*OH*OW, O] x [O, KH*KW*C]), then each input pixel sums the KH*KW patch entries that covered it
 * (one padded slice of dP per kernel tap, added up; fusion makes that one kernel of guarded loads).
 * The general form below, a full conv of the zero-padded cotangent with the flipped kernel, spends
 * (H+KH-1)(W+KW-1)/(OH*OW) times the FLOPs on the padding: 1.4x for a 3x3 kernel on 13x13, 2.8x on
 * 5x5. Both are the same sum of the same products, so results agree to rounding. A 3x3 one whose
 * full conv Winograd computes with fewer multiply-adds than col2im (ir/winograd.ts's rule, against
 * col2im's 9 * B*OH*OW * C*O) is written as the full conv, which fusion then lowers with Winograd.
 */
function convInputGrad(ct: Node, xShape: Shape, w: Node, p: ConvParams): Node {
  const [KH, KW, C, O] = w.shape;
  const unit = [0, 1].every((i) => p.strides[i] === 1 && p.lhsDilation[i] === 1 && p.rhsDilation[i] === 1);
  const [B, OH, OW] = ct.shape;
  const [H, W] = [xShape[1], xShape[2]];
  const [HP, WP] = [H + p.padding[0][0] + p.padding[0][1], W + p.padding[1][0] + p.padding[1][1]];
  if (unit && winogradFits({ kernel: w.shape, ...p }) && winogradPays(B, H, W, O, C, KH * KW * B * OH * OW * C * O)) return convInputGradFull(ct, xShape, w, p);
  if (unit && KH * KW <= COL2IM_MAX_TAPS && OH * OW <= H * W && p.padding.every(([lo, hi]) => lo >= 0 && hi >= 0)) {
    const dP = b.reshape(b.dot(b.reshape(ct, [B * OH * OW, O]), b.transpose(b.reshape(w, [KH * KW * C, O]), [1, 0])), [B, OH, OW, KH * KW, C]);
    let sum: Node | null = null;
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const t = kh * KW + kw;
        const tap = b.reshape(b.slice(dP, [0, 0, 0, t, 0], [B, OH, OW, t + 1, C]), [B, OH, OW, C]);
        // Output pixel (oh, ow) saw padded-input pixel (oh + kh, ow + kw) through this tap.
        const placed = b.pad(tap, [0, kh, kw, 0], [0, HP - OH - kh, WP - OW - kw, 0]);
        sum = sum ? b.add(sum, placed) : placed;
      }
    }
    return b.slice(sum!, [0, p.padding[0][0], p.padding[1][0], 0], [B, p.padding[0][0] + H, p.padding[1][0] + W, C]);
  }
  return convInputGradFull(ct, xShape, w, p);
}

/** d(conv)/d(input) in general: a conv of the cotangent with the flipped, in/out-swapped kernel. */
function convInputGradFull(ct: Node, xShape: Shape, w: Node, p: ConvParams): Node {
  const padding: [number, number][] = [0, 1].map((i) => {
    const lhsD = dilate(xShape[1 + i], p.lhsDilation[i]);
    const rhsD = dilate(w.shape[i], p.rhsDilation[i]);
    const outD = dilate(ct.shape[1 + i], p.strides[i]);
    const before = rhsD - p.padding[i][0] - 1;
    return [before, lhsD + rhsD - 1 - outD - before];
  });
  const wT = b.transpose(b.reverse(w, [0, 1]), [0, 1, 3, 2]);
  return b.conv(ct, wT, { strides: p.lhsDilation, padding, lhsDilation: p.strides, rhsDilation: p.rhsDilation });
}

/** d(conv)/d(kernel): a conv with batch and channels swapped, the cotangent acting as the kernel. */
function convKernelGrad(ct: Node, x: Node, wShape: Shape, p: ConvParams): Node {
  const padding: Padding2 = [0, 1].map((i) => {
    const lhsD = dilate(x.shape[1 + i], p.lhsDilation[i]);
    const rhsD = dilate(wShape[i], p.rhsDilation[i]);
    const outD = dilate(ct.shape[1 + i], p.strides[i]);
    const lo = p.padding[i][0];
    return [lo, outD - lhsD + (rhsD - lo - 1)] as const;
  });
  const xT = b.transpose(x, [3, 1, 2, 0]); // [C, H, W, N]: channels act as the batch
  const ctT = b.transpose(ct, [1, 2, 0, 3]); // [OH, OW, N, O]: the cotangent is an HWIO kernel
  const g = b.conv(xT, ctT, { strides: p.rhsDilation, padding, lhsDilation: p.lhsDilation, rhsDilation: p.strides }); // [C, KH, KW, O]
  return b.transpose(g, [1, 2, 0, 3]);
}
