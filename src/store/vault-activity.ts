/**
 * What archiving to each vault did since the store was opened (the metrics an operator alerts
 * on: "no successful archive to offsite for a day"): successes, failures, bytes sent, and when
 * the last success and the last failure were. Kept in memory; a restart starts them again.
 */
export interface VaultActivityFigures {
  vault: string;
  archives: number;
  failures: number;
  bytesSent: number;
  /** ms since the epoch; 0: none since the store was opened. */
  lastSuccessMs: number;
  lastFailureMs: number;
}

export class VaultActivity {
  private readonly byVault = new Map<string, VaultActivityFigures>();

  succeeded(vault: string, bytesSent: number, atMs: number): void {
    const figures = this.figures(vault);
    figures.archives++;
    figures.bytesSent += bytesSent;
    figures.lastSuccessMs = atMs;
  }

  failed(vault: string, atMs: number): void {
    const figures = this.figures(vault);
    figures.failures++;
    figures.lastFailureMs = atMs;
  }

  list(): VaultActivityFigures[] {
    return [...this.byVault.values()].map((figures) => ({ ...figures }));
  }

  private figures(vault: string): VaultActivityFigures {
    let figures = this.byVault.get(vault);
    if (figures === undefined) {
      figures = { vault, archives: 0, failures: 0, bytesSent: 0, lastSuccessMs: 0, lastFailureMs: 0 };
      this.byVault.set(vault, figures);
    }
    return figures;
  }
}
