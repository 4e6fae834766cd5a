"""k-reciprocal Jaccard distance between target features, as a sparse matrix.

Missing entries: the result stores every pair whose k-reciprocal vectors share
support (Jaccard distance < 1), zeros and the diagonal included, and leaves
out the pairs at Jaccard distance exactly 1. That is how scikit-learn's
``DBSCAN(metric='precomputed')`` reads sparse input: stored entries are
distances, missing entries are never neighbours. For the DBSCAN radius this is
exact whenever eps < 1 (lambda = 0) or eps < 1 - lambda (lambda > 0), since a
missing pair is then at distance 1, respectively (1 - lambda) + lambda (s_i + s_j)
>= 1 - lambda. A caller that needs the value of a missing pair (e.g. counting
pairs for an eps quantile) can rebuild it from :func:`source_term`.
"""
from __future__ import annotations

import logging
import math
from typing import Optional, Union

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from .dbscan import Fill, PairFill
from .kreciprocal import BLOCK_ELEMS, k_reciprocal_vectors, min_sum_pairs, smallest_k, sort_candidates

logger = logging.getLogger(__name__)

ArrayLike = Union[torch.Tensor, np.ndarray]

# Product tiles are sqrt(BLOCK_ELEMS) per side (2048): smaller tiles waste less on the
# diagonal but offer each row fewer candidates per tile (more rows ranked from full rows).
# torch's CPU topk takes a partial sort (cheap) when k * 64 <= the row length, else a full selection
_PARTIAL_SORT = 64
# Rows already this close to length 1 are used as given (see unit_rows)
_UNIT_TOL = 1e-5
# Products with fewer rows or columns take another BLAS path (see gram); pairs go in chunks
_MIN_GEMM = 16
_PAIR_CHUNK = 32


def _float32(x: ArrayLike, device: Optional[torch.device]) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return x.to(device=device, dtype=torch.float32)


def _as_tensor(x: ArrayLike, device: Optional[torch.device]) -> torch.Tensor:
    return F.normalize(_float32(x, device), dim=1)


def unit_rows(x: ArrayLike, device: Optional[torch.device] = None) -> torch.Tensor:
    """float32 features with rows of length 1, taken as given when they already are.

    The model's eval-mode features are L2-normalised already (to float32
    rounding); normalising them again would move their last bits away from
    the numbers the reference computes its distances from. Rows further
    than ``_UNIT_TOL`` from length 1 are normalised.
    """
    x = _float32(x, device)
    if x.numel() and bool(((x.norm(dim=1) - 1).abs() <= _UNIT_TOL).all()):
        return x.contiguous()
    return F.normalize(x, dim=1)


def gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T with every entry as the full product X @ X.T computes it.

    BLAS kernels accumulate an entry in the same order whatever the block,
    except for tiny blocks (on MKL, fewer than 12 rows or columns take
    another path): those are padded with zero rows to ``_MIN_GEMM``.
    """
    m, n = a.shape[0], b.shape[0]
    if m < _MIN_GEMM:
        a = torch.cat([a, a.new_zeros(_MIN_GEMM - m, a.shape[1])])
    if n < _MIN_GEMM:
        b = torch.cat([b, b.new_zeros(_MIN_GEMM - n, b.shape[1])])
    out = a @ b.T
    return out if out.shape == (m, n) else out[:m, :n]


def duplicate_representatives(x: torch.Tensor) -> Optional[torch.Tensor]:
    """Lowest index of each exactly repeated row, or None when all rows differ."""
    n = x.shape[0]
    bits = x.contiguous().view(torch.int32).long()
    weights = torch.randint(1, 2 ** 31, (x.shape[1],), generator=torch.Generator().manual_seed(0))
    h = (bits * weights.to(x.device)).sum(1)  # exact integer hash: equal rows, equal hash
    order = torch.argsort(h, stable=True)
    same = h[order][1:] == h[order][:-1]
    if not bool(same.any()):
        return None
    rep = torch.arange(n, device=x.device)
    for t in same.nonzero().squeeze(1).tolist():  # only rows whose hash collides: few
        a, b = int(order[t]), int(order[t + 1])
        if torch.equal(x[rep[a]], x[b]):
            rep[b] = rep[a]
    return rep if bool((rep != torch.arange(n, device=x.device)).any()) else None


class FeatureDistance:
    """Ranking distance of unit features, computed as the reference computes it, in float32.

    d(i, j) = (2|x_j|^2 - 2 x_j.x_i) / max_j' (2|x_j'|^2 - 2 x_j'.x_i): 2 - 2cos
    with the squared norms as float32 leaves them, the products as one
    X @ X^T leaves them (:func:`gram`), nothing clipped and the diagonal as
    computed (a few 1e-7 off 0), each row divided by its own maximum.
    Mathematically this is SPEC's 2 - 2cos divided by the row maximum; in
    float32 it gives the reference's numbers bit for bit, which decides the
    rounding residue of near-identical k-reciprocal vectors (and so eps).
    """

    def __init__(self, x: torch.Tensor):
        self.x = x
        self.size = x.shape[0]
        self.sq = torch.pow(x, 2).sum(dim=1) * 2  # the reference's expression, its rounding
        self.rep = duplicate_representatives(x)
        self.row_max = torch.ones(self.size, device=x.device)
        self.full_rows = 0

    def _raw(self, rows: torch.Tensor) -> torch.Tensor:
        """2|x_j|^2 - 2 x_i.x_j of the given rows against every column (not yet divided)."""
        if self.rep is None:
            return self.sq[None, :] - 2 * gram(self.x[rows], self.x)
        # exact duplicates must tie exactly: give them literally the same numbers
        uniq, inv = torch.unique(self.rep[rows], return_inverse=True)
        return self.sq[None, :] - 2 * gram(self.x[uniq], self.x)[inv][:, self.rep]

    @staticmethod
    def _top(raw_max: torch.Tensor) -> torch.Tensor:
        top = raw_max.clone()
        top[top <= 0] = 1  # all rows identical: keep the values instead of dividing by ~0
        return top

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Normalised distances of rows start..stop-1; records their row maxima."""
        d = self._raw(torch.arange(start, stop, device=self.x.device))
        top = self._top(d.amax(1))
        self.row_max[start:stop] = top
        return d / top[:, None]

    def first_ranks(self, width: int, margin: int = 16
                    ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """(distances, indices) of the first ``width`` ranks of every row, from symmetric tiles.

        The product X X^T is symmetric, so only its tiles on and above the
        diagonal are computed: each tile gives candidates (smallest
        distances) to its rows and, transposed, to its columns. A running
        top ``width + margin`` per row and the row's largest distance (its
        divisor) are all that is kept. With many column tiles a tile offers
        each row only its first ``per_tile`` distances (twice the row's fair
        share at least, and few enough for ``topk``'s cheap partial-sort
        path); the smallest distance a tile left out of a row is remembered,
        and a row whose final candidates do not all stay below it is ranked
        from its full row. The candidates are divided by the row maximum and
        ranked by (distance, index); a row whose tie group may reach past its
        candidates is ranked again from its full row. None (use :meth:`rows`)
        with exact duplicates, or when full rows are as small as the candidates.
        """
        n, k = self.size, min(width, self.size)
        w = k + margin
        if self.rep is not None or w >= n:
            return None
        x, sq = self.x, self.sq
        tile = max(w, math.isqrt(BLOCK_ELEMS))
        best = torch.full((n, w), float("inf"), device=x.device)
        best_idx = torch.zeros((n, w), dtype=torch.long, device=x.device)
        high = torch.full((n,), -float("inf"), device=x.device)
        cut = torch.full((n,), float("inf"), device=x.device)  # smallest distance a tile left out
        tiles = -(-n // tile)
        share = 2 * -(-w // tiles)

        def merge(r0: int, dist: torch.Tensor, c0: int) -> None:
            r1 = r0 + dist.shape[0]
            high[r0:r1] = torch.maximum(high[r0:r1], dist.amax(1))
            per_tile = min(w, max(share, dist.shape[1] // _PARTIAL_SORT), dist.shape[1])
            vals, idx = dist.topk(per_tile, dim=1, largest=False, sorted=False)
            if per_tile < min(w, dist.shape[1]):  # what the tile left out is >= its largest kept
                cut[r0:r1] = torch.minimum(cut[r0:r1], vals.amax(1))
            vals = torch.cat([best[r0:r1], vals], dim=1)
            idx = torch.cat([best_idx[r0:r1], idx + c0], dim=1)
            vals, order = vals.topk(w, dim=1, largest=False, sorted=False)
            best[r0:r1], best_idx[r0:r1] = vals, idx.gather(1, order)

        for a0 in range(0, n, tile):
            a1 = min(n, a0 + tile)
            for b0 in range(a0, n, tile):
                b1 = min(n, b0 + tile)
                g2 = 2 * gram(x[a0:a1], x[b0:b1])
                merge(a0, sq[None, b0:b1] - g2, b0)
                if b0 != a0:
                    merge(b0, (sq[a0:a1, None] - g2).T.contiguous(), a0)
        top = self._top(high)
        self.row_max = top
        vals, idx, unsure = sort_candidates(best / top[:, None], best_idx, k)
        # a row is exact when every distance a tile left out is >= each of its candidates
        # (equality is fine: sort_candidates finds the ties that reach the k-th rank)
        missed = (best.amax(1) > cut).nonzero().squeeze(1)
        if missed.numel():
            unsure = torch.unique(torch.cat([unsure, missed]))
            logger.debug("%d rows ranked from their full rows (candidates left in a tile)", missed.numel())
        self.full_rows = unsure.numel()  # rows ranked from their full row (ties, tiles' cut)
        for s in range(0, unsure.numel(), max(1, BLOCK_ELEMS // n)):
            rows = unsure[s:s + max(1, BLOCK_ELEMS // n)]
            vals[rows], idx[rows] = smallest_k(self._raw(rows) / top[rows, None], k, margin)
        return vals, idx

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Normalised distance of each pair (i[t], j[t]), from products as :func:`gram` makes them."""
        ri, rj = (i, j) if self.rep is None else (self.rep[i], self.rep[j])
        dots = torch.empty(i.numel(), device=self.x.device)
        for s in range(0, i.numel(), _PAIR_CHUNK):  # the diagonal of small products
            dots[s:s + _PAIR_CHUNK] = gram(self.x[ri[s:s + _PAIR_CHUNK]], self.x[rj[s:s + _PAIR_CHUNK]]).diagonal()
        return (self.sq[j] - 2 * dots) / self.row_max[i]


def source_term(features: ArrayLike, source_features: ArrayLike,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """s_i = min_m (1 - exp(-||t_i - s_m||^2)) / max_i s_i over L2-normalised features."""
    t, s = _as_tensor(features, device), _as_tensor(source_features, device)
    block = max(1, BLOCK_ELEMS // max(1, s.shape[0]))
    best = torch.cat([(2 - 2 * (t[a:a + block] @ s.T).amax(1)).clamp_(min=0)
                      for a in range(0, t.shape[0], block)])
    term = 1 - torch.exp(-best)  # monotone in the distance, so min commutes with it
    top = term.max()
    return term / top if top > 0 else term


def _symmetric_csr(i: np.ndarray, j: np.ndarray, d: np.ndarray, n: int) -> sp.csr_matrix:
    """Full CSR (explicit zeros kept) from the upper triangle (i <= j) sorted by (i, j).

    One counting sort by row: the mirrored entries (j, i) come first in the
    input and, the pairs being sorted by i, in increasing column order within
    each row, so every row is sorted (lower part, then upper part) as it is built.
    """
    strict = i != j
    rows = np.concatenate([j[strict], i])
    cols = np.concatenate([i[strict], j])
    vals = np.concatenate([d[strict], d])
    return sp.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()


def compute_jaccard_dist(features: ArrayLike, k1: int = 20, k2: int = 6, lambda_value: float = 0.0,
                         source_features: Optional[ArrayLike] = None,
                         device: Optional[Union[str, torch.device]] = None,
                         verbose: bool = False, return_fill: bool = False
                         ) -> Union[sp.csr_matrix, tuple[sp.csr_matrix, Fill]]:
    """Sparse k-reciprocal Jaccard distance (float32 CSR; pairs at distance 1 left out).

    With ``return_fill`` also returns the distance of the omitted pairs: 1, or
    with the source term a :class:`~dualref.clustering.dbscan.PairFill`
    ``(1 - lambda) + lambda (s_i + s_j)``, for :func:`eps_from_rho`.
    """
    if lambda_value > 0 and source_features is None:
        raise ValueError("lambda_value > 0 needs source_features")
    x = unit_rows(features, device)
    n = x.shape[0]
    v, _ = k_reciprocal_vectors(FeatureDistance(x), k1, k2, verbose=verbose)
    src = source_term(x, source_features, x.device) if lambda_value > 0 else None
    parts = []
    for i, j, m in min_sum_pairs(v, v, upper=True):
        # 1 - sum min / sum max, with sum max = 2 - sum min since every V row sums
        # to 1. Written as the reference computes it, in float32: for identical
        # V rows this leaves a rounding residue (~1e-7, positive for about half
        # of them) instead of an exact 0, and eps_from_rho counts those pairs
        # exactly as the reference does.
        d = (1 - m / (2 - m)).clamp_(min=0)
        d[i == j] = 0  # the diagonal is not a pair: exactly 0, as the definition
        if src is not None:
            d = (1 - lambda_value) * d + lambda_value * (src[i] + src[j])
        parts.append((i.int().cpu().numpy(), j.int().cpu().numpy(), d.float().cpu().numpy()))
    i, j, d = (np.concatenate(p) for p in zip(*parts))  # never empty: n >= 1 has a diagonal
    out = _symmetric_csr(i, j, d, n)
    logger.info("Jaccard distance: %d images, %.1f%% of pairs stored", n, 100.0 * out.nnz / max(1, n * n))
    if not return_fill:
        return out
    if src is None:
        return out, 1.0
    return out, PairFill(1 - lambda_value, lambda_value, src.double().cpu().numpy())
