/** Distinct line colours for charts, reused in order. */
const palette = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f"];

export function seriesColor(index: number): string {
  return palette[index % palette.length];
}
