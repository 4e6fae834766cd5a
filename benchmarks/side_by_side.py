"""Side-by-side runs of the adaptation variants, and their table (ours vs the original).

Run our variants over seeds from one pre-trained checkpoint (sequential, one
process at a time):

    python benchmarks/side_by_side.py run --out runs/ours --seeds 1 2 3 -- \\
        -ds dukemtmc -dt market1501 -a resnet18 --height 64 --width 32 -b 32 -j 0 \\
        --data-dir DATA --init PRETRAIN/model_best.pth.tar --rho 5e-3 --epochs 8 --iters 40

Summarise (our run folders hold ``metrics.jsonl``; the original's folders
hold its ``log.txt``, with the per-epoch lines its drivers print):

    python benchmarks/side_by_side.py table --ours runs/ours --original runs/orig \\
        --json side_by_side.json

Folder names are ``<variant>_s<seed>``; variants: ``base``, ``dual``,
``lr``, ``imsp``, ``neither``, optionally with a suffix (``dual_bn0``).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VARIANTS = {  # driver and options of each Table 2 row
    "base": ("baseline_train.py", []),
    "lr": ("dual_refine_train.py", ["--mu", "0"]),
    "imsp": ("dual_refine_train.py", ["--alpha", "0"]),
    "dual": ("dual_refine_train.py", []),
    "neither": ("dual_refine_train.py", ["--alpha", "0", "--mu", "0"]),
}


def run(args: argparse.Namespace) -> None:
    for variant in args.variants:
        driver, extra = VARIANTS[variant]
        for seed in args.seeds:
            logs = os.path.join(args.out, f"{variant}{args.suffix}_s{seed}")
            if os.path.exists(os.path.join(logs, "results.json")):
                continue
            cmd = [sys.executable, os.path.join(ROOT, "examples", driver), *args.common,
                   *extra, "--seed", str(seed), "--logs-dir", logs, "--quiet"]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True)


def read_ours(folder: str) -> List[Dict]:
    rows = []
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            if r.get("stage") != "adapt":
                continue
            rows.append({"epoch": r["epoch"], "eps": r["eps"], "clusters": r["num_clusters"],
                         "outliers": r["num_outliers"], "dbscan_f": r.get("dbscan_fscore"),
                         "refined_f": r.get("refined_fscore"),
                         "mAP": 100 * r["target"]["mAP"] if r.get("target") else None,
                         **{k: r[k] for k in r if k.startswith("loss")}})
    return rows


_ORIG = {  # the lines the original's drivers print (plus the measurement copy's PATCHLOG lines)
    "clusters": re.compile(r"Clustered into (\d+) classes"),
    "outliers": re.compile(r"PATCHLOG outliers (\d+) eps ([0-9.]+)"),
    # the later measurement copy prints eps once and outliers with the clusters
    "eps": re.compile(r"PATCHLOG eps ([0-9.]+)"),
    "clusters_outliers": re.compile(r"PATCHLOG clusters \d+ outliers (\d+)"),
    "dbscan": re.compile(r"PATCHLOG dbscan P [0-9.]+ R [0-9.]+ F ([0-9.]+)"),
    "refined": re.compile(r"PATCHLOG refined P [0-9.]+ R [0-9.]+ F ([0-9.]+)"),
    "mAP": re.compile(r"Mean AP:\s+([0-9.]+)%"),  # each epoch's evaluation, then the best model's
}


def read_original(folder: str) -> List[Dict]:
    rows: List[Dict] = []
    cur: Dict = {}
    eps = None
    # its log.txt, or its console output saved next to the folder as <folder>.out
    paths = [p for p in (os.path.join(folder, "log.txt"), folder.rstrip("/") + ".out")
             if os.path.exists(p) and os.path.getsize(p) > 0]
    if not paths:
        raise OSError(f"{folder}: no log.txt or .out file")
    with open(paths[0]) as f:
        for line in f:
            if m := _ORIG["eps"].search(line):
                eps = float(m.group(1))
            elif m := _ORIG["clusters_outliers"].search(line):  # printed before "Clustered into"
                cur = {"epoch": len(rows), "eps": eps, "outliers": int(m.group(1))}
            elif m := _ORIG["clusters"].search(line):
                if not cur or "clusters" in cur or "mAP" in cur:  # the earlier copy: a new epoch
                    cur = {"epoch": len(rows), "eps": eps}
                cur["clusters"] = int(m.group(1))
            elif m := _ORIG["outliers"].search(line):
                cur.update(outliers=int(m.group(1)), eps=float(m.group(2)))
            elif m := _ORIG["dbscan"].search(line):
                cur["dbscan_f"] = float(m.group(1))
            elif m := _ORIG["refined"].search(line):
                cur["refined_f"] = float(m.group(1))
            elif (m := _ORIG["mAP"].search(line)) and cur and "mAP" not in cur:
                cur["mAP"] = float(m.group(1))
                rows.append(cur)
    return rows


def _spread(values: List[float]) -> str:
    if not values:
        return "-"
    mean = statistics.mean(values)
    half = (max(values) - min(values)) / 2
    return f"{mean:.1f} +- {half:.1f}" if len(values) > 1 else f"{mean:.1f}"


def summarise(folder: Optional[str], reader) -> Dict[str, Dict]:
    groups: Dict[str, List[List[Dict]]] = {}
    if not folder or not os.path.isdir(folder):
        return {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        m = re.fullmatch(r"(.+)_s(\d+)", name)
        if not (m and os.path.isdir(path)):
            continue
        try:
            rows = reader(path)
        except (OSError, KeyError, ValueError):
            continue
        if rows and all(r.get("mAP") is not None for r in rows):
            groups.setdefault(m.group(1), []).append(rows)
    out = {}
    for variant, runs in groups.items():
        epochs = max(len(r) for r in runs)
        runs = [r for r in runs if len(r) == epochs]  # runs still in progress are left out
        out[variant] = {
            "seeds": len(runs),
            "best": _spread([max(r["mAP"] for r in rows) for rows in runs]),
            "last": _spread([rows[-1]["mAP"] for rows in runs]),
            "per_epoch_mAP": [_spread([rows[e]["mAP"] for rows in runs]) for e in range(epochs)],
            "eps": _spread([rows[0]["eps"] * 1000 for rows in runs]) + " e-3",
            "clusters_first_last": f"{statistics.mean(r[0]['clusters'] for r in runs):.0f} -> "
                                   f"{statistics.mean(r[epochs - 1]['clusters'] for r in runs):.0f}",
            "outliers_first_last": f"{statistics.mean(r[0]['outliers'] for r in runs):.0f} -> "
                                   f"{statistics.mean(r[epochs - 1]['outliers'] for r in runs):.0f}",
            "dbscan_f_first_last": f"{statistics.mean(r[0]['dbscan_f'] for r in runs):.2f} -> "
                                   f"{statistics.mean(r[epochs - 1]['dbscan_f'] for r in runs):.2f}",
            "runs": runs,
        }
    return out


def table(args: argparse.Namespace) -> None:
    sides = {"ours": summarise(args.ours, read_ours),
             "original": summarise(args.original, read_original)}
    print("| variant | side | seeds | best mAP | last mAP | mAP per epoch | eps | clusters | outliers | DBSCAN F |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant in sorted({v for side in sides.values() for v in side}):
        for side, results in sides.items():
            if variant in results:
                r = results[variant]
                print(f"| {variant} | {side} | {r['seeds']} | {r['best']} | {r['last']} | "
                      f"{', '.join(x.split(' +-')[0] for x in r['per_epoch_mAP'])} | {r['eps']} | "
                      f"{r['clusters_first_last']} | {r['outliers_first_last']} | "
                      f"{r['dbscan_f_first_last']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(sides, f, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="run our variants over seeds")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["base", "dual"])
    p.add_argument("--suffix", default="", help="appended to the variant in folder names")
    p.add_argument("common", nargs=argparse.REMAINDER, help="options for every run, after --")
    p = sub.add_parser("table", help="summarise runs (ours and the original's)")
    p.add_argument("--ours")
    p.add_argument("--original")
    p.add_argument("--json")
    args = parser.parse_args()
    if args.cmd == "run":
        args.common = [a for a in args.common if a != "--"]
        run(args)
    else:
        table(args)


if __name__ == "__main__":
    main()
