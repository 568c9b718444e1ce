/**
 * Newline-delimited JSON (one JSON document per line): how the API streams long answers
 * (the log, a diff, the progress of compact and restore). Shared by the server, which writes
 * the lines, and ApiClient, which reads them. A stream that fails after its first line cannot
 * change the HTTP status any more, so it ends with one line `{"error": {code, message, hint?}}`,
 * the same body a JSON error answer has (failureOf in http-status.ts makes both).
 */
export const ndjsonContentType = "application/x-ndjson";

export function ndjsonLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}
