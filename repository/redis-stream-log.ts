/**
 * The interaction log on a Redis stream, for several replicas sharing one log.
 *
 * Positions are the stream's ids one to one: entry n has id `0-n`. A Lua script (atomic in
 * Redis) takes the next positions from a counter key and XADDs the entries under them, so that
 * concurrent writers on different replicas interleave but never collide, and positions stay
 * dense and monotonic (a trim by position is `XTRIM MINID 0-(p+1)`). An entry's fields are the
 * same JSON the segment log stores, so whatever a record carries travels unchanged.
 *
 * Acknowledged = in the stream and durable: open() checks that the server persists every write
 * before replying (`appendonly yes` + `appendfsync always`: Redis fsyncs the AOF before it sends
 * the replies of that event-loop turn) and refuses a write-capable log otherwise, unless
 * `allowVolatile` is set. Redis 7.0 has no WAITAOF, hence the configuration check.
 *
 * Reads never block the write connection: following the stream (XREAD BLOCK) uses a second one.
 * Commands fail fast while the connection is down (no offline queue) so that a writer answers
 * 503 at once instead of hanging; ioredis reconnects with backoff.
 */
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { parseRecordJson, recordJson, type LogEntry, type LoggedInteraction } from './interaction-log.js';

export const REDIS_LOG_SCHEME = 'redis:';

export interface RedisLogAddress {
  host: string;
  port: number;
  db: number;
  stream: string;
  /** the counter key the positions come from */
  counter: string;
  password?: string;
}

export class RedisLogConfigError extends Error {
  override readonly name = 'RedisLogConfigError';
}

/** `redis://[:PASSWORD@]HOST[:PORT][/DB]?stream=NAME` → address; the error names the part that is wrong. */
export function parseRedisLogUrl(url: string): RedisLogAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisLogConfigError(`log address "${url}" is not a URL (expected redis://HOST:PORT/DB?stream=NAME)`);
  }
  if (u.protocol !== REDIS_LOG_SCHEME) throw new RedisLogConfigError(`log address "${url}": scheme must be redis:// (got ${u.protocol}//)`);
  if (!u.hostname) throw new RedisLogConfigError(`log address "${url}" has no host`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const dbText = u.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d{1,2}$/.test(dbText)) throw new RedisLogConfigError(`log address "${url}": database "${dbText}" must be a number 0–15`);
  const stream = u.searchParams.get('stream') ?? 'promptmm:interactions';
  if (!/^[\w:.-]{1,200}$/.test(stream)) throw new RedisLogConfigError(`log address "${url}": stream name "${stream}" must be 1–200 of [A-Za-z0-9_:.-]`);
  for (const k of u.searchParams.keys()) if (k !== 'stream') throw new RedisLogConfigError(`log address "${url}": unknown parameter "${k}" (only stream=NAME)`);
  return {
    host: u.hostname,
    port,
    db: dbText === '' ? 0 : Number(dbText),
    stream,
    counter: `${stream}:position`,
    password: u.password ? decodeURIComponent(u.password) : undefined,
  };
}

export const isRedisLogUrl = (s: string): boolean => s.startsWith('redis://');

export interface RedisStreamLogOptions {
  log?: Logger;
  /** Open a write-capable log on a server that does not fsync every write (acknowledged entries may be lost). */
  allowVolatile?: boolean;
  /** Only read (the nightly retrain): no persistence check, no appends. */
  readOnly?: boolean;
  /** ms to wait for the connection at open (default 5000). */
  connectTimeoutMs?: number;
}

/** What the server's persistence settings mean for acknowledged writes. */
export interface Durability {
  durable: boolean;
  /** e.g. "appendonly yes, appendfsync always" or why it could not be read */
  detail: string;
}

// KEYS[1] stream, KEYS[2] counter; ARGV: one JSON payload per entry. Returns the last position.
const APPEND_SCRIPT = `
local n = redis.call('INCRBY', KEYS[2], #ARGV)
local first = n - #ARGV + 1
for i = 1, #ARGV do
  redis.call('XADD', KEYS[1], '0-' .. (first + i - 1), 'e', ARGV[i])
end
return n`;

type StreamEntries = [id: string, fields: string[]][];

interface Pending {
  payloads: string[];
  resolve: (last: number) => void;
  reject: (e: Error) => void;
}

export class RedisStreamLog {
  private pending: Pending[] = [];
  private flushing = false;
  private lastAcked = 0;
  private reader: Redis | null = null;
  private closed = false;
  /** times the write connection was re-established, for metrics */
  reconnects = 0;

  private constructor(
    readonly address: RedisLogAddress,
    private readonly redis: Redis,
    readonly durability: Durability,
    private readonly readOnly: boolean,
    private readonly log?: Logger,
  ) {
    // Attached after the first connection was made: every later 'ready' is a reconnect.
    redis.on('ready', () => this.reconnects++);
    redis.on('error', (e: Error) => this.log?.warn({ err: e.message, stream: address.stream }, 'redis log connection error'));
  }

  static async open(url: string, opts: RedisStreamLogOptions = {}): Promise<RedisStreamLog> {
    const address = parseRedisLogUrl(url);
    const redis = connect(address, opts.connectTimeoutMs ?? 5000);
    // Until the log's own handler is attached: the failure is reported by the rejection below.
    const swallow = (): void => {};
    redis.on('error', swallow);
    try {
      await redis.connect();
    } catch (e) {
      redis.disconnect();
      throw new RedisLogConfigError(`cannot reach the log at redis://${address.host}:${address.port}/${address.db} (${(e as Error).message})`);
    }
    const durability = opts.readOnly ? { durable: false, detail: 'read-only' } : await checkDurability(redis);
    if (!opts.readOnly && !durability.durable) {
      if (!opts.allowVolatile) {
        redis.disconnect();
        throw new RedisLogConfigError(
          `the Redis server at ${address.host}:${address.port} does not persist every write before acknowledging it (${durability.detail}); ` +
            'set "appendonly yes" and "appendfsync always" (CONFIG SET or redis.conf), or pass --allow-volatile-log to accept losing acknowledged interactions',
        );
      }
      opts.log?.error({ stream: address.stream, durability: durability.detail }, 'VOLATILE interaction log: acknowledged interactions may be lost if the Redis server dies (--allow-volatile-log)');
    }
    redis.defineCommand('promptmmAppend', { numberOfKeys: 2, lua: APPEND_SCRIPT });
    const l = new RedisStreamLog(address, redis, durability, opts.readOnly ?? false, opts.log);
    redis.off('error', swallow);
    l.lastAcked = await l.head();
    return l;
  }

  /** The newest position in the stream (the counter), 0 when empty. */
  async head(): Promise<number> {
    const v = await this.redis.get(this.address.counter);
    return v === null ? 0 : Number(v);
  }

  /** The last position this process wrote or saw written (not a round trip). */
  get position(): number {
    return this.lastAcked;
  }

  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  /**
   * Appends entries; resolves with the last one's position once Redis has them (durable when
   * the server is configured as open() requires). Appends of one event-loop turn go in one script
   * call, so positions of one request are consecutive.
   */
  append(xs: LoggedInteraction[]): Promise<number> {
    if (this.readOnly) return Promise.reject(new Error(`redis log ${this.address.stream} was opened read-only`));
    if (this.closed) return Promise.reject(new Error(`redis log ${this.address.stream} is closed`));
    if (xs.length === 0) return Promise.resolve(this.lastAcked);
    return new Promise((resolve, reject) => {
      this.pending.push({ payloads: xs.map(recordJson), resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      const payloads = batch.flatMap((p) => p.payloads);
      try {
        const last = Number(await (this.redis as unknown as ScriptClient).promptmmAppend(this.address.stream, this.address.counter, ...payloads));
        if (last > this.lastAcked) this.lastAcked = last;
        let end = last - payloads.length;
        for (const p of batch) {
          end += p.payloads.length;
          p.resolve(end);
        }
      } catch (e) {
        const err = new Error(`redis log ${this.address.stream}: append failed (${(e as Error).message}); the entries may or may not be in the stream`);
        for (const p of batch) p.reject(err);
      }
    }
    this.flushing = false;
  }

  /** Entries after `after`, in order, at most `count` (0 = all). */
  async read(after = 0, count = 0): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    let from = after;
    for (;;) {
      const want = count > 0 ? Math.min(10_000, count - out.length) : 10_000;
      const rows = (await this.redis.xrange(this.address.stream, `(0-${from}`, '+', 'COUNT', want)) as StreamEntries;
      for (const r of rows) out.push(decode(this.address.stream, r));
      if (rows.length < want || (count > 0 && out.length >= count)) break;
      from = out[out.length - 1].position;
    }
    if (out.length) this.lastAcked = Math.max(this.lastAcked, out[out.length - 1].position);
    return out;
  }

  /**
   * Waits up to `blockMs` for entries after `after` (XREAD BLOCK on the reader connection) and
   * returns them in order (possibly none).
   */
  async waitRead(after: number, blockMs: number, count = 1000): Promise<LogEntry[]> {
    if (!this.reader) {
      const r = this.redis.duplicate();
      r.on('error', (e: Error) => this.log?.warn({ err: e.message, stream: this.address.stream }, 'redis log reader connection error'));
      await r.connect();
      this.reader = r;
    }
    const res = (await this.reader.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', this.address.stream, `0-${after}`)) as [string, StreamEntries][] | null;
    const rows = res?.[0]?.[1] ?? [];
    const out = rows.map((r) => decode(this.address.stream, r));
    if (out.length) this.lastAcked = Math.max(this.lastAcked, out[out.length - 1].position);
    return out;
  }

  /** Ends a blocked waitRead (it rejects): for shutting a follower down without waiting out its block. */
  interruptReads(): void {
    this.reader?.disconnect();
    this.reader = null;
  }

  /** Entries in the stream (after trims). */
  async length(): Promise<number> {
    return this.redis.xlen(this.address.stream);
  }

  /** Removes every entry at or below `absorbed` (every version in the repository has absorbed them). */
  async trim(absorbed: number): Promise<number> {
    if (this.readOnly) throw new Error(`redis log ${this.address.stream} was opened read-only`);
    return this.redis.xtrim(this.address.stream, 'MINID', `0-${absorbed + 1}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await new Promise((r) => setImmediate(r));
    this.reader?.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

interface ScriptClient {
  promptmmAppend(stream: string, counter: string, ...payloads: string[]): Promise<number | string>;
}

function connect(a: RedisLogAddress, connectTimeout: number): Redis {
  return new Redis({
    host: a.host,
    port: a.port,
    db: a.db,
    password: a.password,
    lazyConnect: true,
    connectTimeout,
    // Fail a command at once while disconnected (a write answers 503) instead of queueing it.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  });
}

async function checkDurability(redis: Redis): Promise<Durability> {
  try {
    const [, appendonly] = (await redis.config('GET', 'appendonly')) as string[];
    const [, fsync] = (await redis.config('GET', 'appendfsync')) as string[];
    const detail = `appendonly ${appendonly ?? '?'}, appendfsync ${fsync ?? '?'}`;
    return { durable: appendonly === 'yes' && fsync === 'always', detail };
  } catch (e) {
    return { durable: false, detail: `CONFIG GET refused (${(e as Error).message}): persistence unknown` };
  }
}

function decode(stream: string, [id, fields]: [string, string[]]): LogEntry {
  const m = /^0-(\d+)$/.exec(id);
  const e = fields[0] === 'e' ? fields[1] : undefined;
  if (!m || e === undefined) throw new Error(`redis log ${stream}: entry ${id} was not written by promptmm (ids are 0-<position>, one field "e")`);
  const o = parseRecordJson(e);
  if (!o) throw new Error(`redis log ${stream}: entry ${id} is not a promptmm record`);
  return { ...o, position: Number(m[1]) };
}
