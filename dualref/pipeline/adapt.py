"""Stage 2: clustering-based adaptation (baseline and Dual-Refinement).

Each epoch: target features -> Jaccard -> clusterer (``--cluster``; DBSCAN
with eps fixed at the first epoch) -> classifier reset to the cluster centres
-> refined labels -> new optimiser -> train ``iters`` steps -> evaluate ->
checkpoint (the loop: :mod:`dualref.engine.loop`).
"""
import logging
import time
from dataclasses import asdict
from typing import Any, Dict, List, Optional, Sequence

import torch

from .. import clustering
from ..clustering import Clusterer
from ..clustering.dbscan import auto_rho
from ..configs import AdaptConfig, BaselineConfig, default_R
from ..datasets import has_test, has_train_labels
from ..datasets.loaders import build_train_loader
from ..datasets.samplers import check_batch_size
from ..datasets.transforms import RandomErasing
from ..engine.loop import Stage, reload_best, run_epochs, write_results
from ..engine.state import load_weights
from ..evaluators.evaluator import EvalResult
from ..losses.memory import Memory, MemoryFactory, spread_out_factory
from ..losses.spread import check_knn
from ..trainers import ClusterTrainer, LossWeights
from ..utils import distributed
from ..utils.device import unwrap
from ..utils.errors import ParamError
from .common import adam, evaluate_model, extract_items, load_run_dataset, setup_run, stage_model
from .labels import PseudoLabels, RefineSettings, make_pseudo_labels

logger = logging.getLogger(__name__)

__all__ = ["AdaptConfig", "AdaptStage", "BaselineConfig", "adapt", "default_R"]


def validate(cfg: AdaptConfig, num_samples: int) -> None:
    """Reject settings that cannot work, naming the parameter."""
    check_batch_size(cfg.batch_size, cfg.num_instances)
    if cfg.R < 1:
        raise ParamError("R", cfg.R, "the number of prototypes per cluster must be >= 1")
    if cfg.mu > 0:
        check_knn(cfg.knn, num_samples)
    if not 0 <= cfg.alpha <= 1:
        raise ParamError("alpha", cfg.alpha, "expected a value in [0, 1]")


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
    """Step decay x gamma every ``epochs_decay`` epochs (constant when None)."""
    if not cfg.epochs_decay:
        return cfg.lr
    return cfg.lr * (cfg.gamma ** (epoch // cfg.epochs_decay))


def default_memories(cfg: AdaptConfig) -> List[MemoryFactory]:
    """The paper's memory: IM-SP when mu > 0 (gradient x 1 / lmd unless set)."""
    if cfg.mu <= 0:
        return []
    scale = cfg.memory_grad_scale
    if scale is None:
        scale = 1.0 / cfg.lmd if cfg.lmd > 0 else 1.0
    return [spread_out_factory(cfg.mu, cfg.knn, cfg.m, scale)]


class AdaptStage(Stage):
    """Pseudo-labels every epoch, then the losses of the baseline or Dual-Refinement."""

    name, score_key = "adapt", "target"

    def __init__(self, cfg: AdaptConfig, memories: Sequence[MemoryFactory] = ()) -> None:
        self.device, self.verbose, (self.target,) = setup_run(cfg, cfg.dataset_target)
        self.source = load_run_dataset(cfg, cfg.dataset_source) if cfg.lambda_value > 0 else None
        num_samples = len(self.target.train)
        validate(cfg, num_samples)
        self.rho = resolve_rho(cfg, num_samples)
        self.clusterer = build_clusterer(cfg, self.rho)
        super().__init__(cfg, stage_model(cfg, self.device, num_samples, pretrained=False,
                                          norm=cfg.norm_features))
        self.factories = default_memories(cfg) + list(memories)
        self.memories: Optional[List[Memory]] = None  # created from the first epoch's features
        self.resumed: Dict[str, Any] = {}
        self.can_evaluate = has_test(self.target)
        self.true_ids = [pid for _, pid, _ in self.target.train] \
            if has_train_labels(self.target) else None
        if not self.can_evaluate:
            logger.info("%s has no query/gallery: no mAP; every epoch's model is saved as "
                        "model_best, so the best checkpoint is the last one", self.target.name)

    def start(self) -> None:
        if not self.cfg.init:
            raise ParamError("init", self.cfg.init, "required: the source-pretrained "
                             "model_best.pth.tar (sh scripts/pretrain.sh SOURCE TARGET SEED "
                             "writes it)")
        load_weights(self.cfg.init, self.model)

    def restore(self, state: Dict[str, Any]) -> None:
        # Checkpoints before the clusterer interface kept DBSCAN's eps on its own.
        self.clusterer.load_state_dict(state.get("clusterer", {"eps": state.get("eps")}))
        self.resumed = state  # memories take theirs back once created

    def state(self) -> Dict[str, Any]:
        extra = {"clusterer": self.clusterer.state_dict()}
        extra.update({m.key: m.checkpoint_state() for m in self.memories or []})
        return extra

    def extract(self, items: Sequence, desc: str) -> torch.Tensor:
        cfg = self.cfg
        return extract_items(self.model, items, cfg.height, cfg.width, cfg.batch_size, cfg.workers,
                             self.device, amp=cfg.amp, verbose=self.verbose, desc=desc,
                             channels_last=cfg.channels_last)

    def evaluate(self) -> EvalResult:
        cfg = self.cfg
        return evaluate_model(self.model, self.target, cfg.height, cfg.width, cfg.batch_size,
                              cfg.workers, self.device, amp=cfg.amp, verbose=self.verbose,
                              channels_last=cfg.channels_last)[0]

    def create_memories(self, features: torch.Tensor) -> List[Memory]:
        """Every memory from the first epoch's features; a resumed run's states put back."""
        memories = [factory(features, self.target.train).to(self.device)
                    for factory in self.factories]
        for memory in memories:
            if memory.key in self.resumed:
                memory.load_checkpoint_state(self.resumed[memory.key])
        return memories

    def pseudo_labels(self, features: torch.Tensor) -> PseudoLabels:
        """Cluster (and refine) once on rank 0; every rank gets the labels and the clusterer state."""
        cfg = self.cfg
        source_features = self.extract(self.source.train, "source features") \
            if self.source else None
        pseudo = None
        if distributed.is_main():
            refine = RefineSettings(cfg.R, cfg.n_init, cfg.kmeans_seed, cfg.refine_backend) \
                if cfg.alpha > 0 else None
            pseudo = make_pseudo_labels(features, self.clusterer, cfg.k1, cfg.k2,
                                        cfg.lambda_value, source_features, refine=refine,
                                        true_ids=self.true_ids, device=self.device,
                                        verbose=self.verbose)
        pseudo = distributed.broadcast_object(pseudo)
        # Rank 0 clustered: every rank takes its state, so all checkpoints agree.
        self.clusterer.load_state_dict(distributed.broadcast_object(self.clusterer.state_dict()))
        return pseudo

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        tic = time.time()
        features = self.extract(self.target.train, "target features")
        record: Dict[str, Any] = {"seconds_features": time.time() - tic}
        if self.memories is None:
            self.memories = self.create_memories(features)
        pseudo = self.pseudo_labels(features)
        lr = epoch_lr(self.cfg, epoch)
        record.update(pseudo.stats, lr=lr, rho=self.rho)
        if pseudo.num_clusters < 2:
            # Nothing to learn from: keep the weights, say so, and go on.
            logger.warning("epoch %d: DBSCAN found %d cluster(s); skipping this epoch's training",
                           epoch, pseudo.num_clusters)
            record["skipped_training"] = True
        else:
            record.update(self.train(epoch, pseudo, lr))
        return record

    def train(self, epoch: int, pseudo: PseudoLabels, lr: float) -> Dict[str, Any]:
        """Reset the classifier, build loader and optimiser, train one epoch."""
        cfg = self.cfg
        unwrap(self.model).reset_classifier(pseudo.centers.to(self.device))
        for memory in self.memories:
            memory.new_epoch(pseudo.labels)
        items = [(path, int(label), cam)
                 for (path, _, cam), label in zip(self.target.train, pseudo.labels)]
        erasing = RandomErasing(cfg.re_probability, cfg.re_area[0], cfg.re_area[1],
                                cfg.re_aspect) if cfg.random_erasing else False
        loader = build_train_loader(items, height=cfg.height, width=cfg.width,
                                    batch_size=cfg.batch_size, num_instances=cfg.num_instances,
                                    workers=cfg.workers, iters=cfg.iters, random_erasing=erasing,
                                    padding=cfg.pad, flip_probability=cfg.flip_probability,
                                    seed=cfg.seed * 1000 + epoch)
        params = list(self.model.parameters())
        for memory in self.memories:
            params += list(memory.parameters())
        # A new optimiser every epoch, as the original (the memories persist).
        optimizer = adam(params, lr, cfg.weight_decay)
        refined = torch.from_numpy(pseudo.refined) if pseudo.refined is not None else None
        trainer = ClusterTrainer(self.model, pseudo.num_clusters,
                                 LossWeights(alpha=cfg.alpha, lmd=cfg.lmd),
                                 refined_labels=refined, terms=self.memories,
                                 label_smoothing=cfg.label_smoothing, device=self.device,
                                 amp=cfg.amp, print_freq=cfg.print_freq, verbose=self.verbose,
                                 channels_last=cfg.channels_last)
        loader.new_epoch()
        tic = time.time()
        losses = trainer.train_epoch(epoch, loader, optimizer, cfg.iters)
        losses["seconds_train"] = time.time() - tic
        return losses


def adapt(cfg: AdaptConfig, memories: Sequence[MemoryFactory] = ()) -> Dict[str, Any]:
    """Run the adaptation; returns the config, the best mAP, the best model's target result
    (both None for a target without query/gallery) and the last epoch's pseudo-label summary.

    ``memories``: factories of extra memory modules (see :mod:`dualref.losses.memory`).
    """
    stage = AdaptStage(cfg, memories)
    loop = run_epochs(stage)
    results = {"config": asdict(cfg), "best_mAP": None, "best": None,
               "pseudo_labels": _label_summary(loop.last_record)}
    if stage.can_evaluate:
        logger.info("Test on the best model.")
        reload_best(cfg.logs_dir, stage.model)
        results.update(best_mAP=loop.best_mAP, best=stage.evaluate().to_dict())
    write_results(cfg.logs_dir, results)
    return results


def _label_summary(record: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The last epoch's pseudo-label statistics (what an unlabelled target can report)."""
    if record is None:
        return None
    keys = ("eps", "num_clusters", "num_outliers", "cluster_size_mean", "cluster_size_median",
            "cluster_size_max")
    return {key: record[key] for key in keys if key in record}
