/**
 * Newline-delimited JSON (one JSON document per line): how the API streams long answers
 * (the log, a diff, the progress of compact and restore). Shared by the server, which writes
 * the lines, and ApiClient, which reads them. A stream that fails after its first line cannot
 * change the HTTP status any more, so it ends with one line `{"error": {code, message, hint?}}`,
 * the same body a JSON error answer has.
 */
import { ErrorCodes, SnaplogError } from "../util/errors.js";
import { errorBody } from "./status.js";

export const ndjsonContentType = "application/x-ndjson";

/** Any failure as a SnaplogError: a bare Error is a bug (INTERNAL), as in the JSON error handler. */
export function asSnaplogError(error: unknown): SnaplogError {
  if (error instanceof SnaplogError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new SnaplogError(ErrorCodes.INTERNAL, `internal error: ${message}`, { cause: error });
}

export function ndjsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

export function errorLine(error: SnaplogError): string {
  return ndjsonLine(errorBody(error));
}
