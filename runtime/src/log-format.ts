/**
 * The shape of a JSON log line's level, shared by every program of the runtime (the
 * server, runtime/src/logging.ts; the model puller, runtime/src/puller/log.ts), so one
 * log query reads them all: `"level":"info"`, the level's name, never pino's number.
 * No pino import here: the puller's warm start loads pino only when it must.
 */
export const levelFormatter = (label: string): { level: string } => ({ level: label });
