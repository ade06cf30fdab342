"""Two students compared user by user on the validation and test splits.

usage: python3 bench/paired-users.py DUMP_A DUMP_B [--data ../shared/data/tiktok] [--yardstick ../shared/yardstick] [--k 20]
DUMP_*: folders written by `npx promptmm dump --name N --out DIR` (user_ and item_embeddings.npy).

For each user with at least one held-out item in a split: all items ranked (items of earlier
splits masked, as `promptmm eval` and the yardstick's evaluator do; ties: lower item first),
then that user's Recall@K (held-out items in the top K / held-out items) and NDCG@K (DCG over
the top K / the ideal DCG of min(held-out, K) hits), for any number of held-out items per user.
Prints both students' means (the same figures as `promptmm eval`) and the mean of the paired
per-user differences a − b with its standard error: whether a gap between two settings is
larger than what the split itself can resolve.
"""
import argparse, os, sys
import numpy as np

p = argparse.ArgumentParser()
p.add_argument('a'); p.add_argument('b')
p.add_argument('--data', default='../shared/data/tiktok')
p.add_argument('--yardstick', default='../shared/yardstick')
p.add_argument('--k', type=int, default=20)
a = p.parse_args()
sys.path.insert(0, os.path.abspath(a.yardstick))
from mmrec_data import load  # the yardstick's reader of the MMRec layout

d = load(a.data)
u, i, x = d['u'], d['i'], d['x']
BLOCK = 1024  # users scored at once


def held_out(split, exclude):
    """Users with a held-out item in `split` (sorted), their held-out items and their masked items, as sets."""
    truth, seen = {}, {}
    for uu, ii in zip(u[x == split], i[x == split]):
        truth.setdefault(int(uu), set()).add(int(ii))
    for s in exclude:
        for uu, ii in zip(u[x == s], i[x == s]):
            seen.setdefault(int(uu), set()).add(int(ii))
    users = np.array(sorted(truth), dtype=np.int64)
    return users, truth, seen


def per_user(dump, users, truth, seen, k):
    """Recall@k and NDCG@k of every user in `users`, in that order."""
    U = np.load(os.path.join(dump, 'user_embeddings.npy'))
    I = np.load(os.path.join(dump, 'item_embeddings.npy'))
    k = min(k, I.shape[0])
    discount = 1 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)  # ideal[m - 1]: the DCG of m hits at the top
    recall, ndcg = np.zeros(len(users)), np.zeros(len(users))
    for start in range(0, len(users), BLOCK):
        bu = users[start:start + BLOCK]
        s = U[bu] @ I.T
        for r, uu in enumerate(bu):
            if uu in seen:
                s[r, list(seen[uu])] = -np.inf
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        # best first; equal scores: the lower item first, as promptmm's top-K
        order = np.lexsort((top, -np.take_along_axis(s, top, 1)), axis=1)
        top = np.take_along_axis(top, order, 1)
        for r, uu in enumerate(bu):
            t = truth[uu]
            hits = np.fromiter((it in t for it in top[r]), dtype=bool, count=k)
            recall[start + r] = hits.sum() / len(t)
            ndcg[start + r] = discount[hits].sum() / ideal[min(len(t), k) - 1]
    return recall, ndcg


def se(v):
    return v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0


k = a.k
for name, split, exclude in [('val', 1, (0,)), ('test', 2, (0, 1))]:
    users, truth, seen = held_out(split, exclude)
    ra, na = per_user(a.a, users, truth, seen, k)
    rb, nb = per_user(a.b, users, truth, seen, k)
    n = len(users)
    dr, dn = ra - rb, na - nb
    held = np.array([len(truth[uu]) for uu in users])
    print(f'{name} ({n} users, {held.mean():.2f} held-out items per user, max {held.max()}): '
          f'R@{k} {ra.mean():.4f} vs {rb.mean():.4f}, diff {dr.mean():+.4f} ± {se(dr):.4f} '
          f'(users scored differently {np.mean(dr != 0):.3f}); N@{k} {na.mean():.4f} vs {nb.mean():.4f}, diff {dn.mean():+.4f} ± {se(dn):.4f}')
