"""Stage 2 step: pseudo-label losses, label refinement and extra terms (the spread-out memory)."""
from dataclasses import dataclass
from typing import Dict, Optional, Protocol, Sequence

import torch
from torch import nn

from ..datasets.loaders import Batch
from ..losses.softmax import CrossEntropyLabelSmooth
from ..losses.triplet import SoftTripletLoss
from .base import Trainer, accuracy_top1


@dataclass
class LossWeights:
    """The paper's weights of the pseudo-label terms: baseline alpha 0, Dual-Refinement 0.5."""

    alpha: float = 0.0  # balance of DBSCAN labels vs refined labels
    lmd: float = 0.5    # weight of the classification terms


class LossTerm(Protocol):
    """An extra term: ``weight * loss(features, batch)``, logged as ``loss_<name>``.

    Every :class:`~dualref.losses.memory.Memory` is one.
    """

    name: str
    weight: float

    def loss(self, features: torch.Tensor, batch: Batch) -> torch.Tensor: ...


class ClusterTrainer(Trainer):
    """One trainer for the baseline and every Dual-Refinement ablation.

    loss = (1 - alpha) * (lmd * CE(p, y) + Tri(f, y))
         + alpha * (lmd * CE(p, y_refined) + Tri(f, y_refined))
         + sum over extra terms of weight * term   (IM-SP: mu * L_spread)
    Terms whose weight is zero are not computed.
    """

    def __init__(self, model: nn.Module, num_clusters: int, weights: LossWeights,
                 refined_labels: Optional[torch.Tensor] = None,
                 terms: Sequence[LossTerm] = (), label_smoothing: float = 0.1,
                 **kwargs) -> None:
        super().__init__(model, **kwargs)
        if weights.alpha > 0 and refined_labels is None:
            raise ValueError("alpha > 0 needs refined labels")
        self.num_clusters = num_clusters
        self.weights = weights
        self.refined_labels = None if refined_labels is None else refined_labels.to(self.device)
        self.terms = [term for term in terms if term.weight != 0]
        self.criterion_ce = CrossEntropyLabelSmooth(num_clusters, epsilon=label_smoothing)
        self.criterion_tri = SoftTripletLoss(margin=0.0)

    def compute_losses(self, batch: Batch) -> Dict[str, torch.Tensor]:
        batch = Batch._make(batch)
        images, labels, indexes = (self.to_device(t) for t in (batch.images, batch.labels,
                                                                batch.indexes))
        batch = batch._replace(labels=labels, indexes=indexes)
        features, logits = self.model(images)
        features = features.float()
        logits = logits[:, :self.num_clusters].float()  # rows beyond C are unused slots
        a, lmd = self.weights.alpha, self.weights.lmd
        zero = features.new_zeros(())

        ce, tri = self.criterion_ce(logits, labels), self.criterion_tri(features, labels)
        ce_refined = tri_refined = zero
        if a > 0:
            refined = self.refined_labels[indexes]
            ce_refined = self.criterion_ce(logits, refined)
            tri_refined = self.criterion_tri(features, refined)
        extra = {f"loss_{term.name}": term.loss(features, batch) for term in self.terms}

        loss = (1 - a) * (lmd * ce + tri) + a * (lmd * ce_refined + tri_refined)
        for term in self.terms:
            loss = loss + term.weight * extra[f"loss_{term.name}"]

        terms = {"loss": loss, "loss_ce": ce.detach(), "loss_tri": tri.detach()}
        if a > 0:
            terms.update(loss_ce_refined=ce_refined.detach(), loss_tri_refined=tri_refined.detach())
        terms.update({name: value.detach() for name, value in extra.items()})
        terms["prec"] = accuracy_top1(logits.detach(), labels)
        return terms
