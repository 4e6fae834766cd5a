"""Shared training loop: meters, backward/step, AMP, progress bar, log lines."""
import logging
import time
from collections import defaultdict
from typing import Dict, Optional

import torch
from torch import nn
from tqdm import tqdm

from ..datasets.loaders import Batch, IterLoader
from ..utils.amp import autocast_context
from ..utils import distributed

logger = logging.getLogger(__name__)


class AverageMeter:
    """Running value and average of a scalar."""

    def __init__(self) -> None:
        self.val = self.sum = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        self.val = float(value)
        self.sum += float(value) * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.sum / max(self.count, 1)


def accuracy_top1(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the target."""
    return float((logits.argmax(dim=1) == targets).float().mean())


def _grad_scaler(device: torch.device):
    """A loss scaler for float16 (``torch.amp`` on torch >= 2.3, else ``torch.cuda.amp``)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type)
    return torch.cuda.amp.GradScaler()


def _global_labels(batch: Batch) -> Batch:
    """Under DDP: this rank's images with the labels and indexes of the global batch.

    The model's training outputs are gathered over ranks (``GatherOutputs``),
    so the losses pair them with the labels of every rank, in rank order.
    """
    batch = Batch._make(batch)
    if distributed.world_size() == 1:
        return batch
    return batch._replace(labels=distributed.all_gather_tensor(batch.labels),
                          cameras=distributed.all_gather_tensor(batch.cameras),
                          indexes=distributed.all_gather_tensor(batch.indexes))


class Trainer:
    """Runs ``iters`` steps of :meth:`compute_losses` per epoch.

    Subclasses implement ``compute_losses(batch) -> dict`` whose ``'loss'``
    entry is optimised; every other entry is a logged scalar.
    """

    def __init__(self, model: nn.Module, device: torch.device, amp: Optional[str] = None,
                 print_freq: int = 50, verbose: bool = True, channels_last: bool = False) -> None:
        self.model = model
        self.device = device
        self.amp = amp
        self.channels_last = channels_last
        self.print_freq = print_freq
        self.verbose = verbose
        # float16 needs loss scaling; bfloat16 has float32's range and does not.
        # Under DDP every rank steps with the same all-reduced gradients, so the
        # scalers' inf checks and scale updates agree on every rank.
        self.scaler = _grad_scaler(device) if amp == "fp16" and device.type == "cuda" else None

    def compute_losses(self, batch: Batch) -> Dict[str, torch.Tensor]:
        """The step's loss terms; ``'loss'`` is optimised, the others are logged."""
        raise NotImplementedError

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move a batch tensor to the device (images in channels-last layout if asked)."""
        tensor = tensor.to(self.device, non_blocking=True)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def train_epoch(self, epoch: int, batches: IterLoader, optimizer: torch.optim.Optimizer,
                    iters: int) -> Dict[str, float]:
        """Train one epoch; returns the epoch averages of every logged term."""
        self.model.train()
        meters: Dict[str, AverageMeter] = defaultdict(AverageMeter)
        batch_time, data_time = AverageMeter(), AverageMeter()
        end = time.time()
        bar = tqdm(range(iters), desc=f"epoch {epoch}", disable=not self.verbose,
                   leave=False, dynamic_ncols=True)
        for i in bar:
            batch = _global_labels(batches.next())
            data_time.update(time.time() - end)
            with autocast_context(self.device, self.amp):
                terms = self.compute_losses(batch)
            self._step(terms["loss"], optimizer)
            for name, value in terms.items():
                meters[name].update(value.item() if torch.is_tensor(value) else value)
            batch_time.update(time.time() - end)
            end = time.time()
            bar.set_postfix({k: f"{m.avg:.3f}" for k, m in meters.items()}, refresh=False)
            if (i + 1) % self.print_freq == 0:
                logger.info(self._log_line(epoch, i + 1, iters, batch_time, data_time, meters))
        averages = {name: meter.avg for name, meter in meters.items()}
        averages["time_per_iter"] = batch_time.avg
        return averages

    def _step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)}; lower --lr or disable --amp")
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()

    @staticmethod
    def _log_line(epoch: int, i: int, iters: int, batch_time: AverageMeter,
                  data_time: AverageMeter, meters: Dict[str, AverageMeter]) -> str:
        parts = [f"Epoch: [{epoch}][{i}/{iters}]",
                 f"Time {batch_time.val:.3f} ({batch_time.avg:.3f})",
                 f"Data {data_time.val:.3f} ({data_time.avg:.3f})"]
        for name, meter in meters.items():
            if name == "prec":
                parts.append(f"Prec {meter.val:.2%} ({meter.avg:.2%})")
            else:
                parts.append(f"{name} {meter.val:.3f} ({meter.avg:.3f})")
        return "\t".join(parts)
