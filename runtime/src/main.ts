/**
 * The `inference-server` command. Configuration errors exit 2 with the bad key
 * named; a missing model repository exits 1.
 */
import { ConfigError, USAGE, loadConfig } from "./config.js";
import { startServer } from "./server.js";

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`inference-server: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (loaded.help) {
    process.stdout.write(USAGE);
    return;
  }
  let server;
  try {
    server = await startServer(loaded.config, { waitForModels: false });
  } catch (err) {
    process.stderr.write(`inference-server: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    server.logger.info({ signal }, "shutting down");
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
}

void main();
