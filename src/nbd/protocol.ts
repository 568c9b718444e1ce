/**
 * Every number the NBD wire protocol uses, in one place, one comment each.
 * Source of truth: the NBD protocol document (doc/proto.md of the nbd project).
 * All integers on the wire are big-endian. Names follow the document with the NBD_ prefix dropped.
 */

// ---- Handshake (newstyle) ---------------------------------------------------------------------

/** "NBDMAGIC": first 8 bytes the server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": second 8 bytes of the server greeting, and prefix of every client option. */
export const IHAVEOPT_MAGIC = 0x49484156454f5054n;
/** Prefix of every option reply the server sends. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;

/** Server handshake flag: the server speaks fixed newstyle. */
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
/** Server handshake flag: the server can omit the 124 zero bytes after NBD_OPT_EXPORT_NAME. */
export const FLAG_NO_ZEROES = 1 << 1;

/** Client flag: the client speaks fixed newstyle (we refuse clients without it). */
export const CLIENT_FLAG_FIXED_NEWSTYLE = 1 << 0;
/** Client flag: the client wants no 124 zero bytes after NBD_OPT_EXPORT_NAME. */
export const CLIENT_FLAG_NO_ZEROES = 1 << 1;
/** Every client flag we understand; any other bit closes the connection. */
export const CLIENT_FLAGS_KNOWN = CLIENT_FLAG_FIXED_NEWSTYLE | CLIENT_FLAG_NO_ZEROES;

/** Server greeting: NBDMAGIC (8) + IHAVEOPT (8) + handshake flags (2). */
export const GREETING_BYTES = 18;
/** Client option header: IHAVEOPT (8) + option (4) + length (4). */
export const OPTION_HEADER_BYTES = 16;
/** Option reply header: magic (8) + option (4) + reply type (4) + length (4). */
export const OPTION_REPLY_HEADER_BYTES = 20;
/** Zero padding after the NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was negotiated. */
export const EXPORT_NAME_PADDING_BYTES = 124;

// ---- Options (client -> server) ---------------------------------------------------------------

/** Choose an export by name and go to transmission; no error reply is possible. */
export const OPT_EXPORT_NAME = 1;
/** The client gives up; the server acknowledges and closes. */
export const OPT_ABORT = 2;
/** List the exports (one NBD_REP_SERVER each). */
export const OPT_LIST = 3;
/** Withdrawn by the protocol; answered as unsupported. */
export const OPT_PEEK_EXPORT = 4;
/** Upgrade to TLS (not yet supported). */
export const OPT_STARTTLS = 5;
/** Describe an export without choosing it. */
export const OPT_INFO = 6;
/** Describe an export and go to transmission. */
export const OPT_GO = 7;
/** Use structured replies in transmission. */
export const OPT_STRUCTURED_REPLY = 8;
/** List the metadata contexts matching some queries. */
export const OPT_LIST_META_CONTEXT = 9;
/** Select the metadata contexts for NBD_CMD_BLOCK_STATUS. */
export const OPT_SET_META_CONTEXT = 10;
/** 64-bit request and reply headers (not supported). */
export const OPT_EXTENDED_HEADERS = 11;

// ---- Option replies (server -> client) --------------------------------------------------------

/** The option succeeded (and ends a list of replies). */
export const REP_ACK = 1;
/** One export in an NBD_OPT_LIST answer: name length (4), name, description. */
export const REP_SERVER = 2;
/** One NBD_INFO_* item in an NBD_OPT_INFO / NBD_OPT_GO answer. */
export const REP_INFO = 3;
/** One metadata context: id (4) + name. */
export const REP_META_CONTEXT = 4;
/** Bit 31 marks an error reply. */
const REP_ERROR_BIT = 0x80000000;
/** Unknown or unsupported option. */
export const REP_ERR_UNSUP = REP_ERROR_BIT + 1;
/** Forbidden by server policy. */
export const REP_ERR_POLICY = REP_ERROR_BIT + 2;
/** Syntactically or semantically invalid option (bad lengths, bad state). */
export const REP_ERR_INVALID = REP_ERROR_BIT + 3;
/** Not available on this platform. */
export const REP_ERR_PLATFORM = REP_ERROR_BIT + 4;
/** TLS is required first. */
export const REP_ERR_TLS_REQD = REP_ERROR_BIT + 5;
/** The export does not exist. */
export const REP_ERR_UNKNOWN = REP_ERROR_BIT + 6;
/** The server is shutting down. */
export const REP_ERR_SHUTDOWN = REP_ERROR_BIT + 7;
/** The export needs block size negotiation. */
export const REP_ERR_BLOCK_SIZE_REQD = REP_ERROR_BIT + 8;
/** The request or its reply is too large to process. */
export const REP_ERR_TOO_BIG = REP_ERROR_BIT + 9;

// ---- NBD_INFO_* items -------------------------------------------------------------------------

/** Size (8) and transmission flags (2); always sent. */
export const INFO_EXPORT = 0;
/** The export's canonical name. */
export const INFO_NAME = 1;
/** A human-readable description. */
export const INFO_DESCRIPTION = 2;
/** Minimum (4), preferred (4) and maximum (4) block sizes. */
export const INFO_BLOCK_SIZE = 3;

// ---- Transmission flags (per export, 16 bits) -------------------------------------------------

/** Always set: the other flags are meaningful. */
export const TFLAG_HAS_FLAGS = 1 << 0;
/** The export is read-only: writes fail with EPERM. */
export const TFLAG_READ_ONLY = 1 << 1;
/** NBD_CMD_FLUSH is supported. */
export const TFLAG_SEND_FLUSH = 1 << 2;
/** NBD_CMD_FLAG_FUA is supported. */
export const TFLAG_SEND_FUA = 1 << 3;
/** Hint: the medium is rotational (never set by us). */
export const TFLAG_ROTATIONAL = 1 << 4;
/** NBD_CMD_TRIM is supported. */
export const TFLAG_SEND_TRIM = 1 << 5;
/** NBD_CMD_WRITE_ZEROES is supported. */
export const TFLAG_SEND_WRITE_ZEROES = 1 << 6;
/** NBD_CMD_FLAG_DF is supported (structured replies only). */
export const TFLAG_SEND_DF = 1 << 7;
/** Flush on one connection covers writes completed on every connection to the export. */
export const TFLAG_CAN_MULTI_CONN = 1 << 8;
/** NBD_CMD_RESIZE (not supported). */
export const TFLAG_SEND_RESIZE = 1 << 9;
/** NBD_CMD_CACHE (not supported). */
export const TFLAG_SEND_CACHE = 1 << 10;
/** NBD_CMD_FLAG_FAST_ZERO is supported: zeroing is never slower than writing. */
export const TFLAG_SEND_FAST_ZERO = 1 << 11;

// ---- Requests (client -> server) --------------------------------------------------------------

/** Magic of a compact request header. */
export const REQUEST_MAGIC = 0x25609513;
/** Request header: magic (4) + flags (2) + type (2) + cookie (8) + offset (8) + length (4). */
export const REQUEST_HEADER_BYTES = 28;

/** Read length bytes at offset. */
export const CMD_READ = 0;
/** Write the payload that follows the header. */
export const CMD_WRITE = 1;
/** Disconnect after the requests in flight have been answered. */
export const CMD_DISC = 2;
/** Make every completed write durable. */
export const CMD_FLUSH = 3;
/** Discard a range (reads as zeros afterwards, in our store). */
export const CMD_TRIM = 4;
/** Prefetch a range (not supported). */
export const CMD_CACHE = 5;
/** Zero a range, as a hole unless NO_HOLE. */
export const CMD_WRITE_ZEROES = 6;
/** Report allocation of a range for the selected metadata contexts. */
export const CMD_BLOCK_STATUS = 7;

/** Durable before the reply (WRITE, TRIM, WRITE_ZEROES). */
export const CMD_FLAG_FUA = 1 << 0;
/** WRITE_ZEROES must allocate, not punch a hole. */
export const CMD_FLAG_NO_HOLE = 1 << 1;
/** READ must answer in one data chunk (structured replies only). */
export const CMD_FLAG_DF = 1 << 2;
/** BLOCK_STATUS should answer with one extent only. */
export const CMD_FLAG_REQ_ONE = 1 << 3;
/** WRITE_ZEROES must fail rather than be slow. */
export const CMD_FLAG_FAST_ZERO = 1 << 4;

// ---- Replies (server -> client) ---------------------------------------------------------------

/** Magic of a simple reply. */
export const SIMPLE_REPLY_MAGIC = 0x67446698;
/** Simple reply header: magic (4) + error (4) + cookie (8). */
export const SIMPLE_REPLY_HEADER_BYTES = 16;
/** Magic of a structured reply chunk. */
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
/** Structured chunk header: magic (4) + flags (2) + type (2) + cookie (8) + length (4). */
export const STRUCTURED_REPLY_HEADER_BYTES = 20;

/** Structured chunk flag: the last chunk of this reply. */
export const REPLY_FLAG_DONE = 1 << 0;
/** Chunk type: no payload (used with DONE to end a reply). */
export const REPLY_TYPE_NONE = 0;
/** Chunk type: offset (8) + data. */
export const REPLY_TYPE_OFFSET_DATA = 1;
/** Chunk type: offset (8) + length (4) of a range that reads as zeros. */
export const REPLY_TYPE_OFFSET_HOLE = 2;
/** Chunk type: context id (4) + (length (4), flags (4)) descriptors. */
export const REPLY_TYPE_BLOCK_STATUS = 5;
/** Chunk type: error (4) + message length (2) + message. */
export const REPLY_TYPE_ERROR = (1 << 15) + 1;
/** Chunk type: error (4) + message length (2) + message + offset (8). */
export const REPLY_TYPE_ERROR_OFFSET = (1 << 15) + 2;
/** Bytes before an OFFSET_DATA chunk's data: the offset. */
export const OFFSET_DATA_PREFIX_BYTES = 8;
/** Bytes before an ERROR chunk's message: error (4) + message length (2). */
export const ERROR_CHUNK_PREFIX_BYTES = 6;
/** One block status descriptor: length (4) + flags (4). */
export const BLOCK_STATUS_DESCRIPTOR_BYTES = 8;

// ---- Errors (NBD's own errno values, not the host's) ------------------------------------------

/** Operation not permitted (write to a read-only export). */
export const NBD_EPERM = 1;
/** Input/output error. */
export const NBD_EIO = 5;
/** Cannot allocate memory. */
export const NBD_ENOMEM = 12;
/** Invalid argument. */
export const NBD_EINVAL = 22;
/** No space left (also: write past the end). */
export const NBD_ENOSPC = 28;
/** Value too large (DF read that cannot fit one chunk). */
export const NBD_EOVERFLOW = 75;
/** Operation not supported (fast zero impossible). */
export const NBD_ENOTSUP = 95;
/** The server is shutting down. */
export const NBD_ESHUTDOWN = 108;

// ---- Metadata contexts ------------------------------------------------------------------------

/** The one metadata context we serve. */
export const META_BASE_ALLOCATION = "base:allocation";
/** Query that matches every context of the "base:" namespace (LIST only). */
export const META_BASE_NAMESPACE = "base:";
/** Our id for base:allocation (any value the server picks; nonzero to catch bugs). */
export const META_ID_BASE_ALLOCATION = 1;
/** base:allocation bits of a block-status descriptor: not allocated (a hole); reads as zeros. */
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;

// ---- Limits -----------------------------------------------------------------------------------

/** Longest export name or metadata query we accept (the protocol's NBD_MAX_STRING). */
export const NBD_MAX_STRING_BYTES = 4096;
/** Longest option payload we read into memory. */
export const OPTION_LENGTH_MAX_BYTES = 64 * 1024;
/** Longest oversized option payload we still skip (answering NBD_REP_ERR_TOO_BIG); beyond: close. */
export const OPTION_SKIP_MAX_BYTES = 1024 * 1024;
/** Metadata queries in one LIST/SET_META_CONTEXT option. */
export const META_QUERY_COUNT_MAX = 128;
/** Information requests in one NBD_OPT_INFO / NBD_OPT_GO. */
export const INFO_REQUEST_COUNT_MAX = 64;
/** Default largest READ/WRITE payload, also the advertised maximum block size. */
export const REQUEST_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;
/** Default bytes in flight per connection (payloads + pending read data) before reading pauses. */
export const INFLIGHT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
/**
 * Default open NBD connections, all listeners together, past which a new one is closed as soon
 * as it is accepted: with INFLIGHT_BYTES_MAX_DEFAULT each, 256 connections bound what clients
 * can make the server hold at 16 GiB, and a flood of idle sockets cannot exhaust descriptors.
 */
export const CONNECTIONS_MAX_DEFAULT = 256;
/** Largest 32-bit length field. */
export const UINT32_MAX = 0xffffffff;
/** Most descriptors in one BLOCK_STATUS chunk; the client asks again for the rest. */
export const BLOCK_STATUS_DESCRIPTOR_COUNT_MAX = 128 * 1024;
/*
 * The handshake is bounded by time and bytes, never by a count of options: an honest client
 * sends a few options per export (nbdinfo --list: LIST, then LIST_META_CONTEXT and INFO for each
 * of them, under 600 bytes with the longest export names), so any count limit breaks a listing
 * of a store with many snapshots, while a hostile client is stopped just as well by these.
 */
/** A connection that sends nothing (no option, no byte) for this long is closed (SPEC §7's handshake timeout). */
export const HANDSHAKE_TIMEOUT_MS = 30_000;
/**
 * The handshake must end within this, plus HANDSHAKE_EXPORT_ALLOWANCE_MS for each listed export
 * it asks about (SPEC §7: at most 60 s for a connection that sends no option).
 */
export const HANDSHAKE_DEADLINE_MS = 60_000;
/**
 * More time for each export of the NBD_OPT_LIST reply that the handshake then asks about (INFO,
 * GO, metadata contexts), each counted once: a listing takes time per export. libnbd 1.14
 * (nbdinfo --list) sends LIST_META_CONTEXT with MSG_MORE on its last bytes, so over TCP each
 * export waits about 200 ms in the client's kernel, whatever the server (nbdkit too): 1,000
 * exports take 3.5 minutes. The bound stays finite: the deadline plus this for each listed export.
 */
export const HANDSHAKE_EXPORT_ALLOWANCE_MS = 1_000;
/** Option bytes (headers and payloads, skipped ones too) one handshake may send: room for a listing of 100,000 exports. */
export const HANDSHAKE_OPTION_BYTES_MAX = 64 * 1024 * 1024;
/** Reply bytes one handshake may cause: a listing of 10,000 exports takes about 7 MiB; repeated listings stop here. */
export const HANDSHAKE_REPLY_BYTES_MAX = 256 * 1024 * 1024;
/** Unsent reply bytes past which no further option is read until the client reads (a client that never reads holds no more). */
export const HANDSHAKE_REPLY_QUEUE_BYTES_MAX = 1024 * 1024;
