"""eps from rho: dualref's sparse engine against a plain float32 transcription of the reference.

On seeded sets of tight groups (8 images a group, 400-1,000 images; many
pairs share their k-reciprocal vectors, so about a quarter of the pairs that
set eps at rho 1.6e-3 are float32 rounding residues of ~1e-7) both compute
the k-reciprocal Jaccard matrix; eps is the mean of the smallest rho-fraction
of the non-zero upper-triangle entries. The transcription is the one the
tests use (``tests/test_clustering_jaccard.py``: dense torch, per-row loops,
the reference's expressions). Also given: the reference's own eps when the
same images are listed in another order, which is how far the residues can
move it. Writes JSON.

    python benchmarks/eps_reference.py --out benchmarks/results/eps_reference.json
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from test_clustering_jaccard import (dense_with_ones, reference_arithmetic_jaccard, reference_eps,  # noqa: E402
                                    tight_groups)

from dualref.clustering.dbscan import eps_from_rho  # noqa: E402
from dualref.clustering.jaccard import compute_jaccard_dist  # noqa: E402

RHOS = (1.6e-3, 5e-3, 0.04)


def upper(dense: np.ndarray) -> np.ndarray:
    return dense[np.triu_indices(len(dense), 1)]


def measure(n: int, seed: int, orders: int) -> dict:
    x = torch.nn.functional.normalize(torch.as_tensor(tight_groups(seed, n=n)), dim=1)  # as the model gives them
    t0 = time.perf_counter()
    ref = reference_arithmetic_jaccard(x, normalise=False)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = compute_jaccard_dist(x)
    t_ours = time.perf_counter() - t0
    r, o = upper(ref), upper(dense_with_ones(ours))
    out = {"n": n, "seed": seed, "pairs_differing": int((r != o).sum()),
           "pairs_exact_zero": int((r == 0).sum()), "pairs_residue": int(((r > 0) & (r < 1e-5)).sum()),
           "seconds_reference": round(t_ref, 2), "seconds_dualref": round(t_ours, 3)}
    for rho in RHOS:
        want, got = reference_eps(ref, rho), eps_from_rho(ours, rho)
        out[f"eps_rho_{rho:g}"] = {"reference": want, "dualref": got, "relative": (got - want) / want}
    reordered = []
    for s in range(1, orders + 1):
        p = torch.as_tensor(np.random.default_rng(s).permutation(n))
        reordered.append(reference_eps(reference_arithmetic_jaccard(x[p], normalise=False), RHOS[0]))
    if reordered:
        base = out[f"eps_rho_{RHOS[0]:g}"]["reference"]
        out["reference_eps_rho_0.0016_reordered"] = {"min": min(reordered) / base, "max": max(reordered) / base}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[400, 600, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--orders", type=int, default=2, help="other image orders for the reference's own spread")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "eps_reference.json"))
    args = parser.parse_args()
    results = []
    for n in args.n:
        for seed in args.seeds:
            res = measure(n, seed, args.orders)
            print(json.dumps(res), flush=True)
            results.append(res)
    worst = max(abs(r[f"eps_rho_{rho:g}"]["relative"]) for r in results for rho in RHOS)
    summary = {"sets": len(results), "worst_relative_eps_difference": worst,
               "pairs_differing": sum(r["pairs_differing"] for r in results)}
    print(json.dumps(summary))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
