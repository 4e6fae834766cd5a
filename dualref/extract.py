"""Features (and optionally cluster labels) of any image folder with a trained model.

    python -m dualref.extract MODEL IMAGES_DIR OUT.h5 [--cluster] [--rho auto]

Writes an HDF5 file with ``features`` (N x D, L2-normalised, float32),
``paths`` (relative to IMAGES_DIR, sorted), and with ``--cluster`` the
``labels`` of the same Jaccard + DBSCAN pseudo-labelling as adaptation
(-1: outlier) and the ``eps`` used, as attributes of the file.
The architecture is read from the checkpoint unless ``--arch`` is given.
"""
from __future__ import annotations

import argparse
import logging
import os
from typing import Any, Optional, Sequence

import numpy as np
import torch.nn.functional as F

from .cli.main import run_main
from .cli.options import build_parser, config_from_args
from .clustering.dbscan import DBSCANClusterer, auto_rho
from .configs import ExtractConfig
from .datasets.custom import find_images
from .engine.state import load_weights
from .pipeline.common import build_model, extract_items, prepare_model
from .pipeline.labels import make_pseudo_labels
from .utils.checkpoint import load_checkpoint
from .utils.device import setup_device
from .utils.errors import UserError
from .utils.io import atomic_open
from .utils.logging import setup_logging

logger = logging.getLogger(__name__)


def extract_folder(model_path: str, images_dir: str, out: str, **options: Any) -> dict:
    """Write features (and labels) of every image under ``images_dir`` to ``out``;
    ``options``: the other :class:`~dualref.configs.ExtractConfig` fields."""
    return extract(ExtractConfig(model=model_path, images_dir=images_dir, out=out, **options))


def extract(cfg: ExtractConfig) -> dict:
    """:func:`extract_folder` from a config."""
    model_path, images_dir, out, arch = cfg.model, cfg.images_dir, cfg.out, cfg.arch
    if not os.path.isdir(images_dir):
        raise UserError(f"{images_dir}: not a folder of images")
    paths = find_images(images_dir)
    if not paths:
        raise UserError(f"{images_dir}: no .jpg/.jpeg/.png images in it or its sub-folders")
    state = load_checkpoint(model_path)
    if arch == "auto":
        from .models import arch_of

        arch = arch_of(state.get("state_dict", {})) or ""
        if not arch:
            raise UserError(f"{model_path}: cannot tell its architecture; pass --arch")
    dev = setup_device(cfg.device)
    model = build_model(arch, pretrained=False, features=cfg.features)
    load_weights(model_path, model, state)
    model = prepare_model(model, dev, cfg.batch_size, bn_group_size=0)
    items = [(path, index, 0) for index, path in enumerate(paths)]
    feats = F.normalize(extract_items(model, items, cfg.height, cfg.width, cfg.batch_size,
                                      cfg.workers, dev, amp=cfg.amp,
                                      verbose=cfg.verbose).float(), dim=1)
    summary = {"images": len(paths), "dim": int(feats.shape[1]), "arch": arch}
    labels = None
    if cfg.cluster:
        if len(paths) < 2:
            raise UserError(f"{images_dir}: --cluster needs at least 2 images")
        value = auto_rho(len(paths), cfg.images_per_id) if cfg.rho == "auto" else float(cfg.rho)
        clusterer = DBSCANClusterer(rho=value, min_samples=cfg.min_samples)
        pseudo = make_pseudo_labels(feats.cpu(), clusterer, cfg.k1, cfg.k2, device=dev,
                                    verbose=cfg.verbose)
        labels = pseudo.labels
        summary.update(rho=value, eps=clusterer.eps, clusters=pseudo.num_clusters,
                       outliers=int((labels < 0).sum()))
    _write(out, feats.cpu().numpy(), [os.path.relpath(p, images_dir) for p in paths],
           labels, summary)
    logger.info("wrote %s: %s", out, summary)
    return summary


def _write(out: str, feats: np.ndarray, names: Sequence[str], labels: Optional[np.ndarray],
           summary: dict) -> None:
    """The HDF5 file, written atomically (a killed run leaves no half file)."""
    import h5py

    with atomic_open(out, "w+b") as handle, h5py.File(handle, "w") as h5:
        h5["features"] = feats.astype(np.float32)
        h5["paths"] = np.asarray(list(names), dtype=h5py.string_dtype())
        if labels is not None:
            h5["labels"] = np.asarray(labels, dtype=np.int64)
        for key, value in summary.items():
            h5.attrs[key] = value


def main(argv: Optional[Sequence[str]] = None) -> dict:
    def run(args: argparse.Namespace) -> dict:
        cfg = config_from_args(ExtractConfig, args)
        setup_logging(None, level=logging.INFO if cfg.verbose else logging.WARNING)
        return extract(cfg)

    parser = build_parser(ExtractConfig, __doc__.splitlines()[0], prog="python -m dualref.extract")
    return run_main(parser, run, argv)


if __name__ == "__main__":
    main()
