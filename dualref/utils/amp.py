"""Mixed precision: one autocast context for training and feature extraction."""
from contextlib import nullcontext
from typing import Optional

import torch

__all__ = ["autocast_context"]


def autocast_context(device: torch.device, amp: Optional[str]):
    """``torch.autocast`` for ``amp`` in {None, 'bf16', 'fp16'} on ``device``."""
    if not amp:
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)
