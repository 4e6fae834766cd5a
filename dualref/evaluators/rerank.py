"""k-reciprocal re-ranking of query-gallery distances (Zhong et al., CVPR 2017).

Follows the original algorithm step by step: the input distances are squared
again, each column of the (query+gallery)^2 matrix is divided by its maximum
(and the matrix transposed), k-reciprocal vectors are built over query and
gallery together, and the query rows get (1 - lambda) Jaccard + lambda x the
normalised distance, with Jaccard = 1 - m / (2 - m) (m = sum of minima) and no
clipping. The (Q+G)^2 matrix is never assembled: rows are read block by block
from the three input blocks and the Jaccard part is sparse.
"""
from __future__ import annotations

import logging
from typing import Optional, Union

import numpy as np
import torch

from ..clustering.kreciprocal import BLOCK_ELEMS, k_reciprocal_vectors, min_sum_pairs

logger = logging.getLogger(__name__)

Matrix = Union[np.ndarray, torch.Tensor]


def _numpy(m: Matrix) -> np.ndarray:
    return m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)


class BlockMatrixDistance:
    """Row access to D = (O**2 / column max of O**2)^T, O = [[q_q, q_g], [q_g^T, g_g]]."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, device: torch.device):
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.nq = q_q.shape[0]
        self.size = self.nq + g_g.shape[0]
        self.device = device
        col_max = np.concatenate([np.maximum(self._colmax(q_q), self._colmax(q_g.T)),
                                  np.maximum(self._colmax(q_g), self._colmax(g_g))])
        self.col_max = np.where(col_max > 0, col_max, 1)  # all-zero column: keep zeros, not 0/0

    @staticmethod
    def _sq(block: np.ndarray) -> np.ndarray:
        # the original squares in the input precision, then casts to float32
        return np.square(block).astype(np.float32, copy=False)

    def _colmax(self, m: np.ndarray) -> np.ndarray:
        step = max(1, BLOCK_ELEMS // max(1, m.shape[1]))
        return np.max([self._sq(m[s:s + step]).max(0) for s in range(0, m.shape[0], step)], axis=0)

    def _columns(self, start: int, stop: int) -> torch.Tensor:
        """Columns start..stop-1 of O**2 (float32), transposed: a (stop-start) x N tensor."""
        nq = self.nq
        parts = []
        if start < nq:
            a, b = start, min(stop, nq)
            parts += [self.q_q[:, a:b].T, self.q_g[a:b]]
        if stop > nq:
            a, b = max(start, nq) - nq, stop - nq
            parts += [self.q_g[:, a:b].T, self.g_g[:, a:b].T]
        # torch ops use every core; numpy's would be single-threaded here
        sq = [torch.from_numpy(p).to(self.device).square().float() for p in parts]
        rows = [torch.cat(sq[t:t + 2], dim=1) for t in range(0, len(sq), 2)]
        return torch.cat(rows) if len(rows) > 1 else rows[0]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Rows start..stop-1 of D."""
        top = torch.from_numpy(self.col_max[start:stop]).to(self.device)
        return self._columns(start, stop).div_(top[:, None])

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """D[i, j] = O[j, i]**2 / colmax[i], gathered from the three blocks."""
        i_np, j_np = i.cpu().numpy(), j.cpu().numpy()
        nq = self.nq
        o = np.empty(i_np.size, dtype=np.result_type(self.q_g, self.q_q, self.g_g))
        for iq in (True, False):
            for jq in (True, False):
                sel = ((i_np < nq) == iq) & ((j_np < nq) == jq)
                r, c = j_np[sel], i_np[sel]  # O[r, c]
                if jq and iq:
                    o[sel] = self.q_q[r, c]
                elif jq:
                    o[sel] = self.q_g[r, c - nq]
                elif iq:
                    o[sel] = self.q_g[c, r - nq]
                else:
                    o[sel] = self.g_g[r - nq, c - nq]
        return torch.from_numpy(self._sq(o) / self.col_max[i_np]).to(self.device)


def re_ranking(q_g_dist: Matrix, q_q_dist: Matrix, g_g_dist: Matrix, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3, device: Optional[Union[str, torch.device]] = None,
               verbose: bool = False) -> np.ndarray:
    """Re-ranked query x gallery distance (float32), exactly the original's k-reciprocal algorithm."""
    q_g, q_q, g_g = _numpy(q_g_dist), _numpy(q_q_dist), _numpy(g_g_dist)
    nq, ng = q_g.shape
    dist = BlockMatrixDistance(q_g, q_q, g_g, torch.device(device or "cpu"))
    v, _ = k_reciprocal_vectors(dist, k1, k2, cache=0, verbose=verbose)  # pairs() is a cheap lookup
    final = np.empty((nq, ng), dtype=np.float32)
    step = max(1, BLOCK_ELEMS // dist.size)
    for s in range(0, nq, step):  # pairs without shared support: Jaccard distance 1
        final[s:s + step] = (1 - lambda_value) + dist.rows(s, min(nq, s + step))[:, nq:].cpu().numpy() * lambda_value
    gallery = v.slice_rows(nq, dist.size)
    for i, g, m in min_sum_pairs(v.slice_rows(0, nq), gallery):
        jac = 1 - m / (2 - m)
        d = dist.pairs(i, g + nq)
        final[i.cpu().numpy(), g.cpu().numpy()] = (jac * (1 - lambda_value) + d * lambda_value).cpu().numpy()
    return final
