/**
 * A real redis-server for the tests: its own loopback port and data folder, AOF with
 * `appendfsync always` unless asked otherwise; `kill9()` and `restart()` for the durability tests.
 * `.ci/run` installs redis-server (Debian's package) when the machine lacks it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REDIS_SERVER = process.env.PROMPTMM_REDIS_SERVER ?? 'redis-server';

/** Whether redis-server runs here; the error says how to get it. */
export function checkRedisServer(): void {
  const r = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${REDIS_SERVER} not found: install it (apt-get install -y redis-server; .ci/run does) or set PROMPTMM_REDIS_SERVER`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisOptions {
  /** false: no AOF (a volatile server, for the refusal test) */
  durable?: boolean;
}

export class TestRedis {
  private proc: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly durable: boolean,
  ) {}

  static async start(opts: RedisOptions = {}): Promise<TestRedis> {
    checkRedisServer();
    const r = new TestRedis(await freePort(), mkdtempSync(join(tmpdir(), 'promptmm-redis-')), opts.durable ?? true);
    await r.launch();
    return r;
  }

  url(stream = 'test'): string {
    return `redis://127.0.0.1:${this.port}/0?stream=${stream}`;
  }

  private async launch(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--daemonize', 'no', '--loglevel', 'warning'];
    args.push(...(this.durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']));
    const proc = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    // A test process that dies (or a benchmark that throws) must not leave its server running.
    const reap = () => proc.kill('SIGKILL');
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
    let err = '';
    proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    // Ready when the port accepts a PING.
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited at start (${proc.exitCode}): ${err}`);
      if (await ping(this.port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server on port ${this.port} not ready after 10 s: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** SIGKILL, as a crash: nothing is flushed beyond what the server already fsynced. */
  async kill9(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
    this.proc = null;
  }

  /** Starts again on the same port and data folder (the AOF is replayed). */
  async restart(): Promise<void> {
    await this.kill9();
    await this.launch();
  }

  async stop(): Promise<void> {
    await this.kill9();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}
