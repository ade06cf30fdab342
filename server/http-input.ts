/**
 * Strict reading of request input before schema validation (app.ts wires it in): query strings
 * (canonical decimal integers, true/false, well-formed percent-encoding, no repeated parameters)
 * and JSON bodies (no prototype keys; an unparsable body answered without closing the connection).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The answer to bad input: a 400 whose message starts with where (`querystring.k`) and which names the field. */
export function badRequest(context: string, field: string | undefined, detail: string) {
  return { error: 'Bad Request', message: `${context}${field ? '.' + field : ''}: ${detail}`, field };
}

interface PropSchema {
  type?: string;
  minimum?: number;
  maximum?: number;
}

type QueryConverter = (raw: string) => unknown;
const CANONICAL_INTEGER = /^-?(0|[1-9][0-9]*)$/;

/** How a query value becomes its property's type (`undefined`: not the one spelling accepted); null for text. */
function converter(name: string, p: PropSchema): { convert: QueryConverter; expected: string } | null {
  switch (p.type) {
    case 'string':
    case undefined:
      return null; // validated as text by the schema
    case 'integer': {
      const range = p.minimum !== undefined && p.maximum !== undefined ? ` from ${p.minimum} to ${p.maximum}` : '';
      return {
        expected: `must be a whole number written in decimal digits${range} (e.g. 10)`,
        convert: (raw) => {
          if (!CANONICAL_INTEGER.test(raw)) return undefined;
          const n = Number(raw);
          return Number.isSafeInteger(n) ? n : undefined;
        },
      };
    }
    case 'boolean':
      return { expected: 'must be true or false', convert: (raw) => (raw === 'true' ? true : raw === 'false' ? false : undefined) };
    default:
      throw new Error(`querystring property "${name}": type ${p.type} has no strict query conversion`);
  }
}

/** The decoded name of a raw `name=value` pair, or the raw name when even that does not decode. */
function pairName(pair: string): string {
  const raw = pair.split('=', 1)[0].replace(/\+/g, ' ');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The first parameter of a raw query string that is not well-formed percent-encoded UTF-8. */
function badlyEncoded(search: string): string | undefined {
  for (const pair of search.split('&')) {
    if (!pair.includes('%')) continue;
    try {
      decodeURIComponent(pair.replace(/\+/g, ' '));
    } catch {
      return pairName(pair);
    }
  }
  return undefined;
}

/**
 * A preValidation hook for a route's querystring schema, or undefined when it needs none. Query
 * values arrive as text; ajv's type coercion would read "Infinity", "1e309", "0x10", "+5" and
 * " 10" as numbers (and Infinity slips past its range checks), so the app runs ajv without
 * coercion and this hook converts first, accepting only one spelling of each value.
 */
export function strictQueryHook(schema: unknown) {
  const props = ((schema as { properties?: Record<string, PropSchema> }).properties ?? {}) as Record<string, PropSchema>;
  const names = Object.keys(props);
  const converters = names.map((n) => ({ name: n, c: converter(n, props[n]) }));
  // A callback hook (an async one costs a promise per request): it either answers or calls done.
  return (req: FastifyRequest, reply: FastifyReply, done: () => void): void => {
    const refuse = (field: string, detail: string) => void reply.code(400).send(badRequest('querystring', field, detail));
    const at = req.url.indexOf('?');
    if (at >= 0) {
      const bad = badlyEncoded(req.url.slice(at + 1));
      if (bad !== undefined) return refuse(bad, 'is not valid percent-encoded UTF-8');
    }
    const q = req.query as Record<string, unknown>;
    for (const { name, c } of converters) {
      const raw = q[name];
      if (raw === undefined) continue;
      if (Array.isArray(raw)) return refuse(name, 'must be given once');
      if (!c) continue;
      const v = c.convert(raw as string);
      if (v === undefined) return refuse(name, c.expected);
      q[name] = v;
    }
    done();
  };
}

/** A JSON body that could not be read; answered with a 400 at preValidation (see jsonBodyParser). */
export class UnparsableBody {
  constructor(
    readonly detail: string,
    readonly field?: string,
  ) {}
}

/**
 * The path of the first key that could reach a prototype if the body were ever merged or assigned
 * somewhere: `__proto__`, or `constructor` holding `prototype` (fastify's default refusals).
 * Iterative, so any nesting depth is safe.
 */
function forbiddenKey(root: unknown): string | undefined {
  const stack: { v: unknown; path: string }[] = [{ v: root, path: '' }];
  while (stack.length) {
    const { v, path } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    for (const key of Object.keys(v)) {
      const p = path ? `${path}.${key}` : key;
      const child = (v as Record<string, unknown>)[key];
      if (key === '__proto__') return p;
      if (key === 'constructor' && child !== null && typeof child === 'object' && Object.hasOwn(child, 'prototype')) return `${p}.prototype`;
      stack.push({ v: child, path: p });
    }
  }
  return undefined;
}

/**
 * Parses a JSON body. Never fails: fastify closes the connection after a parser error, and a
 * request pipelined behind it would then run with its answer thrown away. The body was read
 * whole, so the connection can stay; the 400 comes from the preValidation hook instead.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return new UnparsableBody('is empty; expected a JSON object');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return new UnparsableBody(`is not valid JSON (${(err as Error).message.slice(0, 200)})`);
  }
  // The walk only when a key could be one (one native scan of the text; `\u` for escaped spellings).
  if (text.includes('__proto__') || text.includes('constructor') || text.includes('\\u')) {
    const path = forbiddenKey(v);
    if (path !== undefined) return new UnparsableBody(`the key "${path.endsWith('.prototype') ? 'constructor.prototype' : '__proto__'}" is not allowed`, path);
  }
  return v;
}

/** Each known URL's methods (HEAD with GET), to answer a wrong method with 405 and `Allow`. */
export class RouteMethods {
  private readonly byUrl = new Map<string, Set<string>>();

  add(url: string, method: string | string[]): void {
    let s = this.byUrl.get(url);
    if (!s) this.byUrl.set(url, (s = new Set()));
    for (const m of Array.isArray(method) ? method : [method]) {
      s.add(m);
      if (m === 'GET') s.add('HEAD');
    }
  }

  /** The `Allow` value of a known URL, or undefined. */
  allow(url: string): string | undefined {
    const s = this.byUrl.get(url);
    return s ? [...s].sort().join(', ') : undefined;
  }
}
