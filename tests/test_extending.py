"""The README's worked extension example (a camera-aware memory) runs as written."""
import json
import math
import os
import re

import torch

from conftest import IMAGE_OPTS
from dualref.configs import AdaptConfig
from dualref.pipeline.adapt import adapt
from dualref.utils.checkpoint import load_checkpoint

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def _example_blocks():
    text = open(README).read()
    section = text[text.index("## Extending dualref"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _camera_memory_factory():
    namespace: dict = {}
    exec(compile(_example_blocks()[0], "README.md (Extending dualref)", "exec"), namespace)
    return namespace["camera_memory"]


def _config(root, logs_dir, init, **overrides):
    return AdaptConfig(**{**dict(
        dataset_source="dukemtmc", dataset_target="market1501", data_dir=root,
        logs_dir=str(logs_dir), init=init, arch="resnet18", batch_size=16, num_instances=4,
        workers=0, epochs=2, iters=3, epochs_decay=1, rho=0.02, R=2, device="cpu",
        verbose=False, print_freq=1000, **IMAGE_OPTS), **overrides})


def test_the_readme_usage_is_the_call_the_test_makes():
    assert "adapt(cfg, memories=[camera_memory])" in _example_blocks()[1]


def test_camera_memory_trains_is_logged_and_resumes(synthetic_root, init_checkpoint, tmp_path):
    factory = _camera_memory_factory()
    whole = tmp_path / "whole"
    adapt(_config(synthetic_root, whole, init_checkpoint), memories=[factory])
    records = [json.loads(line) for line in open(whole / "metrics.jsonl")]
    assert all(math.isfinite(r["loss_camera"]) and r["loss_camera"] > 0 for r in records)
    assert all("loss_spread" in r for r in records)  # the paper's memory is still there
    state = load_checkpoint(str(whole / "checkpoint.pth.tar"))
    slots = state["camera_memory"]["slots"]
    # the factory received the first epoch's features: the slots started as unit vectors
    assert slots.shape == state["memory"].shape
    assert not torch.allclose(slots.norm(dim=1), torch.ones(len(slots)), atol=1e-6)  # trained

    # One epoch, then a resume to two: the camera slots come back from the checkpoint,
    # so the run ends exactly where the uninterrupted one did.
    parts = tmp_path / "parts"
    adapt(_config(synthetic_root, parts, init_checkpoint, epochs=1), memories=[factory])
    adapt(_config(synthetic_root, parts, init_checkpoint, resume="auto"), memories=[factory])
    resumed = load_checkpoint(str(parts / "checkpoint.pth.tar"))
    assert torch.equal(resumed["camera_memory"]["slots"], slots)
    assert torch.equal(resumed["memory"], state["memory"])
