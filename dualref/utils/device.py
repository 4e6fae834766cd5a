"""Device selection and model placement: CPU, one GPU, DataParallel or DDP, one code path.

``--device auto`` picks CUDA when available, else the CPU. A plain process
wraps the model in DataParallel over every visible GPU (the original code's
behaviour); a process started by ``torchrun`` joins the process group and
wraps it in DistributedDataParallel on ``cuda:LOCAL_RANK`` (or the CPU).
"""
import logging
import warnings
from typing import Any, Optional

import torch
from torch import nn

from . import distributed
from .errors import ParamError, check

logger = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a ``--device`` value (auto, cpu, cuda, cuda:N, mps) into a device."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ParamError("device", name, "cannot parse it (expected auto, cpu, cuda or "
                         "cuda:N)") from err
    if device.type == "cuda":
        check(torch.cuda.is_available(), "device", name,
              "no CUDA GPU is available on this machine (use --device cpu)")
        check(device.index is None or device.index < torch.cuda.device_count(), "device", name,
              f"only {torch.cuda.device_count()} GPU(s) visible")
    return device


def setup_device(name: str = "auto") -> torch.device:
    """:func:`resolve_device`, then join the ``torchrun`` process group if launched by it."""
    return distributed.init_distributed(resolve_device(name))


def place_model(model: nn.Module, device: torch.device, data_parallel: bool = True,
                channels_last: bool = False, compile: bool = False) -> nn.Module:
    """Move ``model`` to ``device`` and wrap it for the processes and GPUs at hand.

    Under ``torchrun``: DistributedDataParallel, with training outputs gathered
    over ranks so the losses see the global batch (as DataParallel gathered
    them onto GPU 0). Otherwise DataParallel over every visible GPU, the
    original behaviour, so 4-GPU batches are split the same way.
    """
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if distributed.is_distributed():
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        model = GatherOutputs(DistributedDataParallel(model, device_ids=ids))
    elif data_parallel and device.type == "cuda" and torch.cuda.device_count() > 1:
        model = nn.DataParallel(model)
    return compile_model(model) if compile else model


def compile_model(model: nn.Module) -> nn.Module:
    """``torch.compile(model)``, or ``model`` with a warning where it is unavailable."""
    if not hasattr(torch, "compile"):
        warnings.warn("--compile: this torch has no torch.compile; running uncompiled")
        return model
    try:
        return torch.compile(model)
    except Exception as err:  # no compiler toolchain, unsupported platform, ...
        warnings.warn(f"--compile: torch.compile failed ({err}); running uncompiled")
        return model


class GatherOutputs(nn.Module):
    """Wraps a DDP model: in train mode every output tensor is gathered over ranks.

    Losses then see the global batch (batch-hard triplets search all of it),
    exactly as one process would; gradients flow back to each rank's slice.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> Any:
        out = self.module(images)
        if not self.training or not torch.is_grad_enabled():
            return out
        if isinstance(out, torch.Tensor):
            return distributed.gather_with_grad(out)
        return type(out)(*(distributed.gather_with_grad(t) for t in out))


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel / DDP / output-gathering / compile wrappers."""
    while True:
        inner: Optional[nn.Module] = getattr(model, "_orig_mod", None)
        if inner is None:
            inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner
