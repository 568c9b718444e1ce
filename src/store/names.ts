/**
 * The name rule of disks and snapshots, defined once. The store checks every name it is given
 * with it, the API's schemas take their pattern from it (api/schemas.ts) and answer a name that
 * fails it with this file's message (api/server.ts), and the CLI checks names with it before it
 * calls anything: one rule, one message, wherever a name comes in.
 *
 * A name is safe as a file name (a disk's directory), inside an NBD export name (`DISK@NAME`)
 * and in a URL path; it starts with a letter or digit, so it is never an option (`-x`), a
 * hidden file (`.x`, where interrupted creates and deletes live) or `.`/`..`.
 */
import { invalidArgument } from "../util/errors.js";

export type NameKind = "disk" | "snapshot" | "vault";

export const NAME_LENGTH_MAX = 64;
/** The rule as a pattern's source, for JSON schemas; NAME_PATTERN is the same, compiled. */
export const NAME_PATTERN_SOURCE = `^[A-Za-z0-9][A-Za-z0-9._-]{0,${NAME_LENGTH_MAX - 1}}$`;
export const NAME_PATTERN = new RegExp(NAME_PATTERN_SOURCE);
/** The rule in words, for messages and schema descriptions. */
export const NAME_RULE = `1-${NAME_LENGTH_MAX} of A-Z a-z 0-9 . _ - (starting with a letter or digit)`;

/** The one message for a `kind` name that breaks the rule; undefined when `name` keeps it. */
export function nameProblem(kind: NameKind, name: string): string | undefined {
  return NAME_PATTERN.test(name) ? undefined : `invalid ${kind} name ${JSON.stringify(name)}: use ${NAME_RULE}`;
}

/** Returns `name` when it keeps the rule; INVALID_ARGUMENT with nameProblem's message otherwise. */
export function checkName(kind: NameKind, name: string): string {
  const problem = nameProblem(kind, name);
  if (problem !== undefined) throw invalidArgument(problem);
  return name;
}
