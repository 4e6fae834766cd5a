"""Person re-ID datasets (Market-1501, DukeMTMC-reID, MSMT17, synthetic).

Every dataset exposes ``train``, ``query`` and ``gallery`` as lists of
``(path, pid, camid)`` sorted by path, plus ``num_train_pids``,
``num_train_cams``, ``images_dir`` and ``name``.
"""
from __future__ import annotations

from dualref.datasets.base import Item, ReIDDataset
from dualref.datasets.dukemtmc import DukeMTMC
from dualref.datasets.market1501 import Market1501
from dualref.datasets.msmt17 import MSMT17
from dualref.utils.errors import UserError

# name -> class; add a dataset with one line here.
FACTORY: dict[str, type[ReIDDataset]] = {
    "dukemtmc": DukeMTMC,
    "market1501": Market1501,
    "msmt17": MSMT17,
}


def names() -> list[str]:
    """Sorted names accepted by :func:`create`."""
    return sorted(FACTORY)


def create(name: str, root: str, verbose: bool = True) -> ReIDDataset:
    """Load dataset ``name`` from its own folder ``root`` (e.g. examples/data/market1501)."""
    if name not in FACTORY:
        raise UserError(f"unknown dataset {name!r}; expected one of: {', '.join(names())}")
    return FACTORY[name](root, verbose=verbose, name=name)


__all__ = ["FACTORY", "DukeMTMC", "Item", "MSMT17", "Market1501", "ReIDDataset",
           "create", "names"]
