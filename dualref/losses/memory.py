"""Memory modules: per-image (or per-anything) state that a loss term trains.

One lifecycle for every memory, run by the adaptation stage:

1. created once, from the first epoch's L2-normalised target-train features
   (row i = item i) and the items, by a factory ``(features, items) -> Memory``;
2. each epoch :meth:`Memory.new_epoch` sees the pseudo-labels; its
   ``nn.Parameter``\\ s join the network's Adam optimiser (same lr and weight
   decay, rebuilt every epoch while the memory persists); its term
   ``weight * loss(features, batch)`` joins the loss, logged as ``loss_<name>``;
3. :meth:`checkpoint_state` is saved under ``key`` in every checkpoint and
   given back to :meth:`load_checkpoint_state` when a run resumes.

The instance-memory spread-out loss (IM-SP) is the first such module.
"""
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .spread import SpreadLoss


class Memory(nn.Module):
    """Base class: set ``key`` and ``name``, implement :meth:`loss`."""

    key = "memory_state"  # checkpoint key of its state
    name = "memory"  # its loss term is logged as loss_<name>

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def new_epoch(self, labels: np.ndarray) -> None:
        """This epoch's pseudo-labels (-1: outlier), before training; nothing by default."""

    def loss(self, features: torch.Tensor, batch: Any) -> torch.Tensor:
        """The term for a batch: ``features`` as the losses see them, ``batch`` a
        :class:`~dualref.datasets.loaders.Batch` (its ``indexes`` are the items' rows)."""
        raise NotImplementedError

    def checkpoint_state(self) -> Any:
        """What a checkpoint keeps (tensors on the CPU)."""
        return {k: v.detach().cpu() for k, v in self.state_dict().items()}

    def load_checkpoint_state(self, state: Any) -> None:
        """Take back :meth:`checkpoint_state` (on a resume)."""
        self.load_state_dict(state)


MemoryFactory = Callable[[torch.Tensor, Sequence[Any]], Memory]


class SpreadOutMemory(Memory):
    """IM-SP: one slot per target-train image, pushed apart by :class:`SpreadLoss`."""

    key = "memory"  # the bare slot tensor, as checkpoints before memory modules held it
    name = "spread"

    def __init__(self, spread: SpreadLoss, weight: float) -> None:
        super().__init__(weight)
        self.spread = spread

    @classmethod
    def from_features(cls, features: torch.Tensor, weight: float, knn: int = 6, m: float = 0.35,
                      grad_scale: float = 1.0) -> "SpreadOutMemory":
        """Slots initialised with the (normalised) features, as the original does."""
        memory = F.normalize(features, dim=1)
        return cls(SpreadLoss(memory.shape[1], memory.shape[0], init_memory=memory, m=m,
                              knn=knn, grad_scale=grad_scale), weight)

    def loss(self, features: torch.Tensor, batch: Any) -> torch.Tensor:
        return self.spread(features, batch.indexes)

    def checkpoint_state(self) -> torch.Tensor:
        return self.spread.memory.detach().cpu()

    def load_checkpoint_state(self, state: torch.Tensor) -> None:
        # Trained slots are no longer unit vectors: restore them verbatim.
        self.spread.memory.data.copy_(state)


def spread_out_factory(weight: float, knn: int, m: float,
                       grad_scale: Optional[float]) -> MemoryFactory:
    """The IM-SP memory's factory (``grad_scale``: its gradient factor, 1 / lmd in the paper)."""
    def create(features: torch.Tensor, items: Sequence[Any]) -> Memory:
        return SpreadOutMemory.from_features(features, weight, knn=knn, m=m,
                                             grad_scale=grad_scale)
    return create
