/**
 * The `inference-server` command. Configuration errors exit 2 with the bad key
 * named; a missing model repository exits 1; SIGTERM and SIGINT drain and exit 0 (1 when the
 * drain timed out); a second one while draining logs a line and exits at once (130 or 143).
 */
import os from "node:os";
import { ConfigError, USAGE, loadConfig } from "./config.js";
import { startServer, type RunningServer } from "./server.js";

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
  let server: RunningServer;
  try {
    server = await startServer(loaded.config, { waitForModels: false });
  } catch (err) {
    process.stderr.write(`inference-server: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const { logger } = server;
  // The embedded request store starts in the background: if it cannot, the process exits (its error is logged).
  server.asyncStoreReady?.catch(() => {
    logger.flush();
    process.stderr.write("inference-server: the request store could not be started (see the log)\n");
    setTimeout(() => process.exit(1), 50).unref();
  });

  // A fault outside any request is logged and survived: one bad code path must not take every model down.
  process.on("unhandledRejection", (reason) => logger.error({ err: reason }, "unhandled promise rejection"));
  process.on("uncaughtException", (err) => logger.error({ err }, "uncaught exception"));

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second Ctrl-C (or SIGTERM) while draining: stop now, the way a shell reports it (128 + the signal's number).
      const code = 128 + os.constants.signals[signal];
      logger.warn({ signal, exit_code: code }, `second ${signal} while draining: exiting now; requests still in flight are dropped`);
      logger.flush(() => process.exit(code));
      setTimeout(() => process.exit(code), 1000).unref(); // should the flush never call back
      return;
    }
    stopping = true;
    logger.info({ signal }, "shutting down");
    server.drain().then(
      (clean) => {
        logger.flush();
        process.exitCode = clean ? 0 : 1;
        // Give the asynchronous log destination a moment to write its last lines.
        setTimeout(() => process.exit(), 50).unref();
      },
      (err) => {
        logger.error({ err }, "drain failed");
        logger.flush();
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

void main();
