/**
 * The one table from error code to process exit code (STYLE "Map each error once").
 * 0 is success and 1 anything without a more specific code; 2 is also what commander's
 * usage errors exit with. docs/errors.md lists the same values; test/errors.test.ts checks.
 */
import { ErrorCodes, type ErrorCode } from "../util/errors.js";

export const exitCodeSuccess = 0;
export const exitCodeOther = 1;
export const exitCodeUsage = 2;

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
  [ErrorCodes.IO]: 7,
  [ErrorCodes.NO_SPACE]: 8,
  [ErrorCodes.CLOSED]: exitCodeOther,
  [ErrorCodes.UNSUPPORTED]: exitCodeOther,
  [ErrorCodes.INTERNAL]: exitCodeOther,
} as const satisfies Record<ErrorCode, number>;
