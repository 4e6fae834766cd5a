"""Pseudo-labelling, pure functions of features, and the clusterers behind ``--cluster``.

features -> :func:`compute_jaccard_dist` (sparse k-reciprocal Jaccard) ->
a clusterer (:class:`DBSCANClusterer`: :func:`eps_from_rho` + :func:`cluster_dbscan`)
-> :func:`refine_labels` (k-means prototypes) -> :func:`cluster_quality`
(pairwise P/R/F). Add a clusterer: one file with a :class:`Clusterer`
subclass, one line in ``CLUSTERERS``, one test.
"""
from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence

from .base import Clusterer
from .centers import cluster_centers
from .dbscan import DBSCANClusterer, cluster_dbscan, count_clusters, eps_from_rho
from .infomap import InfomapClusterer
from .jaccard import compute_jaccard_dist
from .quality import cluster_quality
from .refine import refine_labels
from ..utils.errors import ParamError

# name -> class; the adaptation's --cluster chooses one (dbscan: the paper's).
CLUSTERERS: dict[str, type[Clusterer]] = {
    "dbscan": DBSCANClusterer,
    "infomap": InfomapClusterer,
}


def names() -> list[str]:
    """Sorted names accepted by :func:`create`."""
    return sorted(CLUSTERERS)


def create(name: str, shared: Optional[dict[str, Any]] = None, **options: Any) -> Clusterer:
    """A clusterer by name.

    ``shared`` holds the stage's common settings (rho, min_samples): each goes
    to the constructor only if it takes that argument. ``options`` (from
    ``--cluster-option KEY=VALUE``) must all be constructor arguments.
    """
    if name not in CLUSTERERS:
        raise ParamError("cluster", name, f"unknown clusterer; expected one of: {', '.join(names())}")
    cls = CLUSTERERS[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    wrong = sorted(set(options) - set(accepted))
    if wrong:
        raise ParamError("cluster_options", wrong[0], f"not an option of {name} (it takes: "
                         f"{', '.join(accepted)})")
    kwargs = {k: v for k, v in (shared or {}).items() if k in accepted}
    kwargs.update(options)
    return cls(**kwargs)


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``["k=15", "min_sim=0.6"]`` -> ``{"k": 15, "min_sim": 0.6}`` (numbers parsed)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ParamError("cluster_options", pair, "expected KEY=VALUE")
        for cast in (int, float):
            try:
                out[key] = cast(text)
                break
            except ValueError:
                out[key] = text
    return out


__all__ = ["CLUSTERERS", "Clusterer", "DBSCANClusterer", "InfomapClusterer", "cluster_centers",
           "cluster_dbscan", "cluster_quality", "compute_jaccard_dist", "count_clusters",
           "create", "eps_from_rho", "names", "parse_options", "refine_labels"]
