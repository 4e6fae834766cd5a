"""Pairwise precision / recall / F-score of pseudo-labels against true ids.

A pair is two distinct samples. Outliers (label -1) are left out of every
pair count, as in the original's evaluation of its clusters:

- precision = #pairs in the same cluster with the same id
              / #pairs in the same cluster;
- recall    = #pairs in the same cluster with the same id
              / #pairs with the same id, both clustered (non-outliers);
- fscore    = harmonic mean of the two.

``recall_all`` divides by the same-id pairs among all samples instead, so it
also charges the pairs lost to outliers. A ratio whose denominator is 0
(no pair at all, e.g. every sample an outlier) is reported as 0.0.
Everything is computed from contingency counts, O(N log N).
"""
from __future__ import annotations

from typing import Union

import numpy as np

__all__ = ["cluster_quality"]


def _pairs(counts: np.ndarray) -> int:
    """Number of unordered pairs inside groups of the given sizes."""
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else 0.0


def _group_counts(values: np.ndarray) -> np.ndarray:
    """Size of every group of equal values."""
    return np.unique(values, return_counts=True)[1]


def cluster_quality(labels: np.ndarray, true_ids: np.ndarray) -> dict[str, Union[int, float]]:
    """Pairwise P/R/F (outliers excluded) and cluster counts of a labelling."""
    labels = np.asarray(labels).ravel()
    true_ids = np.asarray(true_ids).ravel()
    if labels.shape != true_ids.shape:
        raise ValueError(f"labels {labels.shape} and true ids {true_ids.shape} differ in length")
    keep = labels >= 0
    lab, ids = labels[keep], true_ids[keep]
    sizes = _group_counts(lab)
    # encode (cluster, id) as one integer to count the contingency table cells
    _, lab_code = np.unique(lab, return_inverse=True)
    id_values, id_code = np.unique(ids, return_inverse=True)
    cells = _group_counts(lab_code.astype(np.int64) * max(len(id_values), 1) + id_code)

    same_both = _pairs(cells)
    same_cluster = _pairs(sizes)
    same_id = _pairs(_group_counts(ids))
    precision = _ratio(same_both, same_cluster)
    recall = _ratio(same_both, same_id)
    fscore = _ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "fscore": fscore,
        "recall_all": _ratio(same_both, _pairs(_group_counts(true_ids))),
        "num_samples": int(labels.size),
        "num_clusters": int(sizes.size),
        "num_outliers": int(labels.size - lab.size),
        "num_ids": int(np.unique(true_ids).size),
        "num_singletons": int(np.count_nonzero(sizes == 1)),
        "cluster_size_min": int(sizes.min()) if sizes.size else 0,
        "cluster_size_mean": float(sizes.mean()) if sizes.size else 0.0,
        "cluster_size_max": int(sizes.max()) if sizes.size else 0,
    }
