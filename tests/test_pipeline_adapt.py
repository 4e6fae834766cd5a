"""Stage 2 end to end on synthetic data: records, checkpoints, resume, degenerate epochs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import IMAGE_OPTS
from dualref import models
from dualref.datasets.loaders import build_train_loader
from dualref.pipeline.adapt import AdaptConfig, adapt
from dualref.clustering import cluster_centers
from dualref.pipeline.test import test_checkpoint as evaluate_checkpoint
from dualref.utils.checkpoint import load_checkpoint


# The baseline driver's settings (no LR, no IM-SP, pooled feature, constant lr).
BASELINE = dict(alpha=0.0, mu=0.0, norm_features=False, epochs_decay=None)


def _config(root, logs_dir, init, **overrides):
    cfg = dict(dataset_source="dukemtmc", dataset_target="market1501", data_dir=root,
               logs_dir=str(logs_dir), init=init, arch="resnet18", batch_size=16,
               num_instances=4, workers=0, epochs=2, iters=3, epochs_decay=1, rho=0.02, R=2,
               device="cpu", verbose=False, print_freq=1000, **IMAGE_OPTS)
    cfg.update(overrides)
    return AdaptConfig(**cfg)


def _records(logs_dir):
    return [json.loads(line) for line in open(logs_dir / "metrics.jsonl")]


def test_dual_refinement_records_every_stage(synthetic_root, init_checkpoint, tmp_path):
    results = adapt(_config(synthetic_root, tmp_path, init_checkpoint))
    records = _records(tmp_path)
    assert [r["epoch"] for r in records] == [0, 1]
    for r in records:
        assert r["num_clusters"] >= 2 and r["num_outliers"] >= 0
        for key in ("dbscan_precision", "dbscan_recall", "dbscan_fscore", "refined_fscore",
                    "loss_ce", "loss_tri", "loss_ce_refined", "loss_tri_refined",
                    "loss_spread", "seconds_jaccard", "seconds_train", "seconds_features"):
            assert np.isfinite(r[key]), key
        assert 0 <= r["target"]["mAP"] <= 1 and "rank10" in r["target"]
    assert records[0]["eps"] == records[1]["eps"]  # fixed at the first epoch
    assert [r["lr"] for r in records] == pytest.approx([3.5e-4, 3.5e-5])
    state = load_checkpoint(tmp_path / "checkpoint.pth.tar")
    assert state["epoch"] == 2 and state["clusterer"]["eps"] == records[0]["eps"]
    assert state["memory"].shape == (len(load_rows(synthetic_root)), 512)
    assert results["best_mAP"] == max(r["target"]["mAP"] for r in records)
    # model_best.pth.tar is what scripts/test.sh evaluates
    again = evaluate_checkpoint(str(tmp_path / "model_best.pth.tar"), "market1501",
                                synthetic_root, arch="resnet18", batch_size=64, workers=0,
                                device="cpu", verbose=False, **IMAGE_OPTS)
    assert again.mAP == pytest.approx(results["best_mAP"], abs=1e-6)


def load_rows(root):
    from dualref.pipeline.common import load_dataset
    return load_dataset("market1501", root, verbose=False).train


def test_baseline_has_no_refined_or_spread_terms(synthetic_root, init_checkpoint, tmp_path):
    adapt(_config(synthetic_root, tmp_path, init_checkpoint, epochs=1, **BASELINE))
    (record,) = _records(tmp_path)
    assert "loss_spread" not in record and "loss_ce_refined" not in record
    assert "refined_fscore" not in record and record["lr"] == 3.5e-4
    assert "memory" not in load_checkpoint(tmp_path / "checkpoint.pth.tar")


def test_resume_after_an_interrupted_run_matches(synthetic_root, init_checkpoint, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    adapt(_config(synthetic_root, straight, init_checkpoint))
    adapt(_config(synthetic_root, split, init_checkpoint, epochs=1))
    adapt(_config(synthetic_root, split, init_checkpoint, resume="auto"))
    a = load_checkpoint(straight / "checkpoint.pth.tar")
    b = load_checkpoint(split / "checkpoint.pth.tar")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert torch.equal(a["memory"], b["memory"])
    assert _records(straight)[-1]["target"] == _records(split)[-1]["target"]


def test_degenerate_clustering_skips_training(synthetic_root, init_checkpoint, tmp_path):
    adapt(_config(synthetic_root, tmp_path, init_checkpoint, rho=1e-6, epochs=1,
                  min_samples=50))
    (record,) = _records(tmp_path)
    assert record["num_clusters"] < 2 and record["skipped_training"] is True
    assert "target" in record


def test_classifier_rows_are_the_normalised_centres():
    torch.manual_seed(0)
    features = torch.randn(10, 512)
    labels = np.array([0, 1, -1, 0, 2, 1, -1, 2, 2, 0])
    centres = cluster_centers(features, labels, 3)
    for c in range(3):
        assert torch.allclose(centres[c], features[torch.from_numpy(labels == c)].mean(0))
    model = models.create("resnet18", pretrained=False, num_classes=10)
    before = model.classifier.weight.detach().clone()
    model.reset_classifier(centres)
    assert torch.allclose(model.classifier.weight[:3], F.normalize(centres, dim=1))
    assert torch.equal(model.classifier.weight[3:], before[3:])


def test_outliers_never_reach_a_batch(tmp_path):
    from PIL import Image

    items = []
    for i in range(40):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 16), (i, 0, 0)).save(path)
        items.append((str(path), -1 if i % 3 == 0 else i % 5, i % 2))
    loader = build_train_loader(items, height=16, width=8, batch_size=8, num_instances=2,
                                workers=0, iters=20, seed=0)
    loader.new_epoch()
    seen = torch.cat([loader.next()[2] for _ in range(20)])
    assert (seen >= 0).all() and len(set(seen.tolist())) == 5


@pytest.mark.parametrize("variant", ["baseline", "dual"])
def test_one_epoch_of_adaptation_beats_direct_transfer(variant, synthetic_root, init_checkpoint,
                                                       tmp_path):
    # Hard scenes (twins, two-sided clothes, tracklets), 24 target identities. Measured
    # from this init (direct transfer 34.2 mAP), one epoch of 10 iterations: baseline
    # 39.7-49.5 over seeds 1-6, Dual-Refinement 44.2-46.2 over seeds 1-4.
    direct = json.loads((Path(init_checkpoint).parent / "results.json").read_text())
    overrides = BASELINE if variant == "baseline" else dict(epochs_decay=None)
    results = adapt(_config(synthetic_root, tmp_path, init_checkpoint, epochs=1, iters=10,
                            rho="auto", images_per_id=8, pad=3, random_erasing=False,
                            **overrides))
    assert results["best_mAP"] > direct["direct_transfer"]["mAP"] + 0.02
