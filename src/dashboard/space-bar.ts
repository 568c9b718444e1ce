/** A stacked bar of where a disk's bytes are, with its legend. */
import { html } from "./html.js";
import { bytes } from "./format.js";

export interface SpacePart {
  label: string;
  bytes: number;
  className: string;
}

export function SpaceBar({ parts }: { parts: SpacePart[] }) {
  let total = 0;
  for (const part of parts) total += part.bytes;
  return html`<div class="space">
    <div class="space-bar" role="img" aria-label=${parts.map((part) => `${part.label} ${bytes(part.bytes)}`).join(", ")}>
      ${parts.map((part) =>
        part.bytes > 0
          ? html`<span
              class=${part.className}
              style=${`flex-grow:${part.bytes / Math.max(1, total)}`}
              title=${`${part.label}: ${bytes(part.bytes)}`}
            ></span>`
          : null,
      )}
    </div>
    <ul class="legend">
      ${parts.map((part) => html`<li><i class=${part.className}></i>${part.label} <strong>${bytes(part.bytes)}</strong></li>`)}
    </ul>
  </div>`;
}
