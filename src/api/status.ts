/**
 * The one table from error code to HTTP status (STYLE "Map each error once, at the
 * boundary"). `satisfies Record<ErrorCode, number>` makes a missing code a compile error;
 * test/errors.test.ts checks it again at run time, and docs/errors.md lists the same values.
 */
import { ErrorCodes, SnaplogError, type ErrorCode } from "../util/errors.js";

export const httpStatusByCode = {
  [ErrorCodes.INVALID_ARGUMENT]: 400,
  [ErrorCodes.OUT_OF_RANGE]: 400,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.NO_STORE]: 404,
  [ErrorCodes.ALREADY_EXISTS]: 409,
  [ErrorCodes.CONFLICT]: 409,
  [ErrorCodes.READ_ONLY]: 409,
  [ErrorCodes.STORE_LOCKED]: 409,
  [ErrorCodes.NO_SPACE]: 507,
  [ErrorCodes.CORRUPT]: 500,
  [ErrorCodes.IO]: 500,
  [ErrorCodes.INTERNAL]: 500,
  [ErrorCodes.OUTSIDE_WINDOW]: 410,
  [ErrorCodes.CLOSED]: 503,
  [ErrorCodes.UNSUPPORTED]: 501,
} as const satisfies Record<ErrorCode, number>;

const knownCodes: ReadonlySet<string> = new Set(Object.values(ErrorCodes));

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && knownCodes.has(value);
}

/** The JSON body of every error answer. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; hint?: string };
}

/** Error messages cross the wire as one line. */
export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, "; ").trim();
}

export function errorBody(error: SnaplogError): ErrorBody {
  const body: ErrorBody = { error: { code: error.code, message: oneLine(error.message) } };
  if (error.hint !== undefined) body.error.hint = oneLine(error.hint);
  return body;
}
