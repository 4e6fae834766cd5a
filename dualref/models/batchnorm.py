"""BatchNorm over fixed-size groups of a batch, whatever the number of devices.

The authors trained with DataParallel over 4 GPUs and batch 64, so every
BatchNorm layer normalised groups of 16 images (4 identities x 4). To keep
those statistics on one device or on many processes, every BatchNorm layer
is converted into :class:`GroupBatchNorm`:

* per-device batch larger than ``group_size``: the batch is cut into
  consecutive groups of ``group_size`` ("ghost" BatchNorm), each normalised
  with its own mean and variance;
* per-device batch smaller than ``group_size`` (many processes): the mean and
  variance are summed over a process group of consecutive ranks that together
  hold ``group_size`` images (a synchronised BatchNorm that also runs on gloo);
* otherwise: plain BatchNorm, bit for bit.

Running statistics (``stats``): under DataParallel the module kept only the
device-0 replica's in-place update, i.e. the statistics of the *first* group
of each batch; ``"first"`` reproduces that (default). ``"mean"`` updates
with the mean of all groups' statistics instead. Eval mode is plain BatchNorm.
"""
from typing import Any, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

STATS = ("first", "mean")


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over a process group (the backward sums gradients too)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        out = grad.clone()
        dist.all_reduce(out, group=ctx.group)
        return out, None


class GroupBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics come from groups of ``group_size`` images."""

    def __init__(self, num_features: int, group_size: int = 16, stats: str = "first",
                 process_group: Optional[Any] = None, **kwargs: Any) -> None:
        super().__init__(num_features, **kwargs)
        if stats not in STATS:
            raise ValueError(f"stats must be one of {STATS}, got {stats!r}")
        self.group_size = int(group_size)
        self.stats = stats
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, group_size={self.group_size}, stats={self.stats}"

    def _factor(self) -> float:
        """The running-average factor of this step (as ``nn.BatchNorm``)."""
        if self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        if self.momentum is None:  # cumulative moving average
            return 1.0 / float(self.num_batches_tracked)
        return self.momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not self.training or not self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                self.training or not self.track_running_stats, 0.0, self.eps)
        factor = self._factor()
        if self.process_group is not None:
            out = self._synced(x, factor)
        elif self.group_size <= 0 or x.shape[0] <= self.group_size:
            out = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               True, factor, self.eps)
        else:
            out = self._ghost(x, factor)
        if self.stats == "mean" and dist.is_available() and dist.is_initialized():
            # Every rank holds the same number of groups: the mean over ranks
            # of their group means is the mean over all groups.
            with torch.no_grad():
                for buf in (self.running_mean, self.running_var):
                    dist.all_reduce(buf)
                    buf.div_(dist.get_world_size())
        return out

    def _ghost(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """Normalise each consecutive group of ``group_size`` rows on its own."""
        chunks = x.split(self.group_size)
        outs = []
        means, variances = [], []
        for i, chunk in enumerate(chunks):
            if self.stats == "first" and i > 0:
                mean = var = None  # only the first group's update is kept
            else:
                mean, var = self.running_mean.clone(), self.running_var.clone()
            outs.append(F.batch_norm(chunk, mean, var, self.weight, self.bias, True,
                                     factor, self.eps))
            if mean is not None:
                means.append(mean)
                variances.append(var)
        with torch.no_grad():
            # The update is linear in the batch statistics, so averaging the
            # updated buffers is updating with the averaged statistics.
            self.running_mean.copy_(torch.stack(means).mean(0))
            self.running_var.copy_(torch.stack(variances).mean(0))
        return torch.cat(outs)

    def _synced(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """Statistics summed over the ranks of ``process_group`` (float32 sums)."""
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.full((1,), x.numel() / x.shape[1], device=x.device)
        packed = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        packed = _AllReduceSum.apply(packed, self.process_group)
        channels = x.shape[1]
        total = packed[-1]
        mean = packed[:channels] / total
        var = (packed[channels:2 * channels] / total - mean * mean).clamp(min=0)
        out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        with torch.no_grad():
            unbiased = var * total / (total - 1).clamp(min=1)
            self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
            self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        return out.to(x.dtype)


def convert_batchnorm(module: nn.Module, group_size: int = 16, stats: str = "first",
                      process_group: Optional[Any] = None) -> nn.Module:
    """Replace every BatchNorm layer of ``module`` by a :class:`GroupBatchNorm`.

    Parameters and buffers are the same tensors (state-dict keys, frozen
    biases and loaded weights are kept). Returns the converted module.
    """
    if isinstance(module, _BatchNorm) and not isinstance(module, GroupBatchNorm):
        new = GroupBatchNorm(module.num_features, group_size=group_size, stats=stats,
                             process_group=process_group, eps=module.eps,
                             momentum=module.momentum, affine=module.affine,
                             track_running_stats=module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child, group_size, stats, process_group))
    return module


def plan_groups(group_size: int, per_device_batch: int) -> int:
    """How many consecutive processes share one BatchNorm group (1 = none)."""
    if group_size <= 0 or per_device_batch >= group_size:
        return 1
    if group_size % per_device_batch:
        from ..utils.errors import ParamError

        raise ParamError("bn_group_size", group_size, "not a multiple of the per-process "
                         f"batch {per_device_batch}; choose a group size that is")
    return group_size // per_device_batch
