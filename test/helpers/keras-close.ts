/**
 * @file The comparison the Keras fixture tests share (optimizers, losses, sample weights): every
 * element of dlc's result within rtol·|Keras's| + atol of Keras's, failing with the first element
 * that is not, both values and the tolerance.
 */
import { expect } from 'vitest';

export function close(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const tol = rtol * Math.abs(want[i]) + atol;
    if (!(Math.abs(got[i] - want[i]) <= tol)) expect.fail(`${what}[${i}]: dlc ${got[i]}, Keras ${want[i]} (tolerance ${tol.toExponential(2)})`);
  }
}
