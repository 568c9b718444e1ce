/**
 * The API's unix socket in the store (access control by file mode; the bearer token for TCP is
 * token.ts). A socket left behind by a killed server is replaced; a socket
 * something still answers on is refused with CONFLICT.
 */
import { chmod, lstat, unlink } from "node:fs/promises";
import net from "node:net";
import { ErrorCodes, SnaplogError, fromSystemError } from "../util/errors.js";

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
export const socketPathBytesMax = 107;
const probeTimeoutMs = 2000;

export function assertSocketPathFits(socketPath: string): void {
  if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
    throw new SnaplogError(
      ErrorCodes.INVALID_ARGUMENT,
      `socket path too long (${Buffer.byteLength(socketPath)} > ${socketPathBytesMax} bytes): ${socketPath}`,
      {
        path: socketPath,
        hint: "use a store directory with a shorter path",
      },
    );
  }
}

/** Whether a server accepts connections on the unix socket. */
export function probeSocket(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: socketPath });
    const finish = (answered: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), probeTimeoutMs);
    socket.once("connect", () => finish(true));
    socket.once("error", () => finish(false));
  });
}

/** Makes socketPath free to listen on: removes a stale socket, refuses a live one. */
export async function claimSocketPath(socketPath: string): Promise<void> {
  assertSocketPathFits(socketPath);
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw fromSystemError(error, { path: socketPath });
  }
  if (!isSocket) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `${socketPath} exists and is not a socket`, {
      path: socketPath,
      hint: "move that file away",
    });
  }
  if (await probeSocket(socketPath)) {
    throw new SnaplogError(ErrorCodes.CONFLICT, `another server answers on ${socketPath}`, {
      path: socketPath,
      hint: "stop the other snaplog serve first",
    });
  }
  await removeSocket(socketPath);
}

export async function removeSocket(socketPath: string): Promise<void> {
  try {
    await unlink(socketPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw fromSystemError(error, { path: socketPath });
  }
}

export async function restrictToOwner(filePath: string): Promise<void> {
  await chmod(filePath, 0o600);
}
