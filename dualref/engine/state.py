"""Run checkpoints: the authors' format plus everything a resume needs."""
import json
import logging
import os
from typing import Any, Dict, Optional

from torch import nn

from ..utils.checkpoint import (BEST_NAME, checkpoint_for_release, copy_state_dict, load_checkpoint,
                                save_checkpoint)
from ..utils.device import unwrap
from ..utils.errors import UserError
from ..utils.io import atomic_open, read_jsonl, remove_stale_temps
from ..utils.seeding import get_rng_state, set_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pth.tar"
BEST = BEST_NAME  # the best model beside the checkpoint


def save_run_checkpoint(logs_dir: str, model: nn.Module, epoch: int, best_mAP: float,
                        is_best: bool, **extra: Any) -> None:
    """Atomically write ``checkpoint.pth.tar`` (and ``model_best.pth.tar`` if best).

    ``epoch`` is the number of finished epochs, as in the original.
    ``extra`` holds resume state: optimiser, scheduler, loaders, memory, eps...
    """
    state = checkpoint_for_release(unwrap(model), int(epoch), float(best_mAP))
    state.update(extra, rng=get_rng_state())
    save_checkpoint(state, is_best, fpath=os.path.join(logs_dir, CHECKPOINT))


def load_weights(path: str, model: nn.Module, state: Optional[Dict[str, Any]] = None
                 ) -> Dict[str, Any]:
    """Copy a checkpoint's weights into ``model``; refuse one for another backbone.

    Heads (classifier, embedding) may differ; the backbone and the BN neck
    must match, or the scores would be silently meaningless.
    """
    state = load_checkpoint(path) if state is None else state
    report = copy_state_dict(state["state_dict"], unwrap(model))
    wrong = [k for k in report.missing + report.mismatched
             if k.startswith("base.") or k.startswith("feat_bn.")]
    if wrong:
        raise UserError(f"{path}: not a checkpoint of this architecture ({len(wrong)} backbone "
                        f"tensors missing or of another shape, e.g. {wrong[0]}); check --arch")
    return state


def trim_metrics(path: str, start_epoch: int, stage: str) -> None:
    """Drop ``stage`` records of epochs a resumed run will redo (written before a crash)."""
    records = read_jsonl(path)
    kept = [r for r in records if r.get("stage") != stage or r.get("epoch", 0) < start_epoch]
    if len(kept) != len(records):
        with atomic_open(path, "w") as handle:
            handle.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)


def resume_path(resume: Optional[str], logs_dir: str) -> Optional[str]:
    """``--resume auto`` means this run's own checkpoint, if there is one."""
    if resume == "auto":
        path = os.path.join(logs_dir, CHECKPOINT)
        if os.path.isdir(logs_dir):
            for name in remove_stale_temps(logs_dir):  # half-written files of a killed run
                logger.info("removed %s left by an interrupted write", name)
        return path if os.path.exists(path) else None
    return resume or None


def load_run_checkpoint(path: str, model: nn.Module) -> Dict[str, Any]:
    """Load weights into ``model`` and restore the RNG states; returns the state."""
    state = load_weights(path, model)
    if "rng" in state:
        set_rng_state(state["rng"])
    logger.info("=> Resumed %s: epoch %s, best mAP %.1f%%", path, state.get("epoch"),
                100 * float(state.get("best_mAP", 0.0)))
    return state
