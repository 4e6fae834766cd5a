"""Stage 1: supervised pre-training on the source, direct transfer to the target."""
import logging
import time
import warnings
from dataclasses import asdict
from typing import Any, Dict

from ..configs import PretrainConfig
from ..datasets import has_test
from ..datasets.loaders import build_train_loader
from ..engine.loop import Stage, reload_best, run_epochs, write_results
from ..engine.state import load_weights
from ..evaluators.evaluator import EvalResult
from ..trainers import PreTrainer
from ..utils import distributed
from ..utils.errors import ParamError
from ..utils.io import append_jsonl
from ..utils.lr_scheduler import WarmupMultiStepLR
from .common import adam, evaluate_model, setup_run, stage_model

logger = logging.getLogger(__name__)

__all__ = ["PretrainConfig", "PretrainStage", "evaluate_pretrained", "pretrain"]


class PretrainStage(Stage):
    """Source batches train (CE + triplet on the pooled feature); target batches feed BatchNorm."""

    name, score_key = "pretrain", "source"

    def __init__(self, cfg: PretrainConfig) -> None:
        self.device, self.verbose, (self.source, self.target) = setup_run(
            cfg, cfg.dataset_source, cfg.dataset_target)
        fresh = cfg.pretrained and not (cfg.resume or cfg.evaluate)
        super().__init__(cfg, stage_model(cfg, self.device, self.source.num_train_pids,
                                          pretrained=fresh, pretrained_path=cfg.pretrained_path))

    def prepare_training(self) -> None:
        """Loaders, optimiser, schedule and trainer (not needed to evaluate)."""
        cfg = self.cfg
        args = dict(height=cfg.height, width=cfg.width, batch_size=cfg.batch_size,
                    workers=cfg.workers, iters=cfg.iters, padding=cfg.pad,
                    flip_probability=cfg.flip_probability)
        self.source_loader = build_train_loader(self.source.train, num_instances=cfg.num_instances,
                                                seed=cfg.seed, **args)
        self.target_loader = build_train_loader(self.target.train, num_instances=0,
                                                seed=cfg.seed + 1, **args)
        self.optimizer = adam(list(self.model.parameters()), cfg.lr, cfg.weight_decay)
        self.scheduler = WarmupMultiStepLR(self.optimizer, cfg.milestones, gamma=cfg.gamma,
                                           warmup_factor=cfg.warmup_factor,
                                           warmup_iters=cfg.warmup_step)
        self.trainer = PreTrainer(self.model, self.source.num_train_pids, self.target_loader,
                                  margin=cfg.margin, epsilon=cfg.label_smoothing,
                                  device=self.device, amp=cfg.amp, print_freq=cfg.print_freq,
                                  verbose=self.verbose, channels_last=cfg.channels_last)

    def restore(self, state: Dict[str, Any]) -> None:
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.source_loader.load_state_dict(state["source_loader"])
            self.target_loader.load_state_dict(state["target_loader"])

    def state(self) -> Dict[str, Any]:
        return dict(optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                    source_loader=self.source_loader.state_dict(),
                    target_loader=self.target_loader.state_dict())

    def train_epoch(self, epoch: int) -> Dict[str, Any]:
        cfg = self.cfg
        # Stepped before training, as the original: epoch e trains at the
        # schedule's value for e + 1 (warm-up starts at 0.109x, not 0.01x).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
            self.scheduler.step()
        self.source_loader.new_epoch()
        self.target_loader.new_epoch()
        tic = time.time()
        losses = self.trainer.train_epoch(epoch, self.source_loader, self.optimizer, cfg.iters)
        return {"lr": self.optimizer.param_groups[0]["lr"], "train_seconds": time.time() - tic,
                **losses}

    def evaluate(self) -> EvalResult:
        return self.evaluate_on(self.source, "source")

    def evaluate_on(self, dataset, name: str) -> EvalResult:
        """mAP and CMC of the current model on ``dataset``'s query/gallery."""
        cfg = self.cfg
        logger.info("Test on %s domain (%s):", name, dataset.name)
        return evaluate_model(self.model, dataset, cfg.height, cfg.width, cfg.batch_size,
                              cfg.workers, self.device, rerank=cfg.rerank, amp=cfg.amp,
                              verbose=self.verbose, channels_last=cfg.channels_last,
                              rerank_options=(cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda))[0]

    def direct_transfer(self, last_is_best: bool) -> Dict[str, Any]:
        """Target results of the last epoch's model and of model_best (which ends loaded)."""
        last = self.evaluate_on(self.target, "target (last epoch)")
        if not last_is_best:
            reload_best(self.cfg.logs_dir, self.model)
        best = last if last_is_best else self.evaluate_on(self.target, "target (model_best)")
        chosen = last if self.cfg.direct_transfer_model == "last" else best
        logger.info("Direct transfer (%s model): mAP %.1f%% (last epoch %.1f%%, model_best "
                    "%.1f%%)", self.cfg.direct_transfer_model, 100 * chosen.mAP, 100 * last.mAP,
                    100 * best.mAP)
        return {"direct_transfer": chosen.to_dict(), "direct_transfer_last": last.to_dict(),
                "direct_transfer_best": best.to_dict()}


def pretrain(cfg: PretrainConfig) -> Dict[str, Any]:
    """Train on the labelled source; returns the config, best source mAP and direct transfer."""
    stage = PretrainStage(cfg)
    stage.prepare_training()
    loop = run_epochs(stage)
    results: Dict[str, Any] = {"config": asdict(cfg), "best_source_mAP": loop.best_mAP,
                               "direct_transfer": None}
    if not has_test(stage.target):
        logger.info("%s has no query/gallery: no direct-transfer score", stage.target.name)
    else:
        results.update(stage.direct_transfer(loop.last_is_best))
        if distributed.is_main():
            append_jsonl(f"{cfg.logs_dir}/metrics.jsonl", {"stage": "pretrain", "epoch": cfg.epochs,
                                                           "target": results["direct_transfer"]})
    write_results(cfg.logs_dir, results)
    return results


def evaluate_pretrained(cfg: PretrainConfig) -> Dict[str, Any]:
    """``--evaluate``: the ``--resume`` checkpoint's source and target results."""
    if not cfg.resume:
        raise ParamError("resume", cfg.resume, "evaluate needs the checkpoint to evaluate")
    stage = PretrainStage(cfg)
    load_weights(cfg.resume, stage.model)
    results = {"source": stage.evaluate_on(stage.source, "source").to_dict(),
               "target": stage.evaluate_on(stage.target, "target").to_dict()
               if has_test(stage.target) else None}
    write_results(cfg.logs_dir, results, "results_evaluate.json")
    return results
