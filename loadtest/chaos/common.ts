/** What the chaos scenarios share: bounded HTTP on loopback, server processes that are always reaped, temp folders, the tiny bundle, the table. */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportBundle, type BundleInput } from '../../export/exporter.js';
import { syntheticBundle } from '../../export/synthetic-bundle.js';
import { CLI, spawnServer } from '../spawn-server.js';

export const TOKEN = 'chaos-token';
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One line of the chaos table. `open` is null where the scenario does not measure sockets. */
export interface ChaosRow {
  scenario: string;
  trials: number;
  acknowledged: number;
  lost: number;
  hangs: number;
  fiveXx: number;
  open: number | null;
  /** every check of the row held */
  pass: boolean;
  /** scenario-specific counts, printed as `key=value` */
  details: Record<string, number | string>;
  /** what went wrong, one line each (the first few are kept) */
  problems: string[];
}

export function row(scenario: string, fields: Partial<Omit<ChaosRow, 'scenario' | 'pass'>> = {}): ChaosRow {
  return { scenario, trials: 0, acknowledged: 0, lost: 0, hangs: 0, fiveXx: 0, open: null, details: {}, problems: [], ...fields, pass: true };
}

/** Records a failed check on a row (kept to the first 20 lines; the count says how many). */
export function problem(r: ChaosRow, line: string): void {
  r.pass = false;
  if (r.problems.length < 20) r.problems.push(line);
  else r.details.moreProblems = Number(r.details.moreProblems ?? 0) + 1;
}

export const TABLE_HEAD = ['scenario', 'trials', 'acked', 'lost', 'hangs', '5xx', 'open', 'ok', 'details'] as const;

export function formatDetails(d: Record<string, number | string>): string {
  return Object.entries(d)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

/** The one table: a header, a rule and a line per row; columns padded, details last. */
export function chaosTable(rows: ChaosRow[]): string {
  const cells = rows.map((r) => [r.scenario, String(r.trials), String(r.acknowledged), String(r.lost), String(r.hangs), String(r.fiveXx), r.open === null ? '-' : String(r.open), r.pass ? 'yes' : 'NO', formatDetails(r.details)]);
  const head = [...TABLE_HEAD];
  const widths = head.map((h, i) => (i === head.length - 1 ? 0 : Math.max(h.length, ...cells.map((c) => c[i].length))));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : i === c.length - 1 ? x : x.padStart(widths[i]))).join('  ').trimEnd();
  return [line(head), widths.map((w, i) => '-'.repeat(i === head.length - 1 ? 7 : w)).join('  '), ...cells.map(line)].join('\n') + '\n';
}

/** Everything a run creates and must remove: server processes (killed) and temp folders. */
export class Resources {
  private readonly children = new Set<ChildProcess>();
  private readonly dirs: string[] = [];
  private readonly made: string[] = [];
  private readonly agents = new Set<Agent>();

  tempDir(tag: string): string {
    const d = mkdtempSync(join(tmpdir(), `promptmm-chaos-${tag}-`));
    this.dirs.push(d);
    this.made.push(d);
    return d;
  }

  track(c: ChildProcess): void {
    this.children.add(c);
    c.once('exit', () => this.children.delete(c));
  }

  agent(maxSockets: number): Agent {
    const a = new Agent({ keepAlive: true, maxSockets });
    this.agents.add(a);
    return a;
  }

  dropAgent(a: Agent): void {
    a.destroy();
    this.agents.delete(a);
  }

  /** Kills every server still running (SIGKILL, waiting at most 5 s each), drops sockets, removes the folders. */
  async cleanup(): Promise<void> {
    for (const a of this.agents) a.destroy();
    this.agents.clear();
    await Promise.all([...this.children].map((c) => killAndWait(c, 'SIGKILL', 5000)));
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }

  get running(): number {
    return this.children.size;
  }

  /** Folders made by tempDir that still exist (0 after cleanup unless removing failed). */
  leftoverDirs(): number {
    return this.made.filter((d) => existsSync(d)).length;
  }
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when `c` has exited (at once if it already has). */
export function exitOf(c: ChildProcess): Promise<Exit> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve({ code: c.exitCode, signal: c.signalCode });
  return new Promise((r) => c.once('exit', (code, signal) => r({ code, signal })));
}

/** Resolves with the value, or with `fallback` once `ms` have passed. */
export function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<F>((r) => (t = setTimeout(() => r(fallback), ms)))]).finally(() => clearTimeout(t));
}

/** Sends `signal` and waits for the exit; null if it did not exit within `ms` (then it is SIGKILLed, so nothing is left behind). */
export async function killAndWait(c: ChildProcess, signal: NodeJS.Signals, ms: number): Promise<Exit | null> {
  const exited = exitOf(c);
  c.kill(signal);
  const e = await within(exited, ms, null);
  if (e === null && signal !== 'SIGKILL') {
    c.kill('SIGKILL');
    await within(exited, 5000, null);
  }
  return e;
}

export interface Started {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  /** milliseconds from spawn to listening */
  ms: number;
}

export type StartResult = ({ ok: true } & Started) | { ok: false; why: 'exited'; exit: Exit; stderr: string; ms: number } | { ok: false; why: 'timeout'; stderr: string; ms: number };

/**
 * `promptmm serve` with the given arguments on a free loopback port, the token set and logging
 * at info (the harness reads "serving on …" from it). Never waits longer than `timeoutMs`: a
 * server that does not listen by then is killed and reported as a timeout.
 */
export async function startServer(res: Resources, args: string[], timeoutMs = 60_000): Promise<StartResult> {
  const t0 = performance.now();
  const s = spawnServer(['--host', '127.0.0.1', '--port', '0', ...args], { PROMPTMM_TOKEN: TOKEN, PROMPTMM_LOG_LEVEL: 'info' });
  res.track(s.child);
  const exited = exitOf(s.child);
  const r = await within(
    s.url.then(
      (url) => ({ url }),
      () => exited.then((exit) => ({ exit })),
    ),
    timeoutMs,
    null,
  );
  const ms = performance.now() - t0;
  if (r === null) {
    await killAndWait(s.child, 'SIGKILL', 5000);
    return { ok: false, why: 'timeout', stderr: s.stderr(), ms };
  }
  if ('exit' in r) return { ok: false, why: 'exited', exit: r.exit, stderr: s.stderr(), ms };
  return { ok: true, url: r.url, child: s.child, stderr: s.stderr, ms };
}

/** How one HTTP exchange ended. `truncated`: headers arrived, the body was cut; `reset`: no answer at all. */
export type Outcome =
  | { kind: 'answered'; status: number; headers: IncomingHttpHeaders; body: string; ms: number }
  | { kind: 'truncated'; status: number; bytes: number; expected: number | null; ms: number }
  | { kind: 'reset'; code: string; ms: number }
  | { kind: 'refused'; ms: number }
  | { kind: 'timeout'; ms: number };

export interface RequestOptions {
  method?: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
  agent?: Agent | false;
  timeoutMs: number;
  /** called once the whole request is handed to the socket */
  onWritten?: () => void;
}

/** One request on loopback that always settles: by its answer, a cut or failed exchange, or a timeout (then the socket is destroyed). */
export function request(base: string, o: RequestOptions): Promise<Outcome> {
  const t0 = performance.now();
  const u = new URL(o.path, base);
  const body = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
  const headers: Record<string, string> = { ...o.headers };
  if (body) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  return new Promise((resolve) => {
    let done = false;
    const finish = (x: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(x);
    };
    const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: o.method ?? 'GET', headers, agent: o.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        bytes += c.length;
      });
      const expected = res.headers['content-length'] === undefined ? null : Number(res.headers['content-length']);
      res.on('end', () => {
        if (!res.complete || (expected !== null && bytes !== expected)) finish({ kind: 'truncated', status: res.statusCode ?? 0, bytes, expected, ms: performance.now() - t0 });
        else finish({ kind: 'answered', status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - t0 });
      });
      res.on('error', () => finish({ kind: 'truncated', status: res.statusCode ?? 0, bytes, expected, ms: performance.now() - t0 }));
      res.on('close', () => {
        if (!res.complete) finish({ kind: 'truncated', status: res.statusCode ?? 0, bytes, expected, ms: performance.now() - t0 });
      });
    });
    const timer = setTimeout(() => {
      finish({ kind: 'timeout', ms: performance.now() - t0 });
      req.destroy();
    }, o.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => {
      const ms = performance.now() - t0;
      if (err.code === 'ECONNREFUSED') finish({ kind: 'refused', ms });
      else finish({ kind: 'reset', code: err.code ?? err.message, ms });
    });
    req.on('finish', () => o.onWritten?.());
    req.end(body);
  });
}

/** The body of an answered request as JSON, or null when it is not JSON. */
export function json<T>(o: Outcome): T | null {
  if (o.kind !== 'answered') return null;
  try {
    return JSON.parse(o.body) as T;
  } catch {
    return null;
  }
}

export const auth = { authorization: `Bearer ${TOKEN}` };

/** A bundle small enough that a restart costs the process start, not loading; ids are the integer row numbers an MMRec dataset has. */
export function exportTinyBundle(repo: string, name: string, size: { users: number; items: number; dim: number } = { users: 64, items: 80, dim: 8 }, seed = 1): BundleInput {
  const b = syntheticBundle({ name, ...size, seed, seenPerUser: 3, clusters: 8 });
  const input: BundleInput = { ...b, ids: { users: b.ids.users.map((_, i) => String(i)), items: b.ids.items.map((_, i) => String(i)) } };
  exportBundle(input, { repo, hnsw: { space: 'ip', m: 8, efConstruction: 64, efSearch: 64, seed } });
  return input;
}

/** The arguments every chaos server gets: its model, one provider (cpu: no cuda attempt per start) and no repository poll. */
export function baseArgs(repo: string, name: string): string[] {
  return ['--name', name, '--repo', repo, '--poll-seconds', '0', '--providers', 'cpu'];
}

export interface FlagInfo {
  flag: string;
  unit: 'ms' | 's';
}

/** The hardening flags this build of `serve` has, read from its --help (they arrive with the fixes of issue 17). */
export interface ServerFeatures {
  /** request, header, body or connection timeouts */
  timeouts: FlagInfo[];
  keepAlive: FlagInfo | null;
  drain: FlagInfo | null;
  connectionCap: string | null;
  /** a flag that makes the log skip mid-log damage (value 'skip') */
  logSkip: string | null;
  /** every long option of `serve` */
  all: string[];
}

export function parseServeHelp(help: string): ServerFeatures {
  const opts: { flag: string; text: string }[] = [];
  for (const line of help.split('\n')) {
    const m = /^\s{2}(?:-\w, )?(--[a-z0-9-]+)(.*)$/.exec(line);
    if (m) opts.push({ flag: m[1], text: `${m[1]} ${m[2]}` });
    else if (opts.length && /^\s{4,}\S/.test(line)) opts[opts.length - 1].text += ` ${line.trim()}`;
  }
  const unit = (text: string): 'ms' | 's' => (/(-ms\b|<ms>|\bms\b|millisecond)/i.test(text) ? 'ms' : 's');
  const info = (o: { flag: string; text: string }): FlagInfo => ({ flag: o.flag, unit: unit(o.text) });
  const drain = opts.find((o) => /drain|shutdown|grace/.test(o.flag));
  const keepAlive = opts.find((o) => /keep-?alive/.test(o.flag));
  const timeouts = opts.filter((o) => /timeout/.test(o.flag) && o !== drain && o !== keepAlive);
  const cap = opts.find((o) => /(max|cap|limit).*connections|connections.*(max|cap|limit)/.test(o.flag));
  const skip = opts.find((o) => /corrupt/.test(o.flag));
  return {
    timeouts: timeouts.map(info),
    keepAlive: keepAlive ? info(keepAlive) : null,
    drain: drain ? info(drain) : null,
    connectionCap: cap?.flag ?? null,
    logSkip: skip?.flag ?? null,
    all: opts.map((o) => o.flag),
  };
}

/** Runs `promptmm serve --help` (bounded) and reads the flags from it. */
export function serverFeatures(): ServerFeatures {
  const r = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8', timeout: 30_000 });
  return parseServeHelp(r.stdout ?? '');
}

/** `--flag=value` for a duration in seconds, in the flag's unit. */
export function durationArg(f: FlagInfo, seconds: number): string {
  return `${f.flag}=${f.unit === 'ms' ? Math.round(seconds * 1000) : seconds}`;
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Counts of a list of labels, as `a:3,b:1`. */
export function tally(xs: (string | number)[]): string {
  const m = new Map<string, number>();
  for (const x of xs) m.set(String(x), (m.get(String(x)) ?? 0) + 1);
  return [...m].map(([k, v]) => `${k}:${v}`).join(',') || 'none';
}
