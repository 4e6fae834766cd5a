"""Time eps-from-rho, DBSCAN and label refinement on Market-sized data (CPU).

Features: N synthetic identities of ~17 images, 2048-d (Gaussian around one
centre per id). Distances: by default a synthetic sparse matrix in the
Jaccard convention with ~12% of pairs stored (same-id pairs nearer than
random pairs, omitted pairs at 1), built without timing it; ``--dist
jaccard`` uses ``dualref.clustering.jaccard.compute_jaccard_dist`` instead
(slow on CPU: its own cost is reported but not part of the total).

    python benchmarks/cluster_steps.py --out cluster_steps.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import scipy.sparse as sp

from dualref.clustering.dbscan import cluster_dbscan, count_clusters, eps_from_rho
from dualref.clustering.quality import cluster_quality
from dualref.clustering.refine import refine_labels


def synthetic_features(rng: np.random.Generator, n: int, per_id: int, dim: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(unit features float32, true ids) with ~per_id images per identity."""
    ids = np.sort(rng.integers(0, n // per_id, size=n))
    centres = rng.standard_normal((n // per_id, dim), dtype=np.float32)
    x = centres[ids] + 0.8 * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), ids


def synthetic_jaccard(rng: np.random.Generator, ids: np.ndarray, density: float) -> sp.csr_matrix:
    """Symmetric sparse distances: same-id pairs in [0.2, 0.8), random pairs in [0.6, 1)."""
    n = ids.size
    draws = int(density * n * n / 2)
    i, j = rng.integers(0, n, size=draws), rng.integers(0, n, size=draws)
    i, j = np.minimum(i, j), np.maximum(i, j)
    key = np.unique(i[i < j].astype(np.int64) * n + j[i < j])
    i, j = key // n, key % n
    cross = ids[i] != ids[j]
    i, j = i[cross], j[cross]
    d = rng.uniform(0.6, 1.0, size=i.size).astype(np.float32)
    # every same-id pair is stored, nearer on average
    starts = np.searchsorted(ids, np.unique(ids))
    ends = np.append(starts[1:], n)
    si, sj = [], []
    for a, b in zip(starts, ends):
        u, v = np.triu_indices(b - a, 1)
        si.append(u + a)
        sj.append(v + a)
    si, sj = np.concatenate(si), np.concatenate(sj)
    sd = rng.uniform(0.2, 0.8, size=si.size).astype(np.float32)
    rows = np.concatenate([i, j, si, sj, np.arange(n)])
    cols = np.concatenate([j, i, sj, si, np.arange(n)])
    data = np.concatenate([d, d, sd, sd, np.zeros(n, np.float32)])
    return sp.csr_matrix((data, (rows, cols)), shape=(n, n))


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def main() -> None:
    """Run the benchmark and print (and optionally save) a JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=12936)
    ap.add_argument("--per-id", type=int, default=17)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--density", type=float, default=0.12)
    ap.add_argument("--rho", type=float, default=1.6e-3)
    ap.add_argument("--R", type=int, nargs="+", default=[5, 2])
    ap.add_argument("--n-jobs", type=int, nargs="+", default=[1],
                    help="refinement worker counts to time (-1 = all cores)")
    ap.add_argument("--dist", choices=["synthetic", "jaccard"], default="synthetic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the JSON report here")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    feats, ids = synthetic_features(rng, args.num, args.per_id, args.dim)
    report = {"num": args.num, "dim": args.dim, "dist": args.dist, "host": platform.node()}
    if args.dist == "jaccard":
        from dualref.clustering.jaccard import compute_jaccard_dist
        dist, report["jaccard_s"] = timed(compute_jaccard_dist, feats)
    else:
        dist = synthetic_jaccard(rng, ids, args.density)
    report["stored_fraction"] = dist.nnz / args.num ** 2

    eps, report["eps_s"] = timed(eps_from_rho, dist, args.rho)
    labels, report["dbscan_s"] = timed(cluster_dbscan, dist, eps)
    report["eps"] = eps
    report["num_clusters"], report["num_outliers"] = count_clusters(labels)
    report["dbscan_fscore"] = cluster_quality(labels, ids)["fscore"]
    report["refine"] = []
    for R in args.R:
        for n_jobs in args.n_jobs:
            refined, secs = timed(refine_labels, feats, labels, R, n_jobs=n_jobs)
            report["refine"].append({"R": R, "n_jobs": n_jobs, "seconds": secs,
                                     "fscore": cluster_quality(refined, ids)["fscore"]})
            report[f"total_R{R}_jobs{n_jobs}_s"] = report["eps_s"] + report["dbscan_s"] + secs
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
