/**
 * NBD over TLS (SPEC §7): the certificate, key and optional client CA that `serve --tls-*`
 * names, as one secure context, and the STARTTLS upgrade of an accepted socket.
 *
 * A TLSSocket built around an accepted socket by hand never checks a client certificate: only
 * tls.Server sets `authorized` and refuses what fails verification (an expired certificate, one
 * from another CA with the same subject). So `upgradeToTls` hands the socket to a tls.Server made
 * for it (injecting connections with emit("connection") is how net.Server documents it) and
 * takes the TLS socket from its "secureConnection" event, which comes only for a verified client.
 */
import { readFile } from "node:fs/promises";
import type { Socket } from "node:net";
import * as tls from "node:tls";
import { ErrorCodes, SnaplogError, fromSystemError } from "../util/errors.js";

export type NbdTlsMode = "required" | "optional";

export interface NbdTls {
  /** What each STARTTLS's tls.Server is made with: certificate, key, CA and verification. */
  readonly serverOptions: tls.TlsOptions;
  /** required: every option but STARTTLS and ABORT is refused with NBD_REP_ERR_TLS_REQD until TLS is up. */
  readonly mode: NbdTlsMode;
  /** A CA was given: clients must present a certificate it signed (valid, unexpired). */
  readonly verifyClients: boolean;
  /** The certificate and key as read (the API's HTTPS uses the same); absent in PSK mode. */
  readonly certificate?: { cert: Buffer; key: Buffer };
}

/** Certificates (cert and key, optionally a client CA), or a PSK file instead. */
export interface NbdTlsFiles {
  certPath?: string;
  keyPath?: string;
  caPath?: string;
  /** qemu's and libnbd's PSK file: lines `username:hexkey`. */
  pskPath?: string;
  mode?: NbdTlsMode;
}

/**
 * TLS-PSK as Node's OpenSSL offers it to a server: TLS 1.2 with the PSK cipher suites (Node's
 * pskCallback is not used for TLS 1.3 session PSKs), which GnuTLS clients (qemu, libnbd) speak.
 */
const PSK_CIPHERS = [
  "ECDHE-PSK-AES256-CBC-SHA384",
  "DHE-PSK-AES256-GCM-SHA384",
  "DHE-PSK-AES128-GCM-SHA256",
  "PSK-AES256-GCM-SHA384",
  "PSK-AES128-GCM-SHA256",
].join(":");

/** The keys of a PSK file by username; refused when a line is not `username:hexkey`. */
export function parsePskFile(text: string, path: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "") continue;
    const match = /^([^:\s]+):([0-9a-fA-F]+)$/.exec(line);
    if (match === null || match[2].length % 2 !== 0 || match[2].length < 32) {
      throw new SnaplogError(
        ErrorCodes.INVALID_ARGUMENT,
        `${path} line ${index + 1} is not username:hexkey (a key of 16 bytes or more, in hex)`,
        {
          path,
          hint: 'make one with: echo "$USER:$(openssl rand -hex 32)" > keys.psk',
        },
      );
    }
    keys.set(match[1], Buffer.from(match[2], "hex"));
  }
  if (keys.size === 0) throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `${path} holds no username:hexkey line`, { path });
  return keys;
}

/**
 * The one rule for which TLS options go together, checked before anything is read (serve
 * checks it before opening the store): a certificate needs its key and the reverse, a CA needs
 * a certificate, a PSK file excludes certificates, the mode is required or optional.
 */
export function checkNbdTlsFiles(files: Omit<NbdTlsFiles, "mode"> & { mode?: string }): CheckedTlsFiles {
  const invalid = (message: string) => new SnaplogError(ErrorCodes.INVALID_ARGUMENT, message);
  if (files.mode !== undefined && files.mode !== "required" && files.mode !== "optional")
    throw invalid(`invalid --tls "${files.mode}": expected required or optional`);
  const mode = files.mode as NbdTlsMode | undefined;
  if (files.pskPath !== undefined) {
    if (files.certPath !== undefined || files.keyPath !== undefined || files.caPath !== undefined)
      throw invalid("--tls-psk is an alternative to --tls-cert/--tls-key/--tls-ca: give one or the other");
    return { pskPath: files.pskPath, mode };
  }
  if (files.certPath === undefined && files.keyPath === undefined)
    throw invalid("--tls-ca and --tls need --tls-cert and --tls-key (or --tls-psk)");
  if (files.certPath === undefined || files.keyPath === undefined) throw invalid("--tls-cert and --tls-key go together");
  return { certPath: files.certPath, keyPath: files.keyPath, caPath: files.caPath, mode };
}

/** NbdTlsFiles once checked: a PSK file, or a certificate with its key. */
export type CheckedTlsFiles =
  { pskPath: string; mode?: NbdTlsMode } | { pskPath?: undefined; certPath: string; keyPath: string; caPath?: string; mode?: NbdTlsMode };

export async function loadNbdTls(given: NbdTlsFiles): Promise<NbdTls> {
  const files = checkNbdTlsFiles(given);
  if (files.pskPath !== undefined) {
    let text: string;
    try {
      text = await readFile(files.pskPath, "utf8");
    } catch (error) {
      throw fromSystemError(error, { path: files.pskPath, hint: "the TLS PSK file must be readable" });
    }
    const keys = parsePskFile(text, files.pskPath);
    const serverOptions: tls.TlsOptions = {
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.2",
      ciphers: PSK_CIPHERS,
      // An unknown username gets no key: the handshake fails, as a wrong key does.
      pskCallback: (_socket, identity) => keys.get(identity) ?? null,
    };
    return { serverOptions, mode: files.mode ?? "required", verifyClients: false };
  }
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (error) {
      throw fromSystemError(error, { path, hint: `the TLS ${what} file must be readable` });
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(files.certPath, "certificate"),
    read(files.keyPath, "key"),
    files.caPath === undefined ? undefined : read(files.caPath, "CA"),
  ]);
  const serverOptions: tls.TlsOptions = {
    cert,
    key,
    ...(ca === undefined ? {} : { ca }),
    minVersion: "TLSv1.2",
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
  };
  try {
    // Checked once here, so a bad file stops `serve` at start rather than failing each client.
    tls.createSecureContext(serverOptions);
  } catch (error) {
    throw new SnaplogError(ErrorCodes.INVALID_ARGUMENT, `the TLS certificate, key or CA cannot be used: ${(error as Error).message}`, {
      hint: "give a PEM certificate and its matching PEM private key (--tls-cert, --tls-key)",
    });
  }
  return { serverOptions, mode: files.mode ?? "required", verifyClients: ca !== undefined, certificate: { cert, key } };
}

/** Runs the server side of a TLS handshake on `socket`; rejects (the socket destroyed) when it fails or the client fails verification. */
export function upgradeToTls(socket: Socket, config: NbdTls): Promise<tls.TLSSocket> {
  const server = tls.createServer(config.serverOptions);
  return new Promise((resolve, reject) => {
    const settle = (error: Error | undefined, secure?: tls.TLSSocket) => {
      socket.off("close", onClose);
      server.removeAllListeners();
      if (error === undefined) {
        // A TLS error once the session is up (a bad record) is only emitted by Node, not an end:
        // the connection is closed here, which the handshake reader or the transmission sees as
        // the client gone (an unhandled 'error' would take the whole server down).
        secure!.on("error", () => secure!.destroy());
        resolve(secure!);
      } else {
        socket.destroy();
        reject(error);
      }
    };
    // tls.Server destroys a client that fails verification without an event of its own: the socket closes.
    const onClose = () =>
      settle(
        new SnaplogError(
          ErrorCodes.CLOSED,
          config.verifyClients
            ? "the TLS handshake ended: no valid client certificate, or the client left"
            : "the client left during the TLS handshake",
        ),
      );
    socket.once("close", onClose);
    server.once("secureConnection", (secure: tls.TLSSocket) => settle(undefined, secure));
    server.once("tlsClientError", (error: Error) => settle(error));
    server.emit("connection", socket);
  });
}
