/**
 * The HTTP server's connections: timeouts and a cap so slow or idle clients cannot hold sockets
 * forever, and the drain on shutdown that answers every request already received before closing.
 */
import { Server as NetServer, type Socket } from 'node:net';
import type { FastifyInstance, FastifyTypeProvider, RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import client from 'prom-client';

export interface ConnectionSettings {
  /** ms for the request line and headers to arrive (from the connection or the request's first byte); 0 = off */
  headersTimeoutMs: number;
  /** ms for the whole request, body included, to arrive; 0 = off */
  requestTimeoutMs: number;
  /** ms an idle keep-alive connection stays open between requests */
  keepAliveTimeoutMs: number;
  /** ms without a byte moving either way while a request is open (a client that stops reading its answer); 0 = off */
  socketTimeoutMs: number;
  /** open connections at most; the ones over it are closed as they are accepted */
  maxConnections: number;
  /** ms the shutdown waits for the requests already received to be answered, before it cuts the connections and exits 1 */
  drainTimeoutMs: number;
}

/** Checks every setting (a one-line error naming it) and returns them. */
export function checkConnectionSettings(s: ConnectionSettings, nameOf: (key: keyof ConnectionSettings) => string = String): ConnectionSettings {
  for (const key of Object.keys(s) as (keyof ConnectionSettings)[]) {
    const v = s[key];
    const min = key === 'keepAliveTimeoutMs' || key === 'maxConnections' || key === 'drainTimeoutMs' ? 1 : 0;
    // Node takes timers up to 2^31-1 ms; a longer one fires at once.
    if (!Number.isInteger(v) || v < min || v > 2 ** 31 - 1) throw new RangeError(`${nameOf(key)} must be an integer from ${min} to ${2 ** 31 - 1}, got ${v}`);
  }
  if (s.requestTimeoutMs > 0 && s.headersTimeoutMs > s.requestTimeoutMs) {
    throw new RangeError(`${nameOf('headersTimeoutMs')} (${s.headersTimeoutMs}) must not exceed ${nameOf('requestTimeoutMs')} (${s.requestTimeoutMs})`);
  }
  return s;
}

/** The fastify constructor options that carry the settings to node's HTTP server. */
export function fastifyConnectionOptions(s: ConnectionSettings) {
  const positive = [s.headersTimeoutMs, s.requestTimeoutMs].filter((t) => t > 0);
  return {
    requestTimeout: s.requestTimeoutMs,
    keepAliveTimeout: s.keepAliveTimeoutMs,
    connectionTimeout: s.socketTimeoutMs,
    http: {
      headersTimeout: s.headersTimeoutMs,
      requestTimeout: s.requestTimeoutMs,
      keepAliveTimeout: s.keepAliveTimeoutMs,
      // node checks the headers and request timeouts on this interval (30 s by default, which let a
      // 60 s headers timeout close at 90 s): a tenth of the shorter one, between 10 ms and 1 s.
      connectionsCheckingInterval: Math.min(1000, Math.max(10, Math.floor(Math.min(...positive, 10_000) / 10))),
    },
  };
}

export interface DrainResult {
  /** true when connections were still open at the drain timeout (then they were cut) */
  timedOut: boolean;
  /** connections cut off at the timeout */
  cut: number;
  ms: number;
}

interface Tracked {
  /** requests received on it and not yet answered */
  inFlight: number;
  /** when its last answer finished (or it was accepted) */
  idleSince: number;
}

/**
 * While draining, an idle connection is closed once idle this long: a client that got its answer
 * (sent before the drain, so without "Connection: close") may be sending its next request right now.
 */
const DRAIN_IDLE_MS = 100;
const SWEEP_MS = 25;
const turn = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

/**
 * Tracks the server's sockets and the requests in flight on each, caps them, and drains them.
 * Node's own close() is not used to drain: it destroys every connection whose request has been
 * read, including ones whose answer is ended but still being written (a truncated answer) and
 * ones whose next request is still unread in the kernel (a reset).
 */
export class Connections {
  private readonly sockets = new Map<Socket, Tracked>();
  private draining = false;
  private drainPromise: Promise<DrainResult> | null = null;
  private allClosed: (() => void) | null = null;
  private accepted = 0;
  private server: RawServerDefault | null = null;

  constructor(readonly settings: ConnectionSettings, private readonly log: Logger) {}

  get open(): number {
    return this.sockets.size;
  }

  /** true from the start of the drain (a readiness check can answer 503 from then on) */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Applies the cap, tracks sockets and requests, and marks the answers sent while draining. */
  attach<P extends FastifyTypeProvider>(app: FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, Logger, P>, registry?: client.Registry): void {
    const server = (this.server = app.server);
    server.maxConnections = this.settings.maxConnections;
    const refused = registry && new client.Counter({ name: 'promptmm_connections_refused_total', help: 'Connections closed on accept because the server held its maximum (maxConnections)', registers: [registry] });
    if (registry) {
      const sockets = this.sockets;
      new client.Gauge({ name: 'promptmm_connections_open', help: 'Open HTTP connections', registers: [registry], collect() { this.set(sockets.size); } });
    }
    server.on('drop', () => refused?.inc());
    server.on('connection', (socket: Socket) => {
      this.accepted++;
      this.sockets.set(socket, { inFlight: 0, idleSince: Date.now() });
      socket.once('close', () => {
        this.sockets.delete(socket);
        if (this.sockets.size === 0) this.allClosed?.();
      });
    });
    // Callback-style hooks: an async hook costs a promise per request, measurable at 20k req/s.
    app.addHook('onRequest', (req, _reply, done) => {
      const t = this.sockets.get(req.raw.socket);
      if (t) t.inFlight++;
      done();
    });
    app.addHook('onResponse', (req, _reply, done) => {
      const t = this.sockets.get(req.raw.socket);
      if (t) {
        t.inFlight = Math.max(0, t.inFlight - 1);
        t.idleSince = Date.now();
      }
      done();
    });
    // While draining, the last request in flight on a connection is answered with "Connection: close",
    // so the client stops using it and node closes it once the answer is written. A request
    // pipelined behind it keeps it open until that one is answered.
    app.addHook('onSend', (req, reply, payload, done) => {
      if (this.draining && (this.sockets.get(req.raw.socket)?.inFlight ?? 0) <= 1) reply.header('connection', 'close');
      done(null, payload);
    });
    // app.close() called on its own still waits for the connections, but fastify is already closing
    // then and answers new requests 503 (return503OnClosing): the real drain is server.ts's close(),
    // which drains before it closes the app.
    app.addHook('preClose', async () => {
      await this.drain();
    });
  }

  /**
   * Stops accepting, answers every request already received (including ones sent before the
   * signal was handled but not yet read), closes each connection once it has nothing in flight,
   * and resolves when none is left; at the drain timeout it cuts the rest.
   */
  drain(): Promise<DrainResult> {
    return (this.drainPromise ??= this.runDrain());
  }

  private async runDrain(): Promise<DrainResult> {
    const t0 = Date.now();
    this.draining = true;
    const server = this.server;
    const deadline = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), this.settings.drainTimeoutMs).unref());
    // The loop may have been busy when the signal came: connections still in the accept queue were
    // opened before it, and node accepts one per loop iteration (measured, node 20). Keep accepting while each turn
    // still brings one (the queue is not empty: a turn is two iterations), for at most half the
    // drain timeout, so that a steady stream of new connections cannot use up the drain.
    const acceptUntil = t0 + this.settings.drainTimeoutMs / 2;
    const settle = (async () => {
      for (;;) {
        const before = this.accepted;
        await turn();
        if (this.accepted === before || Date.now() >= acceptUntil) return;
      }
    })();
    if ((await Promise.race([settle, deadline])) === 'timeout') return this.cut(t0);
    // Stop accepting. Not server.close(): node's http close() also destroys the connections it
    // considers idle (see the class comment).
    if (server?.listening) NetServer.prototype.close.call(server);
    if (this.sockets.size === 0) return { timedOut: false, cut: 0, ms: Date.now() - t0 };
    const closed = new Promise<'closed'>((r) => (this.allClosed = () => r('closed')));
    this.sweep();
    // Swept in the check phase, just after the poll phase has read what the sockets received (a
    // timer runs before it: after a busy stretch it would see a request not yet read as idle).
    const sweeper = setInterval(() => setImmediate(() => this.sweep()), SWEEP_MS);
    try {
      if ((await Promise.race([closed, deadline])) === 'timeout') return this.cut(t0);
    } finally {
      clearInterval(sweeper);
    }
    return { timedOut: false, cut: 0, ms: Date.now() - t0 };
  }

  /** Closes the connections with nothing in flight and nothing left to write, idle for DRAIN_IDLE_MS. */
  private sweep(): void {
    const now = Date.now();
    for (const [socket, t] of this.sockets) {
      // writableEnded: node is already closing it after a "Connection: close" answer, once written.
      if (t.inFlight === 0 && now - t.idleSince >= DRAIN_IDLE_MS && !socket.writableEnded && socket.writableLength === 0) socket.destroy();
    }
  }

  private cut(t0: number): DrainResult {
    const cut = this.sockets.size;
    for (const socket of this.sockets.keys()) socket.destroy();
    if (this.server?.listening) NetServer.prototype.close.call(this.server);
    this.log.error({ cut, drainTimeoutMs: this.settings.drainTimeoutMs }, `drain timed out: ${cut} connection(s) still open were cut off`);
    return { timedOut: true, cut, ms: Date.now() - t0 };
  }
}
