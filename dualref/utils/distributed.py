"""Multi-process helpers: one code path for a single process and ``torchrun`` runs.

Outside ``torchrun`` every helper answers as for a world of one process
(rank 0, main, broadcast and gathers are no-ops), so library code calls them
unconditionally.
"""
import logging
import os
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist

from .errors import UserError

logger = logging.getLogger(__name__)

_LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """True when the launcher set RANK, WORLD_SIZE and LOCAL_RANK."""
    return all(name in os.environ for name in _LAUNCH_VARS)


def is_distributed() -> bool:
    """True inside an initialised process group of more than zero ranks."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's global rank; before initialisation, the launcher's RANK (or 0)."""
    if is_distributed():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its machine (the launcher's LOCAL_RANK, else 0)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0)."""
    return rank() == 0


def init_distributed(device: torch.device) -> torch.device:
    """Join the ``torchrun`` process group (NCCL on GPU, gloo on CPU); returns this rank's device.

    Each rank takes ``cuda:LOCAL_RANK`` (when ``device`` is CUDA) or the CPU.
    Without a launcher, returns ``device`` unchanged.
    """
    if not launched_by_torchrun():
        return device
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local_rank()} but only {torch.cuda.device_count()} "
                            "GPU(s) visible: start at most one process per GPU (NPROC)")
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    if not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("distributed: %d processes, backend %s", world_size(), backend)
    return device


def shutdown() -> None:
    """Leave the process group (no-op without one)."""
    if is_distributed():
        dist.destroy_process_group()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (any picklable object)."""
    if not is_distributed() or world_size() == 1:
        return obj
    holder = [obj if rank() == src else None]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def _comm_device() -> torch.device:
    """Where tensors must live for collectives: the current GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate equally shaped tensors of every rank along dim 0 (rank order); no gradient."""
    if not is_distributed() or world_size() == 1:
        return tensor
    local = tensor.detach().to(_comm_device()).contiguous()
    parts = [torch.empty_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return torch.cat(parts).to(tensor.device)


def all_gather_rows(rows: torch.Tensor, indexes: torch.Tensor, num_items: int) -> torch.Tensor:
    """Every rank's ``rows`` placed at their item ``indexes``: row i of the result is item i.

    Ranks may hold different numbers of rows (padded for the collective).
    Items no rank computed stay NaN, so a gap cannot go unnoticed.
    """
    rows, indexes = rows.float().cpu(), indexes.long().cpu()
    out = torch.full((num_items, rows.shape[1]), float("nan"))
    if not is_distributed() or world_size() == 1:
        out[indexes] = rows
        return out
    counts = all_gather_tensor(torch.tensor([rows.shape[0]]))
    most = int(counts.max())
    padded = torch.zeros(most, rows.shape[1])
    padded[:rows.shape[0]] = rows
    padded_idx = torch.zeros(most, dtype=torch.long)
    padded_idx[:rows.shape[0]] = indexes
    all_rows = all_gather_tensor(padded).view(world_size(), most, -1)
    all_idx = all_gather_tensor(padded_idx).view(world_size(), most)
    for r, count in enumerate(counts.tolist()):
        out[all_idx[r, :count]] = all_rows[r, :count]
    return out


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward keeps this rank's slice of the gradient.

    Every rank computes the same loss on the gathered batch, so the gradient
    of its own slice is complete locally; it is multiplied by the world size
    because DistributedDataParallel averages (not sums) gradients over ranks.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.world, ctx.rows = rank(), world_size(), tensor.shape[0]
        # gloo lacks reduced-precision collectives on some builds: gather autocast
        # outputs in float32 there (exact), NCCL gathers them as they are.
        wire = tensor.float() if dist.get_backend() == "gloo" else tensor
        parts = [torch.empty_like(wire) for _ in range(ctx.world)]
        dist.all_gather(parts, wire.contiguous())
        return torch.cat(parts).to(tensor.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        start = ctx.rank * ctx.rows
        return grad[start:start + ctx.rows] * ctx.world


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' ``tensor`` concatenated along dim 0, differentiable (identity for one process)."""
    if not is_distributed() or world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def rank_groups(group_ranks: int) -> Optional[Any]:
    """Process groups of ``group_ranks`` consecutive ranks; this rank's group (None if 1).

    Every rank must create every group, in the same order (a torch rule).
    """
    if group_ranks <= 1 or not is_distributed():
        return None
    if world_size() % group_ranks:
        raise UserError(f"{world_size()} processes do not split into BatchNorm groups of "
                        f"{group_ranks} processes")
    mine = None
    for start in range(0, world_size(), group_ranks):
        group = dist.new_group(list(range(start, start + group_ranks)))
        if start <= rank() < start + group_ranks:
            mine = group
    return mine


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``module``'s parameters and buffers from rank ``src`` to every rank."""
    if not is_distributed() or world_size() == 1:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            local = tensor.data.to(_comm_device())
            dist.broadcast(local, src=src)
            tensor.data.copy_(local.to(tensor.device))


def shard_range(num_items: int, world: Optional[int] = None, index: Optional[int] = None
                ) -> Sequence[int]:
    """This rank's contiguous share of ``range(num_items)`` (sizes differ by at most 1)."""
    world = world_size() if world is None else world
    index = rank() if index is None else index
    base, extra = divmod(num_items, world)
    start = index * base + min(index, extra)
    return range(start, start + base + (index < extra))


__all__: List[str] = ["launched_by_torchrun", "is_distributed", "world_size", "rank",
                      "local_rank", "is_main", "init_distributed", "shutdown",
                      "broadcast_object", "all_gather_tensor", "all_gather_rows",
                      "gather_with_grad", "rank_groups", "broadcast_module", "shard_range"]
