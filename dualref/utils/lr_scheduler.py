"""Multi-step learning-rate decay with a warm-up, stepped once per epoch."""
from bisect import bisect_right
from typing import Sequence

import torch
from torch.optim import Optimizer

from .errors import check

# torch >= 2.0 exposes the public base class; older releases only the private one.
_Base = getattr(torch.optim.lr_scheduler, "LRScheduler", None) or torch.optim.lr_scheduler._LRScheduler

WARMUP_METHODS = ("constant", "linear")


def lr_factor(epoch: int, milestones: Sequence[int], gamma: float = 0.1, warmup_factor: float = 0.01,
              warmup_iters: int = 10, warmup_method: str = "linear") -> float:
    """Multiplier of the base lr when the scheduler's ``last_epoch`` equals ``epoch``.

    Below ``warmup_iters`` the warm-up factor is ``warmup_factor`` (constant)
    or ``warmup_factor * (1 - a) + a`` with ``a = epoch / warmup_iters``
    (linear); it is multiplied by ``gamma ** (number of milestones <= epoch)``.
    """
    warm = 1.0
    if epoch < warmup_iters:
        if warmup_method == "constant":
            warm = warmup_factor
        else:
            alpha = epoch / warmup_iters
            warm = warmup_factor * (1.0 - alpha) + alpha
    return warm * gamma ** bisect_right(list(milestones), epoch)


class WarmupMultiStepLR(_Base):
    """Warm-up then x ``gamma`` at each milestone; ``lr = base_lr * lr_factor(last_epoch, ...)``.

    The authors call ``step()`` at the *start* of every epoch, so 0-based
    epoch e trains with ``lr_factor(e + 1)``: 0.109x in the first epoch,
    the full rate from epoch index 9, x0.1 from index 39 with milestones
    (40, 70). Call it the same way to reproduce their schedule.
    """

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 warmup_factor: float = 0.01, warmup_iters: int = 10, warmup_method: str = "linear",
                 last_epoch: int = -1) -> None:
        milestones = [int(m) for m in milestones]
        check(milestones == sorted(milestones), "milestones", milestones, "must be increasing")
        check(warmup_method in WARMUP_METHODS, "warmup_method", warmup_method,
              f"expected one of {', '.join(WARMUP_METHODS)}")
        check(warmup_iters >= 0, "warmup_step", warmup_iters, "must be >= 0")
        self.milestones = milestones
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Learning rate of every parameter group at ``self.last_epoch``."""
        factor = lr_factor(self.last_epoch, self.milestones, self.gamma, self.warmup_factor,
                           self.warmup_iters, self.warmup_method)
        return [base_lr * factor for base_lr in self.base_lrs]
