"""Shared pytest setup: CPU only, small synthetic data generated once per session."""
import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402  (after the environment is fixed)

# Tiny but real: the synthetic generator in the real Market/Duke layouts.
SYNTHETIC = dict(seed=0, num_ids=24, images_per_id=8, queries_per_id=1, gallery_per_id=4,
                 height=64, width=32)
IMAGE_OPTS = dict(height=64, width=32)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A data folder holding synthetic ``market1501`` and ``dukemtmc``."""
    from dualref.datasets.synthetic import generate

    root = tmp_path_factory.mktemp("data")
    generate(root, **SYNTHETIC)
    return str(root)


@pytest.fixture(scope="session")
def init_checkpoint(synthetic_root, tmp_path_factory):
    """A briefly source-trained model (random features give too few clusters)."""
    from dualref.pipeline.pretrain import PretrainConfig, pretrain

    logs = tmp_path_factory.mktemp("init")
    pretrain(PretrainConfig(dataset_source="dukemtmc", dataset_target="market1501",
                            data_dir=synthetic_root, logs_dir=str(logs), arch="resnet18",
                            pretrained=False, batch_size=16, workers=0, lr=1e-3,
                            warmup_step=1, milestones=[5], epochs=6, iters=8, eval_step=6,
                            device="cpu", verbose=False, **IMAGE_OPTS))
    return str(logs / "model_best.pth.tar")
