"""Your own unlabelled cameras: -dt custom, --rho auto, python -m dualref.extract."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import IMAGE_OPTS
from dualref import datasets
from dualref.clustering.dbscan import auto_rho
from dualref.datasets.custom import find_images
from dualref.extract import extract_folder
from dualref.pipeline.adapt import AdaptConfig, adapt
from dualref.pipeline.test import test_checkpoint as evaluate_checkpoint
from dualref.utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKET = "Market-1501-v15.09.15"


def _hide_ids(synthetic_root, out: Path, with_test: bool) -> dict:
    """The synthetic target's train images under random names in nested camera folders.

    Returns {new path: (true pid, camera)} so tests can check what was hidden.
    """
    rng = np.random.default_rng(0)
    source = Path(synthetic_root) / "market1501" / MARKET
    truth = {}
    for path in sorted((source / "bounding_box_train").glob("*.jpg")):
        pid, cam = int(path.name[:4]), int(path.name[6])
        folder = out / "custom" / "train" / f"cam{cam}" / f"day{rng.integers(3)}"
        folder.mkdir(parents=True, exist_ok=True)
        new = folder / f"{rng.integers(1 << 40):x}.{'png' if rng.random() < 0.3 else 'jpg'}"
        shutil.copy(path, new)
        truth[str(new)] = (pid, cam)
    if with_test:
        shutil.copytree(source / "query", out / "custom" / "query")
        shutil.copytree(source / "bounding_box_test", out / "custom" / "gallery")
    return truth


@pytest.fixture(scope="module")
def unlabelled_root(synthetic_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("unlabelled")
    return root, _hide_ids(synthetic_root, root, with_test=False)


@pytest.fixture(scope="module")
def labelled_root(synthetic_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    _hide_ids(synthetic_root, root, with_test=True)
    return root


def _config(root, logs_dir, init, **overrides):
    cfg = dict(dataset_source="dukemtmc", dataset_target="custom", data_dir=str(root),
               logs_dir=str(logs_dir), init=init, arch="resnet18", batch_size=16,
               num_instances=4, workers=0, epochs=1, iters=3, rho=0.02, R=2,
               device="cpu", verbose=False, print_freq=1000, **IMAGE_OPTS)
    cfg.update(overrides)
    return AdaptConfig(**cfg)


def test_custom_folder_finds_every_image_without_ids(unlabelled_root):
    root, truth = unlabelled_root
    data = datasets.create("custom", str(root / "custom"), verbose=False)
    assert sorted(p for p, _, _ in data.train) == sorted(truth)
    assert not datasets.has_train_labels(data) and not datasets.has_test(data)
    assert data.num_train_pids == 0 and data.query == [] and data.gallery == []
    assert {cam for _, _, cam in data.train} == {0}  # no camera option: one camera


@pytest.mark.parametrize("pattern", ["folder", r"^(?P<cam>x)?", "never-matches"])
def test_cameras_from_folders_or_file_names(unlabelled_root, pattern):
    root, truth = unlabelled_root
    if pattern == "folder":
        data = datasets.create("custom", str(root / "custom"), verbose=False, cameras="folder")
        true_cams = [truth[p][1] for p, _, _ in data.train]
        # Folder cam<k> -> camera index: the same partition as the hidden cameras.
        assert len(set(zip(true_cams, [c for _, _, c in data.train]))) == len(set(true_cams))
        assert data.num_train_cams == len(set(true_cams)) > 1
    else:
        with pytest.raises(UserError, match="camera_pattern="):
            datasets.create("custom", str(root / "custom"), verbose=False, cameras=pattern)


def test_camera_pattern_regex_groups(tmp_path):
    train = tmp_path / "custom" / "train"
    train.mkdir(parents=True)
    for name in ("a_c2_1.jpg", "b_c10_2.jpg", "c_c2_3.jpg"):
        (train / name).write_bytes(b"")
    data = datasets.create("custom", str(tmp_path / "custom"), verbose=False, cameras=r"_c(\d+)_")
    assert [c for _, _, c in data.train] == [1, 0, 1]  # "10" < "2": sorted as text, 0-based


def test_unlabelled_adaptation_reports_pseudo_labels_and_a_usable_checkpoint(
        unlabelled_root, init_checkpoint, synthetic_root, tmp_path):
    root, _ = unlabelled_root
    results = adapt(_config(root, tmp_path, init_checkpoint, camera_pattern="folder"))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["num_clusters"] >= 2 and record["num_outliers"] >= 0 and record["eps"] > 0
    assert record["cluster_size_max"] >= record["cluster_size_median"] >= 4  # min_samples
    assert "target" not in record and "dbscan_precision" not in record  # no labels, no scores
    assert results["best_mAP"] is None and results["pseudo_labels"]["num_clusters"] == \
        record["num_clusters"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["pseudo_labels"] == results["pseudo_labels"]
    # The last epoch's model is model_best, and a labelled split can score it.
    assert (tmp_path / "model_best.pth.tar").exists()
    score = evaluate_checkpoint(str(tmp_path / "model_best.pth.tar"), "market1501", synthetic_root,
                                arch="resnet18", batch_size=32, workers=0, device="cpu",
                                verbose=False, **IMAGE_OPTS)
    assert 0 < score.mAP <= 1


def test_custom_target_with_query_and_gallery_reports_map(labelled_root, init_checkpoint,
                                                          tmp_path):
    results = adapt(_config(labelled_root, tmp_path, init_checkpoint))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 < record["target"]["mAP"] <= 1 and results["best_mAP"] == record["target"]["mAP"]


def test_rho_auto_is_used_and_recorded(unlabelled_root, init_checkpoint, tmp_path):
    root, _ = unlabelled_root
    adapt(_config(root, tmp_path, init_checkpoint, rho="auto", images_per_id=8))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    n = len(find_images(str(root / "custom" / "train")))
    assert record["rho"] == pytest.approx(1.25 * 7 / (n - 1))


def _driver(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize("case", ["empty", "unreadable", "no_train", "query_only", "bad_name"])
def test_bad_custom_folders_exit_2_with_one_line(case, tmp_path, init_checkpoint):
    custom = tmp_path / "custom"
    train = custom / "train" / "nested"
    train.mkdir(parents=True)
    good = Image_bytes()
    if case == "empty":
        (train / "notes.txt").write_text("no images here")
        needle = "no .jpg/.jpeg/.png images under"
    elif case == "unreadable":
        for i in range(40):
            (train / f"{i}.jpg").write_bytes(good)
        (train / "broken.jpg").write_bytes(b"not a jpeg")
        needle = "cannot read image"
    elif case == "no_train":
        shutil.rmtree(custom / "train")
        (custom / "images").mkdir()
        needle = "missing folder"
    elif case == "query_only":
        (train / "a.jpg").write_bytes(good)
        (custom / "query").mkdir()
        needle = "query/ and gallery/ go together"
    else:
        (train / "a.jpg").write_bytes(good)
        for split in ("query", "gallery"):
            (custom / split).mkdir()
            (custom / split / "person.jpg").write_bytes(good)
        needle = "cannot read id and camera"
    proc = _driver("examples/dual_refine_train.py", "-dt", "custom", "--data-dir", str(tmp_path),
                   "--init", init_checkpoint, "-a", "resnet18", "--height", "64", "--width", "32",
                   "-b", "16", "-j", "0", "--device", "cpu", "--epochs", "1", "--iters", "1",
                   "--logs-dir", str(tmp_path / "logs"), "--quiet")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "logs" / "checkpoint.pth.tar").exists()


def Image_bytes() -> bytes:
    """A small valid JPEG."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 64), (120, 30, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_extract_writes_normalised_features_names_and_labels(unlabelled_root, init_checkpoint,
                                                             tmp_path):
    root, truth = unlabelled_root
    images = root / "custom" / "train"
    out = tmp_path / "feats.h5"
    summary = extract_folder(init_checkpoint, str(images), str(out), batch_size=32, workers=0,
                             device="cpu", cluster=True, rho=0.02, verbose=False, **IMAGE_OPTS)
    assert summary["arch"] == "resnet18"  # read from the checkpoint
    with h5py.File(out, "r") as h5:
        feats, names = h5["features"][()], [n.decode() for n in h5["paths"][()]]
        labels = h5["labels"][()]
        assert h5.attrs["clusters"] == labels.max() + 1 >= 2 and h5.attrs["eps"] > 0
    assert sorted(str(images / n) for n in names) == sorted(truth) and names == sorted(names)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    assert feats.shape == (len(truth), 512)
    # The same labels as the adaptation's own pseudo-labelling of these features.
    from dualref.pipeline.labels import make_pseudo_labels

    from dualref.clustering import DBSCANClusterer

    again = make_pseudo_labels(torch.from_numpy(feats), DBSCANClusterer(0.02, 4), 20, 6,
                               verbose=False)
    assert (again.labels == labels).all()


def test_extract_command_line_errors_are_one_line(tmp_path, init_checkpoint):
    proc = _driver("-m", "dualref.extract", init_checkpoint, str(tmp_path / "nowhere"),
                   str(tmp_path / "o.h5"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "not a folder of images" in proc.stderr and not (tmp_path / "o.h5").exists()


def test_auto_rho_rule():
    # The documented rule, against the plain share of same-identity pairs.
    labels = np.repeat(np.arange(50), 14)
    same = (labels[:, None] == labels[None]).sum() - labels.size
    share = same / (labels.size * (labels.size - 1))
    assert auto_rho(700, 14) == pytest.approx(1.25 * share)
    # Near the paper's 1.6e-3 on the benchmark sizes.
    assert auto_rho(12936, 12936 / 751) == pytest.approx(1.57e-3, rel=0.01)
    assert auto_rho(16522, 16522 / 702) == pytest.approx(1.71e-3, rel=0.01)
    assert auto_rho(10, 1) > 0 and auto_rho(10, 100) == 0.5
    with pytest.raises(UserError, match="images_per_id=0.5"):
        auto_rho(100, 0.5)


def test_pretraining_towards_a_custom_target_skips_direct_transfer(unlabelled_root, synthetic_root,
                                                                   tmp_path):
    from dualref.pipeline.pretrain import PretrainConfig, pretrain

    root, _ = unlabelled_root
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(Path(synthetic_root) / "dukemtmc", data / "dukemtmc")
    os.symlink(root / "custom", data / "custom")
    results = pretrain(PretrainConfig(dataset_source="dukemtmc", dataset_target="custom",
                                      data_dir=str(data), logs_dir=str(tmp_path / "logs"),
                                      arch="resnet18", pretrained=False, batch_size=16, workers=0,
                                      warmup_step=1, milestones=[5], epochs=1, iters=2,
                                      eval_step=1, device="cpu", verbose=False, **IMAGE_OPTS))
    assert results["direct_transfer"] is None and 0 < results["best_source_mAP"] <= 1
    assert (tmp_path / "logs" / "model_best.pth.tar").exists()
