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
from typing import Optional, Sequence

import numpy as np
import torch.nn.functional as F

from .clustering.dbscan import MARKET_IMAGES_PER_ID, DBSCANClusterer, auto_rho
from .datasets.custom import find_images
from .engine import options
from .engine.runner import run_main
from .pipeline.common import build_model, extract_items, prepare_model
from .pipeline.labels import make_pseudo_labels
from .pipeline.state import load_weights
from .utils.checkpoint import load_checkpoint
from .utils.device import setup_device
from .utils.errors import UserError
from .utils.io import atomic_open
from .utils.logging import setup_logging

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dualref.extract",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model", help="checkpoint (e.g. logs/.../model_best.pth.tar)")
    parser.add_argument("images_dir", help="folder of images (.jpg/.jpeg/.png, sub-folders too)")
    parser.add_argument("out", help="HDF5 file to write")
    parser.add_argument("-a", "--arch", default="auto",
                        help="architecture (default: read from the checkpoint)")
    parser.add_argument("--features", type=int, default=0,
                        help="embedding size the model was trained with (0: none)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("-b", "--batch-size", type=int, default=256)
    parser.add_argument("-j", "--workers", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None)
    parser.add_argument("--cluster", action="store_true",
                        help="also write DBSCAN cluster labels (-1: outlier)")
    parser.add_argument("--rho", type=options.rho_value, default="auto",
                        help="with --cluster: eps from this share of the Jaccard distances "
                             "(default auto: 1.25 x the expected same-identity share)")
    parser.add_argument("--images-per-id", type=float, default=MARKET_IMAGES_PER_ID,
                        help="with --rho auto: expected images per person (default 17.2)")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--min-samples", type=int, default=4)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def extract_folder(model_path: str, images_dir: str, out: str, arch: str = "auto",
                   features: int = 0, height: int = 256, width: int = 128,
                   batch_size: int = 256, workers: int = 4, device: str = "auto",
                   amp: Optional[str] = None, cluster: bool = False,
                   rho: float | str = "auto", images_per_id: float = MARKET_IMAGES_PER_ID,
                   k1: int = 20, k2: int = 6, min_samples: int = 4,
                   verbose: bool = True) -> dict:
    """Write features (and labels) of every image under ``images_dir`` to ``out``."""
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
    dev = setup_device(device)
    model = build_model(arch, pretrained=False, features=features)
    load_weights(model_path, model, state)
    model = prepare_model(model, dev, batch_size, bn_group_size=0)
    items = [(path, index, 0) for index, path in enumerate(paths)]
    feats = F.normalize(extract_items(model, items, height, width, batch_size, workers, dev,
                                      amp=amp, verbose=verbose).float(), dim=1)
    summary = {"images": len(paths), "dim": int(feats.shape[1]), "arch": arch}
    labels = None
    if cluster:
        if len(paths) < 2:
            raise UserError(f"{images_dir}: --cluster needs at least 2 images")
        value = auto_rho(len(paths), images_per_id) if rho == "auto" else float(rho)
        clusterer = DBSCANClusterer(rho=value, min_samples=min_samples)
        pseudo = make_pseudo_labels(feats.cpu(), clusterer, k1, k2, device=dev, verbose=verbose)
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
        setup_logging(None, level=logging.WARNING if args.quiet else logging.INFO)
        return extract_folder(args.model, args.images_dir, args.out, arch=args.arch,
                              features=args.features, height=args.height, width=args.width,
                              batch_size=args.batch_size, workers=args.workers,
                              device=args.device, amp=args.amp, cluster=args.cluster,
                              rho=args.rho, images_per_id=args.images_per_id, k1=args.k1,
                              k2=args.k2, min_samples=args.min_samples,
                              verbose=not args.quiet)

    return run_main(build_parser(), run, argv)


if __name__ == "__main__":
    main()
