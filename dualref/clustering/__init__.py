"""Pseudo-labelling, pure functions of features.

features -> :func:`compute_jaccard_dist` (sparse k-reciprocal Jaccard) ->
:func:`eps_from_rho` / :func:`cluster_dbscan` -> :func:`refine_labels`
(k-means prototypes) -> :func:`cluster_quality` (pairwise P/R/F).
"""
from .dbscan import DBSCANClusterer, cluster_dbscan, count_clusters, eps_from_rho
from .jaccard import compute_jaccard_dist
from .quality import cluster_quality
from .refine import refine_labels

__all__ = ["DBSCANClusterer", "cluster_dbscan", "cluster_quality", "compute_jaccard_dist",
           "count_clusters", "eps_from_rho", "refine_labels"]
