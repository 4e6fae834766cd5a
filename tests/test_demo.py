"""The quick start's demo, shortened: every step runs and writes the table and every figure.

That adaptation beats direct transfer is asserted on the tests' own tiny data in
test_pipeline_adapt.py and measured at the demo's full length by
benchmarks/calibration.py (README, "Results on the synthetic data")."""
import json
import os
import subprocess

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ["direct transfer", "baseline", "+ LR only", "+ IM-SP only", "+ LR + IM-SP"]


def test_short_demo_produces_the_table_and_every_figure(synthetic_root, tmp_path):
    # Every step of the demo on the tests' small synthetic data (24 identities, so rho
    # from the auto rule), a few iterations each (about a minute on 2 cores): the full
    # length is the calibration benchmark's job.
    env = dict(os.environ, DATA=synthetic_root, LOGS=str(tmp_path / "logs"),
               FIGS=str(tmp_path / "figs"),
               ADAPT_OPTS="--epochs 1 --iters 5 --rho auto --images-per-id 8",
               PRETRAIN_OPTS="--epochs 6 --iters 8 --milestones 4 --eval-step 6")
    proc = subprocess.run(["sh", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figs = tmp_path / "figs"
    table = (figs / "results_table.md").read_text()
    for row in ROWS:
        assert f"| {row} |" in table and f"| {row} |" in proc.stdout
    assert (figs / "results_table.csv").stat().st_size > 0
    for name in ("map_curves.png", "label_quality.png", "ranked_lists_direct_transfer.png",
                 "ranked_lists_dual_refinement.png"):
        with Image.open(figs / name) as picture:
            assert picture.width > 200 and picture.height > 100, name
    direct = json.loads((tmp_path / "logs" / "pretrain" / "results.json").read_text())
    assert 0 < direct["direct_transfer"]["mAP"] <= 1
    for run in ("baseline", "lr_only", "imsp_only", "dual"):
        adapted = json.loads((tmp_path / "logs" / run / "results.json").read_text())
        assert 0 < adapted["best_mAP"] <= 1, run
        record = json.loads((tmp_path / "logs" / run / "metrics.jsonl").read_text().splitlines()[-1])
        assert record["num_clusters"] >= 2 and record["eps"] > 0, run
