/**
 * `hexdump -C` style lines for `snaplog log --data`: offset, 16 bytes in two groups of eight,
 * and the printable characters; a run of lines equal to the one before is shown as one "*",
 * and the last line is the offset just past the data. Offsets are byte offsets on the disk.
 * A generator, so a 16 MiB row never becomes one string.
 */
const bytesPerLine = 16;
const offsetDigitsMin = 8;

export function* hexdumpLines(data: Buffer, offsetBytes: number): Generator<string> {
  let previous: Buffer | undefined;
  let starred = false;
  for (let index = 0; index < data.length; index += bytesPerLine) {
    const line = data.subarray(index, Math.min(index + bytesPerLine, data.length));
    if (previous !== undefined && line.length === bytesPerLine && line.equals(previous)) {
      if (!starred) yield "*";
      starred = true;
      continue;
    }
    starred = false;
    previous = line;
    yield formatLine(line, offsetBytes + index);
  }
  yield formatOffset(offsetBytes + data.length);
}

function formatLine(line: Buffer, offsetBytes: number): string {
  let hex = "";
  let text = "";
  for (let index = 0; index < bytesPerLine; index++) {
    if (index === bytesPerLine / 2) hex += " ";
    if (index < line.length) {
      hex += ` ${line[index].toString(16).padStart(2, "0")}`;
      text += isPrintable(line[index]) ? String.fromCharCode(line[index]) : ".";
    } else {
      hex += "   ";
    }
  }
  return `${formatOffset(offsetBytes)} ${hex}  |${text}|`;
}

function formatOffset(offsetBytes: number): string {
  return offsetBytes.toString(16).padStart(offsetDigitsMin, "0");
}

function isPrintable(byte: number): boolean {
  return byte >= 0x20 && byte < 0x7f;
}
