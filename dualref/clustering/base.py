"""What a clusterer is to the adaptation stage: one small interface.

A clusterer turns one epoch's target features (and, when it asks for them,
their k-reciprocal Jaccard distances) into pseudo-labels: int64, one per
sample, ``-1`` for an outlier and ``0..C-1`` for the clusters. Whatever it
keeps across epochs (DBSCAN's eps) goes through ``state_dict`` /
``load_state_dict``, which the stage saves in every checkpoint and restores
on resume, so no stage code knows about any particular clusterer.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


class Clusterer:
    """Base class: override :meth:`fit`; set ``needs_distances`` if it reads Jaccard."""

    needs_distances: bool = True
    """Whether :meth:`fit` needs the sparse Jaccard matrix (else it gets ``None``)."""

    def fit(self, features: Any, dist: Optional[Any] = None, fill: Any = 1.0) -> np.ndarray:
        """Labels of every row of ``features`` (-1 = outlier, clusters 0..C-1).

        ``features``: (N, D) tensor; ``dist``: the sparse Jaccard matrix when
        ``needs_distances``; ``fill``: the distance of pairs it omits.
        """
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Numbers worth recording each epoch (e.g. eps)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to cluster identically after a resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


def relabel_consecutive(labels: np.ndarray, min_size: int = 1) -> np.ndarray:
    """Clusters renumbered 0..C-1 in order of first appearance; smaller than ``min_size``: -1."""
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape, -1, dtype=np.int64)
    kept = labels >= 0
    values, first, counts = np.unique(labels[kept], return_index=True, return_counts=True)
    big = counts >= min_size
    order = np.argsort(first[big], kind="stable")
    mapping = dict(zip(values[big][order].tolist(), range(int(big.sum()))))
    out[kept] = [mapping.get(v, -1) for v in labels[kept].tolist()]
    return out
