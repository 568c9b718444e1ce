/**
 * A metric read when scraped, from a list the store or the server answers then: one sample per
 * item, labelled from the item, for each series of a table (name, help, value). A value that is
 * undefined gives no sample (a time not known yet). Every collector of per-disk, per-relation,
 * per-vault and per-type figures is one of these; the data path pays nothing.
 */
import { Counter, Gauge, type Registry } from "prom-client";

export interface ScrapedSeries<T> {
  name: string;
  help: string;
  value: (item: T) => number | undefined;
}

export function registerScraped<T, L extends string>(
  registry: Registry,
  kind: "counter" | "gauge",
  labelNames: readonly L[],
  items: () => Iterable<T> | Promise<Iterable<T>>,
  labelsOf: (item: T) => Record<L, string>,
  table: readonly ScrapedSeries<T>[],
): void {
  for (const { name, help, value } of table) {
    const options = { name, help, labelNames, registers: [registry] };
    // One scrape: every item's figure, counted or set (a counter's total is the figure itself).
    const fill = async (apply: (labels: Record<L, string>, figure: number) => void): Promise<void> => {
      for (const item of await items()) {
        const figure = value(item);
        if (figure !== undefined) apply(labelsOf(item), figure);
      }
    };
    if (kind === "counter") {
      new Counter<L>({
        ...options,
        async collect() {
          this.reset();
          await fill((labels, figure) => this.inc(labels, figure));
        },
      });
    } else {
      new Gauge<L>({
        ...options,
        async collect() {
          this.reset();
          await fill((labels, figure) => this.set(labels, figure));
        },
      });
    }
  }
}
