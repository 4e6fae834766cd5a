"""Checkpoints: atomic save, safe load, authors' format, tolerant copies."""
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dualref import models
from dualref.utils import checkpoint as ckpt
from dualref.utils.errors import UserError


def _small_model(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return models.create("resnet18", pretrained=False, num_classes=num_classes)


def _perturb(model: nn.Module) -> None:
    """Make every tensor differ from a fresh model's, so copies are visible."""
    with torch.no_grad():
        for value in model.state_dict().values():
            value.add_(torch.ones_like(value) if value.is_floating_point() else 3)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def _save_original_style(state: dict, path: Path) -> None:
    """Legacy (torch 1.1 era) format with numpy 1.x module names, as the authors' files."""
    torch.save(state, path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    # numpy 2 writes ``numpy._core``; the authors' numpy 1.x wrote ``numpy.core``.
    assert b"numpy._core.multiarray\nscalar" in data
    path.write_bytes(data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"))


def test_release_round_trip_with_and_without_prefix(tmp_path):
    source = _small_model()
    _perturb(source)
    path = ckpt.save_checkpoint(ckpt.checkpoint_for_release(source, 7, 0.61), True,
                                tmp_path / "run" / "checkpoint.pth.tar")
    best = tmp_path / "run" / "model_best.pth.tar"
    assert best.read_bytes() == path.read_bytes()
    loaded = ckpt.load_checkpoint(best)
    assert set(loaded) == {"state_dict", "epoch", "best_mAP"}
    assert loaded["epoch"] == 7 and loaded["best_mAP"] == pytest.approx(0.61)
    assert all(key.startswith("module.") for key in loaded["state_dict"])
    stripped = {k[len("module."):]: v for k, v in loaded["state_dict"].items()}
    for state in (loaded["state_dict"], stripped):
        target = _small_model()
        report = ckpt.copy_state_dict(state, target)
        assert not report.missing and not report.unexpected and not report.mismatched
        for name, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[name], value), name


def test_release_format_loads_strictly_into_data_parallel():
    # The authors' final step: DataParallel(model).load_state_dict(checkpoint['state_dict']).
    source = _small_model()
    wrapped = nn.DataParallel(_small_model())
    wrapped.load_state_dict(ckpt.checkpoint_for_release(source, 1, 0.0)["state_dict"])


def test_not_best_writes_no_best_file(tmp_path):
    ckpt.save_checkpoint({"epoch": 1}, False, tmp_path / "checkpoint.pth.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth.tar"]


def test_original_code_checkpoint_loads(tmp_path):
    source = _small_model(num_classes=751)
    _perturb(source)
    state = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
             "epoch": 80, "best_mAP": np.float64(0.286)}
    path = tmp_path / "model_best.pth.tar"
    _save_original_style(state, path)
    loaded = ckpt.load_checkpoint(path)
    assert isinstance(loaded["best_mAP"], np.float64) and loaded["best_mAP"] == 0.286
    target = _small_model(num_classes=751)
    report = ckpt.copy_state_dict(loaded["state_dict"], target)
    assert len(report.copied) == len(source.state_dict())
    assert torch.equal(target.classifier.weight, source.classifier.weight)


def test_restricted_unpickler_path_matches(tmp_path):
    # The torch < 2.6 route, exercised on the installed torch.
    state = {"w": torch.arange(6.0).view(2, 3), "best_mAP": np.float64(0.5),
             "rng": np.random.RandomState(0).get_state(), "ids": {1, 2}}
    path = tmp_path / "c.pth.tar"
    _save_original_style(state, path)
    loaded = ckpt._restricted_torch_load(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["best_mAP"] == 0.5
    assert np.array_equal(loaded["rng"][1], state["rng"][1]) and loaded["ids"] == {1, 2}


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_refused(tmp_path, legacy, monkeypatch):
    path = tmp_path / "evil.pth.tar"
    torch.save({"state_dict": {}, "x": _Evil()}, path, _use_new_zipfile_serialization=not legacy)
    calls = []  # patched after saving: the pickle must name the real os.system
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 0)
    with pytest.raises(UserError, match=r"refusing to load .*evil.pth.tar.*system.*execute code"):
        ckpt.load_checkpoint(path)
    with pytest.raises(ckpt.UnsafePickleError, match="system"):
        ckpt._restricted_torch_load(path)
    assert calls == []


def test_raw_malicious_pickle_refused(tmp_path, monkeypatch):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil(), protocol=2))
    calls = []
    monkeypatch.setattr(os, "system", lambda cmd: calls.append(cmd) or 0)
    with pytest.raises(UserError, match="refusing to load"):
        ckpt.load_checkpoint(path)
    assert calls == []


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_file_refused(tmp_path, legacy):
    path = tmp_path / "c.pth.tar"
    torch.save({"w": torch.zeros(4096)}, path, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match=r"c.pth.tar: file is truncated or corrupted"):
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("content", [b"hello, not a checkpoint\n", bytes(range(256)) * 8])
def test_non_checkpoint_refused(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"notes.txt: (not a torch checkpoint|file is truncated)"):
        ckpt.load_checkpoint(path)


def test_missing_file_and_non_dict(tmp_path):
    with pytest.raises(UserError, match="nope.pth.tar: file not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pth.tar")
    torch.save(torch.zeros(2), tmp_path / "t.pth")
    with pytest.raises(UserError, match="expected a dict, found Tensor"):
        ckpt.load_checkpoint(tmp_path / "t.pth")


def test_mismatched_classifier_skipped_and_reported():
    source = _small_model(num_classes=751)
    _perturb(source)
    target = _small_model(num_classes=10)
    before = target.classifier.weight.clone()
    state = dict(source.state_dict(), extra_head=torch.zeros(1))
    del state["feat_bn.running_var"]
    report = ckpt.copy_state_dict(state, target)
    assert report.mismatched == ["classifier.weight"]
    assert report.unexpected == ["extra_head"]
    assert report.missing == ["feat_bn.running_var"]
    assert torch.equal(target.classifier.weight, before)
    assert torch.equal(target.base[0].weight, source.base[0].weight)
