/** Progress of long work: `done` of `total` (units of the operation's choosing). */
export type ProgressCallback = (done: number, total: number) => void;
