/** `snaplog init [--block-size N]`: create a store. Refuses (ALREADY_EXISTS) if one is there. */
import type { Command } from "commander";
import { Store } from "../store/store.js";
import { parseBlockSize } from "../store/block-size.js";
import { formatBytes } from "../util/parse.js";
import { globalOptions } from "./context.js";
import { printJson, printLine } from "./output.js";

export function registerInit(program: Command): void {
  program
    .command("init")
    .description("create a store in the --store directory")
    .option("--block-size <size>", "default block size of new disks: a power of two from 512 to 64K", "4096")
    .addHelpText("after", "\nExamples:\n  $ snaplog --store /srv/snaplog init\n  $ snaplog init --block-size 64K")
    .action(async (options: { blockSize: string }, command: Command) => {
      const { storePath, json } = globalOptions(command);
      const blockSizeBytes = parseBlockSize(options.blockSize);
      await Store.init(storePath, { blockSizeBytes });
      if (json) printJson({ path: storePath, blockSizeBytes });
      else printLine(`initialized store ${storePath} (block size ${formatBytes(blockSizeBytes)})`);
    });
}
