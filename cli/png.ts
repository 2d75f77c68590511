/**
 * @file A PNG picture of images beside the model's outputs for them: `dlc train --png FILE` on a
 * model whose target is its input (an autoencoder) shows test digits next to their reconstructions.
 *
 * Pure: pixel layout here, PNG encoding by pngjs (a well-kept encoder; dlc writes no PNG code). Values
 * are grey levels in [0, 1] (clipped), each image scaled up by an integer factor so digits are
 * legible, with a gap between pairs and a lighter line between an image and its reconstruction.
 */
import { PNG } from 'pngjs';

export interface GridOptions {
  /** Image height and width in pixels (the model's per-sample shape, one channel). */
  readonly height: number;
  readonly width: number;
  /** Pairs per row of the grid (default 8). */
  readonly columns?: number;
  /** Pixels per image pixel (default 2). */
  readonly scale?: number;
}

/** PNG bytes of `n` (original, output) pairs: originals[i] and outputs[i] hold height*width values each. */
export function pairGrid(originals: Float32Array, outputs: Float32Array, n: number, o: GridOptions): Uint8Array {
  const { height: h, width: w } = o;
  const cols = Math.min(o.columns ?? 8, n);
  const scale = o.scale ?? 2;
  const rows = Math.ceil(n / cols);
  const gap = 4 * scale;
  const cellW = 2 * w * scale + scale + gap;
  const cellH = h * scale + gap;
  const png = new PNG({ width: cols * cellW + gap, height: rows * cellH + gap });
  png.data.fill(48); // dark grey background; alpha set below
  for (let i = 3; i < png.data.length; i += 4) png.data[i] = 255;
  const put = (x: number, y: number, v: number) => {
    const g = Math.round(255 * Math.min(1, Math.max(0, v)));
    const at = (y * png.width + x) * 4;
    png.data[at] = png.data[at + 1] = png.data[at + 2] = g;
  };
  for (let k = 0; k < n; k++) {
    const x0 = gap + (k % cols) * cellW;
    const y0 = gap + Math.floor(k / cols) * cellH;
    [originals, outputs].forEach((src, side) => {
      const left = x0 + side * (w * scale + scale);
      for (let y = 0; y < h * scale; y++) {
        for (let x = 0; x < w * scale; x++) put(left + x, y0 + y, src[k * h * w + Math.floor(y / scale) * w + Math.floor(x / scale)]);
      }
    });
    for (let y = 0; y < h * scale; y++) for (let x = 0; x < scale; x++) put(x0 + w * scale + x, y0 + y, 0.55);
  }
  return PNG.sync.write(png);
}
