/**
 * The answer of `GET /v1/status` and `snaplog status`: the store's status and what the
 * appliance serves. The store does not know its listeners: the server that runs them gives
 * them to the API (ApiAppOptions.served), and a store the CLI opened itself serves nothing.
 */
import type { StoreStatus } from "../store/operations/index.js";

export interface ServedEndpoints {
  /** NBD base URLs being listened on, e.g. "nbd://127.0.0.1:10809" (empty when not serving). */
  nbd: string[];
}

export interface ApplianceStatus extends StoreStatus, ServedEndpoints {}

export const NOTHING_SERVED: ServedEndpoints = { nbd: [] };

export function applianceStatus(store: StoreStatus, served: ServedEndpoints): ApplianceStatus {
  const { disks, ...rest } = store;
  // `nbd` before `disks`: where the answer has always had it.
  return { ...rest, nbd: [...served.nbd], disks };
}
