import type { DiskFile } from "../disk-file.js";

/** Whether the disk takes no writes from hosts: a replica not promoted (SPEC §5.4). */
export function isReadOnlyReplica(meta: DiskFile): boolean {
  return meta.replica !== undefined && meta.replica.promotedAt === undefined;
}
