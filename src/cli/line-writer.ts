/**
 * Streaming output (log, diff): lines are gathered into writes of about 64 KiB and each write
 * waits for stdout to drain, so output as long as the log itself runs in constant memory.
 * A reader that goes away (`snaplog log vm1 | head`) is no error: `closed` turns true and the
 * command stops reading, which also ends its stream from the server.
 */
const batchBytesMax = 64 * 1024;

export class LineWriter {
  private pending: string[] = [];
  private pendingBytes = 0;
  private closedByReader = false;

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {
    // EPIPE is the reader going away; any other write error also means nobody gets the rest.
    stream.on("error", () => {
      this.closedByReader = true;
    });
  }

  /** True once the reader closed the pipe: stop producing. */
  get closed(): boolean {
    return this.closedByReader;
  }

  async line(text: string): Promise<void> {
    this.pending.push(text, "\n");
    this.pendingBytes += text.length + 1;
    if (this.pendingBytes >= batchBytesMax) await this.flush();
  }

  async flush(): Promise<void> {
    const text = this.pending.join("");
    this.pending = [];
    this.pendingBytes = 0;
    if (this.closedByReader || text.length === 0) return;
    if (!this.stream.write(text)) await this.drained();
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.stream.off("drain", done);
        this.stream.off("close", done);
        this.stream.off("error", done);
        resolve();
      };
      this.stream.on("drain", done);
      this.stream.on("close", done);
      this.stream.on("error", done);
    });
  }
}

/**
 * Writes each item as produced by `format` (zero or more lines per item) until the items end
 * (true) or the reader goes away (false); leaving the loop early returns the iterator, which
 * stops it.
 */
export async function writeLines<T>(items: AsyncIterable<T>, format: (item: T) => Iterable<string>, writer = new LineWriter()): Promise<boolean> {
  try {
    for await (const item of items) {
      for (const line of format(item)) {
        await writer.line(line);
        if (writer.closed) return false;
      }
    }
  } finally {
    // Also on a failure midway: the lines before it are shown, then the error.
    await writer.flush();
  }
  return !writer.closed;
}
