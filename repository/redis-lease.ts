/**
 * A lease in Redis: one holder at a time, with expiry, so that of several fine-tuning workers on
 * one shared stream exactly one runs rounds and publishes versions, and a holder that dies (kill
 * -9, a lost machine) hands over once its lease expires. SET NX PX takes it; renew and release
 * are scripts that act only while the caller still holds it (its owner token), so a holder that
 * paused past its expiry cannot extend or delete a successor's lease.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { parseRedisLogUrl } from './redis-stream-log.js';

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

interface LeaseScripts {
  promptmmRenew(key: string, owner: string, ttlMs: number): Promise<number>;
  promptmmRelease(key: string, owner: string): Promise<number>;
}

export class RedisLease {
  /** The lease's key: next to the stream it guards. */
  readonly key: string;
  readonly owner = `${process.pid}-${randomUUID()}`;

  private constructor(
    private readonly redis: Redis,
    stream: string,
    readonly ttlMs: number,
  ) {
    this.key = `${stream}:round-lease`;
    redis.defineCommand('promptmmRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('promptmmRelease', { numberOfKeys: 1, lua: RELEASE });
  }

  /** A lease handle on the stream of `url` (the log address); nothing is taken yet. */
  static async open(url: string, ttlMs: number): Promise<RedisLease> {
    const a = parseRedisLogUrl(url);
    const redis = new Redis({ host: a.host, port: a.port, db: a.db, password: a.password, lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on('error', () => {}); // a failed call rejects; the worker reports it
    await redis.connect();
    return new RedisLease(redis, a.stream, ttlMs);
  }

  /** Takes the lease if nobody holds it; true when this process now holds it. */
  async tryAcquire(): Promise<boolean> {
    return (await this.redis.set(this.key, this.owner, 'PX', this.ttlMs, 'NX')) === 'OK';
  }

  /** Extends the lease; false if it is no longer ours (expired and taken, or released). */
  async renew(): Promise<boolean> {
    return (await (this.redis as unknown as LeaseScripts).promptmmRenew(this.key, this.owner, this.ttlMs)) === 1;
  }

  /** The current holder's token, or null. */
  async holder(): Promise<string | null> {
    return this.redis.get(this.key);
  }

  async release(): Promise<void> {
    await (this.redis as unknown as LeaseScripts).promptmmRelease(this.key, this.owner).catch(() => 0);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
