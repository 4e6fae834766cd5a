"""Off-line label refinement (LR): re-assign every sample to the cluster whose
k-means prototypes it resembles most.

For each DBSCAN cluster with more than R members, k-means (k-means++ init,
fixed seed, n_init restarts) on its L2-normalised features gives R
prototypes; a cluster with R or fewer members uses its mean R times. The
prototypes are L2-normalised, and every sample (outliers included) takes
the cluster maximising the sum of cosines to that cluster's R prototypes.

Two backends compute the same prototypes:

* ``batched`` (default): every cluster's k-means at once as padded tensor
  operations on any torch device (:mod:`dualref.clustering.kmeans`), the
  same algorithm and random numbers as scikit-learn's;
* ``sklearn``: one scikit-learn ``KMeans`` per cluster (~5-7 ms each, Python
  overhead mostly), the exact reference; ``n_jobs`` spreads the clusters
  over joblib worker processes.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any, Optional

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .kmeans import batched_kmeans
from ..utils.errors import check

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "cluster_prototypes", "l2_normalise", "refine_labels"]

# --refine-backend choices: batched tensors (default) or one scikit-learn fit per cluster
BACKENDS = ("batched", "sklearn")

# rows scored per matrix product, to bound the (rows x clusters) score block
_SCORE_CHUNK = 8192


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x divided by its L2 norm along axis (norms floored at 1e-12, as F.normalize)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _as_float_array(features: Any) -> np.ndarray:
    """numpy float array from an array or a CPU tensor (integers become float32)."""
    x = np.asarray(features)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def _centres(members: list[np.ndarray], R: int, n_init: int, seed: int) -> list[np.ndarray]:
    """R centres per member block: k-means when it has more than R rows, else its mean."""
    from sklearn.cluster import KMeans  # lazy: scikit-learn costs ~1 s to import
    from sklearn.exceptions import ConvergenceWarning

    out = []
    # one thread per call: a few dozen points gain nothing from OpenMP/BLAS
    # threads, and their spin-waiting costs 10x on a busy machine
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        # fewer distinct points than R gives repeated centres, which is fine here
        warnings.simplefilter("ignore", ConvergenceWarning)
        for x in members:
            if x.shape[0] > R:
                km = KMeans(n_clusters=R, init="k-means++", n_init=n_init, random_state=seed)
                out.append(km.fit(x).cluster_centers_)
            else:
                out.append(np.repeat(x.mean(axis=0, keepdims=True), R, axis=0))
    return out


def _parallel_centres(members: list[np.ndarray], R: int, n_init: int, seed: int,
                      n_jobs: Optional[int]) -> list[np.ndarray]:
    """_centres over contiguous chunks of clusters in joblib workers."""
    from joblib import Parallel, cpu_count, delayed

    workers = cpu_count() if n_jobs is None or n_jobs < 0 else n_jobs
    bounds = np.linspace(0, len(members), min(workers, len(members)) + 1).astype(int)
    chunks = Parallel(n_jobs=len(bounds) - 1)(
        delayed(_centres)(members[a:b], R, n_init, seed) for a, b in zip(bounds, bounds[1:]))
    return [c for chunk in chunks for c in chunk]


def _batched_centres(x: np.ndarray, members: list[np.ndarray], R: int, n_init: int,
                     seed: int, device: Optional[torch.device]) -> list[np.ndarray]:
    """_centres with every k-means of a cluster larger than R solved at once on ``device``.

    The rare cluster the batched solver cannot reproduce (a centre left
    empty during Lloyd) is fitted by scikit-learn instead.
    """
    out: list[Optional[np.ndarray]] = [None] * len(members)
    big = [i for i, m in enumerate(members) if m.size > R]
    for i, m in enumerate(members):
        if m.size <= R:
            out[i] = np.repeat(x[m].mean(axis=0, keepdims=True), R, axis=0)
    if big:
        centres, redo = batched_kmeans(torch.from_numpy(x), [members[i] for i in big], R,
                                       n_init=n_init, seed=seed, device=device)
        for j, i in enumerate(big):
            out[i] = centres[j].numpy()
        if len(redo):
            logger.debug("label refinement: %d clusters fitted by scikit-learn", len(redo))
        for j, c in zip(redo, _centres([x[members[big[j]]] for j in redo], R, n_init, seed)):
            out[big[j]] = c
    return out  # type: ignore[return-value]


def cluster_prototypes(features: Any, labels: np.ndarray, R: int, n_init: int = 10,
                       seed: int = 0, n_jobs: Optional[int] = 1, backend: str = "batched",
                       device: Optional[torch.device] = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(sorted cluster ids, L2-normalised prototypes of shape (C, R, D)).

    Features are L2-normalised first. Every k-means is seeded with ``seed``
    on its own, so the result depends neither on ``n_jobs`` nor on which
    other clusters are solved alongside. ``device`` (batched backend only)
    is where the k-means run; default the CPU.
    """
    check(int(R) == R and R >= 1, "R", R, "must be an integer >= 1")
    check(n_init >= 1, "n_init", n_init, "must be >= 1")
    check(backend in BACKENDS, "refine_backend", backend, f"expected one of {', '.join(BACKENDS)}")
    R = int(R)
    x = l2_normalise(_as_float_array(features))
    labels = np.asarray(labels)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {labels.shape}")
    ids = np.unique(labels[labels >= 0])
    # group members with one stable sort instead of one mask per cluster
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, ids, side="left")
    ends = np.searchsorted(sorted_labels, ids, side="right")
    if backend == "batched":
        centres = _batched_centres(x, [order[a:b] for a, b in zip(starts, ends)], R, n_init,
                                   seed, device)
    else:
        members = [x[order[a:b]] for a, b in zip(starts, ends)]
        if n_jobs == 1 or len(members) < 2:
            centres = _centres(members, R, n_init, seed)
        else:
            centres = _parallel_centres(members, R, n_init, seed, n_jobs)
    protos = np.stack(centres) if centres else np.zeros((0, R, x.shape[1]), x.dtype)
    return ids.astype(np.int64), l2_normalise(protos.astype(x.dtype, copy=False))


def _best_on_device(x: np.ndarray, summed: np.ndarray, device: torch.device) -> np.ndarray:
    """argmax over clusters of x @ summed.T, computed on ``device`` (first maximum wins)."""
    xt = torch.from_numpy(x).to(device)
    st = torch.from_numpy(summed).to(device)
    return torch.cat([(xt[a:a + _SCORE_CHUNK] @ st.T).argmax(dim=1)
                      for a in range(0, x.shape[0], _SCORE_CHUNK)]).cpu().numpy()


def refine_labels(features: Any, labels: np.ndarray, R: int, n_init: int = 10,
                  seed: int = 0, n_jobs: Optional[int] = 1, backend: str = "batched",
                  device: Optional[torch.device] = None) -> np.ndarray:
    """Refined int64 label of every sample, in the label values of ``labels``.

    The score of cluster c for sample x is the sum over c's R prototypes of
    cos(prototype, x); ties go to the lowest cluster id. With DBSCAN labels
    0..C-1 the result lies in [0, C) for every sample, outliers included.
    If there is no cluster at all (every label -1) every sample stays -1,
    so the caller sees the degenerate epoch instead of an exception.
    """
    labels = np.asarray(labels)
    ids, protos = cluster_prototypes(features, labels, R, n_init, seed, n_jobs, backend, device)
    x = l2_normalise(_as_float_array(features))
    if ids.size == 0:
        logger.warning("label refinement: no cluster, every sample stays an outlier")
        return np.full(x.shape[0], -1, dtype=np.int64)
    # the sum of cosines to R unit prototypes is the dot product with their sum
    summed = protos.sum(axis=1).astype(x.dtype, copy=False)
    if device is not None and torch.device(device).type != "cpu":
        best = _best_on_device(x, summed, torch.device(device))
    else:
        best = np.empty(x.shape[0], dtype=np.int64)
        for a in range(0, x.shape[0], _SCORE_CHUNK):
            best[a:a + _SCORE_CHUNK] = np.argmax(x[a:a + _SCORE_CHUNK] @ summed.T, axis=1)
    refined = ids[best]
    clustered = labels >= 0
    changed = int(np.count_nonzero(refined[clustered] != labels[clustered]))
    logger.info("label refinement (R=%d): %d of %d clustered samples change cluster",
                R, changed, int(clustered.sum()))
    return refined
