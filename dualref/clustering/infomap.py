"""Infomap on the k-nearest-neighbour graph: a clusterer without eps (``--cluster infomap``).

The alternative to DBSCAN that cluster-contrast style codebases offer: link
every image to its ``k`` most similar images (cosine of L2-normalised
features) whose similarity is at least ``min_sim``, weight each link by its
similarity, and let Infomap's two-level map equation find the communities.
Communities smaller than ``min_size`` and isolated images are outliers (-1).
Nothing is kept across epochs. Needs the ``infomap`` package
(``pip install infomap``, part of the ``test`` extra).
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .base import Clusterer, relabel_consecutive
from ..utils.errors import ParamError, check

logger = logging.getLogger(__name__)

_BLOCK = 4096  # query rows per similarity product


def knn_graph(features: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities), each (N, k): every row's k most similar other rows."""
    x = F.normalize(torch.as_tensor(features).float(), dim=1)
    n = x.shape[0]
    k = min(k, n - 1)
    idx, sim = [], []
    for a in range(0, n, _BLOCK):
        s = x[a:a + _BLOCK] @ x.T
        s[torch.arange(s.shape[0]), torch.arange(a, a + s.shape[0])] = -float("inf")  # not itself
        top = torch.topk(s, k, dim=1)
        idx.append(top.indices.cpu().numpy())
        sim.append(top.values.cpu().numpy())
    return np.concatenate(idx), np.concatenate(sim)


class InfomapClusterer(Clusterer):
    """Infomap communities of the k-NN similarity graph."""

    needs_distances = False

    def __init__(self, k: int = 15, min_sim: float = 0.5, min_size: int = 2, seed: int = 0,
                 trials: int = 1) -> None:
        check(k >= 1, "cluster_options", f"k={k}", "k must be >= 1")
        check(-1.0 <= min_sim <= 1.0, "cluster_options", f"min_sim={min_sim}",
              "min_sim must lie in [-1, 1]")
        check(min_size >= 1, "cluster_options", f"min_size={min_size}", "min_size must be >= 1")
        self.k, self.min_sim, self.min_size = k, min_sim, min_size
        self.seed, self.trials = seed, trials

    def fit(self, features: Any, dist: Optional[Any] = None, fill: Any = 1.0) -> np.ndarray:
        try:
            from infomap import Infomap
        except ImportError as err:
            raise ParamError("cluster", "infomap", "needs the infomap package: "
                             "pip install infomap") from err
        n = len(features)
        labels = np.full(n, -1, dtype=np.int64)
        if n < 2:
            return labels
        idx, sim = knn_graph(features, self.k)
        rows = np.repeat(np.arange(n), idx.shape[1])
        keep = sim.ravel() >= self.min_sim
        # Infomap seeds start at 1
        im = Infomap(two_level=True, silent=True, seed=self.seed + 1, num_trials=self.trials)
        for i, j, w in zip(rows[keep].tolist(), idx.ravel()[keep].tolist(),
                           sim.ravel()[keep].tolist()):
            im.add_link(i, j, w)
        if keep.any():
            result = im.run()
            # infomap >= 2.10 returns a Result; older releases keep the modules on im
            modules = result.modules() if hasattr(result, "modules") else im.get_modules()
            for node, module in modules.items():
                labels[node] = module
        labels = relabel_consecutive(labels, self.min_size)
        logger.info("Infomap: %d clusters, %d outliers of %d", int(labels.max()) + 1,
                    int((labels < 0).sum()), n)
        return labels
