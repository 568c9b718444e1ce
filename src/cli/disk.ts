/** `snaplog disk create | list | show | delete`. */
import { registerDiskPromote } from "./replicate.js";
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { parseBlockSize } from "../store/block-size.js";
import { checkName, NAME_RULE } from "../store/names.js";
import type { CreateDiskRequest, DiskDetail, DiskInfo, HistoryWindowInfo, SnapshotInfo } from "../store/operations/index.js";
import { invalidArgument } from "../util/errors.js";
import { formatBytes, formatDuration, parseDuration, parseSize } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printFields, printLine, printTable, type Column } from "./output.js";
import { policyFields } from "./policy.js";

interface CreateOptions {
  size: string;
  from?: string;
  history?: string;
  blockSize?: string;
}

export const diskColumns: ReadonlyArray<Column<DiskInfo>> = [
  { header: "NAME", value: (disk) => disk.name },
  { header: "SIZE", value: (disk) => formatBytes(disk.sizeBytes), alignRight: true },
  { header: "BLOCK", value: (disk) => formatBytes(disk.blockSizeBytes), alignRight: true },
  { header: "LUN", value: (disk) => String(disk.lun), alignRight: true },
  { header: "ENTRIES", value: (disk) => String(disk.entryCount), alignRight: true },
  { header: "USED", value: (disk) => formatBytes(disk.logBytes), alignRight: true },
  { header: "HISTORY", value: (disk) => formatDuration(disk.historySeconds), alignRight: true },
  { header: "SNAPSHOTS", value: (disk) => String(disk.snapshotCount), alignRight: true },
];

export const snapshotColumns: ReadonlyArray<Column<SnapshotInfo>> = [
  { header: "NAME", value: (snapshot) => snapshot.name },
  // "-": a newer snapshot took over its LUN (constant LUN policy); it is attached by name.
  { header: "LUN", value: (snapshot) => (snapshot.lun === null ? "-" : String(snapshot.lun)), alignRight: true },
  { header: "LSN", value: (snapshot) => String(snapshot.lsn), alignRight: true },
  { header: "CREATED", value: (snapshot) => snapshot.createdAt },
];

/** Every argument is checked here, before the store is touched. */
async function createRequest(name: string, options: CreateOptions): Promise<CreateDiskRequest> {
  const sizeBytes = parseSize(options.size);
  if (sizeBytes === 0) throw invalidArgument(`invalid size "${options.size}": a disk needs at least one block`);
  const request: CreateDiskRequest = { name: checkName("disk", name), sizeBytes };
  if (options.blockSize !== undefined) request.blockSizeBytes = parseBlockSize(options.blockSize);
  if (options.history !== undefined) request.historySeconds = parseDuration(options.history, "history");
  if (options.from !== undefined) request.fromImage = await checkImage(options.from);
  return request;
}

/** The image path, absolute, because a running server resolves it from its own directory. */
async function checkImage(imagePath: string): Promise<string> {
  const absolutePath = path.resolve(imagePath);
  try {
    const info = await stat(absolutePath);
    if (!info.isFile() && !info.isBlockDevice()) throw invalidArgument(`--from ${imagePath}: not a file or block device`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === undefined) throw error;
    throw invalidArgument(
      `--from ${imagePath}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`,
    );
  }
  return absolutePath;
}

export function registerDisk(program: Command): void {
  const disk = program.command("disk").description("create, list, show and delete disks");
  registerDiskCreate(disk);
  registerDiskPromote(disk);
  registerDiskList(disk);
  registerDiskShow(disk);
  registerDiskDelete(disk);
}

function registerDiskCreate(disk: Command): void {
  disk
    .command("create")
    .description("create a disk, empty or with a raw image as its baseline")
    .argument("<name>", `disk name: ${NAME_RULE}`)
    .requiredOption("--size <size>", "disk size: 4096, 512K, 10G, 1TiB (binary units)")
    .option("--from <raw-image>", "raw image file that becomes the disk's baseline")
    .option("--history <duration>", "how far back every write is kept: 0, 90s, 15m, 24h, 7d (default 1h)")
    .option("--block-size <size>", "block size, a power of two from 512 to 64K (default: the store's)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ snaplog disk create vm1 --size 10G",
        "  $ snaplog disk create db --size 100GiB --history 24h --block-size 64K",
        "  $ snaplog disk create golden --size 20G --from ./golden.raw",
        "",
        "A running server attaches it at once as the NBD export NAME (e.g. nbd://127.0.0.1:10809/vm1).",
      ].join("\n"),
    )
    .action(async (name: string, options: CreateOptions, command: Command) => {
      const request = await createRequest(name, options);
      await runOperation(command, {
        run: (operations) => operations.createDisk(request),
        print: (created) =>
          printLine(
            `created disk ${created.name}: ${formatBytes(created.sizeBytes)}, block size ${formatBytes(created.blockSizeBytes)}, LUN ${created.lun}, history ${formatDuration(created.historySeconds)}`,
          ),
      });
    });
}

function registerDiskList(disk: Command): void {
  disk
    .command("list")
    .description("list disks with sizes, space used, entries, window and snapshots")
    .action(async (_options: unknown, command: Command) => {
      await runOperation(command, {
        run: (operations) => operations.listDisks(),
        print: (disks) => printTable(disks, diskColumns, "no disks (create one with: snaplog disk create NAME --size SIZE)"),
      });
    });
}

function registerDiskShow(disk: Command): void {
  disk
    .command("show")
    .description("show a disk: size, space, history window, policy and snapshots")
    .argument("<name>", "disk name")
    .addHelpText(
      "after",
      [
        "",
        "Space: the log's live bytes are what some kept volume needs, dead bytes what compaction",
        "would free now, free bytes the reusable slots inside segment files.",
        "",
        "Examples:",
        "  $ snaplog disk show vm1",
        "  $ snaplog --json disk show vm1",
      ].join("\n"),
    )
    .action(async (name: string, _options: unknown, command: Command) => {
      const diskName = checkName("disk", name);
      await runOperation(command, { run: (operations) => operations.showDisk(diskName), print: printDetail });
    });
}

function printDetail(detail: DiskDetail): void {
  printFields(detailFields(detail));
  if (detail.snapshots.length > 0) {
    printLine("");
    printTable(detail.snapshots, snapshotColumns, "");
  }
}

function detailFields(detail: DiskDetail): Array<[string, string]> {
  const { space, policy } = detail;
  return [
    ["name", detail.name],
    ["size", `${formatBytes(detail.sizeBytes)} (${detail.sizeBytes} bytes)`],
    ["block size", formatBytes(detail.blockSizeBytes)],
    ["LUN", String(detail.lun)],
    ["created", detail.createdAt],
    ["last LSN", String(detail.lsnLast)],
    ["snapshots", String(detail.snapshotCount)],
    ["baseline", detail.hasBaseline ? formatBytes(space.baselineBytes) : "none"],
    ["log live", formatBytes(space.logLiveBytes)],
    ["log dead", `${formatBytes(space.logDeadBytes)} (compaction would free it)`],
    ["log free", `${formatBytes(space.logFreeBytes)} (reusable slots)`],
    ["segments", formatBytes(space.segmentBytes)],
    ["journal", formatBytes(detail.journalBytes)],
    ["entries", `${space.liveEntries} live, ${space.deadEntries} dead`],
    ["history window", describeWindow(detail.historySeconds, space.window)],
    ...policyFields(policy).map(([key, value]): [string, string] => [`policy ${key}`, value]),
  ];
}

/** "1h: from LSN 12 (2026-11-25T09:00:00.000Z) to LSN 40". */
function describeWindow(historySeconds: number, window: HistoryWindowInfo): string {
  const since = window.timeFirst ?? "before the first write";
  return `${formatDuration(historySeconds)}: from LSN ${window.lsnFirst} (${since}) to LSN ${window.lsnLast}`;
}

function registerDiskDelete(disk: Command): void {
  disk
    .command("delete")
    .description("delete a disk, its history and its snapshots")
    .argument("<name>", "disk name")
    .action(async (name: string, _options: unknown, command: Command) => {
      const diskName = checkName("disk", name);
      await runOperation(command, {
        run: async (operations) => {
          await operations.deleteDisk(diskName);
          return { deleted: diskName };
        },
        print: () => printLine(`deleted disk ${diskName}`),
      });
    });
}
