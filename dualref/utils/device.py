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
