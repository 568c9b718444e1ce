/**
 * The only place where a SnaplogError becomes an NBD errno (transmission) or an option error
 * reply (handshake). The mapping is lossy (NBD has a handful of codes), so callers log the real
 * error before sending the code (see transmission.ts). test/nbd-server.test.ts and
 * test/nbd-handshake.test.ts check that every ErrorCodes value has a row in each table.
 */
import { ErrorCodes, SnaplogError, type ErrorCode } from "../util/errors.js";
import {
  NBD_EINVAL,
  NBD_EIO,
  NBD_ENOMEM,
  NBD_ENOSPC,
  NBD_ENOTSUP,
  NBD_EOVERFLOW,
  NBD_EPERM,
  NBD_ESHUTDOWN,
  REP_ERR_SHUTDOWN,
  REP_ERR_UNKNOWN,
} from "./protocol.js";

/** Errno sent for each code. OUT_OF_RANGE becomes ENOSPC for writes (see nbdErrnoForError). */
export const NBD_ERRNO_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  [ErrorCodes.INVALID_ARGUMENT]: NBD_EINVAL,
  [ErrorCodes.OUT_OF_RANGE]: NBD_EINVAL,
  [ErrorCodes.NOT_FOUND]: NBD_EIO,
  [ErrorCodes.ALREADY_EXISTS]: NBD_EIO,
  [ErrorCodes.READ_ONLY]: NBD_EPERM,
  [ErrorCodes.CORRUPT]: NBD_EIO,
  [ErrorCodes.BAD_STREAM]: NBD_EINVAL,
  [ErrorCodes.IO]: NBD_EIO,
  [ErrorCodes.NO_SPACE]: NBD_ENOSPC,
  [ErrorCodes.STORE_LOCKED]: NBD_EIO,
  [ErrorCodes.NO_STORE]: NBD_EIO,
  [ErrorCodes.CLOSED]: NBD_ESHUTDOWN,
  [ErrorCodes.UNSUPPORTED]: NBD_ENOTSUP,
  [ErrorCodes.CONFLICT]: NBD_EIO,
  [ErrorCodes.OUTSIDE_WINDOW]: NBD_EINVAL,
  [ErrorCodes.INTERNAL]: NBD_EIO,
  [ErrorCodes.VAULT_UNREACHABLE]: NBD_EIO,
  [ErrorCodes.VAULT_DENIED]: NBD_EIO,
};

/**
 * The errno for a failed volume call. `isWrite` is true for WRITE, TRIM and WRITE_ZEROES, where
 * the NBD specification wants ENOSPC for I/O past the end. Anything that is not a SnaplogError
 * is a bug or an unexpected system error: EIO.
 */
export function nbdErrnoForError(error: unknown, isWrite: boolean): number {
  if (!(error instanceof SnaplogError)) return NBD_EIO;
  if (isWrite && error.code === ErrorCodes.OUT_OF_RANGE) return NBD_ENOSPC;
  return NBD_ERRNO_BY_CODE[error.code] ?? NBD_EIO;
}

/** How the handshake refuses an export name the store could not resolve (handshake.ts). */
export interface ExportRefusal {
  /** The option's error reply. */
  reply: number;
  /** Worth a warning in the server's log; a client's own mistake (no such export, a point outside the window) is not. */
  logged: boolean;
}

const refusedByClient: ExportRefusal = { reply: REP_ERR_UNKNOWN, logged: false };
const refusedByServer: ExportRefusal = { reply: REP_ERR_UNKNOWN, logged: true };

/**
 * The refusal for each code of a failed resolve: the client's mistakes and passing states
 * (a rollback under way, the server closing) are answered, not logged; the rest is the
 * server's trouble and is logged. CLOSED answers NBD_REP_ERR_SHUTDOWN.
 */
export const NBD_EXPORT_REFUSAL_BY_CODE: Readonly<Record<ErrorCode, ExportRefusal>> = {
  [ErrorCodes.INVALID_ARGUMENT]: refusedByClient,
  [ErrorCodes.OUT_OF_RANGE]: refusedByClient,
  [ErrorCodes.NOT_FOUND]: refusedByClient,
  [ErrorCodes.OUTSIDE_WINDOW]: refusedByClient,
  [ErrorCodes.CONFLICT]: refusedByClient,
  [ErrorCodes.CLOSED]: { reply: REP_ERR_SHUTDOWN, logged: false },
  [ErrorCodes.ALREADY_EXISTS]: refusedByServer,
  [ErrorCodes.READ_ONLY]: refusedByServer,
  [ErrorCodes.CORRUPT]: refusedByServer,
  [ErrorCodes.BAD_STREAM]: refusedByClient,
  [ErrorCodes.IO]: refusedByServer,
  [ErrorCodes.NO_SPACE]: refusedByServer,
  [ErrorCodes.STORE_LOCKED]: refusedByServer,
  [ErrorCodes.NO_STORE]: refusedByServer,
  [ErrorCodes.UNSUPPORTED]: refusedByServer,
  [ErrorCodes.INTERNAL]: refusedByServer,
  [ErrorCodes.VAULT_UNREACHABLE]: refusedByServer,
  [ErrorCodes.VAULT_DENIED]: refusedByServer,
};

/** Short names for log lines and ERROR chunk messages. */
export const NBD_ERRNO_NAMES: Readonly<Record<number, string>> = {
  [NBD_EPERM]: "EPERM",
  [NBD_EIO]: "EIO",
  [NBD_ENOMEM]: "ENOMEM",
  [NBD_EINVAL]: "EINVAL",
  [NBD_ENOSPC]: "ENOSPC",
  [NBD_EOVERFLOW]: "EOVERFLOW",
  [NBD_ENOTSUP]: "ENOTSUP",
  [NBD_ESHUTDOWN]: "ESHUTDOWN",
};
