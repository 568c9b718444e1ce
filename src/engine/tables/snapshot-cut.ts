/** A snapshot: a cut of the log at an LSN, with its name and LUN (SPEC §1). */
export interface SnapshotCut {
  name: string;
  lun: number;
  lsn: number;
  timeMs: number;
}
