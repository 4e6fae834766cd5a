"""Stage 2 step: pseudo-label losses, label refinement and the spread-out loss."""
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn

from ..losses.softmax import CrossEntropyLabelSmooth
from ..losses.triplet import SoftTripletLoss
from .base import Trainer, accuracy_top1


@dataclass
class LossWeights:
    """The paper's loss weights: baseline = (0, 0.5, 0); Dual-Refinement = (0.5, 0.5, 0.1)."""

    alpha: float = 0.0  # balance of DBSCAN labels vs refined labels
    lmd: float = 0.5    # weight of the classification terms
    mu: float = 0.0     # weight of the instance-memory spread-out loss


class ClusterTrainer(Trainer):
    """One trainer for the baseline and every Dual-Refinement ablation.

    loss = (1 - alpha) * (lmd * CE(p, y) + Tri(f, y))
         + alpha * (lmd * CE(p, y_refined) + Tri(f, y_refined))
         + mu * L_spread
    Terms whose weight is zero are not computed.
    """

    def __init__(self, model: nn.Module, num_clusters: int, weights: LossWeights,
                 refined_labels: Optional[torch.Tensor] = None,
                 spread: Optional[nn.Module] = None, label_smoothing: float = 0.1,
                 **kwargs) -> None:
        super().__init__(model, **kwargs)
        if weights.alpha > 0 and refined_labels is None:
            raise ValueError("alpha > 0 needs refined labels")
        if weights.mu > 0 and spread is None:
            raise ValueError("mu > 0 needs the spread-out loss module")
        self.num_clusters = num_clusters
        self.weights = weights
        self.refined_labels = None if refined_labels is None else refined_labels.to(self.device)
        self.spread = spread
        self.criterion_ce = CrossEntropyLabelSmooth(num_clusters, epsilon=label_smoothing)
        self.criterion_tri = SoftTripletLoss(margin=0.0)

    def compute_losses(self, batch) -> Dict[str, torch.Tensor]:
        images, _, labels, _, indexes = batch
        images, labels, indexes = (self.to_device(t) for t in (images, labels, indexes))
        features, logits = self.model(images)
        features = features.float()
        logits = logits[:, :self.num_clusters].float()  # rows beyond C are unused slots
        a, lmd, mu = self.weights.alpha, self.weights.lmd, self.weights.mu
        zero = features.new_zeros(())

        ce, tri = self.criterion_ce(logits, labels), self.criterion_tri(features, labels)
        ce_refined = tri_refined = spread = zero
        if a > 0:
            refined = self.refined_labels[indexes]
            ce_refined = self.criterion_ce(logits, refined)
            tri_refined = self.criterion_tri(features, refined)
        if mu > 0:
            spread = self.spread(features, indexes)

        loss = (1 - a) * (lmd * ce + tri) + a * (lmd * ce_refined + tri_refined) + mu * spread

        terms = {"loss": loss, "loss_ce": ce, "loss_tri": tri}
        if a > 0:
            terms.update(loss_ce_refined=ce_refined, loss_tri_refined=tri_refined)
        if mu > 0:
            terms["loss_spread"] = spread
        terms = {k: (v if k == "loss" else v.detach()) for k, v in terms.items()}
        terms["prec"] = accuracy_top1(logits.detach(), labels)
        return terms
