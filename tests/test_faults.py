"""Faults and bad input: killed runs resume exactly, mistakes give one line and exit 2."""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import IMAGE_OPTS
from dualref import models
from dualref.utils.checkpoint import checkpoint_for_release, load_checkpoint, save_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMG = ["--height", str(IMAGE_OPTS["height"]), "--width", str(IMAGE_OPTS["width"])]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _run(args):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          env=_env(), timeout=300)


def _pretrain_args(root, logs, *extra):
    return ["examples/source_pretrain.py", "-ds", "market1501", "-dt", "dukemtmc", "-a",
            "resnet18", "--no-pretrained", *IMG, "-b", "16", "-j", "0", "--epochs", "6",
            "--iters", "4", "--eval-step", "3", "--milestones", "4", "--warmup-step", "1",
            "--device", "cpu", "--quiet", "--data-dir", root, "--logs-dir", str(logs), *extra]


def _one_line_exit_2(proc, needle):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def _kill_after_epoch(args, ckpt, epoch, delay):
    """Start a run, SIGKILL it ``delay`` s after checkpoint ``epoch`` appears."""
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and load_checkpoint(ckpt)["epoch"] >= epoch:
            break
        time.sleep(0.05)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return load_checkpoint(ckpt)  # the last good checkpoint is intact


def _same_weights(a_path, b_path, epochs):
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a["epoch"] == b["epoch"] == epochs
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    return a, b


def test_sigkill_during_pretraining_then_resume(synthetic_root, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(_pretrain_args(synthetic_root, straight)).returncode == 0
    state = _kill_after_epoch(_pretrain_args(synthetic_root, killed),
                              killed / "checkpoint.pth.tar", epoch=2, delay=0.3)
    assert 2 <= state["epoch"] <= 6
    assert _run(_pretrain_args(synthetic_root, killed, "--resume", "auto")).returncode == 0
    _same_weights(straight / "checkpoint.pth.tar", killed / "checkpoint.pth.tar", 6)


def test_sigkill_during_adaptation_then_resume(synthetic_root, tmp_path):
    init = tmp_path / "pre"
    assert _run(_pretrain_args(synthetic_root, init)).returncode == 0

    def adapt_args(logs, *extra):
        return ["examples/dual_refine_train.py", "-ds", "market1501", "-dt", "dukemtmc", "-a",
                "resnet18", *IMG, "-b", "16", "-j", "0", "--epochs", "3", "--iters", "4",
                "--epochs_decay", "2", "--rho", "0.02", "--device", "cpu", "--quiet",
                "--data-dir", synthetic_root, "--init", str(init / "model_best.pth.tar"),
                "--logs-dir", str(logs), *extra]

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _run(adapt_args(straight)).returncode == 0
    state = _kill_after_epoch(adapt_args(killed), killed / "checkpoint.pth.tar", epoch=1,
                              delay=0.5)
    assert 1 <= state["epoch"] <= 3 and state["clusterer"]["eps"] > 0
    assert _run(adapt_args(killed, "--resume", "auto")).returncode == 0
    a, b = _same_weights(straight / "checkpoint.pth.tar", killed / "checkpoint.pth.tar", 3)
    assert torch.equal(a["memory"], b["memory"]) and a["clusterer"] == b["clusterer"]
    assert a["best_mAP"] == b["best_mAP"]
    records = [json.loads(line) for line in open(killed / "metrics.jsonl")]
    assert [r["epoch"] for r in records] == [0, 1, 2]  # no lost or repeated epoch


@pytest.fixture()
def bad_checkpoints(tmp_path):
    model = models.create("resnet18", pretrained=False)
    good = tmp_path / "good.pth.tar"
    save_checkpoint(checkpoint_for_release(model, 1, 0.1), False, fpath=str(good))
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pth.tar"
    text.write_text("this is not a checkpoint\n")

    class Exploit:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pth.tar"
    with open(evil, "wb") as handle:
        pickle.dump({"state_dict": {}, "x": Exploit()}, handle)
    return {"truncated": truncated, "text": text, "evil": evil}


@pytest.mark.parametrize("kind,needle", [("truncated", "truncated"), ("text", "not"),
                                         ("evil", "refusing")])
def test_bad_checkpoints_are_refused(kind, needle, bad_checkpoints, synthetic_root):
    proc = _run(["examples/test_model.py", "--dataset-target", "market1501", "--resume",
                 str(bad_checkpoints[kind]), "-a", "resnet18", "--data-dir", synthetic_root,
                 "--quiet", *IMG])
    _one_line_exit_2(proc, needle)
    assert not (bad_checkpoints["evil"].parent / "pwned").exists()


@pytest.mark.parametrize("extra,needle", [
    (["-b", "18"], "not divisible"),
    (["--rho", "2"], "--rho"),
    (["--R", "0"], "--R"),
    (["--knn", "5000"], "--knn"),
    (["--device", "cuda"], "GPU"),
    (["-a", "resnet7"], "resnet50"),
])
def test_out_of_range_options_give_one_line(extra, needle, synthetic_root, tmp_path,
                                            bad_checkpoints):
    init = tmp_path / "init.pth.tar"
    save_checkpoint(checkpoint_for_release(models.create("resnet18", pretrained=False), 1, 0.0),
                    False, fpath=str(init))
    proc = _run(["examples/dual_refine_train.py", "-a", "resnet18", *IMG, "-j", "0",
                 "--init", str(init), "--data-dir", synthetic_root, "--logs-dir",
                 str(tmp_path / "run"), "--epochs", "1", "--iters", "1", "--quiet",
                 "-b", "16", *extra])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_undecodable_image_is_named(synthetic_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    train = root / "market1501" / "Market-1501-v15.09.15" / "bounding_box_train"
    victim = sorted(train.iterdir())[3]
    victim.write_bytes(b"\xff\xd8\xff not really a jpeg")
    proc = _run(_pretrain_args(str(root), tmp_path / "run", "--epochs", "1", "-j", "1"))
    _one_line_exit_2(proc, victim.name)
    proc = _run(_pretrain_args(str(root), tmp_path / "skip", "--epochs", "1",
                               "--skip-bad-images"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipping 1 undecodable image(s)" in proc.stdout and victim.name in proc.stdout
