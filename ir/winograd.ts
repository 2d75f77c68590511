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
 * The numbers behind the thresholds are in ARCHITECTURE.md ("Winograd convolutions").
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
 * transforms are memory-bound passes over about 4x the input and 2.25x the output, which cost
 * about as much as the im2col they replace plus an extra pass over the output; below this ratio the
 * saved matmul time pays for them.
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
