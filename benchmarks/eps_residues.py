"""How many pairs sit at rounding distance from 0, and how much eps moves with them.

For Market-like synthetic features (``make_features`` of the pseudo-label
benchmark, optionally with repeated tracklet frames), compare eps from rho
computed (a) as the reference's float32 arithmetic leaves these pairs (what
dualref computes) and (b) with every such pair at exactly 0 (what dualref
computed before). Writes JSON.

    python benchmarks/eps_residues.py --n 12936 --out benchmarks/results/eps_residues.json
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pseudo_labels import make_features  # noqa: E402

from dualref.clustering.dbscan import eps_from_rho  # noqa: E402
from dualref.clustering.jaccard import compute_jaccard_dist  # noqa: E402

RESIDUE = 1e-5  # well above float32 rounding of 1 - m/(2 - m), far below any real distance


def measure(x: torch.Tensor, rhos) -> dict:
    dist = compute_jaccard_dist(x)
    rows = np.repeat(np.arange(dist.shape[0]), np.diff(dist.indptr))
    strict = dist.indices > rows
    values = dist.data[strict]
    zeroed = dist.copy()
    zeroed.data[zeroed.data < RESIDUE] = 0.0
    out = {"n": int(x.shape[0]), "pairs_exact_zero": int((values == 0).sum()),
           "pairs_residue": int(((values > 0) & (values < RESIDUE)).sum())}
    for rho in rhos:
        new, old = eps_from_rho(dist, rho), eps_from_rho(zeroed, rho)
        out[f"eps_rho_{rho:g}"] = {"reference_rounding": new, "residues_at_zero": old,
                                   "relative_change": (old - new) / new}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[12936])
    parser.add_argument("--repeat", type=float, default=0.1,
                        help="share of images that repeat another frame exactly (tracklets)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results", "eps_residues.json"))
    args = parser.parse_args()
    results = []
    for n in args.n:
        x, _ = make_features(n)
        for repeat in sorted({0.0, args.repeat}):
            g = np.random.default_rng(0)
            y = x.clone()
            idx = g.choice(n, int(repeat * n), replace=False)
            y[idx] = y[torch.as_tensor((idx + 1) % n)]
            res = measure(y, [1.6e-3, 5e-3])
            res["repeated_frames"] = repeat
            print(json.dumps(res), flush=True)
            results.append(res)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
