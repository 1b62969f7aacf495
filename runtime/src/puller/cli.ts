/**
 * model-puller: the CLI entry point (bundled to dist/model-puller.js, run by
 * bin/model-puller.js). See README.md in this directory.
 */
import { HELP, parseCli } from "./config.js";
import { EXIT_FAILURE, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, PullerError, errorMessage } from "./errors.js";
import { createLogger, stderrTerminal } from "./log.js";
import { pull } from "./pull.js";
import { redactText, registerEnvSecrets, secrets } from "./redact.js";
import { VERSION } from "./version.js";
import { reportWarmHit, warmCheck } from "./warm.js";

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  registerEnvSecrets(env);
  const terminal = stderrTerminal();

  // Warm start: the model is already there. No zod, no pino, no lock, no network.
  const hit = await warmCheck(argv, env);
  if (hit) {
    reportWarmHit(hit, terminal);
    return EXIT_OK;
  }

  let cli;
  try {
    cli = await parseCli(argv, env);
  } catch (err) {
    const log = await createLogger({ terminal, level: env.PULLER_LOG_LEVEL || "info" });
    log.error({ code: "USAGE" }, `${errorMessage(err)} (see model-puller --help)`);
    return EXIT_USAGE;
  }
  if (cli.kind === "help") {
    process.stdout.write(HELP);
    return EXIT_OK;
  }
  if (cli.kind === "version") {
    process.stdout.write(`${VERSION}\n`);
    return EXIT_OK;
  }
  const config = cli.config;
  secrets.addUrl(config.source);
  const log = await createLogger({ terminal, level: config.logLevel });

  const ac = new AbortController();
  let signalExit: number | undefined;
  const onSignal = (name: "SIGINT" | "SIGTERM") => {
    if (signalExit !== undefined) {
      // Second signal: stop now, saying so (the log writes synchronously).
      log.warn({ signal: name, exitCode: signalExit }, `second ${name}: exiting now without cleaning up`);
      process.exit(signalExit);
    }
    signalExit = name === "SIGINT" ? EXIT_SIGINT : EXIT_SIGTERM;
    log.warn({ signal: name }, "interrupted; cleaning up");
    ac.abort(new PullerError("ABORTED", `interrupted by ${name}; nothing was published`));
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  try {
    await pull(config, { env, log, terminal, signal: ac.signal });
    return EXIT_OK;
  } catch (err) {
    const e =
      err instanceof PullerError
        ? err
        : new PullerError((err as { errno?: number }).errno !== undefined ? "DEST" : "SOURCE", errorMessage(err), {
            cause: err,
            details: { errno: (err as { code?: string }).code },
          });
    const details = Object.fromEntries(Object.entries(e.details).filter(([, v]) => v !== undefined));
    log.error({ code: e.code, ...details }, e.message);
    if (!(err instanceof PullerError)) log.debug({ stack: redactText(String((err as Error).stack)) }, "unexpected error");
    return signalExit ?? (e.exitCode || EXIT_FAILURE);
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`model-puller: ${redactText(String((err as Error)?.stack ?? err))}\n`);
    process.exit(EXIT_FAILURE);
  },
);
