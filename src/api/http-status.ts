/**
 * The one table from error code to HTTP status (STYLE "Map each error once, at the
 * boundary"). `satisfies Record<ErrorCode, number>` makes a missing code a compile error;
 * test/errors.test.ts checks it again at run time, and docs/errors.md lists the same values.
 */
import type { FastifyError } from "fastify";
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
  [ErrorCodes.BAD_STREAM]: 400,
  [ErrorCodes.IO]: 500,
  [ErrorCodes.INTERNAL]: 500,
  [ErrorCodes.OUTSIDE_WINDOW]: 410,
  [ErrorCodes.CLOSED]: 503,
  [ErrorCodes.UNSUPPORTED]: 501,
  [ErrorCodes.VAULT_UNREACHABLE]: 502,
  [ErrorCodes.VAULT_DENIED]: 502,
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

/** How an API answer reports a failure: its status, its body, and how loudly the server logs it. */
export interface Failure {
  status: number;
  body: ErrorBody;
  /** "error" for server faults (5xx), which an operator should see; "debug" for bad requests. */
  logLevel: "error" | "debug";
}

/**
 * The one mapping of anything thrown while answering a request to its answer, used by the
 * JSON error handler and by the streams' final {error} line. A SnaplogError keeps its code
 * (status from httpStatusByCode). Fastify's own 4xx errors (a body that fails the schema,
 * malformed JSON, a body too large) are INVALID_ARGUMENT with their status. Anything else is
 * a bug: INTERNAL, 500.
 */
export function failureOf(error: unknown): Failure {
  if (error instanceof SnaplogError) {
    const status = httpStatusByCode[error.code];
    return { status, body: errorBody(error), logLevel: status >= 500 ? "error" : "debug" };
  }
  const { statusCode, validation } = (error ?? {}) as Partial<FastifyError>;
  const message = oneLine(error instanceof Error ? error.message : String(error));
  if (validation !== undefined || (statusCode !== undefined && statusCode >= 400 && statusCode < 500)) {
    return { status: statusCode ?? 400, body: { error: { code: ErrorCodes.INVALID_ARGUMENT, message } }, logLevel: "debug" };
  }
  return { status: 500, body: { error: { code: ErrorCodes.INTERNAL, message: `internal error: ${message}` } }, logLevel: "error" };
}
