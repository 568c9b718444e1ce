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
  /** The certificate and key as read (the API's HTTPS uses the same). */
  readonly certificate: { cert: Buffer; key: Buffer };
}

export interface NbdTlsFiles {
  certPath: string;
  keyPath: string;
  caPath?: string;
  mode?: NbdTlsMode;
}

export async function loadNbdTls(files: NbdTlsFiles): Promise<NbdTls> {
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
      if (error === undefined) resolve(secure!);
      else {
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
