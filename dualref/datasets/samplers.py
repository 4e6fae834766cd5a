"""Identity samplers: P identities x K instances per batch; label -1 (outlier) is never drawn."""
from collections import defaultdict
from typing import Any, Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..utils.errors import ParamError, check

Item = tuple[str, int, int]


def check_batch_size(batch_size: int, num_instances: int) -> None:
    """Raise ParamError unless the batch splits into whole groups of ``num_instances``."""
    check(batch_size >= 1, "batch_size", batch_size, "must be at least 1")
    check(num_instances >= 0, "num_instances", num_instances, "must be >= 0 (0 = plain shuffling)")
    check(not num_instances or batch_size % num_instances == 0, "batch_size", batch_size,
          f"is not divisible by the {num_instances} instances per identity (num_instances)")


class _SeededSampler(Sampler[int]):
    """Base: pass n draws from its own RNG seeded by (seed, n), so runs repeat and resume."""

    def __init__(self, seed: int) -> None:
        check(seed >= 0, "seed", seed, "must be >= 0")
        self.seed = int(seed)
        self.passes = 0

    def _next_rng(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self.passes])
        self.passes += 1
        return rng

    def state_dict(self) -> dict[str, int]:
        """Seed and number of completed passes (plain ints, safe for weights_only loading)."""
        return {"seed": self.seed, "passes": self.passes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.seed = int(state["seed"])
        self.passes = int(state["passes"])


def _group_by_identity(items: Sequence[Item]) -> tuple[list[int], dict[int, list[int]], dict[int, list[int]]]:
    """Identities in order of first appearance (without -1), their item indices and cameras."""
    indices: dict[int, list[int]] = defaultdict(list)
    cams: dict[int, list[int]] = defaultdict(list)
    for index, (_, pid, camid) in enumerate(items):
        if pid == -1:
            continue
        indices[pid].append(index)
        cams[pid].append(camid)
    return list(indices), dict(indices), dict(cams)


class RandomMultipleGallerySampler(_SeededSampler):
    """Each identity once per pass, as an anchor plus K-1 instances preferably from other cameras.

    For every identity (in a random order) an anchor image is drawn; the other
    K-1 come from the identity's images taken by other cameras than the
    anchor's; if it has none, from its other images; a singleton repeats its
    only image. Candidates are drawn without replacement when there are
    enough of them. ``match_original=True`` keeps the authors' threshold
    (without replacement only when there are at least K candidates, so K-1
    candidates are still drawn with replacement); ``False`` uses K-1.
    Unlike the authors' code, a singleton still fills its K slots, so every
    batch is exactly P x K and ``len()`` is exact.
    """

    def __init__(self, items: Sequence[Item], num_instances: int = 4, seed: int = 0,
                 match_original: bool = True) -> None:
        super().__init__(seed)
        if num_instances < 1:
            raise ParamError("num_instances", num_instances, "must be >= 1 for identity sampling")
        self.num_instances = num_instances
        self.match_original = match_original
        self.pids, self.pid_indices, self.pid_cams = _group_by_identity(items)

    def __len__(self) -> int:
        return len(self.pids) * self.num_instances

    def _group(self, rng: np.random.Generator, pid: int) -> list[int]:
        members, cams = self.pid_indices[pid], self.pid_cams[pid]
        anchor = int(rng.integers(len(members)))
        candidates = [p for p, cam in enumerate(cams) if cam != cams[anchor]]
        if not candidates:
            candidates = [p for p in range(len(members)) if p != anchor]
        if not candidates:
            return [members[anchor]] * self.num_instances
        need = self.num_instances - 1
        threshold = self.num_instances if self.match_original else need
        chosen = rng.choice(candidates, size=need, replace=len(candidates) < threshold)
        return [members[anchor]] + [members[int(p)] for p in chosen]

    def __iter__(self) -> Iterator[int]:
        rng = self._next_rng()
        order: list[int] = []
        for k in rng.permutation(len(self.pids)):
            order.extend(self._group(rng, self.pids[int(k)]))
        return iter(order)


class BatchShardSampler(Sampler[int]):
    """One rank's share of every global batch drawn by ``base`` (for DDP).

    ``base`` draws the same order on every rank (same seed and pass); each
    global batch of ``batch_size`` indices is cut into ``num_replicas``
    consecutive slices and rank r takes slice r. With P x K batches and a
    slice size that is a multiple of K, every rank gets whole identity
    groups, the ranks' batches concatenated are exactly the single-process
    batch, and every identity is still drawn once per pass. A trailing
    partial batch is dropped, as the single-process loader drops it.
    """

    def __init__(self, base: Sampler, batch_size: int, num_replicas: int, rank: int) -> None:
        check(batch_size % num_replicas == 0, "batch_size", batch_size,
              f"the global batch does not split over {num_replicas} processes")
        self.base = base
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.per_rank = batch_size // num_replicas

    def __len__(self) -> int:
        return len(self.base) // self.batch_size * self.per_rank

    def __iter__(self) -> Iterator[int]:
        order = list(self.base)
        start = self.rank * self.per_rank
        for offset in range(0, len(order) - self.batch_size + 1, self.batch_size):
            yield from order[offset + start:offset + start + self.per_rank]
