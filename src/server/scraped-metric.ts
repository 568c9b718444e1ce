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
    if (kind === "counter") {
      new Counter<L>({
        ...options,
        async collect() {
          this.reset();
          for (const item of await items()) {
            const figure = value(item);
            if (figure !== undefined) this.inc(labelsOf(item), figure);
          }
        },
      });
    } else {
      new Gauge<L>({
        ...options,
        async collect() {
          this.reset();
          for (const item of await items()) {
            const figure = value(item);
            if (figure !== undefined) this.set(labelsOf(item), figure);
          }
        },
      });
    }
  }
}
