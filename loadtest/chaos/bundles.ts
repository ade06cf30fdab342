/**
 * Corrupted bundles appearing beside a served one: each must be refused (counted in /metrics,
 * with a reason naming the file) while the old version keeps answering, without a 5xx.
 */
import { cpSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeNpy, encodeNpyInt32, parseNpyInt32, readNpy } from '../../core/npy.js';
import { Rng } from '../../core/rng.js';
import { BUNDLE_FILES } from '../../repository/bundle-format.js';
import { modelDir, sha256File, versionDir } from '../../repository/versions.js';
import { auth, baseArgs, exportTinyBundle, json, killAndWait, problem, request, row, sleep, startServer, within, type ChaosRow, type Resources } from './common.js';

export interface BundleOptions {
  rounds: number;
  seed: number;
}

const NAME = 'chaos';

/** Replaces a bundle file and records its new size and sha256 in the manifest: the checksums stay valid. */
function rewrite(dir: string, file: string, data: Uint8Array): void {
  writeFileSync(join(dir, file), data);
  const mf = join(dir, BUNDLE_FILES.manifest);
  const m = JSON.parse(readFileSync(mf, 'utf8'));
  m.files[file] = { bytes: data.length, sha256: sha256File(join(dir, file)) };
  writeFileSync(mf, JSON.stringify(m, null, 2) + '\n');
}

function setVersion(dir: string, version: number): void {
  const mf = join(dir, BUNDLE_FILES.manifest);
  const m = JSON.parse(readFileSync(mf, 'utf8'));
  m.version = version;
  writeFileSync(mf, JSON.stringify(m, null, 2) + '\n');
}

/** The ways a bundle is broken here: `dir` is a copy of version 1 already renumbered `version`. */
export const CORRUPTIONS: { name: string; apply: (dir: string, version: number, rng: Rng) => void }[] = [
  {
    name: 'flipped byte (checksum)',
    apply: (dir, _v, rng) => {
      const files = [BUNDLE_FILES.userEmbeddings, BUNDLE_FILES.itemEmbeddings, BUNDLE_FILES.seenItems, BUNDLE_FILES.ids, BUNDLE_FILES.onnx, BUNDLE_FILES.hnsw];
      const f = join(dir, files[rng.int(files.length)]);
      const b = readFileSync(f);
      b[rng.int(b.length)] ^= 1 << rng.int(8);
      writeFileSync(f, b);
    },
  },
  {
    name: 'truncated file',
    apply: (dir, _v, rng) => {
      const f = join(dir, BUNDLE_FILES.itemEmbeddings);
      truncateSync(f, rng.int(readFileSync(f).length));
    },
  },
  {
    // csrHas's binary search never ends on a row that starts below 0: the issue's hang.
    name: 'bad CSR offsets (valid checksums)',
    apply: (dir, _v, rng) => {
      const { shape, data } = parseNpyInt32(readFileSync(join(dir, BUNDLE_FILES.seenOffsets)), BUNDLE_FILES.seenOffsets);
      const at = 1 + rng.int(data.length - 2);
      data[at] = rng.int(2) ? -data[data.length - 1] : data[data.length - 1] + 1000;
      rewrite(dir, BUNDLE_FILES.seenOffsets, encodeNpyInt32(data, shape));
    },
  },
  {
    name: 'NaN embedding (valid checksums)',
    apply: (dir, _v, rng) => {
      const file = rng.int(2) ? BUNDLE_FILES.userEmbeddings : BUNDLE_FILES.itemEmbeddings;
      const { shape, data } = readNpy(join(dir, file));
      data[rng.int(data.length)] = rng.int(2) ? NaN : Infinity;
      rewrite(dir, file, encodeNpy(data, shape));
    },
  },
  {
    name: 'version ≠ folder',
    apply: (dir, v) => setVersion(dir, v + 100),
  },
];

const metric = (text: string, name: string): number => {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

export async function bundleScenario(res: Resources, o: BundleOptions): Promise<ChaosRow[]> {
  const rows = CORRUPTIONS.map((c) => row(`bundle: ${c.name}`));
  const repo = res.tempDir('bundles');
  const input = exportTinyBundle(repo, NAME);
  const s = await startServer(res, baseArgs(repo, NAME));
  if (!s.ok) {
    for (const r of rows) problem(r, `the server did not start (${s.why}): ${s.stderr.slice(-300)}`);
    return rows;
  }
  const base = s.url;
  const rng = new Rng(o.seed * 31_337 + 5);
  // Traffic during the whole scenario: any 5xx, failure or other version is counted against the row of the moment.
  let current: ChaosRow | null = null;
  let stop = false;
  const served = new Map<ChaosRow, number>();
  const agent = res.agent(2);
  const traffic = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const user = input.ids.users[(w * 17 + i) % input.nUsers];
      const out = await request(base, { path: `/recommend?user=${user}&k=10${i % 2 ? '&retrieval=exact' : ''}`, agent, timeoutMs: 5000 });
      const r = current;
      if (!r) continue;
      served.set(r, (served.get(r) ?? 0) + 1);
      if (out.kind === 'timeout') {
        r.hangs++;
        problem(r, `GET /recommend?user=${user} got no answer within 5 s`);
      } else if (out.kind !== 'answered') problem(r, `GET /recommend?user=${user}: ${out.kind}`);
      else if (out.status >= 500) {
        r.fiveXx++;
        problem(r, `GET /recommend?user=${user} answered ${out.status}: ${out.body.slice(0, 200)}`);
      } else if (out.status !== 200) problem(r, `GET /recommend?user=${user} answered ${out.status}`);
      else if (json<{ model_version: number }>(out)?.model_version !== 1) problem(r, `GET /recommend answered from version ${json<{ model_version: number }>(out)?.model_version}, not 1`);
      await sleep(5);
    }
  };
  const load = Promise.all([traffic(0), traffic(1)]);
  const refusals = new Map<ChaosRow, number>();
  const named = new Map<ChaosRow, number>();
  let version = 2;
  try {
    for (let round = 0; round < o.rounds; round++) {
      for (const [i, c] of CORRUPTIONS.entries()) {
        const r = rows[i];
        current = r;
        r.trials++;
        const failuresBefore = metric((await request(base, { path: '/metrics', timeoutMs: 5000 }).then((x) => (x.kind === 'answered' ? x.body : ''))), 'promptmm_model_load_failures_total');
        // Built beside the model's versions under a name the server ignores, then renamed in: the folder appears whole.
        const stage = join(modelDir(repo, NAME), `.chaos-stage-${version}`);
        cpSync(versionDir(repo, NAME, 1), stage, { recursive: true });
        setVersion(stage, version);
        c.apply(stage, version, rng);
        renameSync(stage, versionDir(repo, NAME, version));
        // The folder watch notices it; wait (bounded) until the refusal is counted.
        let refusedSeen = false;
        const t0 = Date.now();
        while (Date.now() - t0 < 30_000) {
          const m = await request(base, { path: '/metrics', timeoutMs: 5000 });
          if (m.kind === 'answered' && metric(m.body, 'promptmm_model_load_failures_total') > failuresBefore) {
            refusedSeen = true;
            break;
          }
          const ready = json<{ model?: { version: number } }>(await request(base, { path: '/readyz', timeoutMs: 5000 }));
          if (ready?.model?.version !== 1) break;
          await sleep(50);
        }
        const ready = json<{ model?: { version: number } }>(await request(base, { path: '/readyz', timeoutMs: 5000 }));
        if (ready?.model?.version !== 1) problem(r, `version ${version} (${c.name}): /readyz says version ${ready?.model?.version ?? 'none'}, not 1`);
        if (refusedSeen) refusals.set(r, (refusals.get(r) ?? 0) + 1);
        else if (ready?.model?.version === 1) {
          r.hangs++;
          problem(r, `version ${version} (${c.name}): no refusal counted within 30 s of it appearing`);
        }
        // The reason, as an operator asks for it: POST /admin/reload lists what it refused and why.
        const reload = await request(base, { method: 'POST', path: '/admin/reload', headers: auth, timeoutMs: 15_000 });
        const refused = json<{ refused: { version: number; reason: string }[] }>(reload)?.refused.find((x) => x.version === version);
        if (refused && /\b(manifest\.json|[a-z_]+\.(npy|json|onnx|hnsw))\b/.test(refused.reason)) named.set(r, (named.get(r) ?? 0) + 1);
        else problem(r, `version ${version} (${c.name}): /admin/reload ${refused ? `gave the reason "${refused.reason}", which names no file` : `did not list it as refused: ${reload.kind === 'answered' ? reload.body.slice(0, 300) : reload.kind}`}`);
        version++;
        await sleep(100); // traffic on the old version after the refusal
      }
    }
  } finally {
    current = null;
    stop = true;
    await within(load, 10_000, null);
    res.dropAgent(agent);
    await killAndWait(s.child, 'SIGTERM', 15_000);
  }
  for (const r of rows) {
    r.details = { refused: `${refusals.get(r) ?? 0}/${r.trials}`, 'reason-names-file': `${named.get(r) ?? 0}/${r.trials}`, 'requests-meanwhile': served.get(r) ?? 0 };
  }
  return rows;
}
