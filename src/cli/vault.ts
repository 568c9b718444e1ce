/**
 * `snaplog vault add|list|remove|ls|restore` and `snaplog archive` (SPEC §3.2, §5.3).
 */
import { promises as fs } from "node:fs";
import type { Command } from "commander";
import { checkName } from "../store/names.js";
import type { ArchiveResult, VaultChainInfo, VaultInfo, VaultRestoreResult } from "../store/operations/index.js";
import { fromSystemError, invalidArgument } from "../util/errors.js";
import { formatBytes, parseSize } from "../util/parse.js";
import { runOperation } from "./context.js";
import { printLine, printTable, type Column } from "./output.js";

const vaultColumns: Column<VaultInfo>[] = [
  { header: "NAME", value: (vault) => vault.name },
  { header: "KIND", value: (vault) => vault.kind },
  { header: "URL", value: (vault) => vault.url },
  { header: "SECRET", value: (vault) => (vault.credentials ? "credentials" : vault.token ? "token" : "-") },
];

export function registerVault(program: Command): void {
  const vault = program.command("vault").description("archive targets: a directory, an S3 bucket, another appliance");
  vault
    .command("add")
    .description("add a vault (it must answer now)")
    .argument("<name>", "vault name")
    .argument("<url>", "file:///path, s3://bucket/prefix?endpoint=URL&region=R, or snaplog://HOST:PORT")
    .option(
      "--credentials <file>",
      "s3: an AWS shared-credentials file, kept in the store (owner-only); default: the standard AWS variables and files",
    )
    .option("--token-file <file>", "snaplog://: a copy of the peer's STORE/api.token, kept in the store (owner-only)")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ snaplog vault add backup file:///mnt/backup/snaplog",
        "  $ snaplog vault add s3 's3://archives/site-a?endpoint=http://127.0.0.1:7480&region=us-east-1'",
        "  $ snaplog vault add peer snaplog://10.0.0.2:8080 --token-file peer.token",
      ].join("\n"),
    )
    .action(async (name: string, url: string, options: { credentials?: string; tokenFile?: string }, command: Command) => {
      checkName("vault", name);
      const token = options.tokenFile === undefined ? undefined : await readToken(options.tokenFile);
      await runOperation(command, {
        run: (operations) => operations.addVault({ name, url, credentialsFile: options.credentials, token }),
        print: (info) => printLine(`vault ${info.name} added (${info.url})`),
      });
    });
  vault
    .command("list")
    .description("the vaults this store knows")
    .action(async (_options: unknown, command: Command) => {
      await runOperation(command, {
        run: (operations) => operations.listVaults(),
        print: (vaults) => printTable(vaults, vaultColumns, "no vaults"),
      });
    });
  vault
    .command("remove")
    .description("forget a vault (the archives in it stay)")
    .argument("<name>", "vault name")
    .action(async (name: string, _options: unknown, command: Command) => {
      await runOperation(command, { run: (operations) => operations.removeVault(name), print: () => printLine(`vault ${name} removed`) });
    });
  vault
    .command("ls")
    .description("the chains of archives in a vault: store, disk, each stream's snapshot, size, complete or not")
    .argument("<name>", "vault name")
    .argument("[disk]", "only this disk (a name, or STOREID/NAME)")
    .action(async (name: string, disk: string | undefined, _options: unknown, command: Command) => {
      await runOperation(command, { run: (operations) => operations.listVaultChains(name, disk), print: printChains });
    });
  vault
    .command("restore")
    .description("rebuild a disk from a vault: every object verified before the disk exists")
    .argument("<name>", "vault name")
    .argument("<disk>", "DISK, STOREID/DISK (when several stores archived that name), with an optional @SNAPSHOT")
    .option("--as <newdisk>", "the new disk's name (default: the archived disk's; refused if it exists)")
    .option("--at <T>", "a time inside the chain's non-compacted streams: the disk as it was then")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  $ snaplog vault restore backup vm1 --as vm1-restored",
        "  $ snaplog vault restore s3 vm1@nightly-3 --as vm1-n3",
      ].join("\n"),
    )
    .action(async (name: string, source: string, options: { as?: string; at?: string }, command: Command) => {
      await runOperation(command, {
        run: (operations, onProgress) => operations.restoreFromVault({ vault: name, source, as: options.as, at: options.at }, onProgress),
        print: (result: VaultRestoreResult) =>
          printLine(
            `restored disk ${result.disk} from ${result.streams} stream(s) of chain ${result.chainId} (${formatBytes(result.bytes)}): snapshots ${result.snapshots.join(", ")}`,
          ),
        progress: { label: `restore ${source}`, unit: "bytes" },
      });
    });

  program
    .command("archive")
    .description("ship a snapshot to a vault: incremental from the newest one the vault has; resumable")
    .argument("<disk>", "disk name")
    .requiredOption("--vault <name>", "the vault")
    .option("--snapshot <name>", "the snapshot shipped (default: a new one, archive-<time>)")
    .option("--full", "start a new chain with a full stream")
    .option("--compact <on|off>", "only the newest version of each block per partition (default on; off keeps every point in time)")
    .option("--part-size <size>", "bytes per vault object, 1M to 64M (default 64M): what an interrupted run may send again")
    .addHelpText(
      "after",
      [
        "",
        "Run it again after an interruption: the parts the vault has are checked, not sent again.",
        "",
        "Examples:",
        "  $ snaplog archive vm1 --vault backup",
        "  $ snaplog archive vm1 --vault s3 --snapshot nightly-3 --compact off",
      ].join("\n"),
    )
    .action(
      async (
        disk: string,
        options: { vault: string; snapshot?: string; full?: boolean; compact?: string; partSize?: string },
        command: Command,
      ) => {
        if (options.compact !== undefined && options.compact !== "on" && options.compact !== "off")
          throw invalidArgument(`--compact takes on or off, not ${options.compact}`);
        const request = {
          disk: checkName("disk", disk),
          vault: options.vault,
          snapshot: options.snapshot,
          full: options.full === true ? true : undefined,
          compact: options.compact === undefined ? undefined : options.compact === "on",
          partBytes: options.partSize === undefined ? undefined : parseSize(options.partSize, "--part-size"),
        };
        await runOperation(command, {
          run: (operations, onProgress) => operations.archive(request, onProgress),
          print: (result: ArchiveResult) => printLine(describeArchive(result)),
          progress: { label: `archive ${disk}`, unit: "steps" },
        });
      },
    );
}

async function readToken(file: string): Promise<string> {
  try {
    return (await fs.readFile(file, "utf8")).trim();
  } catch (error) {
    throw fromSystemError(error, { path: file });
  }
}

function describeArchive(result: ArchiveResult): string {
  const kind = result.from === null ? "full" : `incremental from ${result.from}`;
  const resumed = result.partsResumed > 0 ? `, ${result.partsResumed} part(s) already in the vault` : "";
  return `archived ${result.disk}@${result.snapshot} to vault ${result.vault} (${kind}${result.compacted ? ", compacted" : ""}; chain ${result.chainId}, stream ${result.index}): ${formatBytes(result.bytes)} in ${result.parts} part(s), ${formatBytes(result.bytesSent)} sent${resumed}`;
}

function printChains(chains: VaultChainInfo[]): void {
  if (chains.length === 0) {
    printLine("no archives");
    return;
  }
  for (const chain of chains) {
    printLine(`store ${chain.storeId}  disk ${chain.disk} (${chain.diskId})  chain ${chain.chainId}`);
    for (const item of chain.items) {
      const state = item.complete ? "complete" : "INCOMPLETE";
      printLine(
        `  ${String(item.index).padStart(3)}  ${item.kind.padEnd(11)} ${item.snapshot.padEnd(28)} LSN ${String(item.lsn).padEnd(8)} ${item.time.padEnd(24)} ${formatBytes(item.bytes).padStart(10)}  ${state}${item.compacted ? "" : "  every entry"}`,
      );
    }
  }
}
