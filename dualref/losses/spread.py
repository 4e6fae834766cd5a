"""Instance memory spread-out loss (IM-SP): one memory slot per target-train image."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..utils.errors import ParamError, require

# Same epsilon as F.normalize, so a zero slot gives similarity 0 rather than NaN.
_NORM_EPS = 1e-12


class _CosineToSlots(torch.autograd.Function):
    """``inputs @ normalise(memory)^T`` whose backward allocates a single N x d gradient.

    Autograd through ``mm`` and ``norm`` would build several N x d temporaries;
    here the memory gradient is one ``mm`` plus an in-place correction, and it is
    multiplied by ``scale`` (the memory's gradient factor) at the same time.
    """

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, memory: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        norms = memory.norm(dim=1).clamp_min(_NORM_EPS)
        sim = (inputs @ memory.t()).div_(norms)
        ctx.scale = scale
        ctx.save_for_backward(inputs, memory, norms, sim)
        return sim

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        inputs, memory, norms, sim = ctx.saved_tensors
        grad_over_norm = grad / norms
        grad_inputs = grad_memory = None
        if ctx.needs_input_grad[0]:
            grad_inputs = grad_over_norm @ memory
        if ctx.needs_input_grad[1]:
            # d s_bj / d M_j = f_b / n_j - s_bj M_j / n_j^2; the second term vanishes
            # for slots whose norm was clamped to eps (as for F.normalize).
            radial = (grad * sim).sum(dim=0) / norms.square()
            radial = radial.masked_fill(norms <= _NORM_EPS, 0.0) * ctx.scale
            grad_memory = (grad_over_norm * ctx.scale).t() @ inputs
            grad_memory.addcmul_(memory, radial.unsqueeze(1), value=-1.0)
        return grad_inputs, grad_memory, None


def check_knn(knn: int, num_samples: int) -> None:
    """``knn`` must leave at least one negative after the top knn and the dropped last slot."""
    if int(knn) != knn or not 0 <= knn <= num_samples - 2:
        raise ParamError("knn", knn, f"must be an integer in [0, {num_samples - 2}] for "
                         f"{num_samples} memory slots (the top knn and the last slot are not "
                         "negatives)")


def _initial_memory(init_memory, num_samples: int, num_features: int) -> torch.Tensor:
    """Return the normalised float32 starting memory (random directions if none is given)."""
    if init_memory is None:
        # A zero bank would make every similarity 0; random unit vectors keep slots distinct.
        memory = torch.randn(num_samples, num_features)
    else:
        if isinstance(init_memory, np.ndarray):
            init_memory = torch.from_numpy(init_memory)
        memory = torch.as_tensor(init_memory).detach().to(torch.float32).clone()
        require(
            tuple(memory.shape) == (num_samples, num_features),
            f"init_memory: expected shape ({num_samples}, {num_features}) "
            f"(num_samples, num_features), got {tuple(memory.shape)}",
        )
        require(bool(torch.isfinite(memory).all()), "init_memory: contains NaN or infinite values")
    return F.normalize(memory, dim=1, eps=_NORM_EPS)


class SpreadLoss(nn.Module):
    """Spread-out loss over an instance memory bank ``self.memory`` (num_samples x num_features).

    For a batch feature ``f`` (L2-normalised ``bn_x``) with dataset index ``i``,
    ``s = f . normalise(M)^T`` over all ``N`` slots, sorted in descending order:

    * positives: ``s_i`` (its own slot) followed by the ``knn`` largest entries of
      ``s``. The top ``knn`` are taken over *all* slots, own slot included, so when
      the own slot ranks among them (the usual case) it counts twice as a positive;
    * negatives: ranks ``knn .. N-2`` of the sorted ``s``, i.e. everything except
      the top ``knn`` and the single smallest entry. If the own slot ranks below
      ``knn`` it is then a positive and a negative at the same time.

    ``L = mean_b log(1 + sum_{p,n} exp(n - p + m))``, computed as
    ``softplus(logsumexp(-P) + logsumexp(Nneg) + m)`` with only B x N memory and no
    full sort (``topk`` for the top ``knn``, ``argmin`` of the rest for the last).
    This is exactly the sort-based selection of the authors' code: the selected
    values are the same multiset, ties included. At exact ties, which of the tied
    slots receives the gradient is unspecified (the original's ``torch.sort`` is
    not stable either); the loss value is not affected.

    Gradient scaling: the memory's gradient from this loss is multiplied by
    ``grad_scale`` (a settable attribute) during backward. The Dual-Refinement
    trainer uses ``1 / lmd`` when ``lmd > 0`` (else 1), which replaces the original's
    in-place ``param.grad *= 1 / lmd`` before each step; gradients w.r.t. the
    inputs are never scaled. ``self.memory`` is a plain ``nn.Parameter``: add it to
    the network's Adam optimiser (same lr and weight decay); it lives on across
    epochs while the optimiser is rebuilt, and is saved by ``state_dict()``.

    The loss is computed in float32 (float64 if the inputs or memory are float64)
    with autocast disabled, so it is safe to call under bf16/fp16 autocast.
    """

    def __init__(
        self,
        num_features: int,
        num_samples: int,
        init_memory: torch.Tensor | np.ndarray | None = None,
        m: float = 0.35,
        knn: int = 6,
        grad_scale: float = 1.0,
    ) -> None:
        super().__init__()
        require(int(num_features) >= 1, f"num_features must be >= 1, got {num_features}")
        require(int(num_samples) >= 1, f"num_samples must be >= 1, got {num_samples}")
        check_knn(knn, int(num_samples))
        if not (math.isfinite(m) and m >= 0):
            raise ParamError("m", m, "the spread-out margin must be a finite number >= 0")
        self.num_features = int(num_features)
        self.num_samples = int(num_samples)
        self.m = float(m)
        self.knn = int(knn)
        self.grad_scale = grad_scale
        memory = _initial_memory(init_memory, self.num_samples, self.num_features)
        self.memory = nn.Parameter(memory)

    @property
    def grad_scale(self) -> float:
        """Factor applied to the memory's gradient in backward (1 / lmd in Dual-Refinement)."""
        return self._grad_scale

    @grad_scale.setter
    def grad_scale(self, value: float) -> None:
        require(
            math.isfinite(value) and value >= 0,
            f"grad_scale (memory gradient factor) must be finite and >= 0, got {value}",
        )
        self._grad_scale = float(value)

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, num_samples={self.num_samples}, "
            f"m={self.m}, knn={self.knn}, grad_scale={self.grad_scale}"
        )

    def similarities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return ``inputs . normalise(memory)^T`` (B x N, at least float32), gradient scaling applied."""
        # At least float32 (bf16/fp16 inputs are upcast); float64 stays float64.
        dtype = torch.promote_types(torch.promote_types(inputs.dtype, self.memory.dtype), torch.float32)
        return _CosineToSlots.apply(inputs.to(dtype), self.memory.to(dtype), self._grad_scale)

    def forward(self, inputs: torch.Tensor, indexes: torch.Tensor) -> torch.Tensor:
        """Return the scalar spread-out loss of features ``inputs`` (B x d) at slots ``indexes`` (B)."""
        require(
            inputs.dim() == 2 and inputs.shape[1] == self.num_features,
            f"SpreadLoss: inputs must be (batch, {self.num_features}), got {tuple(inputs.shape)}",
        )
        indexes = indexes.to(device=inputs.device, dtype=torch.long).reshape(-1)
        require(
            indexes.numel() == inputs.shape[0],
            f"SpreadLoss: {indexes.numel()} indexes for a batch of {inputs.shape[0]}",
        )
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            sim = self.similarities(inputs)
            return _spread_from_similarities(sim, indexes, self.knn, self.m)


def _spread_from_similarities(
    sim: torch.Tensor, indexes: torch.Tensor, knn: int, m: float
) -> torch.Tensor:
    """Return the mean spread-out loss given similarities ``sim`` (B x N) to all slots."""
    own = sim.gather(1, indexes.unsqueeze(1))
    top_vals, top_idx = sim.topk(knn, dim=1)
    positives = torch.cat((own, top_vals), dim=1)

    in_top = torch.zeros_like(sim, dtype=torch.bool).scatter_(1, top_idx, True)
    # "Except the last" means the smallest of the remaining entries: searching only
    # outside the top knn keeps the count right when all entries tie.
    with torch.no_grad():
        last_idx = sim.masked_fill(in_top, math.inf).argmin(dim=1, keepdim=True)
    not_negative = in_top.scatter_(1, last_idx, True)
    negatives = sim.masked_fill(not_negative, -math.inf)

    logit = torch.logsumexp(-positives, dim=1) + torch.logsumexp(negatives, dim=1) + m
    return F.softplus(logit).mean()
