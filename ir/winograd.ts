/**
 * @file When a conv is computed with Winograd F(2x2, 3x3): the shape test and the cost rule.
 *
 * Fusion (compiler/kernel/fuse.ts, with the transforms in compiler/kernel/winograd.ts) lowers a
 * conv the rule accepts to an input transform, a weight transform, a batched matmul over the 16
 * positions of a 4x4 tile and an output transform; the conv VJP (ir/ops/linalg.ts) asks the same
 * rule whether to write a unit-stride input gradient as a full conv (which fusion then lowers with
 * Winograd) instead of col2im. The rule lives here because ir/ may import nothing outside itself and
 * both need it. It is pure shape arithmetic: whether a layer qualifies never depends on the batch
 * size (both sides of the comparison scale with it), so predict, eval and train agree per layer.
 * The measurements behind the thresholds are in ARCHITECTURE.md (Decisions, "Winograd F(2×2, 3×3)").
 */

/** Output tile edge of F(2x2, 3x3); the input tile is 4x4, so the matmul batch is 16. */
export const WINOGRAD_TILE = 2;

/**
 * Fewest input and output channels for Winograd: the batched matmul contracts over the input
 * channels and is as wide as the output channels, and below this the micro-kernel's fixed costs
 * (panel packing, accumulator stores) and the transforms' memory traffic outweigh the saved
 * multiply-adds (conv1 of the reference model has one input channel).
 */
export const WINOGRAD_MIN_CHANNELS = 16;

/**
 * Largest ratio of Winograd's matmul multiply-adds to the baseline's for which it is used. The
 * transforms are memory-bound passes (V is 4x the input, the output transform reads 9 values per
 * pixel), so the matmul must shrink enough to pay for them: on the reference model a ratio of 0.53
 * (conv2) ran 1.6x faster forward and 1.3x on its kernel gradient, 0.72 (conv2's input gradient
 * against col2im) and 0.79 (conv3) gained nothing.
 */
export const WINOGRAD_MAX_RATIO = 0.6;

export interface ConvGeometry {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly lhsDilation: readonly number[];
  readonly rhsDilation: readonly number[];
}

/** 3x3 kernel, unit strides, no dilation: the convs F(2x2, 3x3) computes (any padding). */
export function winogradFits(g: ConvGeometry): boolean {
  const ones = (v: readonly number[]) => v.every((d) => d === 1);
  return g.kernel[0] === 3 && g.kernel[1] === 3 && ones(g.strides) && ones(g.lhsDilation) && ones(g.rhsDilation);
}

/** Multiply-adds of the Winograd batched matmul for an [N, OH, OW, O] output from C channels. */
export function winogradMacs(N: number, OH: number, OW: number, C: number, O: number): number {
  return 16 * N * Math.ceil(OH / WINOGRAD_TILE) * Math.ceil(OW / WINOGRAD_TILE) * C * O;
}

/**
 * Whether a conv that `winogradFits`, with output [N, OH, OW, O] and C input channels, is computed
 * with Winograd, against `baselineMacs` (default: the im2col matmul, 9 * N*OH*OW * C*O).
 */
export function winogradPays(N: number, OH: number, OW: number, C: number, O: number, baselineMacs = 9 * N * OH * OW * C * O): boolean {
  if (C < WINOGRAD_MIN_CHANNELS || O < WINOGRAD_MIN_CHANNELS) return false;
  return winogradMacs(N, OH, OW, C, O) <= WINOGRAD_MAX_RATIO * baselineMacs;
}
