/** Bytes determined by a seed (xorshift32), so a write's expected content is known from its seed alone. */
export function pattern(seed: number, lengthBytes: number): Buffer {
  const data = Buffer.alloc(lengthBytes);
  let x = seed | 1;
  for (let index = 0; index < lengthBytes; index++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[index] = x & 0xff;
  }
  return data;
}
