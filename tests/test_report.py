"""Report: run collection, Table 2 layout, CSV, figures and the CLI on fake run folders."""
import csv
import io
import json
import subprocess
import sys

import pytest

from dualref.report import classify, collect_runs, results_csv, results_table
from dualref.report.__main__ import build_parser, main
from dualref.report.table import BASELINE, BOTH, DIRECT, IMSP, LR, NEITHER
from dualref.utils.errors import UserError


def _eval(mAP, r1, r5, r10):
    """An EVAL record as the evaluator writes it."""
    return {"mAP": mAP, "cmc": {"1": r1, "5": r5, "10": r10}, "rank1": r1, "rank5": r5,
            "rank10": r10, "rerank": False, "num_query": 10, "num_gallery": 50, "extra": {}}


def _write(folder, name, obj):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(obj))


def _metrics(folder, records):
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def make_pretrain(folder, source="dukemtmc", target="market1501",
                  scores=(0.286, 0.58, 0.737, 0.798)):
    config = {"dataset_source": source, "dataset_target": target, "milestones": [40, 70],
              "warmup_step": 10}
    _write(folder, "options.json", config)
    _write(folder, "results.json", {"config": config, "best_source_mAP": 0.7,
                                    "direct_transfer": _eval(*scores)})
    _metrics(folder, [{"stage": "pretrain", "epoch": 0, "loss": 3.0},
                      {"stage": "pretrain", "epoch": 1, "target": _eval(*scores)}])
    return folder


def make_adapt(folder, alpha, mu, scores, norm=True, source="dukemtmc", target="market1501",
               epochs=3, refined=True):
    config = {"dataset_source": source, "dataset_target": target, "alpha": alpha, "mu": mu,
              "norm_features": norm, "epochs_decay": 20 if norm else None}
    _write(folder, "options.json", config)
    _write(folder, "results.json", {"config": config, "best_mAP": scores[0],
                                    "best": _eval(*scores)})
    records = []
    for epoch in range(epochs):
        record = {"stage": "adapt", "epoch": epoch, "num_clusters": 5, "dbscan_precision": 0.5,
                  "dbscan_recall": 0.4 + 0.1 * epoch, "dbscan_fscore": 0.45,
                  "target": _eval(0.2 * (epoch + 1), 0.5, 0.6, 0.7)}
        if refined:
            record.update(refined_precision=0.6, refined_recall=0.5, refined_fscore=0.55)
        records.append(record)
    _metrics(folder, records)
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    """Direct transfer and the four adaptation variants, Duke->Market, given out of order."""
    return [
        str(make_adapt(tmp_path / "dual", 0.5, 0.1, (0.78, 0.909, 0.964, 0.977))),
        str(make_pretrain(tmp_path / "pre")),
        str(make_adapt(tmp_path / "imsp", 0.0, 0.1, (0.755, 0.89, 0.958, 0.975))),
        str(make_adapt(tmp_path / "base", 0.0, 0.0, (0.679, 0.857, 0.943, 0.963), norm=False,
                       refined=False)),
        str(make_adapt(tmp_path / "lr", 0.5, 0.0, (0.744, 0.887, 0.951, 0.971))),
    ]


def test_classify_variants():
    assert classify({"milestones": [40]}) == DIRECT
    assert classify({"alpha": 0.5, "mu": 0.1, "norm_features": False}) == BASELINE
    baseline_config = {"alpha": 0.0, "mu": 0.0, "norm_features": False, "epochs_decay": None}
    assert classify(baseline_config) == BASELINE
    assert classify({}) == BASELINE  # baseline options.json: no alpha, mu or epochs_decay
    assert classify({"alpha": 0.5, "mu": 0.0, "epochs_decay": 20}) == LR
    assert classify({"alpha": 0.0, "mu": 0.1, "epochs_decay": 20}) == IMSP
    assert classify({"alpha": 0.5, "mu": 0.1, "norm_features": True}) == BOTH
    assert classify({"alpha": 0.0, "mu": 0.0, "epochs_decay": 20}) == NEITHER


def test_table_rows_in_paper_order_with_exact_cells(runs_dir):
    table = results_table(collect_runs(runs_dir), title="Ablation")
    lines = table.splitlines()
    assert lines[0] == "**Ablation**"
    assert lines[2:9] == [
        "| method | Duke->Market |",
        "|---|---|",
        "| direct transfer | 28.6 / 58.0 / 73.7 / 79.8 |",
        "| baseline | 67.9 / 85.7 / 94.3 / 96.3 |",
        "| + LR only | 74.4 / 88.7 / 95.1 / 97.1 |",
        "| + IM-SP only | 75.5 / 89.0 / 95.8 / 97.5 |",
        "| + LR + IM-SP | 78.0 / 90.9 / 96.4 / 97.7 |",
    ]


def test_two_tasks_forced_label_and_missing_cell(tmp_path):
    runs = collect_runs([
        make_adapt(tmp_path / "a", 0.5, 0.1, (0.78, 0.909, 0.964, 0.977)),
        make_adapt(tmp_path / "b", 0.5, 0.1, (0.677, 0.821, 0.901, 0.925), source="market1501",
                   target="dukemtmc"),
        f"mine={make_pretrain(tmp_path / 'p', source='market1501', target='dukemtmc')}",
    ])
    lines = results_table(runs).splitlines()
    assert lines[:4] == ["| method | Duke->Market | Market->Duke |", "|---|---|---|",
                         "| + LR + IM-SP | 78.0 / 90.9 / 96.4 / 97.7 | 67.7 / 82.1 / 90.1 / 92.5 |",
                         "| mine | - | 28.6 / 58.0 / 73.7 / 79.8 |"]


def test_duplicate_variant_gets_dir_name(tmp_path):
    runs = collect_runs([make_adapt(tmp_path / "seed1", 0.5, 0.1, (0.5, 0.6, 0.7, 0.8)),
                         make_adapt(tmp_path / "seed2", 0.5, 0.1, (0.4, 0.6, 0.7, 0.8))])
    assert [r.label for r in runs] == [BOTH, f"{BOTH} (seed2)"]


def test_unfinished_run_uses_best_epoch(tmp_path):
    folder = make_adapt(tmp_path / "run", 0.5, 0.0, (0.9, 0.9, 0.9, 0.9))
    (folder / "results.json").unlink()
    (run,) = collect_runs([folder])
    assert run.label == LR and run.result["mAP"] == pytest.approx(0.6)  # epoch 2 of 3


def test_csv_long_form(runs_dir):
    rows = list(csv.DictReader(io.StringIO(results_csv(collect_runs(runs_dir)))))
    assert [r["method"] for r in rows] == [DIRECT, BASELINE, LR, IMSP, BOTH]
    assert rows[-1]["task"] == "Duke->Market"
    assert (rows[-1]["mAP"], rows[-1]["R1"], rows[-1]["R5"], rows[-1]["R10"]) == (
        "78.0", "90.9", "96.4", "97.7")
    assert rows[-1]["logs_dir"].endswith("dual")


def test_missing_or_empty_dir_is_user_error(tmp_path):
    with pytest.raises(UserError, match="no such logs directory"):
        collect_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results.json"):
        collect_runs([tmp_path / "empty"])


def test_plots_are_readable_pngs(runs_dir, tmp_path):
    Image = pytest.importorskip("PIL.Image")
    pytest.importorskip("matplotlib")
    from dualref.report.plots import plot_label_quality, plot_map_curves, quality_curve

    runs = collect_runs(runs_dir)
    plot_map_curves(runs, tmp_path / "figs" / "map.png")
    plot_label_quality(runs[0], tmp_path / "figs" / "quality.png")
    for name, min_width in (("map.png", 400), ("quality.png", 900)):
        with Image.open(tmp_path / "figs" / name) as img:
            assert img.format == "PNG" and img.width >= min_width and img.height >= 300
    assert quality_curve(runs[0], "dbscan", "recall") == ([0, 1, 2], pytest.approx([40, 50, 60]))
    assert quality_curve(runs[3], "refined", "fscore") == ([], [])  # baseline: no refinement


def test_cli_end_to_end(runs_dir, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figs"
    table = main(build_parser().parse_args([*runs_dir, "--out", str(out), "--title", "T2"]))
    assert "| + LR + IM-SP | 78.0 / 90.9 / 96.4 / 97.7 |" in capsys.readouterr().out
    assert (out / "results_table.md").read_text() == table
    assert (out / "results_table.csv").read_text().startswith("method,task,mAP,R1,R5,R10")
    for name in ("map_curves.png", "label_quality.png"):
        assert (out / name).stat().st_size > 1000


def test_cli_missing_dir_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dualref.report", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "figs")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no such logs directory" in proc.stderr
    assert not (tmp_path / "figs").exists()
