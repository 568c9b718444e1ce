/** A mirror path as the policy takes it (SPEC §6). */
import * as path from "node:path";
import { invalidArgument } from "../../util/errors.js";

/** Absolute (the server's working directory is not the user's), normalized. */
export function checkMirrorPath(mirror: string): string {
  if (mirror.length === 0 || !path.isAbsolute(mirror)) throw invalidArgument(`--mirror ${mirror}: give an absolute path (or off)`);
  return path.normalize(mirror);
}
