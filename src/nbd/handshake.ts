/**
 * The option phase of the fixed newstyle handshake.
 *
 *   server: NBDMAGIC IHAVEOPT handshake-flags
 *   client: client-flags            (without FIXED_NEWSTYLE, or with unknown bits: we close)
 *   client: IHAVEOPT option length payload   (repeated, within the option and reply byte limits)
 *   server: one or more option replies per option, found in OPTION_HANDLERS
 *   ... until NBD_OPT_GO / NBD_OPT_EXPORT_NAME succeed (transmission) or ABORT / error (close).
 *
 * Every option payload is read in full (bounded by OPTION_LENGTH_MAX_BYTES, oversized ones are
 * skipped up to OPTION_SKIP_MAX_BYTES), so a rejected option never puts the stream out of sync.
 * Volumes are resolved only when an export is named: connecting alone costs nothing.
 *
 * Limits (protocol.ts): no count of options, which honest clients listing many exports pass,
 * but bytes: the option bytes received (optionBytesMax) and the reply bytes sent (replyBytesMax,
 * so that cheap options asking for big answers, such as LIST, cannot repeat without end); and
 * the next option is read only once the replies queued so far have mostly left (a client that
 * never reads holds HANDSHAKE_REPLY_QUEUE_BYTES_MAX). Time: the idle timeout (server.ts) and
 * the deadline (startDeadline), which each listed export the client asks about extends once.
 *
 * TLS (tls.ts): without a certificate NBD_OPT_STARTTLS is answered NBD_REP_ERR_UNSUP. With one,
 * STARTTLS is acknowledged and the socket upgraded; everything negotiated before it is
 * discarded, as the protocol asks. In `required` mode every other option before it (ABORT
 * aside) is answered NBD_REP_ERR_TLS_REQD, and NBD_OPT_EXPORT_NAME, which has no error reply,
 * closes the connection: a client that never starts TLS gets no export.
 */
import type { Socket } from "node:net";
import { upgradeToTls, type NbdTls } from "./tls.js";
import { ErrorCodes, notFound, SnaplogError } from "../util/errors.js";
import type { Volume, VolumeResolver } from "../store/volume.js";
import { NBD_EXPORT_REFUSAL_BY_CODE } from "./errno.js";
import { SocketReader } from "./socket-reader.js";
import * as P from "./protocol.js";

export interface HandshakeLogger {
  info(object: object | string, message?: string): void;
  warn(object: object | string, message?: string): void;
  error(object: object | string, message?: string): void;
}

export interface HandshakeOptions {
  resolver: VolumeResolver;
  logger: HandshakeLogger;
  /** Largest READ/WRITE payload: the advertised maximum block size. */
  requestBytesMax: number;
  /** True once the server is closing: NBD_OPT_GO answers NBD_REP_ERR_SHUTDOWN. */
  isClosing(): boolean;
  /** Option bytes (headers and payloads) one handshake may send; default HANDSHAKE_OPTION_BYTES_MAX. */
  optionBytesMax?: number;
  /** Reply bytes one handshake may cause; default HANDSHAKE_REPLY_BYTES_MAX. */
  replyBytesMax?: number;
  /** Time the handshake may take; default HANDSHAKE_DEADLINE_MS and HANDSHAKE_EXPORT_ALLOWANCE_MS. */
  deadlineMs?: number;
  exportAllowanceMs?: number;
  /** Certificates and mode, when the server offers TLS. */
  tls?: NbdTls;
}

/** The connection the handshake runs on: STARTTLS replaces both with their TLS counterparts. */
export interface HandshakeLink {
  socket: Socket;
  reader: SocketReader;
}

/** What the client chose; everything transmission needs. */
export interface Negotiated {
  volume: Volume;
  structuredReplies: boolean;
  /** base:allocation was selected with NBD_OPT_SET_META_CONTEXT for this export. */
  baseAllocation: boolean;
}

/** "abort": the client ended the handshake normally (NBD_OPT_ABORT, e.g. after a list). */
type OptionOutcome = "continue" | "transmission" | "close" | "abort";

interface Session {
  readonly link: HandshakeLink;
  readonly options: HandshakeOptions;
  /** TLS is up on this connection. */
  tlsActive: boolean;
  noZeroes: boolean;
  structuredReplies: boolean;
  /** Export the SET_META_CONTEXT selection was made for; null: nothing selected. */
  metaExportName: string | null;
  baseAllocation: boolean;
  /** The volume the option being handled resolved: released once it is answered, unless transmission goes on with it. */
  resolved: Volume | null;
  /** The volume NBD_OPT_GO or NBD_OPT_EXPORT_NAME chose: handed over to transmission. */
  chosen: Volume | null;
  /** Option bytes received so far (headers, payloads, skipped payloads). */
  optionBytes: number;
  /** Option reply bytes sent so far. */
  replyBytes: number;
  /** Export names of the last NBD_OPT_LIST reply. */
  listed: ReadonlySet<string>;
  /** Listed exports the options asked about since, each once: each extends the deadline. */
  readonly exportsAsked: Set<string>;
}

type OptionHandler = (session: Session, option: number, payload: Buffer) => Promise<OptionOutcome> | OptionOutcome;

/**
 * Runs the handshake on `link` (after STARTTLS, `link` holds the TLS socket and its reader: the
 * caller goes on with those). Resolves with the negotiated export, "aborted" when the client
 * ended it normally, or null when the connection must be closed for an error (the caller closes
 * it). Rejects only when the peer vanished (CLOSED). The negotiated volume is the caller's to release.
 */
export async function negotiate(link: HandshakeLink, options: HandshakeOptions): Promise<Negotiated | "aborted" | null> {
  const exportsAsked = new Set<string>();
  // The raw socket: destroying it also ends a TLS session on top of it.
  const stopDeadline = startDeadline(link.socket, options, exportsAsked);
  try {
    return await negotiateOptions(link, options, exportsAsked);
  } finally {
    stopDeadline();
  }
}

/**
 * Destroys the socket once the handshake has run past its deadline: deadlineMs from its start,
 * plus exportAllowanceMs for each listed export asked about by then (HANDSHAKE_EXPORT_ALLOWANCE_MS).
 * Returns the function that stops it (the handshake is over).
 */
function startDeadline(socket: Socket, options: HandshakeOptions, exportsAsked: ReadonlySet<string>): () => void {
  const { deadlineMs = P.HANDSHAKE_DEADLINE_MS, exportAllowanceMs = P.HANDSHAKE_EXPORT_ALLOWANCE_MS, logger } = options;
  const startedMs = Date.now();
  const check = (): void => {
    const leftMs = startedMs + deadlineMs + exportAllowanceMs * exportsAsked.size - Date.now();
    if (leftMs > 0) {
      timer = setTimeout(check, leftMs);
      return;
    }
    logger.warn({ deadlineMs, exportsAsked: exportsAsked.size }, "nbd: handshake deadline passed, closing");
    socket.destroy();
  };
  let timer = setTimeout(check, deadlineMs);
  return () => clearTimeout(timer);
}

async function negotiateOptions(
  link: HandshakeLink,
  options: HandshakeOptions,
  exportsAsked: Set<string>,
): Promise<Negotiated | "aborted" | null> {
  link.socket.write(greeting());
  const clientFlags = (await link.reader.read(4)).readUInt32BE(0);
  if ((clientFlags & P.CLIENT_FLAG_FIXED_NEWSTYLE) === 0 || (clientFlags & ~P.CLIENT_FLAGS_KNOWN) !== 0) {
    options.logger.warn({ clientFlags }, "nbd: client without fixed newstyle or with unknown flags, closing");
    return null;
  }
  const session: Session = {
    link,
    options,
    tlsActive: false,
    noZeroes: (clientFlags & P.CLIENT_FLAG_NO_ZEROES) !== 0,
    structuredReplies: false,
    metaExportName: null,
    baseAllocation: false,
    resolved: null,
    chosen: null,
    optionBytes: 0,
    replyBytes: 0,
    listed: new Set(),
    exportsAsked,
  };
  return receiveOptions(session);
}

/** The option loop: one option at a time until one ends the handshake. */
async function receiveOptions(session: Session): Promise<Negotiated | "aborted" | null> {
  for (;;) {
    let outcome: OptionOutcome = "close";
    try {
      await repliesSent(session.link.socket);
      outcome = overBudget(session) ? "close" : await receiveOption(session);
    } finally {
      // The one place the handshake releases: every volume an option resolved (INFO, META_CONTEXT,
      // a refused GO), at once; the chosen one is released by the server when the connection ends.
      const resolved = session.resolved;
      session.resolved = null;
      if (resolved !== null && !(outcome === "transmission" && resolved === session.chosen)) resolved.release();
    }
    if (outcome === "close") return null;
    if (outcome === "abort") return "aborted";
    if (outcome === "transmission") return negotiated(session);
  }
}

/** Whether the handshake has used up its option or reply bytes (then it is closed, and logged). */
function overBudget(session: Session): boolean {
  const optionBytesMax = session.options.optionBytesMax ?? P.HANDSHAKE_OPTION_BYTES_MAX;
  const replyBytesMax = session.options.replyBytesMax ?? P.HANDSHAKE_REPLY_BYTES_MAX;
  if (session.optionBytes <= optionBytesMax && session.replyBytes <= replyBytesMax) return false;
  session.options.logger.warn(
    { optionBytes: session.optionBytes, optionBytesMax, replyBytes: session.replyBytes, replyBytesMax },
    "nbd: handshake used up its option or reply bytes, closing",
  );
  return true;
}

/** Resolves once the socket holds at most HANDSHAKE_REPLY_QUEUE_BYTES_MAX unsent bytes (or is closed: the next read says so). */
function repliesSent(socket: Socket): Promise<void> {
  if (socket.writableLength <= P.HANDSHAKE_REPLY_QUEUE_BYTES_MAX || socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.on("drain", done);
    socket.on("close", done);
  });
}

function negotiated(session: Session): Negotiated {
  const volume = session.chosen;
  if (volume === null) throw new SnaplogError(ErrorCodes.INTERNAL, "transmission without an export");
  const sameExport = session.metaExportName === volume.name;
  return {
    volume,
    structuredReplies: session.structuredReplies,
    baseAllocation: session.structuredReplies && sameExport && session.baseAllocation,
  };
}

function greeting(): Buffer {
  const buffer = Buffer.alloc(P.GREETING_BYTES);
  buffer.writeBigUInt64BE(P.NBD_MAGIC, 0);
  buffer.writeBigUInt64BE(P.IHAVEOPT_MAGIC, 8);
  buffer.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
  return buffer;
}

/** Reads one option header and payload, and runs its handler. */
async function receiveOption(session: Session): Promise<OptionOutcome> {
  const reader = session.link.reader;
  const header = await reader.read(P.OPTION_HEADER_BYTES);
  if (header.readBigUInt64BE(0) !== P.IHAVEOPT_MAGIC) {
    session.options.logger.warn("nbd: bad option magic, closing");
    return "close";
  }
  const option = header.readUInt32BE(8);
  const lengthBytes = header.readUInt32BE(12);
  session.optionBytes += P.OPTION_HEADER_BYTES + lengthBytes;
  if (overBudget(session)) return "close";
  if (lengthBytes > P.OPTION_LENGTH_MAX_BYTES) return rejectOversized(session, reader, option, lengthBytes);
  const payload = await reader.read(lengthBytes);
  if (tlsRequiredFirst(session, option)) {
    // EXPORT_NAME has no error reply: the client learns by the connection closing.
    if (option === P.OPT_EXPORT_NAME) {
      session.options.logger.warn("nbd: NBD_OPT_EXPORT_NAME before STARTTLS on a TLS-only server, closing");
      return "close";
    }
    replyError(session, option, P.REP_ERR_TLS_REQD, "this server requires TLS: start it with NBD_OPT_STARTTLS first");
    return "continue";
  }
  const handler = OPTION_HANDLERS.get(option) ?? handleUnsupported;
  return handler(session, option, payload);
}

/** In `required` mode, before STARTTLS, every option but STARTTLS and ABORT is refused. */
function tlsRequiredFirst(session: Session, option: number): boolean {
  return session.options.tls?.mode === "required" && !session.tlsActive && option !== P.OPT_STARTTLS && option !== P.OPT_ABORT;
}

async function rejectOversized(session: Session, reader: SocketReader, option: number, lengthBytes: number): Promise<OptionOutcome> {
  session.options.logger.warn({ option, lengthBytes }, "nbd: oversized option");
  if (option === P.OPT_EXPORT_NAME || lengthBytes > P.OPTION_SKIP_MAX_BYTES) return "close";
  await reader.skip(lengthBytes);
  replyError(session, option, P.REP_ERR_TOO_BIG, "option too long");
  return "continue";
}

// ---- Replies ----------------------------------------------------------------------------------

function reply(session: Session, option: number, replyType: number, payload?: Buffer): void {
  const header = Buffer.allocUnsafe(P.OPTION_REPLY_HEADER_BYTES);
  header.writeBigUInt64BE(P.OPTION_REPLY_MAGIC, 0);
  header.writeUInt32BE(option, 8);
  header.writeUInt32BE(replyType, 12);
  header.writeUInt32BE(payload === undefined ? 0 : payload.length, 16);
  session.replyBytes += header.length + (payload === undefined ? 0 : payload.length);
  session.link.socket.write(payload === undefined ? header : Buffer.concat([header, payload]));
}

function replyError(session: Session, option: number, replyType: number, message: string): void {
  reply(session, option, replyType, Buffer.from(message, "utf8"));
}

// ---- Option handlers --------------------------------------------------------------------------

const OPTION_HANDLERS: ReadonlyMap<number, OptionHandler> = new Map<number, OptionHandler>([
  [P.OPT_EXPORT_NAME, handleExportName],
  [P.OPT_ABORT, handleAbort],
  [P.OPT_LIST, handleList],
  [P.OPT_STARTTLS, handleStartTls],
  [P.OPT_INFO, handleInfoOrGo],
  [P.OPT_GO, handleInfoOrGo],
  [P.OPT_STRUCTURED_REPLY, handleStructuredReply],
  [P.OPT_LIST_META_CONTEXT, handleMetaContext],
  [P.OPT_SET_META_CONTEXT, handleMetaContext],
]);

function handleUnsupported(session: Session, option: number): OptionOutcome {
  replyError(session, option, P.REP_ERR_UNSUP, `option ${option} is not supported`);
  return "continue";
}

/**
 * STARTTLS: acknowledged, then the TLS handshake on the same socket; what was negotiated before
 * is forgotten (a client must not trust it). A client that sent more bytes after STARTTLS, or
 * fails the handshake or certificate check, is closed.
 */
async function handleStartTls(session: Session, option: number, payload: Buffer): Promise<OptionOutcome> {
  const tls = session.options.tls;
  if (tls === undefined) {
    replyError(session, option, P.REP_ERR_UNSUP, "TLS is not configured on this server");
    return "continue";
  }
  if (payload.length !== 0) {
    replyError(session, option, P.REP_ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
    return "continue";
  }
  if (session.tlsActive) {
    replyError(session, option, P.REP_ERR_INVALID, "TLS is already active on this connection");
    return "continue";
  }
  reply(session, option, P.REP_ACK);
  const plain = session.link;
  if (plain.reader.detach().length > 0) {
    session.options.logger.warn("nbd: bytes after NBD_OPT_STARTTLS before the TLS handshake, closing");
    return "close";
  }
  let secure;
  try {
    secure = await upgradeToTls(plain.socket, tls);
  } catch (error) {
    session.options.logger.warn({ err: error }, "nbd: TLS handshake failed, closing");
    return "close";
  }
  session.link.socket = secure;
  session.link.reader = new SocketReader(secure);
  session.tlsActive = true;
  session.structuredReplies = false;
  session.metaExportName = null;
  session.baseAllocation = false;
  session.listed = new Set();
  return "continue";
}

function handleAbort(session: Session, option: number): OptionOutcome {
  reply(session, option, P.REP_ACK);
  return "abort";
}

function handleStructuredReply(session: Session, option: number, payload: Buffer): OptionOutcome {
  if (payload.length !== 0) {
    replyError(session, option, P.REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
    return "continue";
  }
  session.structuredReplies = true;
  reply(session, option, P.REP_ACK);
  return "continue";
}

function handleList(session: Session, option: number, payload: Buffer): OptionOutcome {
  if (payload.length !== 0) {
    replyError(session, option, P.REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
    return "continue";
  }
  const listed = new Set<string>();
  for (const exportInfo of session.options.resolver.list()) {
    listed.add(exportInfo.name);
    const name = Buffer.from(exportInfo.name, "utf8");
    const description = Buffer.from(exportInfo.description, "utf8");
    const item = Buffer.allocUnsafe(4 + name.length + description.length);
    item.writeUInt32BE(name.length, 0);
    name.copy(item, 4);
    description.copy(item, 4 + name.length);
    reply(session, option, P.REP_SERVER, item);
  }
  reply(session, option, P.REP_ACK);
  session.listed = listed;
  return "continue";
}

/** NBD_OPT_EXPORT_NAME has no error reply: an unknown export closes the connection. */
function handleExportName(session: Session, option: number, payload: Buffer): OptionOutcome {
  if (payload.length > P.NBD_MAX_STRING_BYTES) return "close";
  const volume = resolveVolume(session, payload.toString("utf8"));
  if (volume instanceof SnaplogError) {
    session.options.logger.info({ reason: volume.message }, "nbd: NBD_OPT_EXPORT_NAME refused, closing");
    return "close";
  }
  if (session.options.isClosing()) return "close";
  const padBytes = session.noZeroes ? 0 : P.EXPORT_NAME_PADDING_BYTES;
  const answer = Buffer.alloc(10 + padBytes);
  writeUInt64(answer, volume.sizeBytes, 0);
  answer.writeUInt16BE(transmissionFlags(volume, session.structuredReplies), 8);
  session.link.socket.write(answer);
  session.chosen = volume;
  return "transmission";
}

/** NBD_OPT_INFO and NBD_OPT_GO: name length (4), name, info count (2), info types (2 each). */
function handleInfoOrGo(session: Session, option: number, payload: Buffer): OptionOutcome {
  const request = parseInfoRequest(payload);
  if (typeof request === "string") {
    replyError(session, option, P.REP_ERR_INVALID, request);
    return "continue";
  }
  const resolved = resolveVolume(session, request.name);
  if (resolved instanceof SnaplogError) {
    replyRefusal(session, option, resolved);
    return "continue";
  }
  if (option === P.OPT_GO && session.options.isClosing()) {
    replyError(session, option, P.REP_ERR_SHUTDOWN, "server is shutting down");
    return "continue";
  }
  sendInfoItems(session, option, resolved, request.infoTypes);
  reply(session, option, P.REP_ACK);
  if (option === P.OPT_INFO) return "continue";
  session.chosen = resolved;
  return "transmission";
}

interface InfoRequest {
  name: string;
  infoTypes: number[];
}

/** Returns the parsed request or the reason it is invalid. */
export function parseInfoRequest(payload: Buffer): InfoRequest | string {
  if (payload.length < 6) return "option too short";
  const nameBytes = payload.readUInt32BE(0);
  if (nameBytes > payload.length - 6) return "export name length past the option's end";
  if (nameBytes > P.NBD_MAX_STRING_BYTES) return "export name too long";
  const countOffset = 4 + nameBytes;
  const infoCount = payload.readUInt16BE(countOffset);
  if (infoCount > P.INFO_REQUEST_COUNT_MAX) return "too many information requests";
  if (countOffset + 2 + 2 * infoCount !== payload.length) return "information request count does not match the length";
  const infoTypes: number[] = [];
  for (let index = 0; index < infoCount; index++) infoTypes.push(payload.readUInt16BE(countOffset + 2 + 2 * index));
  return { name: payload.toString("utf8", 4, 4 + nameBytes), infoTypes };
}

function sendInfoItems(session: Session, option: number, volume: Volume, infoTypes: number[]): void {
  const exportItem = Buffer.allocUnsafe(12);
  exportItem.writeUInt16BE(P.INFO_EXPORT, 0);
  writeUInt64(exportItem, volume.sizeBytes, 2);
  exportItem.writeUInt16BE(transmissionFlags(volume, session.structuredReplies), 10);
  reply(session, option, P.REP_INFO, exportItem);
  if (infoTypes.includes(P.INFO_NAME)) reply(session, option, P.REP_INFO, stringItem(P.INFO_NAME, volume.name));
  if (infoTypes.includes(P.INFO_DESCRIPTION)) {
    reply(session, option, P.REP_INFO, stringItem(P.INFO_DESCRIPTION, volume.description));
  }
  const blockSizeItem = Buffer.allocUnsafe(14);
  blockSizeItem.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
  blockSizeItem.writeUInt32BE(1, 2);
  blockSizeItem.writeUInt32BE(volume.blockSizeBytes, 6);
  blockSizeItem.writeUInt32BE(session.options.requestBytesMax, 10);
  reply(session, option, P.REP_INFO, blockSizeItem);
}

function stringItem(infoType: number, text: string): Buffer {
  const encoded = Buffer.from(text, "utf8");
  const item = Buffer.allocUnsafe(2 + encoded.length);
  item.writeUInt16BE(infoType, 0);
  encoded.copy(item, 2);
  return item;
}

/** NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT; we know only base:allocation. */
function handleMetaContext(session: Session, option: number, payload: Buffer): OptionOutcome {
  const isSet = option === P.OPT_SET_META_CONTEXT;
  if (isSet && !session.structuredReplies) {
    replyError(session, option, P.REP_ERR_INVALID, "negotiate structured replies first");
    return "continue";
  }
  const request = parseMetaContextRequest(payload);
  if (typeof request === "string") {
    replyError(session, option, P.REP_ERR_INVALID, request);
    return "continue";
  }
  const resolved = resolveVolume(session, request.name);
  if (resolved instanceof SnaplogError) {
    replyRefusal(session, option, resolved);
    return "continue";
  }
  const matched = request.queries.length === 0 ? !isSet : request.queries.some((query) => queryMatches(query, isSet));
  if (isSet) {
    session.metaExportName = resolved.name;
    session.baseAllocation = matched;
  }
  if (matched) reply(session, option, P.REP_META_CONTEXT, metaContextItem());
  reply(session, option, P.REP_ACK);
  return "continue";
}

function queryMatches(query: string, isSet: boolean): boolean {
  if (query === P.META_BASE_ALLOCATION) return true;
  return !isSet && query === P.META_BASE_NAMESPACE;
}

function metaContextItem(): Buffer {
  const name = Buffer.from(P.META_BASE_ALLOCATION, "utf8");
  const item = Buffer.allocUnsafe(4 + name.length);
  item.writeUInt32BE(P.META_ID_BASE_ALLOCATION, 0);
  name.copy(item, 4);
  return item;
}

interface MetaContextRequest {
  name: string;
  queries: string[];
}

/** Export name length (4), name, query count (4), then length (4) + query for each. */
export function parseMetaContextRequest(payload: Buffer): MetaContextRequest | string {
  if (payload.length < 8) return "option too short";
  const nameBytes = payload.readUInt32BE(0);
  if (nameBytes > payload.length - 8) return "export name length past the option's end";
  if (nameBytes > P.NBD_MAX_STRING_BYTES) return "export name too long";
  const name = payload.toString("utf8", 4, 4 + nameBytes);
  const queryCount = payload.readUInt32BE(4 + nameBytes);
  if (queryCount > P.META_QUERY_COUNT_MAX) return "too many queries";
  const queries: string[] = [];
  let offsetBytes = 8 + nameBytes;
  for (let index = 0; index < queryCount; index++) {
    if (offsetBytes + 4 > payload.length) return "query past the option's end";
    const queryBytes = payload.readUInt32BE(offsetBytes);
    if (queryBytes > P.NBD_MAX_STRING_BYTES) return "query too long";
    if (queryBytes > payload.length - offsetBytes - 4) return "query past the option's end";
    queries.push(payload.toString("utf8", offsetBytes + 4, offsetBytes + 4 + queryBytes));
    offsetBytes += 4 + queryBytes;
  }
  if (offsetBytes !== payload.length) return "trailing bytes after the queries";
  return { name, queries };
}

// ---- Exports ----------------------------------------------------------------------------------

/**
 * The volume, kept in the session until its option is answered (see negotiate), or why not as
 * a typed error, logged when NBD_EXPORT_REFUSAL_BY_CODE says so. The message names the export.
 */
function resolveVolume(session: Session, requestedName: string): Volume | SnaplogError {
  const resolver = session.options.resolver;
  const name = requestedName === "" ? resolver.defaultExport : requestedName;
  if (name === undefined) return notFound("no default export: give an export name");
  try {
    session.resolved = resolver.resolve(name);
    if (session.listed.has(name)) session.exportsAsked.add(name);
    return session.resolved;
  } catch (error) {
    const failure =
      error instanceof SnaplogError
        ? error
        : new SnaplogError(ErrorCodes.INTERNAL, error instanceof Error ? error.message : String(error), { cause: error });
    if (NBD_EXPORT_REFUSAL_BY_CODE[failure.code].logged)
      session.options.logger.warn({ err: error, exportName: name }, "nbd: export could not be resolved");
    return new SnaplogError(failure.code, `export "${name}": ${failure.message}`, { cause: error });
  }
}

function replyRefusal(session: Session, option: number, error: SnaplogError): void {
  replyError(session, option, NBD_EXPORT_REFUSAL_BY_CODE[error.code].reply, error.message);
}

/** The flags a volume is exported with; SEND_DF only with structured replies (DF needs them). */
export function transmissionFlags(volume: Volume, structuredReplies: boolean): number {
  let flags = P.TFLAG_HAS_FLAGS | P.TFLAG_SEND_FLUSH | P.TFLAG_CAN_MULTI_CONN;
  if (structuredReplies) flags |= P.TFLAG_SEND_DF;
  if (volume.readOnly) return flags | P.TFLAG_READ_ONLY;
  return flags | P.TFLAG_SEND_FUA | P.TFLAG_SEND_TRIM | P.TFLAG_SEND_WRITE_ZEROES | P.TFLAG_SEND_FAST_ZERO;
}

/** Writes a safe integer as a 64-bit big-endian value without BigInt. */
export function writeUInt64(buffer: Buffer, value: number, offsetBytes: number): void {
  buffer.writeUInt32BE(Math.floor(value / 0x100000000), offsetBytes);
  buffer.writeUInt32BE(value >>> 0, offsetBytes + 4);
}
