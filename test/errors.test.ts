/**
 * Goal: every error code is mapped at every boundary and documented, with the same values
 * (STYLE "Test that every code is documented"). Method: walk ErrorCodes and look each code up
 * in the NBD errno table, the HTTP status table, the CLI exit-code table and the table in
 * docs/errors.md; compare the documented values with the tables.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ErrorCodes } from "../src/util/errors.js";
import * as nbdErrno from "../src/nbd/errno.js";
import { httpStatusByCode } from "../src/api/http-status.js";
import { exitCodeByCode } from "../src/cli/exit-code.js";

const codes = Object.values(ErrorCodes);
const docPath = fileURLToPath(new URL("../../docs/errors.md", import.meta.url));

/** The NBD table, under the name the brief asked for or the one errno.ts uses. */
function nbdTable(): Record<string, number> {
  const exports = nbdErrno as unknown as Record<string, Record<string, number> | undefined>;
  const table = exports.nbdErrnoByCode ?? exports.NBD_ERRNO_BY_CODE;
  assert.ok(table, "src/nbd/errno.ts exports the errno table");
  return table;
}

interface DocRow {
  nbd: string;
  http: number;
  exit: number;
}

function docRows(): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  for (const line of readFileSync(docPath, "utf8").split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    const code = /^`(SNAPLOG_[A-Z_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (code === undefined) continue;
    assert.ok(!rows.has(code), `${code} documented once`);
    rows.set(code, { nbd: cells[3], http: Number(cells[4]), exit: Number(cells[5]) });
  }
  return rows;
}

test("every code has an NBD errno", () => {
  const table = nbdTable();
  for (const code of codes) assert.equal(typeof table[code], "number", `${code} in src/nbd/errno.ts`);
});

test("every code has an HTTP status (4xx or 5xx)", () => {
  const table: Record<string, number> = httpStatusByCode;
  for (const code of codes) {
    assert.ok(table[code] >= 400 && table[code] <= 599, `${code} in src/api/http-status.ts`);
  }
});

test("every code has a non-zero CLI exit code", () => {
  const table: Record<string, number> = exitCodeByCode;
  for (const code of codes) {
    assert.ok(Number.isInteger(table[code]) && table[code] > 0 && table[code] < 126, `${code} in src/cli/exit-code.ts`);
  }
});

test("docs/errors.md documents every code, and nothing else", () => {
  const rows = docRows();
  for (const code of codes) assert.ok(rows.has(code), `${code} in docs/errors.md`);
  for (const code of rows.keys()) assert.ok((codes as string[]).includes(code), `${code} in docs/errors.md is a real code`);
});

test("docs/errors.md shows the values the tables use", () => {
  const rows = docRows();
  const nbd = nbdTable();
  const http: Record<string, number> = httpStatusByCode;
  const exit: Record<string, number> = exitCodeByCode;
  for (const code of codes) {
    const row = rows.get(code)!;
    assert.equal(row.http, http[code], `${code}: HTTP status in docs/errors.md`);
    assert.equal(row.exit, exit[code], `${code}: exit code in docs/errors.md`);
    assert.match(row.nbd, new RegExp(`^[A-Z]+ \\(${nbd[code]}\\)`), `${code}: NBD errno in docs/errors.md`);
  }
});
