/** Structured logs (pino, JSON lines) on stderr, so stdout stays free for command output such as `eval --json`. */
import { pino, type Logger } from 'pino';
import { fromEnv } from './defaults.js';

export type { Logger };

export function createLogger(level: string = fromEnv('logLevel')): Logger {
  // sync: the training loop is synchronous between epochs, so an async destination would hold every line until the end.
  return pino({ level, base: { app: 'promptmm' } }, pino.destination({ fd: 2, sync: true }));
}
