"""Device selection: ``--device auto`` picks CUDA when available, else CPU."""
import torch

from .errors import UserError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a ``--device`` value (auto, cpu, cuda, cuda:N, mps) into a device."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"--device: cannot parse {name!r} (expected auto, cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: no CUDA GPU is available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def place_model(model: torch.nn.Module, device: torch.device,
                data_parallel: bool = True) -> torch.nn.Module:
    """Move ``model`` to ``device``; wrap in DataParallel over all visible GPUs.

    DataParallel over every visible GPU is the original code's behaviour, so
    checkpoints keep their ``module.`` prefix and 4-GPU batches are split the
    same way.
    """
    model = model.to(device)
    if data_parallel and device.type == "cuda" and torch.cuda.device_count() > 1:
        model = torch.nn.DataParallel(model)
    return model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DataParallel / DistributedDataParallel wrapper."""
    return model.module if hasattr(model, "module") else model
