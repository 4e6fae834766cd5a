"""Time and peak memory of k-reciprocal re-ranking at Market size (3,368 query x 15,913 gallery).

Inputs are float32 squared Euclidean distances of 2048-d synthetic clustered
features (like the evaluator's), saved to a temporary folder; re_ranking runs
in a fresh subprocess so its peak RSS is its own (it includes the ~1.2 GB of
loaded inputs, reported separately as rss_before_gib).

    python benchmarks/rerank.py --out rerank.json
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dualref.evaluators.rerank import re_ranking


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Squared Euclidean distances of L2-normalised features, float32."""
    return (2 - 2 * a @ b.T).clamp_(min=0).numpy()


def measure(folder: Path) -> dict:
    """Load the saved inputs, run re_ranking once, report time and memory."""
    q_g, q_q, g_g = (np.load(folder / f"{name}.npy") for name in ("q_g", "q_q", "g_g"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    start = time.perf_counter()
    out = re_ranking(q_g, q_q, g_g)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return {"queries": q_g.shape[0], "gallery": q_g.shape[1], "seconds": round(seconds, 2),
            "peak_rss_gib": round(peak, 3), "rss_before_gib": round(before, 3),
            "output_gib": round(out.nbytes / 2 ** 30, 3), "threads": torch.get_num_threads()}


def main() -> None:
    """Build the inputs, measure re_ranking in a subprocess, print/save the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument("--out", help="write the result as JSON here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return
    gen = torch.Generator().manual_seed(0)
    n = args.queries + args.gallery
    ids = torch.randint(0, n // 17, (n,), generator=gen)
    centres = torch.randn(n // 17 + 1, 2048, generator=gen)
    x = F.normalize(centres[ids] + 3.0 * torch.randn(n, 2048, generator=gen), dim=1)
    q, g = x[:args.queries], x[args.queries:]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (a, b) in {"q_g": (q, g), "q_q": (q, q), "g_g": (g, g)}.items():
            np.save(Path(tmp) / f"{name}.npy", sq_dist(a, b))
        del x, q, g, centres
        proc = subprocess.run([sys.executable, __file__, "--measure", tmp], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    row = json.loads(proc.stdout)
    print(json.dumps(row))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(row, handle, indent=1)


if __name__ == "__main__":
    main()
