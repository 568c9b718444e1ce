/**
 * `snaplog token rotate`: a new bearer token for the TCP faces (the API, replication). Through a
 * running server it takes effect at once (the old token is refused from the next request); with
 * no server running the file is rewritten and the next `serve` uses it. Senders and vault
 * clients that hold a copy of the old token need the new one (their next request is a 401).
 */
import type { Command } from "commander";
import { ApiClient } from "../api/client.js";
import { rotateTokenFile } from "../api/token.js";
import { apiTokenPath } from "../store/paths.js";
import { globalOptions } from "./context.js";
import { printJson, printLine } from "./output.js";

export function registerToken(program: Command): void {
  const token = program.command("token").description("the bearer token of the TCP API and replication (STORE/api.token)");
  token
    .command("rotate")
    .description("write a new token and print it; a running server refuses the old one at once")
    .addHelpText("after", ["", "Example:", "  $ snaplog token rotate > /secure/place/snaplog.token"].join("\n"))
    .action(async (_options: unknown, command: Command) => {
      const { storePath, json } = globalOptions(command);
      const client = await ApiClient.connectIfRunning(storePath);
      const path = apiTokenPath(storePath);
      const rotated = client === undefined ? { path, token: await rotateTokenFile(path) } : await client.rotateToken();
      if (json) printJson({ ...rotated, server: client !== undefined });
      else printLine(rotated.token);
    });
}
