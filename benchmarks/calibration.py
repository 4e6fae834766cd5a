"""Calibrate the synthetic benchmark: every variant of the demo, several seeds.

Runs ``scripts/demo.sh`` once per training seed (same data, same settings as
the demo: pre-training, baseline, LR only, IM-SP only, Dual-Refinement) plus
a supervised upper bound (stage 1 trained on the target's own labels with the
same schedule), then writes a table of mean +- standard deviation over seeds.

    python benchmarks/calibration.py run --seeds 1 2 3 --out logs/calibration
    python benchmarks/calibration.py table --out logs/calibration

``run`` skips a seed whose runs are complete, so it can be resumed; ``table``
writes ``calibration.json`` and ``calibration.md`` in ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VARIANTS = [("direct transfer", "pretrain"), ("baseline", "baseline"), ("+ LR only", "lr_only"),
            ("+ IM-SP only", "imsp_only"), ("+ LR + IM-SP", "dual"),
            ("supervised (target labels)", "supervised")]
# The demo's stage-1 settings (scripts/demo.sh), trained on the target instead.
SUPERVISED = ["-ds", "market1501", "-dt", "market1501", "-a", "resnet18", "--height", "64",
              "--width", "32", "-b", "32", "-j", "0", "--no-pretrained", "--lr", "1e-3",
              "--epochs", "30", "--iters", "20", "--warmup-step", "2", "--milestones", "20",
              "--eval-step", "10", "--print-freq", "100", "--quiet", "--pad", "3"]


def _score(run_dir: Path) -> float | None:
    """Target mAP of a finished run (direct transfer for stage 1, best for stage 2)."""
    path = run_dir / "results.json"
    if not path.exists():
        return None
    results = json.loads(path.read_text())
    if "direct_transfer" in results:
        return results["direct_transfer"]["mAP"]
    return results["best_mAP"]


def _last(run_dir: Path) -> float | None:
    """Target mAP of the last epoch of an adaptation run."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    scored = [json.loads(line) for line in path.read_text().splitlines()]
    scored = [r["target"]["mAP"] for r in scored if r.get("stage") == "adapt" and "target" in r]
    return scored[-1] if scored else None


def run(seeds: list[int], out: Path, data: str) -> None:
    for seed in seeds:
        logs = out / f"seed{seed}"
        env = dict(os.environ, DATA=data, LOGS=str(logs), FIGS=str(logs / "figs"))
        if _score(logs / "dual") is None:
            subprocess.run(["sh", "scripts/demo.sh", "--seed", str(seed)], cwd=REPO, env=env,
                           check=True)
        if _score(logs / "supervised") is None:
            subprocess.run([sys.executable, "examples/source_pretrain.py", *SUPERVISED,
                            "--data-dir", data, "--seed", str(seed),
                            "--logs-dir", str(logs / "supervised")], cwd=REPO, check=True)


def table(out: Path) -> dict:
    seeds = sorted(int(p.name[4:]) for p in out.glob("seed*") if p.name[4:].isdigit())
    rows = {}
    for label, name in VARIANTS:
        best = [_score(out / f"seed{s}" / name) for s in seeds]
        last = [_last(out / f"seed{s}" / name) for s in seeds]
        rows[label] = {"best": best, "last": last}
    direct = rows["direct transfer"]["best"]
    lines = ["| method | mAP best epoch (mean +- sd) | last epoch | per seed (best) |",
             "|---|---|---|---|"]
    for label, values in rows.items():
        lines.append(f"| {label} | {_fmt(values['best'])} | {_fmt(values['last'])} | "
                     + " / ".join("-" if v is None else f"{100 * v:.1f}" for v in values["best"])
                     + " |")
    adapted = [label for label, name in VARIANTS[1:5]]
    beats = {label: all(b is not None and d is not None and b > d
                        for b, d in zip(rows[label]["best"], direct)) for label in adapted}
    summary = {"seeds": seeds, "rows": rows, "every_variant_beats_direct_transfer": beats}
    (out / "calibration.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("beats direct transfer on every seed:", beats)
    return summary


def _fmt(values: list) -> str:
    values = [100 * v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} +- {statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "table"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, default=Path("logs/calibration"))
    parser.add_argument("--data", default=str(REPO / "examples" / "data"))
    args = parser.parse_args()
    if args.action == "run":
        run(args.seeds, args.out.resolve(), args.data)
    table(args.out.resolve())


if __name__ == "__main__":
    main()
