/** Starts `promptmm serve` as a child process on a free port and learns its address from the log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'promptmm.js');

export interface SpawnedServer {
  child: ChildProcess;
  /** resolves with "http://127.0.0.1:PORT" once it listens; rejects if it exits first */
  url: Promise<string>;
  /** its stderr so far (the structured log; last 64 KiB) */
  stderr: () => string;
  /** resolves once the whole log is in `logFile` (after the child exited); at once without one */
  logWritten: Promise<void>;
}

/**
 * `args` follow `serve` (add `--port 0` for a free port); `env` is added to this process's;
 * `nodeArgs` go to node itself (bench:serve-profile passes --cpu-prof); `logFile`, when given,
 * receives the whole log (the load test reads its fine-tuning rounds from it).
 */
export function spawnServer(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = [], logFile?: string): SpawnedServer {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let logWritten = Promise.resolve();
  if (logFile) {
    const file = createWriteStream(logFile);
    child.stderr!.pipe(file);
    // Never rejects (an unhandled rejection would end the caller mid-run): a failed write is said once.
    logWritten = new Promise((res) => {
      file.once('finish', res);
      file.once('error', (err) => {
        process.stderr.write(`the server's log could not be written to ${logFile}: ${err.message}\n`);
        res();
      });
    });
  }
  let err = '';
  const url = new Promise<string>((res, rej) => {
    child.stderr!.on('data', (b: Buffer) => {
      err = (err + b.toString()).slice(-(64 << 10));
      const m = /serving on (http:\/\/[^"]+)"/.exec(err);
      if (m) res(m[1]);
    });
    child.on('exit', (code) => rej(new Error(`the server exited (${code}) before listening:\n${err.slice(-2000)}`)));
  });
  return { child, url, stderr: () => err, logWritten };
}
