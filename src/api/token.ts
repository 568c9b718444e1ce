/**
 * The bearer token of the TCP faces (the API, replication): 32 random bytes, hex, in the store's
 * `api.token` (mode 0600), made at the first `serve` that opens a TCP face. `TokenHolder` is what
 * the running server checks requests against, so `snaplog token rotate` takes effect at once:
 * the new token is written (a new file renamed over the old, never half written) and the old
 * one stops working, without a restart.
 */
import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { ErrorCodes, SnaplogError, fromSystemError } from "../util/errors.js";

const tokenBytes = 32;

/** Reads the bearer token, creating it if missing. */
export async function ensureToken(tokenPath: string): Promise<string> {
  const created = newToken();
  try {
    await writeFile(tokenPath, `${created}\n`, { mode: 0o600, flag: "wx" });
    return created;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw fromSystemError(error, { path: tokenPath });
  }
  const token = (await readFile(tokenPath, "utf8")).trim();
  if (token.length === 0) {
    throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `token file ${tokenPath} is empty`, {
      path: tokenPath,
      hint: "run snaplog token rotate, or delete it: serve --api creates a new one",
    });
  }
  return token;
}

/** Writes a new token over the file (whole or not at all) and returns it. */
export async function rotateTokenFile(tokenPath: string): Promise<string> {
  const token = newToken();
  const temporary = `${tokenPath}.new-${process.pid}`;
  try {
    await writeFile(temporary, `${token}\n`, { mode: 0o600 });
    await rename(temporary, tokenPath);
  } catch (error) {
    await rm(temporary, { force: true });
    throw fromSystemError(error, { path: tokenPath });
  }
  return token;
}

/** The token a running server checks, shared by its TCP faces. */
export class TokenHolder {
  /** `Bearer <token>`, as a request's Authorization header must hold it (made once per token, not per request). */
  private header: Buffer;

  private constructor(
    readonly path: string,
    private token: string,
  ) {
    this.header = Buffer.from(`Bearer ${token}`);
  }

  static async load(tokenPath: string): Promise<TokenHolder> {
    return new TokenHolder(tokenPath, await ensureToken(tokenPath));
  }

  get expectedHeader(): Buffer {
    return this.header;
  }

  /** A new token in the file and in force from now on; the old one is refused from the next request. */
  async rotate(): Promise<string> {
    this.token = await rotateTokenFile(this.path);
    this.header = Buffer.from(`Bearer ${this.token}`);
    return this.token;
  }
}

function newToken(): string {
  return randomBytes(tokenBytes).toString("hex");
}
