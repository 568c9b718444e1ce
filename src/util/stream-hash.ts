/**
 * The whole-stream SHA-256 of a stream being written, on the calling thread or on a worker.
 *
 * Why a worker: a replication sender shares the server's event loop with the hosts' NBD I/O, and
 * hashing was a third of the sender's time on it (SHA-NI, about 1.4 GB/s: 3-4 us per 4 KiB
 * entry). Data read into SharedArrayBuffer memory (DiskEngine.readEntriesData with shared
 * memory) goes to the worker as a view, not copied: the loop's cost per chunk is a message.
 * Other chunks (headers, descriptors) are copied into the message, which is cheap at their size.
 * A chunk handed over must not change afterwards (the stream writer never changes what it wrote).
 *
 * One worker hashes every off-thread stream, each under its own id, in the order its chunks came.
 * It keeps the process alive only while a writer waits for it. If it fails, the streams it was
 * hashing fail (their callers retry) and the next stream starts a new one; if a worker cannot be
 * created at all, streams are hashed in place.
 */
import { createHash, type Hash } from "node:crypto";
import { Worker } from "node:worker_threads";

export interface StreamHash {
  /** A promise only when the worker is far behind (the caller awaits it before the next chunk). */
  update(chunk: Uint8Array): Promise<void> | undefined;
  digest(): Promise<Buffer>;
}

/** Messages to the worker: a chunk of stream `id`, its digest, or a stream given up. */
export type StreamHashMessage = { id: number; op: "update"; chunk: Uint8Array } | { id: number; op: "digest" } | { id: number; op: "drop" };
/** The worker's answers. */
export type StreamHashAnswer = { id: number; digest: Uint8Array };

/** Bytes handed to the worker and not yet hashed, at most (beyond it, the writer waits). */
const BEHIND_BYTES_MAX = 64 * 1024 * 1024;

export function streamHash(offThread: boolean): StreamHash {
  if (offThread) {
    const worker = HashWorker.get();
    if (worker !== undefined) return worker.open();
  }
  return new InPlaceHash();
}

class InPlaceHash implements StreamHash {
  private readonly hash: Hash = createHash("sha256");
  update(chunk: Uint8Array): undefined {
    this.hash.update(chunk);
    return undefined;
  }
  digest(): Promise<Buffer> {
    return Promise.resolve(this.hash.digest());
  }
}

class HashWorker {
  private static current: HashWorker | undefined;
  /** [0]: bytes hashed so far, all streams (wrapping 32-bit, as `posted` is). */
  readonly hashed = new Int32Array(new SharedArrayBuffer(4));
  posted = 0;
  failed: Error | undefined;
  private nextId = 1;
  /** Writers waiting for the worker now (a digest, or room): while there are any, it keeps the process alive. */
  private waiting = 0;
  private readonly answers = new Map<number, { resolve: (digest: Buffer) => void; reject: (error: Error) => void }>();
  /** A stream dropped without its digest (its export failed) is forgotten by the worker once collected here. */
  private readonly abandoned = new FinalizationRegistry<number>((id) => this.close(id));

  private constructor(readonly worker: Worker) {
    worker.on("message", (answer: StreamHashAnswer) => {
      const asker = this.answers.get(answer.id);
      this.answers.delete(answer.id);
      asker?.resolve(Buffer.from(answer.digest));
    });
    const fail = (error: Error) => {
      if (this.failed !== undefined) return;
      this.failed = error;
      if (HashWorker.current === this) HashWorker.current = undefined;
      for (const asker of this.answers.values()) asker.reject(error);
      this.answers.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the stream hash worker stopped (exit code ${code})`)));
    // After the listeners (adding one refs the worker again): idle, it does not keep the process alive.
    worker.unref();
  }

  static get(): HashWorker | undefined {
    if (HashWorker.current === undefined) {
      try {
        const worker = new Worker(new URL("./stream-hash-worker.js", import.meta.url));
        HashWorker.current = new HashWorker(worker);
        worker.postMessage(HashWorker.current.hashed);
      } catch {
        return undefined;
      }
    }
    return HashWorker.current;
  }

  open(): StreamHash {
    const id = this.nextId++;
    const stream = new OffThreadHash(this, id);
    this.abandoned.register(stream, id, stream);
    return stream;
  }

  digest(stream: OffThreadHash, id: number): Promise<Buffer> {
    this.abandoned.unregister(stream);
    if (this.failed !== undefined) return Promise.reject(this.failed);
    const answer = new Promise<Buffer>((resolve, reject) => this.answers.set(id, { resolve, reject }));
    this.worker.postMessage({ id, op: "digest" } satisfies StreamHashMessage);
    return this.waitFor(answer);
  }

  /** `promise`, with the process kept alive until it settles (the worker's answer is what it waits for). */
  async waitFor<T>(promise: Promise<T>): Promise<T> {
    if (this.waiting++ === 0) this.worker.ref();
    try {
      return await promise;
    } finally {
      if (--this.waiting === 0) this.worker.unref();
    }
  }

  private close(id: number): void {
    if (this.failed === undefined) this.worker.postMessage({ id, op: "drop" } satisfies StreamHashMessage);
  }
}

class OffThreadHash implements StreamHash {
  constructor(
    private readonly owner: HashWorker,
    private readonly id: number,
  ) {}

  update(chunk: Uint8Array): Promise<void> | undefined {
    const owner = this.owner;
    if (owner.failed !== undefined) throw owner.failed;
    if (chunk.length === 0) return undefined;
    if (chunk.buffer instanceof SharedArrayBuffer) {
      owner.worker.postMessage({ id: this.id, op: "update", chunk } satisfies StreamHashMessage);
    } else {
      // Copied, and the copy moved: a view would be cloned with the whole buffer behind it.
      const copy = new Uint8Array(chunk);
      owner.worker.postMessage({ id: this.id, op: "update", chunk: copy } satisfies StreamHashMessage, [copy.buffer]);
    }
    owner.posted = (owner.posted + chunk.length) | 0;
    return this.behindBy() > BEHIND_BYTES_MAX ? this.catchUp() : undefined;
  }

  digest(): Promise<Buffer> {
    return this.owner.digest(this, this.id);
  }

  private behindBy(): number {
    return (this.owner.posted - Atomics.load(this.owner.hashed, 0)) | 0;
  }

  private async catchUp(): Promise<void> {
    while (this.behindBy() > BEHIND_BYTES_MAX / 2) {
      if (this.owner.failed !== undefined) throw this.owner.failed;
      const seen = Atomics.load(this.owner.hashed, 0);
      const waited = waitAsync(this.owner.hashed, 0, seen, 1000);
      if (typeof waited.value !== "string") await this.owner.waitFor(waited.value);
    }
  }
}

// Atomics.waitAsync is in Node 20 but not in the ES2022 lib this project compiles against.
const waitAsync = (
  Atomics as unknown as {
    waitAsync: (array: Int32Array, index: number, value: number, timeoutMs: number) => { value: Promise<string> | string };
  }
).waitAsync;
