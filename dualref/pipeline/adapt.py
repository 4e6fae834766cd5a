"""Stage 2: clustering-based adaptation (baseline and Dual-Refinement).

Each epoch: target features -> Jaccard -> clusterer (``--cluster``; DBSCAN
with eps fixed at the first epoch) -> classifier reset to the cluster centres -> refined labels ->
new optimiser -> train ``iters`` steps -> evaluate -> checkpoint.
"""
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Union

import torch
import torch.nn.functional as F

from .. import clustering
from ..clustering import Clusterer
from ..clustering.dbscan import MARKET_IMAGES_PER_ID, auto_rho
from ..datasets import has_test, has_train_labels
from ..datasets.loaders import build_train_loader
from ..datasets.samplers import check_batch_size
from ..losses.spread import SpreadLoss
from ..trainers import ClusterTrainer, LossWeights
from ..utils import distributed
from ..utils.device import setup_device, unwrap
from ..utils.errors import UserError
from ..utils.io import append_jsonl, write_json
from ..utils.seeding import seed_everything
from .common import (RunConfig, adam, build_model, evaluate_model, extract_items, load_run_dataset,
                     prepare_model)
from .labels import RefineSettings, make_pseudo_labels
from .state import (BEST, load_run_checkpoint, load_weights, resume_path, save_run_checkpoint,
                    trim_metrics)

logger = logging.getLogger(__name__)


@dataclass
class AdaptConfig(RunConfig):
    """Every setting of stage 2 (defaults: Dual-Refinement, Duke->Market)."""

    logs_dir: str = os.path.join("logs", "adapt")
    init: str = ""
    epochs: int = 40
    iters: int = 400
    epochs_decay: Optional[int] = 20  # None: constant learning rate (the baseline)
    eval_step: int = 1
    rho: Union[float, str] = 1.6e-3  # or "auto": auto_rho(target size, images_per_id)
    images_per_id: float = MARKET_IMAGES_PER_ID
    cluster: str = "dbscan"  # a name in dualref.clustering.CLUSTERERS
    cluster_options: Dict[str, Any] = field(default_factory=dict)
    k1: int = 20
    k2: int = 6
    min_samples: int = 4
    lambda_value: float = 0.0
    alpha: float = 0.5
    lmd: float = 0.5
    mu: float = 0.1
    knn: int = 6
    m: float = 0.35
    R: Optional[int] = None  # None: the paper's choice, 5 for a Market target, else 2
    n_init: int = 10  # k-means restarts per cluster (refinement)
    kmeans_seed: int = 0  # random_state of every refinement k-means
    refine_backend: str = "batched"  # or "sklearn", one scikit-learn KMeans per cluster
    norm_features: bool = True  # losses on normalised bn_x (Dual-Refinement) or pooled x
    random_erasing: bool = True

    def __post_init__(self) -> None:
        if self.R is None:  # resolved here so results.json records the R actually used
            self.R = default_R(self.dataset_target)


def default_R(dataset_target: str) -> int:
    """The paper's R: 5 for Duke->Market, 2 for Market->Duke (and other targets)."""
    return 5 if dataset_target == "market1501" else 2


def validate(cfg: AdaptConfig, num_samples: int) -> None:
    """Reject settings that cannot work, naming the option."""
    check_batch_size(cfg.batch_size, cfg.num_instances)
    if cfg.R < 1:
        raise UserError(f"--R {cfg.R}: the number of prototypes per cluster must be >= 1")
    if cfg.mu > 0 and not 1 <= cfg.knn < num_samples - 1:
        raise UserError(f"--knn {cfg.knn}: must be in [1, {num_samples - 2}] for "
                        f"{num_samples} target images")
    if not 0 <= cfg.alpha <= 1:
        raise UserError(f"--alpha {cfg.alpha}: expected a value in [0, 1]")


def build_clusterer(cfg: AdaptConfig, rho: float) -> Clusterer:
    """``--cluster`` with its ``--cluster-option``s; rho and min_samples where it takes them."""
    return clustering.create(cfg.cluster, shared={"rho": rho, "min_samples": cfg.min_samples},
                             **cfg.cluster_options)


def resolve_rho(cfg: AdaptConfig, num_samples: int) -> float:
    """``cfg.rho``, or the auto rule's value for this target (logged)."""
    if cfg.rho != "auto":
        return float(cfg.rho)
    rho = auto_rho(num_samples, cfg.images_per_id)
    logger.info("rho auto: %.3g (%d images, %g expected per identity)", rho, num_samples,
                cfg.images_per_id)
    return rho


def epoch_lr(cfg: AdaptConfig, epoch: int) -> float:
    """Step decay x0.1 every ``epochs_decay`` epochs (constant when None)."""
    if not cfg.epochs_decay:
        return cfg.lr
    return cfg.lr * (0.1 ** (epoch // cfg.epochs_decay))


def adapt(cfg: AdaptConfig) -> dict:
    """Run the adaptation; returns the best and final target results."""
    seed_everything(cfg.seed)
    device = setup_device(cfg.device)
    verbose = cfg.verbose and distributed.is_main()  # one progress bar, not one per rank
    target = load_run_dataset(cfg, cfg.dataset_target)
    source = load_run_dataset(cfg, cfg.dataset_source) if cfg.lambda_value > 0 else None
    num_samples = len(target.train)
    validate(cfg, num_samples)
    rho = resolve_rho(cfg, num_samples)
    clusterer = build_clusterer(cfg, rho)
    model = build_model(cfg.arch, num_classes=num_samples, pretrained=False,
                        features=cfg.features, dropout=cfg.dropout, norm=cfg.norm_features)
    model = prepare_model(model, device, cfg.batch_size, bn_group_size=cfg.bn_group_size,
                          bn_stats=cfg.bn_stats, channels_last=cfg.channels_last,
                          compile=cfg.compile)
    spread: Optional[SpreadLoss] = None  # the instance memory, created at the first epoch

    start_epoch, best_mAP = 0, 0.0
    # Rank 0 decides, so every rank resumes (or fails naming the file) alike.
    resume = distributed.broadcast_object(resume_path(cfg.resume, cfg.logs_dir))
    if resume:
        state = load_run_checkpoint(resume, model)
        start_epoch, best_mAP = int(state["epoch"]), float(state["best_mAP"])
        # Checkpoints before the clusterer interface kept DBSCAN's eps on its own.
        clusterer.load_state_dict(state.get("clusterer", {"eps": state.get("eps")}))
        if cfg.mu > 0 and "memory" in state:
            spread = _spread_loss(cfg, state["memory"], device)
            # Trained slots are no longer unit vectors: restore them verbatim.
            spread.memory.data.copy_(state["memory"])
    elif cfg.init:
        load_weights(cfg.init, model)
    else:
        raise UserError("--init PATH is required: the source-pretrained model_best.pth.tar "
                        "(sh scripts/pretrain.sh SOURCE TARGET SEED writes it)")

    def extract(items, desc):
        return extract_items(model, items, cfg.height, cfg.width, cfg.batch_size, cfg.workers,
                             device, amp=cfg.amp, verbose=verbose, desc=desc,
                             channels_last=cfg.channels_last)

    def evaluate():
        return evaluate_model(model, target, cfg.height, cfg.width, cfg.batch_size, cfg.workers,
                              device, amp=cfg.amp, verbose=verbose,
                              channels_last=cfg.channels_last)[0]

    metrics_path = os.path.join(cfg.logs_dir, "metrics.jsonl")
    true_ids = [pid for _, pid, _ in target.train] if has_train_labels(target) else None
    can_evaluate = has_test(target)
    if not can_evaluate:
        logger.info("%s has no query/gallery: no mAP; every epoch's model is saved as "
                    "model_best, so the best checkpoint is the last one", target.name)
    if distributed.is_main():
        trim_metrics(metrics_path, start_epoch, "adapt")
    for epoch in range(start_epoch, cfg.epochs):
        record = {"stage": "adapt", "epoch": epoch}
        tic = time.time()
        features = extract(target.train, "target features")
        record["seconds_features"] = time.time() - tic
        if cfg.mu > 0 and spread is None:
            spread = _spread_loss(cfg, F.normalize(features, dim=1), device)
        source_features = extract(source.train, "source features") if source else None
        pseudo = None
        if distributed.is_main():  # clustering once; every rank gets its labels
            pseudo = make_pseudo_labels(
                features, clusterer, cfg.k1, cfg.k2, cfg.lambda_value, source_features,
                refine=RefineSettings(cfg.R, cfg.n_init, cfg.kmeans_seed, cfg.refine_backend)
                if cfg.alpha > 0 else None,
                true_ids=true_ids, device=device, verbose=verbose)
        pseudo = distributed.broadcast_object(pseudo)
        # Rank 0 clustered: every rank takes its state, so all checkpoints agree.
        clusterer.load_state_dict(distributed.broadcast_object(clusterer.state_dict()))
        record.update(pseudo.stats)
        lr = epoch_lr(cfg, epoch)
        record["lr"] = lr
        record["rho"] = rho
        if pseudo.num_clusters < 2:
            # Nothing to learn from: keep the weights, say so, and go on.
            logger.warning("epoch %d: DBSCAN found %d cluster(s); skipping this epoch's training",
                           epoch, pseudo.num_clusters)
            record["skipped_training"] = True
        else:
            record.update(_train_epoch(cfg, epoch, model, spread, target, pseudo, lr, device,
                                       verbose))
        is_best = not can_evaluate  # nothing to compare: the newest model is the one to keep
        if can_evaluate and ((epoch + 1) % cfg.eval_step == 0 or epoch == cfg.epochs - 1):
            result = evaluate()
            is_best = result.mAP > best_mAP
            best_mAP = max(best_mAP, result.mAP)
            record["target"] = result.to_dict()
            logger.info("\n * Finished epoch %3d  model mAP: %5.1f%% best: %5.1f%%%s\n",
                        epoch, 100 * result.mAP, 100 * best_mAP, " *" if is_best else "")
        extra = {"clusterer": clusterer.state_dict(), "stage": "adapt"}
        if spread is not None:
            extra["memory"] = spread.memory.detach().cpu()
        if distributed.is_main():  # one writer; the other ranks hold the same state
            # Metrics before the checkpoint: a crash in between redoes this epoch,
            # and the resumed run drops the stale record (trim_metrics).
            append_jsonl(metrics_path, record)
            save_run_checkpoint(cfg.logs_dir, model, epoch + 1, best_mAP, is_best, **extra)

    if not can_evaluate:
        results = {"config": asdict(cfg), "best_mAP": None, "best": None,
                   "pseudo_labels": _label_summary(record) if cfg.epochs > start_epoch else None}
        if distributed.is_main():
            write_json(os.path.join(cfg.logs_dir, "results.json"), results)
        return results
    logger.info("Test on the best model.")
    best_path = os.path.join(cfg.logs_dir, BEST)
    if distributed.is_main() and os.path.exists(best_path):
        load_weights(best_path, model)
    # Rank 0 wrote the file: the others take its weights (no shared disk needed).
    distributed.broadcast_module(unwrap(model))
    final = evaluate()
    results = {"config": asdict(cfg), "best_mAP": best_mAP, "best": final.to_dict()}
    if distributed.is_main():
        write_json(os.path.join(cfg.logs_dir, "results.json"), results)
    return results


def _label_summary(record: dict) -> dict:
    """The last epoch's pseudo-label statistics (what an unlabelled target can report)."""
    keys = ("eps", "num_clusters", "num_outliers", "cluster_size_mean", "cluster_size_median",
            "cluster_size_max")
    return {key: record[key] for key in keys if key in record}


def _spread_loss(cfg: AdaptConfig, memory: torch.Tensor, device: torch.device) -> SpreadLoss:
    """The instance memory; its gradient is divided by lmd, as the original does
    before each step, so that lmd weighs only the classification terms."""
    return SpreadLoss(memory.shape[1], memory.shape[0], init_memory=memory, m=cfg.m,
                      knn=cfg.knn, grad_scale=1.0 / cfg.lmd if cfg.lmd > 0 else 1.0).to(device)


def _train_epoch(cfg: AdaptConfig, epoch: int, model, spread, target, pseudo, lr: float,
                 device: torch.device, verbose: bool) -> dict:
    """Reset the classifier, build loader and optimiser, train one epoch."""
    unwrap(model).reset_classifier(pseudo.centers.to(device))
    items = [(path, int(label), cam) for (path, _, cam), label in zip(target.train, pseudo.labels)]
    loader = build_train_loader(items, height=cfg.height, width=cfg.width,
                                batch_size=cfg.batch_size, num_instances=cfg.num_instances,
                                workers=cfg.workers, iters=cfg.iters,
                                random_erasing=cfg.random_erasing, padding=cfg.pad,
                                seed=cfg.seed * 1000 + epoch)
    params = list(model.parameters()) + (list(spread.parameters()) if spread is not None else [])
    # A new optimiser every epoch, as the original (the memory persists).
    optimizer = adam(params, lr, cfg.weight_decay)
    refined = torch.from_numpy(pseudo.refined) if pseudo.refined is not None else None
    trainer = ClusterTrainer(model, pseudo.num_clusters,
                             LossWeights(alpha=cfg.alpha, lmd=cfg.lmd, mu=cfg.mu),
                             refined_labels=refined, spread=spread,
                             label_smoothing=cfg.label_smoothing, device=device, amp=cfg.amp,
                             print_freq=cfg.print_freq, verbose=verbose,
                             channels_last=cfg.channels_last)
    loader.new_epoch()
    tic = time.time()
    losses = trainer.train_epoch(epoch, loader, optimizer, cfg.iters)
    losses["seconds_train"] = time.time() - tic
    return losses
