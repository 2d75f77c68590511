/**
 * @file The error users see for a bad model definition or bad data: it names the layer or argument
 * and what was expected against what was given.
 */
export class DlcError extends Error {
  override name = 'DlcError';
}

export function fail(msg: string): never {
  throw new DlcError(msg);
}
