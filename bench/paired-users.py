"""Two students compared user by user on the validation and test splits.

usage: python3 bench/paired-users.py DUMP_A DUMP_B [--data ../shared/data/tiktok] [--yardstick ../shared/yardstick]
DUMP_*: folders written by `npx promptmm dump --name N --out DIR` (user_ and item_embeddings.npy).

For each user of a split: the rank of their held-out item among all items (items of earlier
splits masked, as `promptmm eval` and the yardstick's evaluator do), hit@20 and NDCG@20.
Prints both students' means and the mean paired difference a − b with its standard error:
with one held-out item per user (Tiktok), this says whether a gap between two settings is
larger than what the split itself can resolve. Assumes one held-out item per user per split.
"""
import argparse, os, sys
import numpy as np

p = argparse.ArgumentParser()
p.add_argument('a'); p.add_argument('b')
p.add_argument('--data', default='../shared/data/tiktok')
p.add_argument('--yardstick', default='../shared/yardstick')
a = p.parse_args()
sys.path.insert(0, os.path.abspath(a.yardstick))
from mmrec_data import load  # the yardstick's reader of the MMRec layout

d = load(a.data)
u, i, x = d['u'], d['i'], d['x']


def per_user(dump, split, exclude, k=20):
    U = np.load(os.path.join(dump, 'user_embeddings.npy'))
    I = np.load(os.path.join(dump, 'item_embeddings.npy'))
    users, target = u[x == split], i[x == split]
    if len(np.unique(users)) != len(users):
        sys.exit(f'split {split}: a user has more than one held-out item; this script assumes one')
    row = {uu: r for r, uu in enumerate(users)}
    s = U[users] @ I.T
    seen = np.isin(u, users) & np.isin(x, exclude)
    s[np.array([row[uu] for uu in u[seen]], dtype=np.int64), i[seen]] = -np.inf
    rank = (s > s[np.arange(len(users)), target][:, None]).sum(1)  # 0-based rank of the held-out item
    return (rank < k).astype(float), np.where(rank < k, 1 / np.log2(rank + 2), 0.0)


for name, split, exclude in [('val', 1, (0,)), ('test', 2, (0, 1))]:
    ha, na = per_user(a.a, split, exclude)
    hb, nb = per_user(a.b, split, exclude)
    n = len(ha)
    dh, dn = ha - hb, na - nb
    se = lambda v: v.std(ddof=1) / np.sqrt(n)
    print(f'{name} ({n} users): R@20 {ha.mean():.4f} vs {hb.mean():.4f}, diff {dh.mean():+.4f} ± {se(dh):.4f} '
          f'(users scored differently {np.mean(dh != 0):.3f}); N@20 {na.mean():.4f} vs {nb.mean():.4f}, diff {dn.mean():+.4f} ± {se(dn):.4f}')
