import { INDEX_PAGE_BLOCKS } from "../constants.js";

/** A page of the index that holds a written block, as a block range (clipped to the range walked). */
export interface IndexPage {
  /** The page's index (lbaFirst / INDEX_PAGE_BLOCKS, rounded down): progress reports count these. */
  index: number;
  lbaFirst: number;
  lbaEnd: number;
}

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

  /** True when no block of the page holding `lba` was ever written; lets callers skip whole pages. */
  pageIsEmpty(lba: number): boolean {
    return this.pages[Math.floor(lba / INDEX_PAGE_BLOCKS)] === undefined;
  }

  /**
   * The page walk: the pages holding a written block that overlap [lbaFirst, lbaEnd), in block
   * order, each clipped to that range; pages never written are skipped whole. Walks the pages
   * that exist when it starts: pages added meanwhile (by writes newer than any view the walker
   * holds) are not visited. A walker may await between pages.
   */
  *writtenPages(lbaFirst = 0, lbaEnd = Infinity): Generator<IndexPage> {
    const pageLimit = this.pages.length;
    for (let index = Math.floor(lbaFirst / INDEX_PAGE_BLOCKS); index < pageLimit; index++) {
      const pageLbaFirst = index * INDEX_PAGE_BLOCKS;
      if (pageLbaFirst >= lbaEnd) return;
      if (this.pages[index] === undefined) continue;
      yield { index, lbaFirst: Math.max(lbaFirst, pageLbaFirst), lbaEnd: Math.min(lbaEnd, pageLbaFirst + INDEX_PAGE_BLOCKS) };
    }
  }

  /** Pages below this index may exist; past it every block is unwritten. */
  get pageLimit(): number {
    return this.pages.length;
  }

  get memoryBytes(): number {
    return this.pageCount * INDEX_PAGE_BLOCKS * 4 + this.pages.length * 8;
  }
}
