"""Feature extraction: one row per dataset item, in the loader's item order."""
import logging
from contextlib import nullcontext
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

logger = logging.getLogger(__name__)


def autocast_context(device: torch.device, amp: Optional[str]):
    """``torch.autocast`` for ``amp`` in {None, 'bf16', 'fp16'} on ``device``."""
    if not amp:
        return nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def extract_features(model: nn.Module, loader: DataLoader, device: torch.device,
                     amp: Optional[str] = None, channels_last: bool = False,
                     verbose: bool = True, desc: str = "features") -> torch.Tensor:
    """Run ``model`` in eval mode over ``loader``; row i is dataset item i.

    The loader yields ``(images, paths, pids, camids, indexes)``; rows are
    placed by ``indexes`` so the result never depends on batch order.
    Returns a float32 CPU tensor (the model's eval output: L2-normalised).
    """
    was_training = model.training
    model.eval()
    features: Optional[torch.Tensor] = None
    num_items = len(loader.dataset)
    filled = torch.zeros(num_items, dtype=torch.bool)
    for images, _, _, _, indexes in tqdm(loader, desc=desc, disable=not verbose,
                                         leave=False, dynamic_ncols=True):
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            outputs = model(images)
        outputs = outputs.float().cpu()
        if features is None:
            features = torch.empty(num_items, outputs.shape[1])
        features[indexes] = outputs
        filled[indexes] = True
    model.train(was_training)
    if features is None or not bool(filled.all()):
        raise RuntimeError(f"feature extraction covered {int(filled.sum())} of {num_items} items")
    return features
