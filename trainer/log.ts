/** Structured logs (pino, JSON lines) on stderr, so stdout stays free for command output such as `eval --json`. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string = process.env.PROMPTMM_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'promptmm' } }, pino.destination(2));
}
