/** The snaplog library: the same engine the appliance runs, in-process (SPEC §3.4). */
export { Store, VERSION } from "./store/store.js";
export type { StoreOpenOptions } from "./store/store.js";
export type * from "./store/operations/index.js";
export type { Volume, VolumeResolver, ExportInfo, StatusExtent, WriteOptions, ZeroOptions } from "./store/volume.js";
export { SnaplogError, ErrorCodes } from "./util/errors.js";
export type { ErrorCode } from "./util/errors.js";
