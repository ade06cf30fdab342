"""Replays early-stopping rules on the per-evaluation log of a training run (issue 24).

usage: python3 bench/plateau-replay.py LOG.jsonl [LOG.jsonl ...] [--patience 4,5,6,8,10] [--decline 3:1,4:1]

LOG: the JSON-lines log of `promptmm train` (stderr, level info). The training does not depend on
the stopping rule until it stops, so one run's evaluations (with its plateau verdicts: `progress`,
`stale`, the paired `gain` and `se` against the last progress) give every shorter rule's outcome:
the epoch it would stop at, the best epoch it would keep and that epoch's validation figures.
Rules: `patience P` (the loop's: stop after P evaluations in a row without progress); `decline M:Z`
(patience as given, and also stop once M evaluations in a row made no progress and the last is
more than Z standard errors *below* the reference). A rule that keeps the run's own best epoch
gives the same model; one that stops earlier than the best keeps an earlier, worse one.
"""
import argparse, json, sys

p = argparse.ArgumentParser()
p.add_argument('logs', nargs='+')
p.add_argument('--patience', default='3,4,5,6,7,8,10')
p.add_argument('--decline', default='')
p.add_argument('--metric', default='recall@20')
a = p.parse_args()


def stages(path):
    """The evaluations of each stage of one log, in order: [(label, [record, ...])]."""
    out = []  # (label, records, from the worker thread)
    for line in open(path):
        if not line.startswith('{'):
            continue
        r = json.loads(line)
        m = r.get('msg', '')
        worker = r.get('thread') == 'plain'
        if m.startswith('training the'):
            out.append((m[len('training the '):] + (' (worker thread)' if worker else ''), [], worker))
        elif m.endswith(' epoch') and 'val' in r:
            # the guard's plain student logs from its worker thread beside the teacher: each record to its own stage
            tgt = next((s for s in reversed(out) if s[2] == worker), None)
            if tgt:
                tgt[1].append(r)
    return [(s[0], s[1]) for s in out if s[1]]


def replay(evals, stop):
    """(stop epoch, best epoch, best val figures) of a rule stop(record) -> bool."""
    best = None
    for r in evals:
        if best is None or r['val'][a.metric] > best['val'][a.metric]:
            best = r
        if stop(r):
            return r['epoch'], best
    return evals[-1]['epoch'], best


rules = [(f'patience {q}', (lambda q: lambda r: r['stale'] >= q)(int(q)), int(q)) for q in a.patience.split(',') if q]
for spec in [s for s in a.decline.split(',') if s]:
    m, z = spec.split(':')
    for q in a.patience.split(','):
        rules.append((f'patience {q} + decline {m}:{z}', (lambda q, m, z: lambda r: r['stale'] >= q or (r['stale'] >= m and r['gain'] < -z * r['se']))(int(q), int(m), float(z)), int(q)))

for path in a.logs:
    for label, evals in stages(path):
        last, best = evals[-1]['epoch'], max(evals, key=lambda r: (r['val'][a.metric], -r['epoch']))
        print(f'\n{path}: {label}: ran to {last}, best {best["epoch"]} (val {a.metric} {best["val"][a.metric]:.4f}, ndcg@20 {best["val"]["ndcg@20"]:.4f}); logged stale at the end {evals[-1]["stale"]}')
        for name, rule, _ in rules:
            stop, b = replay(evals, rule)
            same = 'same best' if b['epoch'] == best['epoch'] else f'OTHER best (val {b["val"][a.metric]:.4f}, {b["val"][a.metric] - best["val"][a.metric]:+.4f})'
            print(f'  {name:32s} stops at {stop:4d} (saves {last - stop:3d} epochs), best {b["epoch"]:4d}: {same}')
