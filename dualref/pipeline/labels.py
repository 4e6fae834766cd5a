"""One pseudo-labelling round: features -> Jaccard -> clusterer (DBSCAN) -> refined labels."""
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..clustering.base import Clusterer
from ..clustering.centers import cluster_centers
from ..clustering.jaccard import compute_jaccard_dist
from ..clustering.quality import cluster_quality
from ..clustering.refine import refine_labels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RefineSettings:
    """Off-line label refinement: R prototypes per cluster from k-means (see refine_labels)."""

    R: int
    n_init: int = 10
    seed: int = 0
    backend: str = "batched"


@dataclass
class PseudoLabels:
    """The outcome of one clustering round (label -1 = outlier)."""

    labels: np.ndarray
    refined: Optional[np.ndarray] = None
    centers: Optional[torch.Tensor] = None
    stats: Dict[str, float] = field(default_factory=dict)

    @property
    def num_clusters(self) -> int:
        return int(self.labels.max()) + 1 if (self.labels >= 0).any() else 0


def cluster_sizes(labels: np.ndarray) -> Dict[str, float]:
    """Mean, median and largest cluster size (outliers excluded; empty: no keys)."""
    sizes = np.bincount(labels[labels >= 0])
    sizes = sizes[sizes > 0]
    if not len(sizes):
        return {}
    return {"cluster_size_mean": float(sizes.mean()), "cluster_size_median": float(np.median(sizes)),
            "cluster_size_max": int(sizes.max())}


def make_pseudo_labels(features: torch.Tensor, clusterer: Clusterer, k1: int = 20, k2: int = 6,
                       lambda_value: float = 0.0, source_features: Optional[torch.Tensor] = None,
                       refine: Optional[RefineSettings] = None,
                       true_ids: Optional[Sequence[int]] = None,
                       device: Optional[torch.device] = None,
                       verbose: bool = True) -> PseudoLabels:
    """Cluster target features with ``clusterer`` (Jaccard first if it needs distances).

    With ``refine`` the refined labels are computed too (k-means on ``device``
    for the batched backend).
    """
    stats: Dict[str, float] = {}
    dist, fill = None, 1.0
    if clusterer.needs_distances:
        tic = time.time()
        dist, fill = compute_jaccard_dist(features, k1=k1, k2=k2, lambda_value=lambda_value,
                                          source_features=source_features, device=device,
                                          verbose=verbose, return_fill=True)
        stats["seconds_jaccard"] = time.time() - tic
    tic = time.time()
    labels = np.asarray(clusterer.fit(features, dist, fill), dtype=np.int64)
    stats["seconds_cluster"] = time.time() - tic
    result = PseudoLabels(labels=labels)
    num = result.num_clusters
    stats.update(num_clusters=num, num_outliers=int((labels < 0).sum()), **clusterer.stats(),
                 **cluster_sizes(labels))
    logger.info("Clustered into %d classes (%d outliers)", num, stats["num_outliers"])
    if num == 0:
        return _with_quality(result, stats, true_ids)
    result.centers = F.normalize(cluster_centers(features, labels, num), dim=1)
    if refine is not None:
        tic = time.time()
        result.refined = np.asarray(
            refine_labels(features.numpy(), labels, refine.R, n_init=refine.n_init,
                          seed=refine.seed, backend=refine.backend, device=device),
            dtype=np.int64)
        stats["seconds_refine"] = time.time() - tic
    return _with_quality(result, stats, true_ids)


def _with_quality(result: PseudoLabels, stats: Dict[str, float],
                  true_ids: Optional[Sequence[int]]) -> PseudoLabels:
    """Add pairwise precision/recall/F of the labels against ground truth."""
    if true_ids is not None:
        truth = np.asarray(true_ids)
        for key, value in cluster_quality(result.labels, truth).items():
            stats[f"dbscan_{key}"] = value
        if result.refined is not None:
            # Refined labels are scored on the samples DBSCAN kept, as the paper does.
            kept = np.where(result.labels >= 0, result.refined, -1)
            for key, value in cluster_quality(kept, truth).items():
                stats[f"refined_{key}"] = value
    result.stats = stats
    return result
