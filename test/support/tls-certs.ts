/**
 * Certificates for the TLS tests, made with Debian's openssl in a temporary directory: a CA,
 * a server certificate for 127.0.0.1 and localhost, a client certificate, an expired client
 * certificate (made with `openssl ca` and explicit dates), and a client certificate from a
 * second CA with the same subject. Files are laid out as libnbd's `tls-certificates` directory
 * wants them (ca-cert.pem, client-cert.pem, client-key.pem) and as qemu's tls-creds-x509 dir
 * (ca-cert.pem, client-cert.pem, client-key.pem).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync, copyFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./temp-dir.js";

export interface TlsFixture {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** A directory for libnbd and qemu: the CA and a good client certificate. */
  clientDir: string;
  /** The same CA, an expired client certificate. */
  expiredClientDir: string;
  /** The same CA (so the server is trusted), a client certificate from another CA with the same subject. */
  otherCaClientDir: string;
  /** The CA only (no client certificate). */
  noClientCertDir: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function makeCa(dir: string, name: string): void {
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      `${name}-key.pem`,
      "-out",
      `${name}-cert.pem`,
      "-days",
      "30",
      "-subj",
      `/CN=${name}`,
    ],
    dir,
  );
}

function signed(dir: string, ca: string, name: string, subject: string, extensions: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", subject], dir);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}-cert.pem`,
      "-CAkey",
      `${ca}-key.pem`,
      "-CAcreateserial",
      "-out",
      `${name}-cert.pem`,
      "-days",
      "30",
      "-extfile",
      `${name}.ext`,
    ],
    dir,
  );
}

/** A client certificate valid only in 2020, signed by `ca` through `openssl ca` (which takes explicit dates). */
function expired(dir: string, ca: string, name: string): void {
  mkdirSync(path.join(dir, "ca-db"), { recursive: true });
  writeFileSync(path.join(dir, "ca-db", "index.txt"), "");
  writeFileSync(path.join(dir, "ca-db", "serial"), "1000\n");
  writeFileSync(
    path.join(dir, "ca.cnf"),
    [
      "[ca]",
      "default_ca = test",
      "[test]",
      "database = ca-db/index.txt",
      "serial = ca-db/serial",
      "new_certs_dir = ca-db",
      "default_md = sha256",
      "policy = anything",
      "copy_extensions = none",
      "x509_extensions = client",
      "[anything]",
      "commonName = supplied",
      "[client]",
      "extendedKeyUsage = clientAuth",
      "keyUsage = digitalSignature, keyEncipherment",
      "",
    ].join("\n"),
  );
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", "/CN=client"], dir);
  openssl(
    [
      "ca",
      "-batch",
      "-config",
      "ca.cnf",
      "-cert",
      `${ca}-cert.pem`,
      "-keyfile",
      `${ca}-key.pem`,
      "-in",
      `${name}.csr`,
      "-out",
      `${name}-cert.pem`,
      "-startdate",
      "20200101000000Z",
      "-enddate",
      "20200201000000Z",
    ],
    dir,
  );
}

function clientDir(dir: string, name: string, client: string | undefined): string {
  const target = path.join(dir, name);
  mkdirSync(target);
  copyFileSync(path.join(dir, "ca-cert.pem"), path.join(target, "ca-cert.pem"));
  if (client !== undefined) {
    copyFileSync(path.join(dir, `${client}-cert.pem`), path.join(target, "client-cert.pem"));
    copyFileSync(path.join(dir, `${client}-key.pem`), path.join(target, "client-key.pem"));
  }
  return target;
}

/** In `dir` (default: a temporary directory removed when the test file ends). */
export function makeTlsFixture(dir: string = tempDir("tls")): TlsFixture {
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  signed(
    dir,
    "ca",
    "server",
    "/CN=localhost",
    "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\nkeyUsage = digitalSignature, keyEncipherment\n",
  );
  signed(dir, "ca", "client", "/CN=client", "extendedKeyUsage = clientAuth\nkeyUsage = digitalSignature, keyEncipherment\n");
  signed(dir, "other-ca", "impostor", "/CN=client", "extendedKeyUsage = clientAuth\nkeyUsage = digitalSignature, keyEncipherment\n");
  expired(dir, "ca", "expired");
  return {
    dir,
    caCert: path.join(dir, "ca-cert.pem"),
    serverCert: path.join(dir, "server-cert.pem"),
    serverKey: path.join(dir, "server-key.pem"),
    clientDir: clientDir(dir, "client-dir", "client"),
    expiredClientDir: clientDir(dir, "expired-dir", "expired"),
    otherCaClientDir: clientDir(dir, "impostor-dir", "impostor"),
    noClientCertDir: clientDir(dir, "no-client-dir", undefined),
  };
}
