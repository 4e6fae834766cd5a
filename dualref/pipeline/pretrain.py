"""Stage 1: supervised pre-training on the source, direct transfer to the target."""
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from ..datasets import has_test
from ..datasets.loaders import build_train_loader
from ..trainers import PreTrainer
from ..utils import distributed
from ..utils.device import setup_device, unwrap
from ..utils.errors import UserError
from ..utils.io import append_jsonl, write_json
from ..utils.lr_scheduler import WarmupMultiStepLR
from ..utils.seeding import seed_everything
from .common import RunConfig, adam, build_model, evaluate_model, load_run_dataset, prepare_model
from .state import (BEST, load_run_checkpoint, load_weights, resume_path, save_run_checkpoint,
                    trim_metrics)

logger = logging.getLogger(__name__)


@dataclass
class PretrainConfig(RunConfig):
    """Every setting of stage 1 (defaults: docs/method.md / the original pretrain.sh)."""

    logs_dir: str = os.path.join("logs", "source-pretrain")
    pretrained: bool = True
    pretrained_path: Optional[str] = None
    warmup_step: int = 10
    milestones: List[int] = field(default_factory=lambda: [40, 70])
    epochs: int = 80
    iters: int = 200
    eval_step: int = 40
    margin: float = 0.0
    rerank: bool = False
    evaluate: bool = False
    direct_transfer_model: str = "last"  # the original tests the last epoch's model on the target


def _evaluate_best(logs_dir: str, model, target, evaluate):
    """Target result of model_best (its weights stay loaded; the current ones without a file)."""
    best_path = os.path.join(logs_dir, BEST)
    if distributed.is_main() and os.path.exists(best_path):
        load_weights(best_path, model)
    # Rank 0 read the file: the others take its weights (no shared disk needed).
    distributed.broadcast_module(unwrap(model))
    return evaluate(target, "target (model_best)")


def pretrain(cfg: PretrainConfig) -> dict:
    """Train on the labelled source; return source and target results."""
    seed_everything(cfg.seed)
    device = setup_device(cfg.device)
    verbose = cfg.verbose and distributed.is_main()  # one progress bar, not one per rank
    source = load_run_dataset(cfg, cfg.dataset_source)
    target = load_run_dataset(cfg, cfg.dataset_target)
    model = build_model(cfg.arch, num_classes=source.num_train_pids, pretrained=cfg.pretrained
                        and not (cfg.resume or cfg.evaluate), pretrained_path=cfg.pretrained_path,
                        features=cfg.features, dropout=cfg.dropout)
    model = prepare_model(model, device, cfg.batch_size, bn_group_size=cfg.bn_group_size,
                          bn_stats=cfg.bn_stats, channels_last=cfg.channels_last,
                          compile=cfg.compile)

    def evaluate(dataset, name: str):
        logger.info("Test on %s domain (%s):", name, dataset.name)
        result, _, _ = evaluate_model(model, dataset, cfg.height, cfg.width, cfg.batch_size,
                                      cfg.workers, device, rerank=cfg.rerank, amp=cfg.amp,
                                      verbose=verbose, channels_last=cfg.channels_last)
        return result

    if cfg.evaluate:
        if not cfg.resume:
            raise UserError("--evaluate needs --resume PATH (the checkpoint to evaluate)")
        load_weights(cfg.resume, model)
        results = {"source": evaluate(source, "source").to_dict(),
                   "target": evaluate(target, "target").to_dict() if has_test(target) else None}
        if distributed.is_main():
            write_json(os.path.join(cfg.logs_dir, "results_evaluate.json"), results)
        return results

    loader_args = dict(height=cfg.height, width=cfg.width, batch_size=cfg.batch_size,
                       workers=cfg.workers, iters=cfg.iters, padding=cfg.pad)
    source_loader = build_train_loader(source.train, num_instances=cfg.num_instances,
                                       seed=cfg.seed, **loader_args)
    target_loader = build_train_loader(target.train, num_instances=0, seed=cfg.seed + 1,
                                       **loader_args)
    optimizer = adam(list(model.parameters()), cfg.lr, cfg.weight_decay)
    scheduler = WarmupMultiStepLR(optimizer, cfg.milestones, gamma=0.1, warmup_factor=0.01,
                                  warmup_iters=cfg.warmup_step)
    start_epoch, best_mAP = 0, 0.0
    # Rank 0 decides, so every rank resumes (or fails naming the file) alike.
    resume = distributed.broadcast_object(resume_path(cfg.resume, cfg.logs_dir))
    if resume:
        state = load_run_checkpoint(resume, model)
        start_epoch, best_mAP = int(state["epoch"]), float(state["best_mAP"])
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            source_loader.load_state_dict(state["source_loader"])
            target_loader.load_state_dict(state["target_loader"])

    trainer = PreTrainer(model, source.num_train_pids, target_loader, margin=cfg.margin,
                         epsilon=cfg.label_smoothing, device=device, amp=cfg.amp,
                         print_freq=cfg.print_freq,
                         verbose=verbose, channels_last=cfg.channels_last)
    metrics_path = os.path.join(cfg.logs_dir, "metrics.jsonl")
    if distributed.is_main():
        trim_metrics(metrics_path, start_epoch, "pretrain")
    is_best = False  # whether the last epoch's weights are model_best's
    for epoch in range(start_epoch, cfg.epochs):
        # Stepped before training, as the original: epoch e trains at the
        # schedule's value for e + 1 (warm-up starts at 0.109x, not 0.01x).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*")
            scheduler.step()
        source_loader.new_epoch()
        target_loader.new_epoch()
        tic = time.time()
        losses = trainer.train_epoch(epoch, source_loader, optimizer, cfg.iters)
        record = {"stage": "pretrain", "epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                  "train_seconds": time.time() - tic, **losses}
        is_best = False
        if (epoch + 1) % cfg.eval_step == 0 or epoch == cfg.epochs - 1:
            result = evaluate(source, "source")
            is_best = result.mAP > best_mAP
            best_mAP = max(best_mAP, result.mAP)
            record["source"] = result.to_dict()
            logger.info("\n * Finished epoch %3d  source mAP: %5.1f%%  best: %5.1f%%%s\n",
                        epoch, 100 * result.mAP, 100 * best_mAP, " *" if is_best else "")
        if distributed.is_main():  # one writer; the other ranks hold the same state
            # Metrics before the checkpoint: a crash in between redoes this epoch,
            # and the resumed run drops the stale record (trim_metrics).
            append_jsonl(metrics_path, record)
            save_run_checkpoint(cfg.logs_dir, model, epoch + 1, best_mAP, is_best,
                                optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                source_loader=source_loader.state_dict(),
                                target_loader=target_loader.state_dict(), stage="pretrain")

    if not has_test(target):
        logger.info("%s has no query/gallery: no direct-transfer score", target.name)
        results = {"config": asdict(cfg), "best_source_mAP": best_mAP, "direct_transfer": None}
        if distributed.is_main():
            write_json(os.path.join(cfg.logs_dir, "results.json"), results)
        return results
    last_result = evaluate(target, "target (last epoch)")
    best_result = last_result if is_best else _evaluate_best(cfg.logs_dir, model, target, evaluate)
    target_result = last_result if cfg.direct_transfer_model == "last" else best_result
    logger.info("Direct transfer (%s model): mAP %.1f%% (last epoch %.1f%%, model_best %.1f%%)",
                cfg.direct_transfer_model, 100 * target_result.mAP, 100 * last_result.mAP,
                100 * best_result.mAP)
    results = {"config": asdict(cfg), "best_source_mAP": best_mAP,
               "direct_transfer": target_result.to_dict(),
               "direct_transfer_last": last_result.to_dict(),
               "direct_transfer_best": best_result.to_dict()}
    if distributed.is_main():
        write_json(os.path.join(cfg.logs_dir, "results.json"), results)
        append_jsonl(metrics_path, {"stage": "pretrain", "epoch": cfg.epochs,
                                    "target": target_result.to_dict()})
    return results
