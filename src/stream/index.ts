/** The archive stream (docs/stream-format.md): its format, a writer and a checking reader. Depends on util only. */
export { CODEC_DEFAULT, CODEC_NAMES, parseCodec, SAVING_MIN } from "./codec.js";
export type { CodecName } from "./codec.js";
export { FRAME_RAW_BYTES_MAX, STREAM_VERSION, TRAILER_BYTES } from "./stream-format.js";
export type { EntryKindName, EntryRun, StreamCut, StreamHeader, StreamPoint, StreamTrailer } from "./stream-format.js";
export { StreamReader } from "./stream-reader.js";
export type { StreamItem } from "./stream-reader.js";
export { FRAME_DATA_BYTES_DEFAULT, StreamWriter } from "./stream-writer.js";
export type { StreamSink, StreamWriterOptions } from "./stream-writer.js";
