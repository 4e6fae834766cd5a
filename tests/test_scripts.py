"""The user-facing shell scripts and drivers, run as a user types them."""
import json
import os
import subprocess
import sys

import h5py
import pytest
import torch

from conftest import IMAGE_OPTS
from dualref import models
from dualref.utils.checkpoint import checkpoint_for_release, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["-a", "resnet18", "--height", str(IMAGE_OPTS["height"]), "--width",
         str(IMAGE_OPTS["width"]), "-j", "0", "-b", "64", "--device", "cpu", "--quiet"]


def _run(args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, env=env, **kwargs)


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = models.create("resnet18", pretrained=False, num_classes=7)
    path = tmp_path_factory.mktemp("run") / "model_best.pth.tar"
    save_checkpoint(checkpoint_for_release(model, epoch=3, best_mAP=0.5), False, fpath=str(path))
    return path


def test_test_sh_prints_the_original_lines_and_writes_results(synthetic_root, random_checkpoint):
    h5_path = random_checkpoint.parent / "feats.h5"
    proc = _run(["sh", "scripts/test.sh", "market1501", str(random_checkpoint),
                 "--data-dir", synthetic_root, "--save-features", str(h5_path),
                 "--vis-ranks", "3", *SMALL])
    assert proc.returncode == 0, proc.stderr
    for line in ("Mean AP:", "CMC Scores:", "top-1", "top-5", "top-10"):
        assert line in proc.stdout
    result = json.loads((random_checkpoint.parent / "results_test_market1501.json").read_text())
    assert 0 < result["mAP"] <= 1 and result["epoch"] == 3
    assert f"Mean AP: {result['mAP']:.1%}" in proc.stdout
    with h5py.File(h5_path) as h5:
        assert h5["query"]["features"].shape == (result["num_query"], 512)
        assert h5["gallery"]["pids"].shape == (result["num_gallery"],)
        norms = torch.from_numpy(h5["query"]["features"][:]).norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
    assert (random_checkpoint.parent / "log_test.txt").exists()
    from PIL import Image
    with Image.open(random_checkpoint.parent / "ranked_lists_market1501.png") as picture:
        assert picture.width > 10 * IMAGE_OPTS["width"] and picture.height > 3 * IMAGE_OPTS["height"]


def test_rerank_runs_and_changes_the_score(synthetic_root, random_checkpoint):
    plain = json.loads((random_checkpoint.parent / "results_test_market1501.json").read_text())
    proc = _run(["sh", "scripts/test.sh", "market1501", str(random_checkpoint),
                 "--data-dir", synthetic_root, "--rerank", *SMALL])
    assert proc.returncode == 0, proc.stderr
    assert "Applying person re-ranking" in proc.stdout
    reranked = json.loads(
        (random_checkpoint.parent / "results_test_market1501_rerank.json").read_text())
    assert reranked["rerank"] is True and reranked["mAP"] != plain["mAP"]


@pytest.mark.parametrize("script,args", [("test.sh", ["market1501"]),
                                         ("pretrain.sh", ["dukemtmc", "market1501"]),
                                         ("train_baseline.sh", ["dukemtmc"])])
def test_scripts_check_their_arguments(script, args):
    proc = _run(["sh", f"scripts/{script}", *args])
    assert proc.returncode == 1 and "Arguments error" in proc.stdout


@pytest.mark.parametrize("argv,needle", [
    (["--dataset-target", "market1501", "--resume", "nowhere.pth.tar"], "nowhere.pth.tar"),
    (["--dataset-target", "market1501", "--resume", "{ckpt}", "--data-dir", "/nonexistent"],
     "Market-1501-v15.09.15"),
    (["--dataset-target", "market1501", "--resume", "{ckpt}", "--device", "cuda:3"], "cuda"),
])
def test_user_mistakes_give_one_line_and_exit_2(argv, needle, random_checkpoint, synthetic_root):
    argv = [a.replace("{ckpt}", str(random_checkpoint)) for a in argv]
    if "--data-dir" not in argv:
        argv += ["--data-dir", synthetic_root]
    proc = _run([sys.executable, "examples/test_model.py", *argv, "-a", "resnet18", "--quiet"])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr


def test_unknown_dataset_is_rejected_with_the_valid_names():
    proc = _run([sys.executable, "examples/test_model.py", "--dataset-target", "cuhk03",
                 "--resume", "x"])
    assert proc.returncode == 2 and "market1501" in proc.stderr


def test_checkpoint_of_another_architecture_is_refused(synthetic_root, random_checkpoint):
    proc = _run([sys.executable, "examples/test_model.py", "--dataset-target", "market1501",
                 "--resume", str(random_checkpoint), "--data-dir", synthetic_root,
                 "-a", "resnet34", "--quiet"])
    assert proc.returncode == 2
    assert "not a checkpoint of this architecture" in proc.stderr and "--arch" in proc.stderr


def test_gpu_rows_script_fills_every_row_in_a_quick_cpu_run(tmp_path):
    # The prepared script for a lent GPU, run small on the CPU: every step must
    # write its records (throughput, pseudo-label stage, a torchrun stage 1).
    out = tmp_path / "rows"
    proc = subprocess.run(["sh", "benchmarks/gpu_rows.sh", str(out)], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, QUICK="1", DEVICE="cpu", OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAILED" not in proc.stdout
    throughput = json.loads((out / "throughput.json").read_text())
    assert {r["amp"] for r in throughput} >= {"fp32"} and all(r["train_images_per_s"] > 0 for r in throughput)
    stage = json.loads((out / "pseudo_labels.json").read_text())
    assert stage[0]["n"] == 2000 and stage[0]["refine_agreement"] == 1.0
    results = json.loads((out / "torchrun" / "logs" / "results.json").read_text())
    assert 0 <= results["direct_transfer"]["mAP"] <= 1
    assert not (out / "torchrun" / "data").exists()
