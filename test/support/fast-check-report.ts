/**
 * fast-check puts the failing assertion in `error.cause`, which node's test reporter does not
 * print: this copies it into the message, so a failure says what went wrong, not only where.
 * Replay a failure with the seed and path it prints (SNAPLOG_MODEL_SEED for the model test).
 */
export async function withCauseShown(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    if (error instanceof Error && error.cause !== undefined) {
      const cause = error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause);
      error.message += `\nCause: ${cause}`;
    }
    throw error;
  }
}
