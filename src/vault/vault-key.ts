import { invalidArgument } from "../util/errors.js";

/** Longest key accepted: S3's limit, and far below PATH_MAX once under a vault directory. */
export const VAULT_KEY_LENGTH_MAX = 1024;

const keyCharacters = /^[A-Za-z0-9._@/-]*$/;

/**
 * The one rule for vault keys, the same on every target: relative paths of segments joined by
 * "/", characters [A-Za-z0-9._@/-] only, no leading or trailing "/", no empty segment, and no
 * segment that starts with "." (which excludes "." and "..", and keeps the names of temp files
 * — ".tmp-*" — apart from every key). Throws INVALID_ARGUMENT naming the key and the rule.
 */
export function checkVaultKey(key: string): void {
  const problem = keyProblem(key);
  if (problem !== undefined) throw invalidArgument(`invalid vault key ${JSON.stringify(key)}: ${problem}`);
}

/** A list prefix: "" or the start of a key (the same characters; its complete segments follow the key rule). */
export function checkVaultPrefix(prefix: string): void {
  if (prefix === "") return;
  const problem = characterProblem(prefix) ?? segmentsProblem(prefix.split("/").slice(0, -1), prefix) ?? leadingDotProblem(prefix);
  if (problem !== undefined) throw invalidArgument(`invalid vault prefix ${JSON.stringify(prefix)}: ${problem}`);
}

function keyProblem(key: string): string | undefined {
  if (key === "") return "it is empty";
  return characterProblem(key) ?? segmentsProblem(key.split("/"), key);
}

function characterProblem(text: string): string | undefined {
  if (text.length > VAULT_KEY_LENGTH_MAX) return `longer than ${VAULT_KEY_LENGTH_MAX} characters`;
  if (!keyCharacters.test(text)) return "only A-Z a-z 0-9 . _ @ / - are allowed";
  if (text.startsWith("/")) return "it must not start with /";
  return undefined;
}

function segmentsProblem(segments: readonly string[], text: string): string | undefined {
  if (segments.some((segment) => segment === "")) return text.endsWith("/") ? "it must not end with /" : "it has an empty segment (//)";
  if (segments.some((segment) => segment.startsWith("."))) return 'no segment may start with "." (no "." or "..")';
  return undefined;
}

/** The last, partial segment of a prefix must not start with "." either (it could only match temp names). */
function leadingDotProblem(prefix: string): string | undefined {
  const last = prefix.slice(prefix.lastIndexOf("/") + 1);
  return last.startsWith(".") ? 'no segment may start with "." (no "." or "..")' : undefined;
}
