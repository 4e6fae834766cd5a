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


def _as_tensor(x: ArrayLike, device: Optional[torch.device]) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return F.normalize(x.to(device=device, dtype=torch.float32), dim=1)


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
    """Ranking distance 2 - 2cos of L2-normalised features, each row divided by its own max."""

    def __init__(self, x: torch.Tensor):
        self.x = x
        self.size = x.shape[0]
        self.rep = duplicate_representatives(x)
        self.row_max = torch.ones(self.size, device=x.device)
        self.full_rows = 0

    def _sims(self, start: int, stop: int) -> torch.Tensor:
        if self.rep is None:
            return self.x[start:stop] @ self.x.T
        # exact duplicates must tie exactly: give them literally the same numbers
        uniq, inv = torch.unique(self.rep[start:stop], return_inverse=True)
        return (self.x[uniq] @ self.x.T)[inv][:, self.rep]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Normalised distances of rows start..stop-1; records their row maxima."""
        d = (2 - 2 * self._sims(start, stop)).clamp_(min=0)
        local = torch.arange(stop - start, device=d.device)
        if self.rep is None:
            d[local, local + start] = 0
        else:
            d[self.rep[start:stop, None] == self.rep[None, :]] = 0
        top = d.amax(1)
        top[top == 0] = 1  # all rows identical: keep zeros instead of 0/0
        self.row_max[start:stop] = top
        return d / top[:, None]

    def first_ranks(self, width: int, margin: int = 16
                    ) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """(distances, indices) of the first ``width`` ranks of every row, from symmetric tiles.

        The product X X^T is symmetric, so only its tiles on and above the
        diagonal are computed: each tile gives candidates (largest cosines)
        to its rows and, transposed, to its columns. A running top
        ``width + margin`` per row and the row's smallest cosine (whose
        distance is the row maximum, the map being monotone) are all that
        is kept. With many column tiles a tile offers each row only its
        first ``per_tile`` cosines (twice the row's fair share at least,
        and few enough for ``topk``'s cheap partial-sort path); the largest
        cosine a tile left out of a row is remembered, and a row whose
        final candidates do not all reach it is ranked from its full row.
        The candidates' distances are then computed as :meth:`rows`
        computes them and ranked by (distance, index); a row whose tie group
        may reach past its candidates is ranked again from its full row.
        None (use :meth:`rows`) with exact duplicates, or when full rows are
        as small as the candidates.
        """
        n, k = self.size, min(width, self.size)
        w = k + margin
        if self.rep is not None or w >= n:
            return None
        x = self.x
        tile = max(w, math.isqrt(BLOCK_ELEMS))
        best = torch.full((n, w), -float("inf"), device=x.device)
        best_idx = torch.zeros((n, w), dtype=torch.long, device=x.device)
        low = torch.full((n,), float("inf"), device=x.device)
        cut = torch.full((n,), -float("inf"), device=x.device)  # largest cosine a tile left out
        tiles = -(-n // tile)
        share = 2 * -(-w // tiles)

        def merge(r0: int, sims: torch.Tensor, c0: int) -> None:
            r1 = r0 + sims.shape[0]
            low[r0:r1] = torch.minimum(low[r0:r1], sims.amin(1))
            per_tile = min(w, max(share, sims.shape[1] // _PARTIAL_SORT), sims.shape[1])
            vals, idx = sims.topk(per_tile, dim=1, sorted=False)
            if per_tile < min(w, sims.shape[1]):  # what the tile left out is <= its smallest kept
                cut[r0:r1] = torch.maximum(cut[r0:r1], vals.amin(1))
            vals = torch.cat([best[r0:r1], vals], dim=1)
            idx = torch.cat([best_idx[r0:r1], idx + c0], dim=1)
            vals, order = vals.topk(w, dim=1, sorted=False)
            best[r0:r1], best_idx[r0:r1] = vals, idx.gather(1, order)

        for a0 in range(0, n, tile):
            for b0 in range(a0, n, tile):
                sims = x[a0:a0 + tile] @ x[b0:b0 + tile].T
                if a0 == b0:
                    sims.fill_diagonal_(float("inf"))  # itself: distance 0, never the row max
                merge(a0, sims, b0)
                if b0 != a0:
                    merge(b0, sims.T.contiguous(), a0)
        top = (2 - 2 * low).clamp_(min=0)
        top[top == 0] = 1
        self.row_max = top
        d = (2 - 2 * best).clamp_(min=0) / top[:, None]
        vals, idx, unsure = sort_candidates(d, best_idx, k)
        # a row is exact when every cosine a tile left out is <= each of its candidates
        # (equality is fine: sort_candidates finds the ties that reach the k-th rank)
        missed = (cut > best.amin(1)).nonzero().squeeze(1)
        if missed.numel():
            unsure = torch.unique(torch.cat([unsure, missed]))
            logger.debug("%d rows ranked from their full rows (candidates left in a tile)", missed.numel())
        self.full_rows = unsure.numel()  # rows ranked from their full row (ties, tiles' cut)
        for s in range(0, unsure.numel(), max(1, BLOCK_ELEMS // n)):
            rows = unsure[s:s + max(1, BLOCK_ELEMS // n)]
            full = (2 - 2 * (x[rows] @ x.T)).clamp_(min=0)
            full[torch.arange(rows.numel(), device=x.device), rows] = 0
            vals[rows], idx[rows] = smallest_k(full / top[rows, None], k, margin)
        return vals, idx

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Normalised distance of each pair (i[t], j[t])."""
        ri, rj = (i, j) if self.rep is None else (self.rep[i], self.rep[j])
        out = torch.empty(i.numel(), device=self.x.device)
        chunk = max(1, BLOCK_ELEMS // self.x.shape[1])
        for s in range(0, i.numel(), chunk):
            dots = (self.x[ri[s:s + chunk]] * self.x[rj[s:s + chunk]]).sum(1)
            out[s:s + chunk] = (2 - 2 * dots).clamp_(min=0)
        out[ri == rj] = 0
        return out / self.row_max[i]


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
    x = _as_tensor(features, device)
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
