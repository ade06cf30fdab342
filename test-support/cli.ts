/** Runs the built `promptmm` CLI in a child process, as a user would (warnings and errors only in its log). */
import { spawnSync } from 'node:child_process';
import { CLI } from '../loadtest/spawn-server.js';

export function runCli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, PROMPTMM_LOG_LEVEL: 'warn' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
