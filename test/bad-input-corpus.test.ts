/**
 * The bad-input corpus: every parameter of every endpoint malformed (types, ranges, encodings,
 * sizes, nesting, prototype keys, repeats), generated as a table. Each answer must be a 4xx naming
 * the field where there is one (or a 2xx where the odd value is legal), never a 5xx or a stack trace.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_BATCH_USERS, MAX_INTERACTIONS, MAX_K } from '../server/common/schemas.js';
import { repoWith, testServer } from '../test-support/serving.js';

const { repo } = repoWith('c');
const s = await testServer(repo, 'c', { online: { roundEvery: 0, roundSeconds: 0 } });
after(() => s.close());

interface Case {
  name: string;
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** a raw body (sent as is) */
  body?: string;
  /** the status expected; default: any 4xx */
  status?: number;
  /** the field a 400 must name */
  field?: string;
}

const AUTH = { authorization: 'Bearer secret' };
const JSON_CT = { 'content-type': 'application/json' };
const cases: Case[] = [];

// ---- GET /recommend: each query parameter malformed, the others valid.
const QUERY_OK: Record<string, string> = { user: 'u3', k: '5', exclude_seen: 'true', retrieval: 'ann' };
const badNumbers = ['', 'abc', 'Infinity', '-Infinity', 'NaN', '1e309', '1e3', '0x10', '0b1', '0o7', '+5', '-5', '0', '-0', '010', '5.0', '2.5', '%2010', '10%20', '%0A5', 'true', 'null', '[]', '{}', '1,2', '1_000', '%EF%BC%99', String(MAX_K + 1), '9'.repeat(400), String(2 ** 64)];
const badBooleans = ['', '1', '0', 'yes', 'TRUE', 'True', 'null', '%00', 'true%20', '[true]'];
const badRetrievals = ['', 'fast', 'ANN', 'ann%20', 'exact%00', '__proto__', 'constructor', 'toString'];
const badIds = ['', '%00', 'a%00b', '%0A', 'a%09b', '%0D', '%7F', '%C2%85', '%C2%9F', '%E2%80%A8', 'x'.repeat(257), '%E2%82', '%ZZ', '%', '%C0%80'];
const oddGoodIds = ['__proto__', 'constructor', 'hasOwnProperty', 'toString', 'Infinity', '-1', '%25', 'a%20b', 'a+b', '%F0%9F%98%80', '%E7%94%A8', 'x'.repeat(256), '%22%27%3C%3E', '..%2F..%2Fetc%2Fpasswd', '%5B%5D'];
const queryBad: Record<string, string[]> = { k: badNumbers, exclude_seen: badBooleans, retrieval: badRetrievals, user: badIds };
const qs = (q: Record<string, string>) => Object.entries(q).map(([k, v]) => `${k}=${v}`).join('&');
for (const [param, values] of Object.entries(queryBad)) {
  for (const v of values) cases.push({ name: `GET ${param}=${v.slice(0, 20)}`, method: 'GET', url: `/recommend?${qs({ ...QUERY_OK, [param]: v })}`, status: 400, field: param });
  cases.push({ name: `GET ${param} twice`, method: 'GET', url: `/recommend?${qs(QUERY_OK)}&${param}=${QUERY_OK[param]}`, status: 400, field: param });
  cases.push({ name: `GET ${param}[]`, method: 'GET', url: `/recommend?${qs(QUERY_OK)}&${param}[]=1`, status: 400, field: `${param}[]` });
}
for (const v of oddGoodIds) cases.push({ name: `GET odd but legal user ${v.slice(0, 20)}`, method: 'GET', url: `/recommend?${qs({ ...QUERY_OK, user: v })}`, status: 200 });
for (const key of ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', 'kk', 'K', 'USER', '', '%00']) {
  cases.push({ name: `GET unknown parameter "${key}"`, method: 'GET', url: `/recommend?${qs(QUERY_OK)}&${key}=1`, status: 400, field: decodeURIComponent(key) || undefined });
}
cases.push({ name: 'GET no user', method: 'GET', url: '/recommend?k=5', status: 400, field: 'user' });
cases.push({ name: 'GET no query', method: 'GET', url: '/recommend', status: 400, field: 'user' });
cases.push({ name: 'GET empty query', method: 'GET', url: '/recommend?', status: 400, field: 'user' });
cases.push({ name: 'GET only separators', method: 'GET', url: '/recommend?&&&=&', status: 400 });
cases.push({ name: 'GET huge query', method: 'GET', url: `/recommend?user=u3&${Array.from({ length: 2000 }, (_, i) => `p${i}=1`).join('&')}`, status: 400 });

// ---- JSON bodies: values of each type for each field.
const jsonValues: Record<string, string> = {
  string: '"x"',
  'numeric string': '"10"',
  'Infinity string': '"Infinity"',
  empty: '""',
  zero: '0',
  'minus zero': '-0',
  negative: '-3',
  fraction: '2.5',
  huge: '1e309',
  'minus huge': '-1e309',
  '2^64': String(2 ** 64),
  'true': 'true',
  'false': 'false',
  'null': 'null',
  array: '[1]',
  'empty array': '[]',
  object: '{}',
  'nested object': '{"a":{"b":[{}]}}',
  'proto object': '{"__proto__":{"admin":true}}',
};
/** The kinds of value a field accepts (legal, so not part of its malformed cases); k, users, retrieval accept none of them. */
const LEGAL: Record<string, string[]> = {
  user: ['string', 'numeric string', 'Infinity string'],
  item: ['string', 'numeric string', 'Infinity string'],
  exclude_seen: ['true', 'false'],
  ts: ['zero', 'minus zero'],
};
const accepts = (field: string, kind: string) => LEGAL[field]?.includes(kind) ?? false;

// POST /recommend
const recBody = (over: Record<string, string>) => `{${Object.entries({ users: '["u3","u7"]', k: '3', ...over }).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
for (const field of ['users', 'k', 'exclude_seen', 'retrieval']) {
  for (const [kind, v] of Object.entries(jsonValues)) {
    if (accepts(field, kind)) continue;
    const proto = kind === 'proto object';
    cases.push({ name: `POST /recommend ${field}: ${kind}`, method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ [field]: v }), status: 400, field: proto ? `${field}.__proto__` : field === 'users' && kind === 'array' ? 'users.0' : field });
  }
}
for (const [kind, v] of Object.entries(jsonValues)) {
  if (accepts('user', kind)) continue;
  cases.push({ name: `POST /recommend users.1: ${kind}`, method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ users: `["u3",${v}]` }), status: 400, field: kind === 'proto object' ? 'users.1.__proto__' : 'users.1' });
}
for (const id of ['\\u0000', 'a\\nb', 'a\\tb', '\\r', '\\u007f', '\\u0085', '\\u2029', '\\ud800', 'x'.repeat(257)]) {
  cases.push({ name: `POST /recommend users.0 = "${id.slice(0, 12)}"`, method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ users: `["${id}"]` }), status: 400, field: 'users.0' });
}
cases.push({ name: 'POST /recommend too many users', method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ users: JSON.stringify(Array.from({ length: MAX_BATCH_USERS + 1 }, (_, i) => `u${i}`)), k: '1' }), status: 400, field: 'users' });
cases.push({ name: 'POST /recommend over the cost limit', method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ users: JSON.stringify(Array.from({ length: MAX_BATCH_USERS }, (_, i) => `u${i}`)), k: String(MAX_K) }), status: 400, field: 'k' });
cases.push({ name: 'POST /recommend users deeply nested', method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ users: '['.repeat(50_000) + ']'.repeat(50_000) }), status: 400, field: 'users.0' });
cases.push({ name: 'POST /recommend object deeply nested', method: 'POST', url: '/recommend', headers: JSON_CT, body: '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000), status: 400 });
for (const key of ['__proto__', 'constructor', 'colour', '', 'Users', 'K']) {
  cases.push({ name: `POST /recommend extra key "${key}"`, method: 'POST', url: '/recommend', headers: JSON_CT, body: recBody({ [key]: '1' }), status: 400, field: key === '__proto__' ? '__proto__' : key || undefined });
}
cases.push({ name: 'POST /recommend escaped __proto__ key', method: 'POST', url: '/recommend', headers: JSON_CT, body: '{"users":["u3"],"\\u005f_proto__":{"x":1}}', status: 400, field: '__proto__' });
cases.push({ name: 'POST /recommend constructor.prototype', method: 'POST', url: '/recommend', headers: JSON_CT, body: '{"users":["u3"],"constructor":{"prototype":{"x":1}}}', status: 400, field: 'constructor.prototype' });
cases.push({ name: 'POST /recommend duplicate key k', method: 'POST', url: '/recommend', headers: JSON_CT, body: '{"users":["u3"],"k":1,"k":"Infinity"}', status: 400, field: 'k' });
for (const top of ['[]', '"x"', '1', 'null', 'true', '[{"users":["u3"]}]']) {
  cases.push({ name: `POST /recommend body ${top}`, method: 'POST', url: '/recommend', headers: JSON_CT, body: top, status: 400 });
}
const invalidJson = ['', ' ', '{', '{"users": [', '{"users":["u3"],}', "{'users':['u3']}", '{"users":["u3"]}{}', '{"users":[NaN]}', '{"k":Infinity,"users":["u3"]}', '/* c */{"users":["u3"]}', '\ufeff{"users":["u3"]}', '{"users":["\\x41"]}', '{"users":["a\nb"]}', '\u0000'];
for (const b of invalidJson) cases.push({ name: `POST /recommend invalid JSON ${JSON.stringify(b).slice(0, 24)}`, method: 'POST', url: '/recommend', headers: JSON_CT, body: b, status: 400 });
for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/json-patch+json', 'text/json', '*/*', 'application']) {
  cases.push({ name: `POST /recommend content-type ${ct}`, method: 'POST', url: '/recommend', headers: { 'content-type': ct }, body: '{"users":["u3"]}', status: 415 });
}
cases.push({ name: 'POST /recommend no body', method: 'POST', url: '/recommend', status: 400 });
cases.push({ name: 'POST /recommend oversized body', method: 'POST', url: '/recommend', headers: JSON_CT, body: JSON.stringify({ users: ['x'.repeat(1 << 20)] }), status: 413 });

// POST /interactions: the envelope, then each field of the fourth record.
const inter = (rec: string) => `{"interactions":[{"user":"u1","item":"i1"},{"user":"u2","item":"i2"},{"user":"u3","item":"i3"},${rec}]}`;
const recOf = (over: Record<string, string>) => `{${Object.entries({ user: '"u4"', item: '"i4"', ...over }).map(([k, v]) => `"${k}":${v}`).join(',')}}`;
for (const field of ['user', 'item', 'ts']) {
  for (const [kind, v] of Object.entries(jsonValues)) {
    if (accepts(field, kind)) continue;
    cases.push({ name: `POST /interactions ${field}: ${kind}`, method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: inter(recOf({ [field]: v })), status: 400, field: kind === 'proto object' ? `interactions.3.${field}.__proto__` : `interactions.3.${field}` });
  }
  if (field !== 'ts') {
    for (const id of ['\\u0000', 'a\\nb', 'a\\tb', '\\r', '\\u001f', '\\u007f', '\\u0080', '\\u2028', '\\udfff', 'y'.repeat(257)]) {
      cases.push({ name: `POST /interactions ${field} = "${id.slice(0, 12)}"`, method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: inter(recOf({ [field]: `"${id}"` })), status: 400, field: `interactions.3.${field}` });
    }
  }
}
for (const ts of ['8640000000000001', '9007199254740993', '-1', '1.5', '"1700000000000"']) {
  cases.push({ name: `POST /interactions ts ${ts}`, method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: inter(recOf({ ts })), status: 400, field: 'interactions.3.ts' });
}
for (const key of ['__proto__', 'constructor', 'score', 'User']) {
  cases.push({ name: `POST /interactions record key "${key}"`, method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: inter(recOf({ [key]: '{"prototype":{}}' })), status: 400, field: key === 'constructor' ? 'interactions.3.constructor.prototype' : `interactions.3.${key}` });
}
cases.push({ name: 'POST /interactions missing user', method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: inter('{"item":"i4"}'), status: 400, field: 'interactions.3.user' });
cases.push({ name: 'POST /interactions record not an object', method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: inter('"u4,i4"'), status: 400, field: 'interactions.3' });
for (const [kind, v] of Object.entries(jsonValues)) {
  if (kind === 'array' || kind === 'empty array') continue;
  cases.push({ name: `POST /interactions envelope: ${kind}`, method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: `{"interactions":${v}}`, status: 400, field: kind === 'proto object' ? 'interactions.__proto__' : 'interactions' });
}
cases.push({ name: 'POST /interactions empty list', method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: '{"interactions":[]}', status: 400, field: 'interactions' });
cases.push({ name: 'POST /interactions list of numbers', method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: '{"interactions":[1]}', status: 400, field: 'interactions.0' });
cases.push({ name: 'POST /interactions too many', method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: JSON.stringify({ interactions: Array.from({ length: MAX_INTERACTIONS + 1 }, () => ({ user: 'u1', item: 'i1' })) }), status: 400, field: 'interactions' });
for (const b of invalidJson) cases.push({ name: `POST /interactions invalid JSON ${JSON.stringify(b).slice(0, 24)}`, method: 'POST', url: '/interactions', headers: { ...JSON_CT, ...AUTH }, body: b, status: 400 });
cases.push({ name: 'POST /interactions text/plain', method: 'POST', url: '/interactions', headers: { 'content-type': 'text/plain', ...AUTH }, body: inter(recOf({})), status: 415 });

// ---- Auth on the token endpoints.
for (const url of ['/interactions', '/admin/reload', '/admin/finetune']) {
  for (const h of [undefined, '', 'Bearer', 'Bearer ', 'Bearer wrong', 'Basic c2VjcmV0', 'secret', 'Bearer secret extra', 'Bearer\tsecret', 'Bearer %00']) {
    cases.push({ name: `POST ${url} authorization ${JSON.stringify(h)}`, method: 'POST', url, headers: { ...JSON_CT, ...(h === undefined ? {} : { authorization: h }) }, body: inter(recOf({})), status: 401 });
  }
}
// The admin endpoints take no input: a malformed body is still a 400, never a 5xx.
for (const url of ['/admin/reload', '/admin/finetune']) {
  for (const b of ['{', '{"__proto__":{}}', '[]']) cases.push({ name: `POST ${url} body ${b}`, method: 'POST', url, headers: { ...JSON_CT, ...AUTH }, body: b, status: b === '[]' ? 200 : 400 });
}

// ---- Wrong methods on every known URL; unknown URLs.
const ROUTES: Record<string, string[]> = { '/recommend': ['GET', 'POST'], '/interactions': ['POST'], '/healthz': ['GET'], '/readyz': ['GET'], '/metrics': ['GET'], '/admin/reload': ['POST'], '/admin/finetune': ['POST'] };
for (const [url, ok] of Object.entries(ROUTES)) {
  for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) if (!ok.includes(m)) cases.push({ name: `${m} ${url}`, method: m, url, status: 405 });
}
for (const url of ['/', '/recommend/', '/RECOMMEND', '/recommend/u3', '/%00', '/..%2F', '/admin', '/admin/', '/interactions/1', `/${'a'.repeat(5000)}`]) {
  cases.push({ name: `GET ${url.slice(0, 24)}`, method: 'GET', url, status: 404 });
}

test(`the bad-input corpus: 4xx naming the field, never a 5xx or a stack trace`, async (t) => {
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  for (const c of cases) {
    const r = await s.app.inject({ method: c.method as 'GET', url: c.url, headers: c.headers, payload: c.body });
    statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
    const problem = (why: string) => failures.push(`${c.name}: ${why} (${r.statusCode} ${r.body.slice(0, 200)})`);
    if (r.statusCode >= 500) problem('a 5xx');
    if (c.status !== undefined ? r.statusCode !== c.status : r.statusCode < 400 || r.statusCode >= 500) problem(`expected ${c.status ?? '4xx'}`);
    if (/\n\s+at |node_modules|\/(tmp|work|home|usr)\/|\.[cm]?[jt]s:\d+/.test(r.body)) problem('a stack trace or a path in the body');
    if (r.statusCode >= 400 && c.method !== 'HEAD') {
      let b: { error?: unknown; message?: unknown; field?: unknown };
      try {
        b = r.json();
      } catch {
        problem('not JSON');
        continue;
      }
      if (typeof b.error !== 'string' || typeof b.message !== 'string' || !b.message) problem('no error and message');
      if (c.field !== undefined && b.field !== c.field) problem(`field ${JSON.stringify(b.field)}, expected ${c.field}`);
      if (typeof b.field === 'string' && typeof b.message === 'string' && !b.message.includes(b.field)) problem('the message does not name the field');
    }
  }
  const counts = [...statuses].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}×${v}`).join(' ');
  t.diagnostic(`corpus: ${cases.length} requests; statuses ${counts}`);
  assert.deepEqual(failures, []);
  assert.ok(cases.length >= 400, `corpus size ${cases.length}`);
  assert.ok(!statuses.has(500));
});
