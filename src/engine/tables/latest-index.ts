import { INDEX_PAGE_BLOCKS } from "../constants.js";

/**
 * latest[lba] → id of the newest entry of that block (0 = never written). A paged table:
 * a Uint32Array page of INDEX_PAGE_BLOCKS blocks is allocated only where the disk was written,
 * so memory follows the written blocks, not the disk size.
 */
export class LatestIndex {
  private readonly pages: (Uint32Array | undefined)[] = [];
  private pageCount = 0;

  get(lba: number): number {
    const page = this.pages[Math.floor(lba / INDEX_PAGE_BLOCKS)];
    return page === undefined ? 0 : page[lba % INDEX_PAGE_BLOCKS];
  }

  set(lba: number, id: number): void {
    const pageIndex = Math.floor(lba / INDEX_PAGE_BLOCKS);
    let page = this.pages[pageIndex];
    if (page === undefined) {
      if (id === 0) return;
      page = new Uint32Array(INDEX_PAGE_BLOCKS);
      this.pages[pageIndex] = page;
      this.pageCount++;
    }
    page[lba % INDEX_PAGE_BLOCKS] = id;
  }

  /** True when no block of [lba, lba+count) was ever written; lets callers skip whole pages. */
  pageIsEmpty(lba: number): boolean {
    return this.pages[Math.floor(lba / INDEX_PAGE_BLOCKS)] === undefined;
  }

  /** Pages below this index may exist; past it every block is unwritten. */
  get pageLimit(): number {
    return this.pages.length;
  }

  get memoryBytes(): number {
    return this.pageCount * INDEX_PAGE_BLOCKS * 4 + this.pages.length * 8;
  }
}
