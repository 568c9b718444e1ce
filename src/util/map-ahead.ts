/**
 * Maps items through an async function with up to `depth` calls in flight, yielding the results
 * in the source's order: an export reads the next rows' data while earlier ones are compressed
 * and sent, instead of one positioned read at a time.
 */
export async function* mapAhead<T, U>(
  source: AsyncIterable<T> | Iterable<T>,
  map: (item: T) => Promise<U>,
  depth: number,
): AsyncGenerator<U> {
  const inFlight: Promise<U>[] = [];
  try {
    for await (const item of source) {
      const mapped = map(item);
      // Handled when its turn comes (or dropped below): not an unhandled rejection meanwhile.
      mapped.catch(() => undefined);
      inFlight.push(mapped);
      if (inFlight.length >= depth) yield await inFlight.shift()!;
    }
    while (inFlight.length > 0) yield await inFlight.shift()!;
  } finally {
    // A consumer that stopped early: no read is left running after the caller released its view.
    await Promise.allSettled(inFlight);
  }
}
