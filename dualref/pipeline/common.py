"""Setup shared by every stage: datasets, loaders, models, evaluation."""
import logging
import os
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import datasets, models
from ..configs import RunConfig
from ..datasets.loaders import build_test_loader
from ..evaluators.evaluator import (EvalResult, evaluate_features, query_gallery_items,
                                    split_features)
from ..features import extract_features
from ..models.batchnorm import convert_batchnorm, plan_groups
from ..utils import distributed
from ..utils.device import place_model, setup_device
from ..utils.seeding import seed_everything

logger = logging.getLogger(__name__)


def adam(params: List[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam with one parameter group per tensor, as the original builds it."""
    return torch.optim.Adam([{"params": [p], "lr": lr, "weight_decay": weight_decay}
                             for p in params if p.requires_grad])


def load_dataset(name: str, data_dir: str, verbose: bool = True, skip_bad_images: bool = False,
                 camera_pattern: Optional[str] = None):
    """``datasets.create(name, <data_dir>/<name>)`` as the original drivers do.

    With ``skip_bad_images`` every image is decoded once and the ones that
    fail are dropped (and counted in the log) instead of stopping the run.
    ``camera_pattern`` tells a ``custom`` dataset where its cameras come from.
    """
    dataset = datasets.create(name, os.path.join(data_dir, name), verbose=verbose,
                              cameras=camera_pattern)
    if skip_bad_images:
        from ..datasets.verify import skip_bad_images as drop_bad

        dataset.num_skipped_images = drop_bad(dataset, verbose=verbose)
    return dataset


def load_run_dataset(cfg: RunConfig, name: str):
    """:func:`load_dataset` with a stage config's data folder and options."""
    return load_dataset(name, cfg.data_dir, verbose=cfg.verbose,
                        skip_bad_images=cfg.skip_bad_images,
                        camera_pattern=cfg.camera_pattern if name == cfg.dataset_target else None)


def setup_run(cfg: RunConfig, *names: str) -> Tuple[torch.device, bool, tuple]:
    """Seed everything, pick the device, load the named datasets.

    Returns ``(device, verbose, datasets)``; ``verbose`` is true on rank 0
    only (one progress bar, not one per process).
    """
    seed_everything(cfg.seed)
    device = setup_device(cfg.device)
    verbose = cfg.verbose and distributed.is_main()
    return device, verbose, tuple(load_run_dataset(cfg, name) for name in names)


def build_model(arch: str, num_classes: int = 0, pretrained: bool = True,
                pretrained_path: Optional[str] = None, features: int = 0,
                dropout: float = 0.0, norm: bool = False,
                classifier_std: float = 0.001) -> nn.Module:
    """Create the re-ID network (on the CPU; callers place it)."""
    return models.create(arch, pretrained=pretrained, pretrained_path=pretrained_path,
                         num_features=features, norm=norm, dropout=dropout,
                         num_classes=num_classes, classifier_std=classifier_std)


def stage_model(cfg: RunConfig, device: torch.device, num_classes: int, **options: Any
                ) -> nn.Module:
    """A stage's network from its config, with BatchNorm groups, placed on ``device``.

    ``options`` go to :func:`build_model` (pretrained, pretrained_path, norm).
    """
    model = build_model(cfg.arch, num_classes=num_classes, features=cfg.features,
                        dropout=cfg.dropout, classifier_std=cfg.classifier_std, **options)
    return prepare_model(model, device, cfg.batch_size, bn_group_size=cfg.bn_group_size,
                         bn_stats=cfg.bn_stats, channels_last=cfg.channels_last,
                         compile=cfg.compile)


def prepare_model(model: nn.Module, device: torch.device, batch_size: int,
                  bn_group_size: int = 16, bn_stats: str = "first",
                  channels_last: bool = False, compile: bool = False) -> nn.Module:
    """BatchNorm groups for the global ``batch_size``, then placement (DP, DDP or none).

    Per-process batch >= ``bn_group_size``: ghost BatchNorm in groups; smaller
    (many processes): statistics synchronised over the ranks of a group.
    """
    if bn_group_size > 0:
        per_rank = batch_size // distributed.world_size()
        group = distributed.rank_groups(plan_groups(bn_group_size, per_rank)
                                        if distributed.world_size() > 1 else 1)
        model = convert_batchnorm(model, bn_group_size, bn_stats, process_group=group)
    return place_model(model, device, channels_last=channels_last, compile=compile)


def extract_items(model: nn.Module, items: Sequence, height: int, width: int,
                  batch_size: int, workers: int, device: torch.device,
                  amp: Optional[str] = None, verbose: bool = True,
                  desc: str = "features", channels_last: bool = False) -> torch.Tensor:
    """Features of ``items`` (row i = item i) with the test transform (every rank gets all rows)."""
    loader = build_test_loader(items, height=height, width=width,
                               batch_size=batch_size, workers=workers)
    return extract_features(model, loader, device, amp=amp, verbose=verbose, desc=desc,
                            channels_last=channels_last)


def evaluate_model(model: nn.Module, dataset, height: int, width: int, batch_size: int,
                   workers: int, device: torch.device, rerank: bool = False,
                   amp: Optional[str] = None, verbose: bool = True,
                   channels_last: bool = False, rerank_options: Tuple[int, int, float] = (20, 6, 0.3)
                   ) -> Tuple[EvalResult, torch.Tensor, torch.Tensor]:
    """Evaluate on ``dataset``'s query/gallery; returns result and both feature sets.

    ``rerank_options``: re-ranking's (k1, k2, lambda) when ``rerank``.

    Under ``torchrun`` the ranks share the extraction; rank 0 scores the
    gathered features and every rank receives its result.
    """
    items = query_gallery_items(dataset.query, dataset.gallery)
    feats = extract_items(model, items, height, width, batch_size, workers, device,
                          amp=amp, verbose=verbose, desc="test features",
                          channels_last=channels_last)
    query_feats, gallery_feats = split_features(feats, items, dataset.query, dataset.gallery)
    result = None
    if distributed.is_main():
        k1, k2, lambda_value = rerank_options
        result = evaluate_features(query_feats, gallery_feats, dataset.query, dataset.gallery,
                                   rerank=rerank, k1=k1, k2=k2, lambda_value=lambda_value)
    result = distributed.broadcast_object(result)
    return result, query_feats, gallery_feats


def save_features_h5(path: str, query_feats: torch.Tensor, gallery_feats: torch.Tensor,
                     query: Sequence, gallery: Sequence) -> None:
    """Write query/gallery features, ids, cameras and paths to an HDF5 file."""
    import h5py
    import numpy as np

    from ..utils.io import atomic_open

    with atomic_open(path, "w+b") as handle, h5py.File(handle, "w") as h5:  # h5py reads back
        for name, feats, items in (("query", query_feats, query), ("gallery", gallery_feats, gallery)):
            group = h5.create_group(name)
            group["features"] = feats.numpy()
            group["pids"] = np.asarray([pid for _, pid, _ in items], dtype=np.int64)
            group["camids"] = np.asarray([cam for _, _, cam in items], dtype=np.int64)
            group["paths"] = np.asarray([p for p, _, _ in items], dtype=h5py.string_dtype())
    logger.info("Saved features to %s", path)
