"""Cross-entropy with label smoothing (Szegedy et al., CVPR 2016)."""
import torch
import torch.nn.functional as F
from torch import nn


class CrossEntropyLabelSmooth(nn.Module):
    """Mean over the batch of -sum_c q_c log p_c with q = (1 - eps) onehot + eps / C.

    ``logits`` must have exactly ``num_classes`` columns: when the classifier
    has more rows than there are current clusters, slice ``logits[:, :C]``
    first, as the authors' trainers do.
    """

    def __init__(self, num_classes: int, epsilon: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Scalar loss for ``logits`` (N x C) and integer ``targets`` (N,)."""
        if logits.dim() != 2 or logits.size(1) != self.num_classes:
            raise ValueError(f"expected logits of shape (N, {self.num_classes}), got {tuple(logits.shape)}; "
                             f"slice the classifier output to the current classes")
        log_probs = F.log_softmax(logits, dim=1)
        smoothed = torch.full_like(log_probs, self.epsilon / self.num_classes)
        smoothed.scatter_add_(1, targets.long().unsqueeze(1),
                              torch.full_like(log_probs[:, :1], 1.0 - self.epsilon))
        return (-smoothed * log_probs).sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, epsilon={self.epsilon}"
