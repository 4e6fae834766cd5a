"""Image dataset over (path, pid, camid) lists and the train/test DataLoader builders."""
import logging
import os
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Union

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from .samplers import (BatchShardSampler, RandomMultipleGallerySampler,
                                       check_batch_size)
from .transforms import RandomErasing, build_test_transform, build_train_transform
from ..utils import distributed
from ..utils.errors import ParamError, UserError, check
from ..utils.seeding import worker_init_fn

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]


class Batch(NamedTuple):
    """One sample or, as the DataLoader collates them, a batch (every field batched)."""

    images: Any
    paths: Any
    labels: Any  # person ids, or pseudo-labels in adaptation (-1: outlier)
    cameras: Any
    indexes: Any  # the items' positions: rows of the feature matrix, slots of a memory


class ImageDataset(Dataset):
    """Items ``(path, pid, camid)`` -> ``Batch(image, path, pid, camid, index)``.

    ``index`` is the item's position in the list, i.e. its row in the feature
    matrix and its slot in the instance memory.
    """

    def __init__(self, items: Sequence[Item], root: Optional[str] = None,
                 transform: Optional[Callable[[Image.Image], Any]] = None) -> None:
        self.items = list(items)
        self.root = root
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Batch:
        path, pid, camid = self.items[index]
        full = os.path.join(self.root, path) if self.root is not None else path
        try:
            with Image.open(full) as raw:
                img = raw.convert("RGB")
        except OSError as err:  # missing, truncated or not an image
            raise UserError(f"cannot read image {full}: {err}") from err
        if self.transform is not None:
            img = self.transform(img)
        return Batch(img, path, pid, camid, index)


class IterLoader:
    """Iteration-based view of a DataLoader: ``len()`` batches per epoch, restarting it when exhausted.

    ``new_epoch()`` starts a fresh pass (dropping what was left of the previous
    one, as the authors' loop does at every epoch); ``next()`` returns a batch.
    """

    def __init__(self, loader: DataLoader, length: Optional[int] = None) -> None:
        self.loader = loader
        self.length = length
        self._iter: Optional[Iterator] = None

    def __len__(self) -> int:
        return self.length if self.length is not None else len(self.loader)

    def new_epoch(self) -> None:
        """Start a fresh pass over the underlying loader."""
        self._iter = iter(self.loader)

    def next(self) -> Any:
        """Next batch, restarting the underlying loader when it runs out."""
        if self._iter is None:
            self.new_epoch()
        try:
            return next(self._iter)
        except StopIteration:
            self.new_epoch()
            try:
                return next(self._iter)
            except StopIteration:
                raise RuntimeError("the underlying DataLoader yields no batch at all") from None

    def state_dict(self) -> dict[str, Any]:
        """RNG state of the sampler and of the worker seeds (tensors and ints only)."""
        state: dict[str, Any] = {}
        sampler = _base_sampler(self.loader)
        if hasattr(sampler, "state_dict"):
            state["sampler"] = sampler.state_dict()
        elif getattr(sampler, "generator", None) is not None:
            state["sampler_generator"] = sampler.generator.get_state()
        if getattr(self.loader, "generator", None) is not None:
            state["generator"] = self.loader.generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the next :meth:`new_epoch` continues the saved run."""
        sampler = _base_sampler(self.loader)
        if "sampler" in state:
            sampler.load_state_dict(state["sampler"])
        if "sampler_generator" in state:
            sampler.generator.set_state(state["sampler_generator"])
        if "generator" in state:
            self.loader.generator.set_state(state["generator"])
        self._iter = None

    def __iter__(self) -> Iterator[Any]:
        """One epoch: a fresh pass, ``len(self)`` batches."""
        self.new_epoch()
        for _ in range(len(self)):
            yield self.next()


def _base_sampler(loader: DataLoader) -> Optional[Sampler]:
    """The loader's sampler, seen through a rank shard: checkpoints do not depend on the process count."""
    sampler = getattr(loader, "sampler", None)
    return getattr(sampler, "base", sampler)


def _train_sampler(items: Sequence[Item], batch_size: int, num_instances: int, seed: int) -> Sampler:
    """Identity sampler, or plain shuffling when ``num_instances`` is 0 (the authors' target loader)."""
    if num_instances > 0:
        sampler: Sampler = RandomMultipleGallerySampler(items, num_instances=num_instances, seed=seed)
    else:
        sampler = RandomSampler(items, generator=torch.Generator().manual_seed(seed))
    if len(sampler) == 0:
        raise UserError("no trainable sample: every item is labelled -1 (outlier)")
    return sampler


def build_train_loader(
    items: Sequence[Item],
    height: int,
    width: int,
    batch_size: int,
    num_instances: int,
    workers: int,
    iters: Optional[int],
    random_erasing: Union[bool, RandomErasing] = False,
    seed: int = 0,
    root: Optional[str] = None,
    padding: int = 10,
    flip_probability: float = 0.5,
    num_replicas: Optional[int] = None,
    rank: Optional[int] = None,
) -> IterLoader:
    """Endless augmented training loader of ``iters`` batches per epoch (P x K identity batches).

    ``batch_size`` is the global batch: under ``torchrun`` (or with
    ``num_replicas`` > 1) this rank gets its ``batch_size / num_replicas``
    share of every global batch, in whole identity groups. ``random_erasing``:
    True for the paper's settings, or a configured :class:`RandomErasing`.
    """
    num_replicas = distributed.world_size() if num_replicas is None else num_replicas
    rank = (distributed.rank() if rank is None else rank) if num_replicas > 1 else 0
    check_batch_size(batch_size, num_instances)
    sampler = _train_sampler(items, batch_size, num_instances, seed)
    per_rank = batch_size
    if num_replicas > 1:
        sampler, per_rank = _shard(sampler, batch_size, num_instances, num_replicas, rank)
    elif len(sampler) < batch_size:
        logger.warning("one pass yields %d samples, fewer than --batch-size %d: smaller batches",
                       len(sampler), batch_size)
    loader = DataLoader(
        ImageDataset(items, root=root, transform=build_train_transform(
            height, width, random_erasing, padding=padding, flip_probability=flip_probability)),
        batch_size=per_rank,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        # A pass shorter than one batch (e.g. fewer pseudo-identities than
        # batch_size / num_instances) still gives one, smaller, batch.
        drop_last=len(sampler) >= per_rank,
        worker_init_fn=worker_init_fn,
        # Drives the per-worker seeds, so augmentation repeats for a given
        # seed; rank 0 keeps the single-process seed, other ranks differ.
        generator=torch.Generator().manual_seed(seed + 100_003 * rank),
        persistent_workers=False,
    )
    return IterLoader(loader, length=iters)


def _shard(sampler: Sampler, batch_size: int, num_instances: int, num_replicas: int,
           rank: int) -> tuple[Sampler, int]:
    """This rank's share of every global batch; refuses splits that break identity groups."""
    per_rank, rest = divmod(batch_size, num_replicas)
    if rest or (num_instances and per_rank % num_instances):
        unit = num_replicas * max(num_instances, 1)
        raise ParamError("batch_size", batch_size, f"the global batch: with {num_replicas} "
                         f"processes it must be a multiple of {unit} (processes x instances per "
                         "identity)")
    check(len(sampler) >= batch_size, "batch_size", batch_size,
          f"one pass yields {len(sampler)} samples, fewer than the global batch: run with fewer "
          "processes or a smaller batch")
    return BatchShardSampler(sampler, batch_size, num_replicas, rank), per_rank


def build_test_loader(
    items: Sequence[Item],
    height: int,
    width: int,
    batch_size: int,
    workers: int,
    root: Optional[str] = None,
    shard: Optional[bool] = None,
) -> DataLoader:
    """Ordered loader without augmentation: batch rows follow the item order.

    With ``shard`` (default: under ``torchrun``) this rank reads only its
    contiguous share of the items; the dataset's ``index`` still names each
    item's global row, so gathered features keep row i == item i.
    """
    check(batch_size >= 1, "batch_size", batch_size, "must be at least 1")
    shard = distributed.world_size() > 1 if shard is None else shard
    indices = distributed.shard_range(len(items)) if shard else None
    return DataLoader(
        ImageDataset(items, root=root, transform=build_test_transform(height, width)),
        batch_size=batch_size,
        sampler=indices,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=worker_init_fn,
        # Its own generator: iterating must not advance the global RNG, or an
        # extra evaluation would change the training that follows it.
        generator=torch.Generator().manual_seed(0),
    )
