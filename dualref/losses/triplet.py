"""Soft-margin batch-hard triplet loss (Hermans et al., 2017) as used by the authors."""
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class TripletOutput(NamedTuple):
    """The loss and the fraction of anchors whose hardest negative is farther than their hardest positive."""

    loss: torch.Tensor
    precision: torch.Tensor


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances, ``sqrt(clamp(|x|^2 + |y|^2 - 2 x.y, 1e-12))``."""
    # The clamp keeps sqrt's gradient finite at zero distance (the diagonal),
    # and matches the reference implementation value for value.
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1, keepdim=True).t() - 2.0 * x @ y.t()
    return sq.clamp(min=1e-12).sqrt()


def batch_hard(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor: hardest positive distance (self included), hardest negative, and whether one exists."""
    same = labels.view(-1, 1) == labels.view(1, -1)
    dist_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
    has_negative = (~same).any(dim=1)
    dist_an = dist.masked_fill(same, float("inf")).min(dim=1).values
    # Anchors without a negative get d_an = d_ap so later arithmetic stays finite.
    dist_an = torch.where(has_negative, dist_an, dist_ap)
    return dist_ap, dist_an, has_negative


def soft_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.0) -> TripletOutput:
    """Mean over anchors of softplus(d_ap - d_an) - margin * (d_ap - d_an).

    This is the authors' ``-m log p_ap - (1 - m) log p_an`` with
    ``p = softmax(d_ap, d_an)``; at the default margin 0 it is
    ``log(1 + exp(d_ap - d_an))``. An anchor whose label is the only one in
    the batch has no negative: it adds 0 to the sum (the mean still divides by
    the batch size, as the reference does) and counts as correct. An anchor
    without another positive uses its own (near zero) distance.
    """
    dist = euclidean_dist(features, features)
    dist_ap, dist_an, has_negative = batch_hard(dist, labels)
    gap = dist_ap - dist_an
    per_anchor = F.softplus(gap) - margin * gap
    per_anchor = torch.where(has_negative, per_anchor, torch.zeros_like(per_anchor))
    with torch.no_grad():
        precision = ((dist_an > dist_ap) | ~has_negative).float().mean()
    return TripletOutput(per_anchor.mean(), precision)


class SoftTripletLoss(nn.Module):
    """Module form of :func:`soft_triplet_loss`; ``forward`` returns the scalar loss only.

    Call :func:`soft_triplet_loss` directly when the precision is wanted too.
    """

    def __init__(self, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scalar loss for ``features`` (N x D) with integer ``labels`` (N,)."""
        return soft_triplet_loss(features, labels, self.margin).loss

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
