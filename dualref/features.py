"""Feature extraction: one row per dataset item, in the loader's item order."""
import logging
from typing import Optional

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .utils import distributed
from .utils.amp import autocast_context
from .utils.device import unwrap

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract_features(model: nn.Module, loader: DataLoader, device: torch.device,
                     amp: Optional[str] = None, channels_last: bool = False,
                     verbose: bool = True, desc: str = "features") -> torch.Tensor:
    """Run ``model`` in eval mode over ``loader``; row i is dataset item i.

    The loader yields ``(images, paths, pids, camids, indexes)``; rows are
    placed by ``indexes`` so the result never depends on batch order. Under
    ``torchrun`` each rank reads its share of the items (see
    ``build_test_loader``) and every rank returns all rows, gathered.
    Returns a float32 CPU tensor (the model's eval output: L2-normalised).
    """
    was_training = model.training
    model.eval()
    sharded = distributed.world_size() > 1
    if sharded:
        # The bare model: DDP's forward would start collectives that ranks
        # with fewer batches never join. Rank 0's BatchNorm statistics are
        # the model's (those a checkpoint saves), so every rank uses them.
        distributed.broadcast_module(unwrap(model))
        net = unwrap(model)
    else:
        net = model
    num_items = len(loader.dataset)
    rows, row_indexes = [], []
    for images, _, _, _, indexes in tqdm(loader, desc=desc, disable=not verbose,
                                         leave=False, dynamic_ncols=True):
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast_context(device, amp):
            outputs = net(images)
        rows.append(outputs.float().cpu())
        row_indexes.append(torch.as_tensor(indexes, dtype=torch.long))
    model.train(was_training)
    if sharded:
        width = torch.tensor([rows[0].shape[1] if rows else -1])
        width = int(distributed.all_gather_tensor(width).max())
    else:
        width = rows[0].shape[1] if rows else -1
    if width < 0:
        raise RuntimeError(f"feature extraction covered 0 of {num_items} items")
    local = torch.cat(rows) if rows else torch.empty(0, width)
    local_idx = torch.cat(row_indexes) if row_indexes else torch.empty(0, dtype=torch.long)
    features = distributed.all_gather_rows(local, local_idx, num_items)
    filled = ~torch.isnan(features).any(dim=1)  # rows nobody computed are NaN
    if not bool(filled.all()):
        raise RuntimeError(f"feature extraction covered {int(filled.sum())} of {num_items} items")
    return features
