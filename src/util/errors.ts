/**
 * One error class for every failure the product can report, each with a stable code.
 * Boundaries (NBD, HTTP, CLI) map codes once, in their own table:
 * src/nbd/errno.ts, src/api/http-status.ts, src/cli/exit-code.ts. docs/errors.md lists every code;
 * test/errors.test.ts fails if a code is missing from any table or from the doc.
 */
export const ErrorCodes = {
  /** Input that does not parse or is out of the allowed range. */
  INVALID_ARGUMENT: "SNAPLOG_INVALID_ARGUMENT",
  /** I/O that reaches past the end of a volume. */
  OUT_OF_RANGE: "SNAPLOG_OUT_OF_RANGE",
  /** A named thing (disk, snapshot, export, LUN) does not exist. */
  NOT_FOUND: "SNAPLOG_NOT_FOUND",
  /** A named thing already exists. */
  ALREADY_EXISTS: "SNAPLOG_ALREADY_EXISTS",
  /** A write to a read-only volume. */
  READ_ONLY: "SNAPLOG_READ_ONLY",
  /** Stored bytes failed their checksum. */
  CORRUPT: "SNAPLOG_CORRUPT",
  /** A stream handed to us (an import, a replication batch) is damaged, cut short or no snaplog stream: the sender's fault, nothing changed. */
  BAD_STREAM: "SNAPLOG_BAD_STREAM",
  /** The medium failed an operation. */
  IO: "SNAPLOG_IO",
  /** The medium is full. */
  NO_SPACE: "SNAPLOG_NO_SPACE",
  /** Another process owns the store. */
  STORE_LOCKED: "SNAPLOG_STORE_LOCKED",
  /** No store at that path, or not a snaplog store. */
  NO_STORE: "SNAPLOG_NO_STORE",
  /** The disk or store is closing or closed. */
  CLOSED: "SNAPLOG_CLOSED",
  /** A request that is well-formed but not supported. */
  UNSUPPORTED: "SNAPLOG_UNSUPPORTED",
  /** The operation conflicts with the current state (e.g. deleting a disk in use). */
  CONFLICT: "SNAPLOG_CONFLICT",
  /** A point in time (LSN or time) the disk's history no longer holds, or not yet. */
  OUTSIDE_WINDOW: "SNAPLOG_OUTSIDE_WINDOW",
  /** A vault (archive target) cannot be reached: network error, endpoint down, or it kept failing (5xx) after retries. */
  VAULT_UNREACHABLE: "SNAPLOG_VAULT_UNREACHABLE",
  /** A vault refused our credentials or token (S3 403, appliance 401). */
  VAULT_DENIED: "SNAPLOG_VAULT_DENIED",
  /** A bug: an invariant did not hold. */
  INTERNAL: "SNAPLOG_INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface ErrorContext {
  disk?: string;
  lsn?: number;
  path?: string;
  hint?: string;
  cause?: unknown;
}

export class SnaplogError extends Error {
  readonly code: ErrorCode;
  readonly disk?: string;
  readonly lsn?: number;
  readonly path?: string;
  /** What an operator can do about it. */
  readonly hint?: string;

  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = "SnaplogError";
    this.code = code;
    this.disk = context.disk;
    this.lsn = context.lsn;
    this.path = context.path;
    this.hint = context.hint;
  }
}

export function invalidArgument(message: string, context?: ErrorContext): SnaplogError {
  return new SnaplogError(ErrorCodes.INVALID_ARGUMENT, message, context);
}

export function notFound(message: string, context?: ErrorContext): SnaplogError {
  return new SnaplogError(ErrorCodes.NOT_FOUND, message, context);
}

export function internalError(message: string): SnaplogError {
  return new SnaplogError(ErrorCodes.INTERNAL, message);
}

/** Turns a Node.js system error from the medium into a typed error. */
export function fromSystemError(error: unknown, context: ErrorContext): SnaplogError {
  if (error instanceof SnaplogError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new SnaplogError(ErrorCodes.NO_SPACE, `no space left: ${message}`, { ...context, cause: error });
  }
  return new SnaplogError(ErrorCodes.IO, `I/O error: ${message}`, { ...context, cause: error });
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw internalError(`assertion failed: ${message}`);
}
