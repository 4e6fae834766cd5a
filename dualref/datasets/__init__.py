"""Person re-ID datasets (Market-1501, DukeMTMC-reID, MSMT17, your own ``custom`` folder).

Every dataset exposes ``train``, ``query`` and ``gallery`` as lists of
``(path, pid, camid)`` sorted by path, plus ``num_train_pids``,
``num_train_cams``, ``images_dir`` and ``name``.
"""
from __future__ import annotations

from typing import Optional

from .base import Item, ReIDDataset
from .custom import CustomDataset
from .dukemtmc import DukeMTMC
from .market1501 import Market1501
from .msmt17 import MSMT17
from ..utils.errors import ParamError, UserError

# name -> class; add a dataset with one line here.
FACTORY: dict[str, type[ReIDDataset]] = {
    "custom": CustomDataset,
    "dukemtmc": DukeMTMC,
    "market1501": Market1501,
    "msmt17": MSMT17,
}


def names() -> list[str]:
    """Sorted names accepted by :func:`create`."""
    return sorted(FACTORY)


def create(name: str, root: str, verbose: bool = True, cameras: Optional[str] = None
           ) -> ReIDDataset:
    """Load dataset ``name`` from its own folder ``root`` (e.g. examples/data/market1501).

    ``cameras`` (``custom`` only): where the train images' cameras come from.
    """
    if name not in FACTORY:
        raise UserError(f"unknown dataset {name!r}; expected one of: {', '.join(names())}")
    if name == "custom":
        return FACTORY[name](root, verbose=verbose, name=name, cameras=cameras)
    if cameras:
        raise ParamError("camera_pattern", cameras, f"applies to -dt custom only, not to {name} "
                         "(whose file names hold the cameras)")
    return FACTORY[name](root, verbose=verbose, name=name)


def has_train_labels(dataset: ReIDDataset) -> bool:
    """Whether the train split's ids are real (False for an unlabelled ``custom`` target)."""
    return getattr(dataset, "has_train_labels", True)


def has_test(dataset: ReIDDataset) -> bool:
    """Whether the dataset has a query/gallery to evaluate on."""
    return bool(dataset.query) and bool(dataset.gallery)


__all__ = ["FACTORY", "CustomDataset", "DukeMTMC", "Item", "MSMT17", "Market1501", "ReIDDataset",
           "create", "has_test", "has_train_labels", "names"]
