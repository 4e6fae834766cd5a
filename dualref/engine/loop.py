"""The epoch loop every stage shares: resume, train, evaluate, keep the best, save.

A stage (pre-training, adaptation, or yours) subclasses :class:`Stage` and
supplies what differs: how an epoch trains, what it is scored on, and which
extra state its checkpoints carry. :func:`run_epochs` owns the guarantees:
rank 0 decides the resume and every rank follows; a resumed run drops the
metrics of epochs it redoes; each epoch writes its metrics before its
checkpoint, both atomically, so a crash at any point loses at most that epoch.
"""
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

from torch import nn

from ..evaluators.evaluator import EvalResult
from .state import (BEST, load_run_checkpoint, load_weights, resume_path,
                              save_run_checkpoint, trim_metrics)
from ..utils import distributed
from ..utils.device import unwrap
from ..utils.io import append_jsonl, write_json

logger = logging.getLogger(__name__)

METRICS = "metrics.jsonl"
RESULTS = "results.json"


class Stage:
    """What a stage gives :func:`run_epochs`. ``cfg`` needs ``epochs``, ``eval_step``,
    ``logs_dir`` and ``resume``; ``model`` is the network the checkpoints hold."""

    name = "stage"  # the "stage" of its metrics records and checkpoints
    score_key = "target"  # record key of the evaluation that picks model_best
    can_evaluate = True  # False: nothing to score, every epoch's model is kept as the best

    def __init__(self, cfg: Any, model: nn.Module) -> None:
        self.cfg, self.model = cfg, model

    def start(self) -> None:
        """A fresh run begins (e.g. load the initial weights)."""

    def restore(self, state: Dict[str, Any]) -> None:
        """A resumed run begins: take the extra state of :meth:`state` back."""

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        """Train one epoch; returns what its metrics record holds."""
        raise NotImplementedError

    def evaluate(self) -> EvalResult:
        """Score the current model (the mAP picks model_best)."""
        raise NotImplementedError

    def state(self) -> Dict[str, Any]:
        """Extra checkpoint state a resume needs (optimiser, memory, eps...)."""
        return {}


@dataclass
class LoopResult:
    """How the epochs ended."""

    best_mAP: float
    last_is_best: bool  # the weights in memory are model_best's
    last_record: Optional[Dict[str, Any]]  # None when a resumed run had nothing left to do


def run_epochs(stage: Stage) -> LoopResult:
    """Resume or start, then train ``cfg.epochs`` epochs, evaluating every ``cfg.eval_step``."""
    cfg = stage.cfg
    start_epoch, best_mAP = 0, 0.0
    # Rank 0 decides, so every rank resumes (or fails naming the file) alike.
    resume = distributed.broadcast_object(resume_path(cfg.resume, cfg.logs_dir))
    if resume:
        state = load_run_checkpoint(resume, stage.model)
        start_epoch, best_mAP = int(state["epoch"]), float(state["best_mAP"])
        stage.restore(state)
    else:
        stage.start()
    if distributed.is_main():
        trim_metrics(os.path.join(cfg.logs_dir, METRICS), start_epoch, stage.name)
    is_best, record = False, None
    for epoch in range(start_epoch, cfg.epochs):
        record = {"stage": stage.name, "epoch": epoch, **stage.train_epoch(epoch)}
        is_best = not stage.can_evaluate
        if stage.can_evaluate and ((epoch + 1) % cfg.eval_step == 0 or epoch == cfg.epochs - 1):
            result = stage.evaluate()
            is_best = result.mAP > best_mAP
            best_mAP = max(best_mAP, result.mAP)
            record[stage.score_key] = result.to_dict()
            logger.info("\n * Finished epoch %3d  %s mAP: %5.1f%%  best: %5.1f%%%s\n", epoch,
                        stage.score_key, 100 * result.mAP, 100 * best_mAP, " *" if is_best else "")
        if distributed.is_main():  # one writer; the other ranks hold the same state
            # Metrics before the checkpoint: a crash in between redoes this epoch,
            # and the resumed run drops the stale record (trim_metrics).
            append_jsonl(os.path.join(cfg.logs_dir, METRICS), record)
            save_run_checkpoint(cfg.logs_dir, stage.model, epoch + 1, best_mAP, is_best,
                                stage=stage.name, **stage.state())
    return LoopResult(best_mAP, is_best, record)


def reload_best(logs_dir: str, model: nn.Module) -> None:
    """Load ``model_best.pth.tar`` into ``model`` on every rank (kept as is without one)."""
    path = os.path.join(logs_dir, BEST)
    if distributed.is_main() and os.path.exists(path):
        load_weights(path, model)
    # Rank 0 read the file: the others take its weights (no shared disk needed).
    distributed.broadcast_module(unwrap(model))


def write_results(logs_dir: str, results: Dict[str, Any], name: str = RESULTS) -> None:
    """Write a stage's results as JSON in its run folder (rank 0 only)."""
    if distributed.is_main():
        write_json(os.path.join(logs_dir, name), results)
