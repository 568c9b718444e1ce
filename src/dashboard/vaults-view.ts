/** Vaults and the archives in each (chains of full and incremental streams). */
import { useEffect, useState } from "preact/hooks";
import { call, encode } from "./api.js";
import { bytes, time } from "./format.js";
import { html } from "./html.js";
import type { LiveState } from "./live.js";
import type { VaultChain, VaultInfo } from "./types.js";

export function VaultsView({ live }: { live: LiveState }) {
  const [vaults, setVaults] = useState<VaultInfo[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const archived = live.events.filter((event) => event.type.startsWith("archive")).length;
  useEffect(() => {
    call<VaultInfo[]>("GET", "/v1/vaults").then(
      (list) => {
        setVaults(list);
        setProblem(null);
      },
      (error: Error) => setProblem(error.message),
    );
  }, [archived]);
  if (problem !== null) return html`<div class="outcome refusal" role="alert">${problem}</div>`;
  if (vaults === null) return html`<p class="muted">Reading vaults…</p>`;
  if (vaults.length === 0)
    return html`<p class="muted">
      No vaults: <code>snaplog vault add NAME file:///path | s3://bucket/prefix | snaplog://host:port</code>.
    </p>`;
  return html`<section>${vaults.map((vault) => html`<${VaultCard} key=${vault.name} vault=${vault} changes=${archived} />`)}</section>`;
}

function VaultCard({ vault, changes }: { vault: VaultInfo; changes: number }) {
  const [chains, setChains] = useState<VaultChain[] | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    call<VaultChain[]>("GET", `/v1/vaults/${encode(vault.name)}/chains`).then(setChains, (error: Error) => setProblem(error.message));
  }, [vault.name, changes]);
  return html`<div class="vault" data-vault=${vault.name}>
    <h3>${vault.name} <span class="badge">${vault.kind}</span></h3>
    <p class="muted"><code>${vault.url}</code> · added ${time(vault.addedAt)}</p>
    ${
      problem !== null
        ? html`<div class="outcome refusal" role="alert">Cannot read the vault: ${problem}</div>`
        : chains === null
          ? html`<p class="muted">Reading archives…</p>`
          : chains.length === 0
            ? html`<p class="muted">No archives yet.</p>`
            : html`<table>
                <thead>
                  <tr>
                    <th>Disk</th>
                    <th>Chain</th>
                    <th>#</th>
                    <th>Snapshot</th>
                    <th>Kind</th>
                    <th>Time</th>
                    <th>Size</th>
                    <th>State</th>
                  </tr>
                </thead>
                <tbody>
                  ${chains.flatMap((chain) =>
                    chain.items.map(
                      (item) =>
                        html`<tr>
                          <td>${chain.disk}</td>
                          <td><code title=${chain.chainId}>${chain.chainId.slice(0, 8)}</code></td>
                          <td>${item.index}</td>
                          <td><code>${item.snapshot}</code></td>
                          <td>${item.kind}${item.compacted ? ", compacted" : ""}</td>
                          <td class="nowrap">${time(item.time)}</td>
                          <td>${bytes(item.bytes)}</td>
                          <td>${item.complete ? "complete" : html`<span class="state degraded">partial (resumable)</span>`}</td>
                        </tr>`,
                    ),
                  )}
                </tbody>
              </table>`
    }
  </div>`;
}
