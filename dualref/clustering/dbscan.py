"""DBSCAN on a precomputed distance matrix, with eps derived once from rho.

Distances come either as a dense ``(N, N)`` array or as a scipy sparse
matrix in scikit-learn's precomputed-sparse convention: every stored entry
(explicit zeros and the diagonal included) is a distance, and an omitted
pair lies at distance ``fill`` (1 for the Jaccard distance) and is never a
DBSCAN neighbour.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import scipy.sparse as sp

from .base import Clusterer
from ..utils.errors import ParamError, check

logger = logging.getLogger(__name__)

Distances = Union[np.ndarray, sp.spmatrix, sp.sparray]

__all__ = [
    "DBSCANClusterer",
    "PairFill",
    "cluster_dbscan",
    "count_clusters",
    "eps_from_rho",
]


def _canonical_csr(dist: Distances) -> sp.csr_matrix:
    """CSR view of dist without duplicate entries (copied only when needed)."""
    m = sp.csr_matrix(dist)
    if not m.has_canonical_format:
        # csr_matrix() may share arrays with the caller's matrix: copy first
        m = m.copy()
        m.sum_duplicates()
    return m


def _check_square(dist: Distances) -> int:
    """Return N for an (N, N) matrix, else raise ValueError."""
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"distance matrix must be square, got shape {dist.shape}")
    return int(dist.shape[0])


@dataclass(frozen=True)
class PairFill:
    """Distance of a pair omitted from a sparse matrix: ``base + scale * (terms[i] + terms[j])``.

    The Jaccard distance with the source term leaves out the pairs whose
    k-reciprocal vectors do not overlap; their distance is
    ``(1 - lambda) + lambda * (s_i + s_j)``, not a constant.
    """

    base: float
    scale: float
    terms: np.ndarray

    def values(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Omitted-pair distance of each pair (i[t], j[t])."""
        return self.base + self.scale * (self.terms[i] + self.terms[j])

    @property
    def minimum(self) -> float:
        """A lower bound of every omitted pair's distance."""
        return self.base + self.scale * 2 * float(self.terms.min()) if self.terms.size else self.base


Fill = Union[float, PairFill]


def _upper_pairs(dist: Distances) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of the stored strict upper triangle (a dense matrix: values only)."""
    n = _check_square(dist)
    if sp.issparse(dist):
        m = _canonical_csr(dist)
        rows = np.repeat(np.arange(n, dtype=m.indices.dtype), np.diff(m.indptr))
        upper = m.indices > rows
        return rows[upper], m.indices[upper], m.data[upper]
    dense = np.asarray(dist)
    values = np.concatenate([dense[i, i + 1:] for i in range(n)]) if n > 1 else dense[:0, 0]
    none = np.zeros(0, dtype=np.int64)
    return none, none, values  # nothing is omitted, so no caller needs the pairs


def _omitted_zeros(rows: np.ndarray, cols: np.ndarray, fill: PairFill) -> int:
    """How many pairs not among (rows, cols) lie at distance exactly 0 (only with lambda 1)."""
    if fill.base != 0:
        return 0
    zero = fill.values(np.arange(fill.terms.size), np.arange(fill.terms.size)) == 0
    z = int(zero.sum())
    return z * (z - 1) // 2 - int(np.count_nonzero(zero[rows] & zero[cols]))


def _pairs_below(sorted_terms: np.ndarray, y: float) -> np.ndarray:
    """For each position a of sorted_terms: how many b > a have terms[a] + terms[b] < y."""
    ends = np.searchsorted(sorted_terms, y - sorted_terms, side="left")
    return np.maximum(0, ends - np.arange(sorted_terms.size) - 1)


def _smallest_omitted(n: int, rows: np.ndarray, cols: np.ndarray, fill: PairFill, count: int,
                      limit: float) -> np.ndarray:
    """Values below ``limit`` of the (at most count) smallest pairs not among (rows, cols)."""
    stored = np.sort(rows.astype(np.int64) * n + cols)
    order = np.argsort(fill.terms, kind="stable")
    terms = fill.terms[order].astype(np.float64)
    if fill.scale <= 0 or n < 2:  # every omitted pair at distance base
        k = min(count, n * (n - 1) // 2 - stored.size) if 0 < fill.base < limit else 0
        return np.full(k, fill.base)
    y_hi = (limit - fill.base) / fill.scale
    # shrink the threshold on s_i + s_j until it admits about count + #stored pairs
    lo, hi = 2 * terms[0], min(y_hi, 2 * terms[-1] + 1.0)
    if _pairs_below(terms, hi).sum() > count + stored.size:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if _pairs_below(terms, mid).sum() >= count + stored.size:
                hi = mid
            else:
                lo = mid
    lens = _pairs_below(terms, hi)
    a = np.repeat(np.arange(n), lens)
    b = a + 1 + (np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens))
    i, j = np.minimum(order[a], order[b]), np.maximum(order[a], order[b])
    keys = i.astype(np.int64) * n + j
    pos = np.searchsorted(stored, keys).clip(max=max(stored.size - 1, 0))
    omitted = stored[pos] != keys if stored.size else np.ones(keys.size, bool)
    values = fill.values(i[omitted], j[omitted])
    values = values[(values != 0) & (values < limit)]
    return _sorted_smallest(values, count)


def _sorted_smallest(values: np.ndarray, k: int) -> np.ndarray:
    """The k smallest entries of values, in ascending order (partition, then sort k)."""
    if k <= 0:
        return values[:0]
    if k < values.size:
        values = np.partition(values, k - 1)[:k]
    return np.sort(values)


# rho over the share of same-identity pairs, (m - 1) / (N - 1) for N images
# of m each: 1.6e-3 is 1.28x that share on Market-1501 (12,936 images, 17.2
# per id) and 1.17x on DukeMTMC-reID (16,522, 23.5 per id).
AUTO_RHO_FACTOR = 1.25
MARKET_IMAGES_PER_ID = 17.2


def auto_rho(num_images: int, images_per_id: float = MARKET_IMAGES_PER_ID,
             factor: float = AUTO_RHO_FACTOR) -> float:
    """rho for a new target: ``factor`` x the expected share of same-identity pairs.

    With ``num_images`` images of about ``images_per_id`` each, a random pair
    shows one person with probability (m - 1) / (N - 1); the paper's 1.6e-3 is
    about 1.25x that on Market-1501 and DukeMTMC-reID. Clipped to (0, 0.5].
    """
    check(num_images >= 2, "rho", "auto", f"needs at least 2 images, got {num_images}")
    check(images_per_id >= 1, "images_per_id", images_per_id, "must be >= 1")
    share = (min(images_per_id, num_images) - 1) / (num_images - 1)
    return float(min(0.5, max(factor * share, 1.0 / (num_images * (num_images - 1) / 2))))


def eps_from_rho(dist: Distances, rho: float = 1.6e-3, fill: Fill = 1.0) -> float:
    """Mean of the smallest rho-fraction of the non-zero upper-triangular distances.

    Pairs at distance exactly 0 are dropped from both the count and the
    values. The count is ``round-half-to-even(rho * #pairs)``, as the
    original's ``np.round``; it is raised to 1 where it would be 0 (the
    original then averages an empty slice and gets NaN). Pairs omitted from a
    sparse matrix are non-zero pairs at distance ``fill`` (a constant, or a
    :class:`PairFill` for the source-term mixture): they count, and
    contribute their value when the fraction reaches them, so the sparse and
    the dense form of one matrix give the same eps.
    """
    check(0.0 < rho < 1.0, "rho", rho, "must lie in (0, 1)")
    if isinstance(fill, PairFill) and not sp.issparse(dist):
        fill = 1.0  # a dense matrix omits nothing
    n = _check_square(dist)
    rows, cols, values = _upper_pairs(dist)
    n_fill = n * (n - 1) // 2 - rows.size if sp.issparse(dist) else 0
    if isinstance(fill, PairFill):
        n_fill -= _omitted_zeros(rows, cols, fill)
    values = values[values != 0]
    n_pairs = values.size + n_fill
    if n_pairs == 0:
        raise ValueError("no non-zero pairwise distance: cannot derive DBSCAN eps")
    count = max(1, int(np.round(rho * n_pairs)))
    if isinstance(fill, PairFill):
        selection = _smallest_with_pair_fill(n, rows, cols, values, fill, count)
    else:
        selection = _smallest_with_constant_fill(values, n_fill, fill, count)
    eps = float(np.mean(selection, dtype=np.float64))
    logger.info("eps from rho=%g: %.6f (mean of %d of %d non-zero pairs)",
                rho, eps, count, n_pairs)
    return eps


def _smallest_with_constant_fill(values: np.ndarray, n_fill: int, fill: float,
                                 count: int) -> np.ndarray:
    """The count smallest of values and n_fill copies of fill, ascending."""
    below = values[values < fill]
    above = values[values > fill]
    n_at_fill = n_fill + (values.size - below.size - above.size)
    # the selection in ascending order, so the mean sums what a full sort would
    parts = [_sorted_smallest(below, count)]
    rest = count - parts[0].size
    if rest > 0:
        parts.append(np.full(min(rest, n_at_fill), fill, dtype=values.dtype))
        parts.append(_sorted_smallest(above, rest - parts[-1].size))
    return np.concatenate(parts)


def _smallest_with_pair_fill(n: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray,
                             fill: PairFill, count: int) -> np.ndarray:
    """The count smallest of the stored values and every omitted pair's own value."""
    stored = _sorted_smallest(values, count)
    if stored.size == count and stored[-1] < fill.minimum:
        return stored  # no omitted pair can be among the smallest
    limit = float(stored[-1]) if stored.size == count else np.inf
    # ties at the limit are equal values: which of them are taken does not change the mean
    omitted = _smallest_omitted(n, rows, cols, fill, count, np.nextafter(limit, np.inf))
    return np.sort(np.concatenate([stored, omitted.astype(stored.dtype)]))[:count]


def _neighbour_graph(dist: Distances, eps: float) -> sp.csr_matrix:
    """Sparse graph keeping only entries within eps, diagonal made explicit.

    Entries above eps are never neighbours, so dropping them leaves DBSCAN's
    result unchanged and keeps scikit-learn's per-row sort cheap.
    """
    m = _canonical_csr(dist)
    n = m.shape[0]
    keep = m.data <= eps
    rows = np.repeat(np.arange(n), np.diff(m.indptr))[keep]
    cols = m.indices[keep]
    data = m.data[keep]
    # every point is its own neighbour even where the diagonal was omitted
    missing_diag = np.setdiff1d(np.arange(n), rows[rows == cols], assume_unique=False)
    rows = np.concatenate([rows, missing_diag])
    cols = np.concatenate([cols, missing_diag])
    data = np.concatenate([data, np.zeros(missing_diag.size, dtype=data.dtype)])
    graph = sp.csr_matrix((data, (rows, cols)), shape=(n, n))
    # csr construction from COO sums duplicates; inputs were canonical already
    from sklearn.neighbors import sort_graph_by_row_values  # lazy: scikit-learn costs ~1 s to import

    return sort_graph_by_row_values(graph, copy=False, warn_when_not_sorted=False)


def cluster_dbscan(dist: Distances, eps: float, min_samples: int = 4,
                   n_jobs: Optional[int] = -1, fill: float = 1.0) -> np.ndarray:
    """DBSCAN labels (int64, -1 = outlier) on a precomputed distance matrix."""
    check(min_samples >= 1, "min_samples", min_samples, "must be >= 1")
    if not eps > 0:
        raise ValueError(f"DBSCAN eps must be positive, got {eps}")
    _check_square(dist)
    if sp.issparse(dist):
        if eps >= fill:
            # omitted pairs sit at `fill`: dense DBSCAN would call them neighbours
            logger.warning("eps=%.4f >= %.4f: omitted sparse pairs are not treated "
                           "as neighbours, unlike a dense matrix", eps, fill)
        X: Distances = _neighbour_graph(dist, eps)
    else:
        X = np.asarray(dist)
    from sklearn.cluster import DBSCAN  # lazy, see above

    model = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed", n_jobs=n_jobs)
    labels = model.fit_predict(X).astype(np.int64)
    n_clusters, n_outliers = count_clusters(labels)
    logger.info("DBSCAN: %d clusters, %d outliers of %d", n_clusters, n_outliers, labels.size)
    return labels


def count_clusters(labels: np.ndarray) -> tuple[int, int]:
    """(number of clusters excluding -1, number of outliers labelled -1)."""
    labels = np.asarray(labels)
    return int(np.unique(labels[labels >= 0]).size), int(np.count_nonzero(labels == -1))


class DBSCANClusterer(Clusterer):
    """DBSCAN whose eps is fixed from rho at the first call and reused after.

    ``eps`` is public and part of ``state_dict()``, so a resumed run clusters
    with the eps of its first epoch. The adaptation's default clusterer
    (``--cluster dbscan``); see :mod:`dualref.clustering.base` for the interface.
    """

    needs_distances = True

    def __init__(self, rho: float = 1.6e-3, min_samples: int = 4,
                 eps: Optional[float] = None, n_jobs: Optional[int] = -1) -> None:
        check(0.0 < rho < 1.0, "rho", rho, "must lie in (0, 1)")
        check(min_samples >= 1, "min_samples", min_samples, "must be >= 1")
        if eps is not None and not eps > 0:
            raise ParamError("eps", eps, "must be positive")
        self.rho = rho
        self.min_samples = min_samples
        self.eps = eps
        self.n_jobs = n_jobs

    def fit(self, features: Any = None, dist: Optional[Distances] = None,
            fill: Fill = 1.0) -> np.ndarray:
        """Cluster ``dist``; derive eps first (counting omitted pairs at ``fill``) if unset."""
        if dist is None:
            raise ValueError("DBSCANClusterer.fit needs the distance matrix")
        if self.eps is None:
            self.eps = eps_from_rho(dist, self.rho, fill)
            logger.info("eps for cluster: %.3f", self.eps)
        return cluster_dbscan(dist, self.eps, self.min_samples, self.n_jobs)

    def __call__(self, dist: Distances) -> np.ndarray:
        """``fit`` on a distance matrix alone."""
        return self.fit(None, dist)

    def stats(self) -> dict[str, float]:
        return {} if self.eps is None else {"eps": float(self.eps)}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to cluster identically after a resume."""
        return {"eps": self.eps, "rho": self.rho, "min_samples": self.min_samples}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore eps (and the options it was derived with) from a checkpoint."""
        eps = state.get("eps")
        self.eps = None if eps is None else float(eps)
        self.rho = float(state.get("rho", self.rho))
        self.min_samples = int(state.get("min_samples", self.min_samples))
