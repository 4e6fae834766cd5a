"""Stage 1 step: supervised source loss, plus a target forward for BatchNorm."""
from typing import Dict, Iterator

import torch
from torch import nn

from ..losses.softmax import CrossEntropyLabelSmooth
from ..losses.triplet import SoftTripletLoss
from ..datasets.loaders import Batch
from .base import Trainer, accuracy_top1


class PreTrainer(Trainer):
    """Label-smoothed CE + soft batch-hard triplet on the pooled source feature.

    Each step also forwards one target batch in train mode without a loss, so
    the BatchNorm running statistics see the target domain (docs/method.md, stage 1).
    """

    def __init__(self, model: nn.Module, num_classes: int, target_batches: Iterator,
                 margin: float = 0.0, epsilon: float = 0.1, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.target_batches = target_batches
        self.criterion_ce = CrossEntropyLabelSmooth(num_classes, epsilon=epsilon)
        self.criterion_tri = SoftTripletLoss(margin=margin)

    def compute_losses(self, batch: Batch) -> Dict[str, torch.Tensor]:
        batch = Batch._make(batch)
        images, pids = self.to_device(batch.images), self.to_device(batch.labels)
        features, logits = self.model(images)
        with torch.no_grad():  # running statistics update; no gradient needed
            self.model(self.to_device(Batch._make(self.target_batches.next()).images))
        loss_ce = self.criterion_ce(logits.float(), pids)
        loss_tr = self.criterion_tri(features.float(), pids)
        return {"loss": loss_ce + loss_tr, "loss_ce": loss_ce.detach(),
                "loss_tr": loss_tr.detach(), "prec": accuracy_top1(logits.detach(), pids)}
