/**
 * The one table from error code to process exit code (STYLE "Map each error once").
 * 0 is success and 1 anything without a more specific code; 2 is also what commander's
 * usage errors exit with. docs/errors.md lists the same values; test/errors.test.ts checks.
 */
import { ErrorCodes, type ErrorCode } from "../util/errors.js";

export const exitCodeSuccess = 0;
export const exitCodeOther = 1;
export const exitCodeUsage = 2;
/**
 * `snaplog scrub` found damage. The scrub itself worked (its report is on stdout), so this is
 * a finding rather than an error, and it has its own value, outside the error table below.
 */
export const exitCodeDamageFound = 9;

/**
 * Thrown by a command that completed and printed its output but must end with a non-zero
 * status (scrub finding damage); main.ts turns it into that status without printing more.
 */
export class ExitStatus extends Error {
  constructor(readonly exitCode: number) {
    super(`exit status ${exitCode}`);
    this.name = "ExitStatus";
  }
}

export const exitCodeByCode = {
  [ErrorCodes.INVALID_ARGUMENT]: exitCodeUsage,
  [ErrorCodes.OUT_OF_RANGE]: exitCodeUsage,
  [ErrorCodes.NOT_FOUND]: 3,
  [ErrorCodes.OUTSIDE_WINDOW]: 3,
  [ErrorCodes.ALREADY_EXISTS]: 4,
  [ErrorCodes.CONFLICT]: 4,
  [ErrorCodes.READ_ONLY]: 4,
  [ErrorCodes.STORE_LOCKED]: 5,
  [ErrorCodes.NO_STORE]: 6,
  [ErrorCodes.CORRUPT]: 7,
  [ErrorCodes.BAD_STREAM]: exitCodeUsage,
  [ErrorCodes.IO]: 7,
  [ErrorCodes.NO_SPACE]: 8,
  [ErrorCodes.CLOSED]: exitCodeOther,
  [ErrorCodes.UNSUPPORTED]: exitCodeOther,
  [ErrorCodes.INTERNAL]: exitCodeOther,
  [ErrorCodes.VAULT_UNREACHABLE]: 10,
  [ErrorCodes.VAULT_DENIED]: 11,
} as const satisfies Record<ErrorCode, number>;
