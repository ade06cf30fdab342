/**
 * A raw-socket HTTP/1.1 client for the connection tests and measurements: pipelined requests,
 * slow or partial writes, and an exact account of what came back (complete, truncated, reset).
 */
import { connect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** false when the connection ended before the whole body (by Content-Length or chunks) came */
  complete: boolean;
}

export interface RawOutcome {
  responses: RawResponse[];
  /** how the connection ended: the server closed it (FIN), reset it, or we closed it */
  end: 'closed' | 'reset' | 'local';
  error?: string;
}

/** A connected socket that parses every response it reads; `done` resolves when it closes. */
export interface RawConnection {
  socket: Socket;
  responses: RawResponse[];
  done: Promise<RawOutcome>;
  /** resolves when the first bytes of an answer come in */
  firstData: Promise<void>;
  /** closes it from this side (the outcome's end is then 'local') */
  close(): void;
  /** resolves once n responses are complete (or the connection ended first) */
  responsesAt(n: number): Promise<RawResponse[]>;
}

export function rawConnect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(track(socket));
    });
  });
}

function track(socket: Socket): RawConnection {
  const responses: RawResponse[] = [];
  let buf = Buffer.alloc(0);
  let partial: RawResponse | null = null;
  let error: string | undefined;
  let reset = false;
  let local = false;
  const waiters: { n: number; resolve: (r: RawResponse[]) => void }[] = [];
  const wake = (all = false) => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (all || responses.filter((r) => r.complete).length >= waiters[i].n) waiters.splice(i, 1)[0].resolve(responses);
    }
  };

  /** Parses as many whole responses out of buf as it holds; leaves a started one in `partial`. */
  const parse = () => {
    for (;;) {
      const head = buf.indexOf('\r\n\r\n');
      if (head < 0) return;
      const lines = buf.subarray(0, head).toString('latin1').split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1] ?? NaN);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const rest = buf.subarray(head + 4);
      const r: RawResponse = { status, headers, body: Buffer.alloc(0), complete: false };
      if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
        const chunks: Buffer[] = [];
        let at = 0;
        let ended = false;
        for (;;) {
          const eol = rest.indexOf('\r\n', at);
          if (eol < 0) break;
          const size = parseInt(rest.subarray(at, eol).toString('latin1'), 16);
          if (rest.length < eol + 2 + size + 2) break;
          if (size === 0) {
            at = eol + 4;
            ended = true;
            break;
          }
          chunks.push(rest.subarray(eol + 2, eol + 2 + size));
          at = eol + 2 + size + 2;
        }
        r.body = Buffer.concat(chunks);
        if (!ended) return void (partial = r);
        r.complete = true;
        buf = rest.subarray(at);
      } else if (headers['content-length'] !== undefined) {
        const len = Number(headers['content-length']);
        r.body = rest.subarray(0, len);
        if (rest.length < len) return void (partial = r);
        r.complete = true;
        buf = rest.subarray(len);
      } else {
        // No length: the body runs to the end of the connection.
        r.body = rest;
        return void (partial = r);
      }
      partial = null;
      responses.push(r);
      wake();
    }
  };

  const firstData = new Promise<void>((r) => socket.once('data', () => r()));
  socket.on('data', (b: Buffer) => {
    buf = Buffer.concat([buf, b]);
    parse();
  });
  const done = new Promise<RawOutcome>((resolve) => {
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
    });
    socket.on('close', () => {
      if (partial) {
        // A body without a length ends with the connection; any other partial body is truncated.
        if (partial.headers['content-length'] === undefined && partial.headers['transfer-encoding'] === undefined && !reset) partial.complete = true;
        responses.push(partial);
        partial = null;
      }
      wake(true);
      resolve({ responses, end: local ? 'local' : reset ? 'reset' : 'closed', error });
    });
  });
  return {
    socket,
    firstData,
    close: () => {
      local = true;
      socket.destroy();
    },
    responses,
    done,
    responsesAt: (n) => new Promise((resolve) => {
      waiters.push({ n, resolve });
      wake();
    }),
  };
}

/** One request's bytes: method, path, headers (Host and, for a body, Content-Length added). */
export function rawRequest(method: string, path: string, body?: string, headers: Record<string, string> = {}): string {
  const h: Record<string, string> = { host: 'localhost', ...headers };
  if (body !== undefined) {
    h['content-type'] ??= 'application/json';
    h['content-length'] ??= String(Buffer.byteLength(body));
  }
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body ?? ''}`;
}
