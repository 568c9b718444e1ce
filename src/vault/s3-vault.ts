/**
 * A vault in an S3 bucket (s3://bucket/prefix?endpoint=URL&region=R): each key is the object
 * PREFIX+KEY. AWS or any S3-compatible endpoint (Ceph RGW, MinIO, ...): with a custom endpoint
 * the client uses path-style addressing and sends or checks checksums only where the operation
 * requires them (newer SDK defaults add CRC32 trailers that S3-compatible stores refuse).
 *
 * put is all-or-nothing by S3's own rule: an object appears only when PutObject or
 * CompleteMultipartUpload succeeds. Objects above MULTIPART_THRESHOLD_BYTES go multipart (parts
 * of MULTIPART_PART_BYTES); an interrupted multipart upload is invisible to list() but holds
 * space until sweepIncomplete aborts it. ETags of completed uploads are not used (RGW 16
 * answers an empty one).
 *
 * Credentials: the SDK's default chain (AWS_ACCESS_KEY_ID..., ~/.aws/credentials, ...), or the
 * shared-credentials file given (its [default] profile, or AWS_PROFILE).
 */
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { fromIni } from "@aws-sdk/credential-provider-ini";
import { Upload } from "@aws-sdk/lib-storage";
import { ErrorCodes, notFound, SnaplogError } from "../util/errors.js";
import type { OpenVaultOptions, Vault, VaultObjectInfo } from "./vault.js";
import { checkVaultKey, checkVaultPrefix } from "./vault-key.js";
import type { S3VaultTarget } from "./vault-url.js";
import { networkProblem } from "./vault-errors.js";

/** Objects larger than this go multipart. */
export const MULTIPART_THRESHOLD_BYTES = 8 * 1024 * 1024;
/** Part size of multipart uploads (S3 allows 5 MiB to 5 GiB; 10 000 parts at most). */
export const MULTIPART_PART_BYTES = 8 * 1024 * 1024;
/** Parts of one object uploaded at the same time. */
const multipartQueueSize = 4;
/** Attempts of one request (the SDK's standard retry: exponential backoff with jitter). */
const requestAttemptsMax = 3;
const connectionTimeoutMs = 5_000;
const requestTimeoutMsDefault = 120_000;
/** Keys per delete round: requests in flight at once. */
const deleteConcurrency = 8;
/** Aborting an upload is checked with ListParts and retried (some stores keep parts a while). */
const abortAttemptsMax = 3;

export class S3Vault implements Vault {
  readonly description: string;
  private readonly client: S3Client;

  constructor(
    private readonly target: S3VaultTarget,
    options: OpenVaultOptions = {},
  ) {
    this.description = target.description;
    const config: S3ClientConfig = {
      region: target.region,
      maxAttempts: requestAttemptsMax,
      requestHandler: { connectionTimeout: connectionTimeoutMs, requestTimeout: options.fetchTimeoutMs ?? requestTimeoutMsDefault },
    };
    if (target.endpoint !== undefined) {
      config.endpoint = target.endpoint;
      config.forcePathStyle = true;
      config.requestChecksumCalculation = "WHEN_REQUIRED";
      config.responseChecksumValidation = "WHEN_REQUIRED";
    }
    if (options.credentialsFile !== undefined) config.credentials = fromIni({ filepath: options.credentialsFile, ignoreCache: true });
    this.client = new S3Client(config);
  }

  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.target.bucket }));
    } catch (error) {
      if (statusOf(error) === 404) {
        throw notFound(`vault ${this.description}: bucket ${this.target.bucket} does not exist`, {
          hint: "create the bucket first (snaplog does not create buckets)",
        });
      }
      throw this.error(error, "check the bucket");
    }
  }

  async put(key: string, body: Buffer): Promise<void> {
    checkVaultKey(key);
    const params = { Bucket: this.target.bucket, Key: this.objectKey(key), Body: body, ContentType: "application/octet-stream" };
    try {
      if (body.length <= MULTIPART_THRESHOLD_BYTES) {
        await this.client.send(new PutObjectCommand(params));
        return;
      }
      const upload = new Upload({
        client: this.client,
        params,
        partSize: MULTIPART_PART_BYTES,
        queueSize: multipartQueueSize,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (error) {
      throw this.error(error, `store ${key}`);
    }
  }

  async get(key: string): Promise<Buffer> {
    checkVaultKey(key);
    try {
      const answer = await this.client.send(new GetObjectCommand({ Bucket: this.target.bucket, Key: this.objectKey(key) }));
      if (answer.Body === undefined) throw new SnaplogError(ErrorCodes.IO, `vault ${this.description}: ${key} came back without a body`);
      return Buffer.from(await answer.Body.transformToByteArray());
    } catch (error) {
      if (statusOf(error) === 404) throw notFound(`vault ${this.description} has no object ${key}`);
      throw this.error(error, `read ${key}`);
    }
  }

  async head(key: string): Promise<VaultObjectInfo | undefined> {
    checkVaultKey(key);
    try {
      const answer = await this.client.send(new HeadObjectCommand({ Bucket: this.target.bucket, Key: this.objectKey(key) }));
      return { key, sizeBytes: answer.ContentLength ?? 0 };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw this.error(error, `stat ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<VaultObjectInfo> {
    checkVaultPrefix(prefix);
    let continuationToken: string | undefined;
    do {
      let answer;
      try {
        answer = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.target.bucket, Prefix: this.objectKey(prefix), ContinuationToken: continuationToken }),
        );
      } catch (error) {
        throw this.error(error, `list ${prefix === "" ? "objects" : prefix}`);
      }
      // S3 lists in key order (UTF-8 bytes; keys are ASCII, so the same as JS string order).
      for (const object of answer.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key.slice(this.target.prefix.length), sizeBytes: object.Size ?? 0 };
      }
      continuationToken = answer.IsTruncated === true ? answer.NextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) checkVaultKey(key);
    // One DeleteObject per key: DeleteObjects needs Content-MD5 on some S3-compatible stores.
    for (let index = 0; index < keys.length; index += deleteConcurrency) {
      await Promise.all(
        keys.slice(index, index + deleteConcurrency).map(async (key) => {
          try {
            await this.client.send(new DeleteObjectCommand({ Bucket: this.target.bucket, Key: this.objectKey(key) }));
          } catch (error) {
            if (statusOf(error) !== 404) throw this.error(error, `delete ${key}`);
          }
        }),
      );
    }
  }

  async sweepIncomplete(olderThanMs: number): Promise<number> {
    const before = Date.now() - olderThanMs;
    const stale: { key: string; uploadId: string }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let answer;
      try {
        answer = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.target.bucket,
            Prefix: this.target.prefix === "" ? undefined : this.target.prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
      } catch (error) {
        throw this.error(error, "list unfinished uploads");
      }
      for (const upload of answer.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        if ((upload.Initiated?.getTime() ?? 0) <= before) stale.push({ key: upload.Key, uploadId: upload.UploadId });
      }
      const truncated = answer.IsTruncated === true;
      keyMarker = truncated ? answer.NextKeyMarker : undefined;
      uploadIdMarker = truncated ? answer.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    for (const upload of stale) await this.abortUpload(upload.key, upload.uploadId);
    return stale.length;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** AbortMultipartUpload, then ListParts until the upload is gone (NoSuchUpload). */
  private async abortUpload(objectKey: string, uploadId: string): Promise<void> {
    const ids = { Bucket: this.target.bucket, Key: objectKey, UploadId: uploadId };
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.client.send(new AbortMultipartUploadCommand(ids));
      } catch (error) {
        if (statusOf(error) !== 404) throw this.error(error, `abort the unfinished upload of ${objectKey}`);
      }
      try {
        await this.client.send(new ListPartsCommand(ids));
      } catch (error) {
        if (statusOf(error) === 404) return;
        throw this.error(error, `check the unfinished upload of ${objectKey}`);
      }
      if (attempt === abortAttemptsMax) {
        throw new SnaplogError(
          ErrorCodes.IO,
          `vault ${this.description}: the upload ${uploadId} of ${objectKey} is still there after ${attempt} aborts`,
        );
      }
    }
  }

  private objectKey(key: string): string {
    return `${this.target.prefix}${key}`;
  }

  /** Any SDK failure as a SnaplogError naming the vault and what was being done. */
  private error(error: unknown, what: string): SnaplogError {
    if (error instanceof SnaplogError) return error;
    const status = statusOf(error);
    const message = messageOf(error);
    const network = networkProblem(error);
    if (network !== undefined || (status !== undefined && status >= 500)) {
      return new SnaplogError(ErrorCodes.VAULT_UNREACHABLE, `vault ${this.description} unreachable: ${network ?? `${status} ${message}`}`, {
        cause: error,
        hint: "check the endpoint and the network; a put that failed left nothing visible (run the sweep to free unfinished uploads)",
      });
    }
    if ((error as { name?: string } | undefined)?.name === "CredentialsProviderError") {
      return new SnaplogError(ErrorCodes.VAULT_DENIED, `vault ${this.description}: no usable credentials: ${message}`, {
        cause: error,
        hint: "give a shared-credentials file, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
      });
    }
    if (status === 403 || status === 401) {
      return new SnaplogError(ErrorCodes.VAULT_DENIED, `vault ${this.description} refused the credentials (${what}): ${message}`, {
        cause: error,
        hint: "check the access key, the secret and the bucket's permissions",
      });
    }
    return new SnaplogError(ErrorCodes.IO, `vault ${this.description}: cannot ${what}: ${message}`, { cause: error });
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function messageOf(error: unknown): string {
  const named = error as { name?: string; message?: string; Code?: string } | undefined;
  const message = named?.message ?? String(error);
  const name = named?.Code ?? named?.name;
  return name !== undefined && name !== "Error" && !message.includes(name) ? `${name}: ${message}` : message;
}
