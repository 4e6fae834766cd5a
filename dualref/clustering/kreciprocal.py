"""Exact k-reciprocal encoding (Zhong et al., CVPR 2017) on sparse rows.

Shared by the pseudo-label Jaccard distance and the evaluation re-ranking.
Nothing here builds an N x N array: ranking distances are read in row blocks
through a :class:`RankingDistance`, the encoding vectors V are sparse rows,
and the sum of minima is accumulated through an inverted (column) index.
Ties in a ranking are broken by the lower index first. Sums are added in the
order of the reference's dense torch code (:func:`segment_sums`,
:func:`query_expansion`, :func:`min_sum_pairs`), so its float32 rounding is
reproduced.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Iterator, Protocol

import torch

logger = logging.getLogger(__name__)

# Working-set bounds (elements): keep every temporary at 16 MB or less. BLOCK_ELEMS is
# shared with the other blocked computations (Jaccard, re-ranking). Buffers above
# 32 MB are mapped afresh by the C allocator on every allocation and page-faulted
# in again each time; below that they are reused (measured: 0.2-0.4 s of a
# Market-size Jaccard distance with 64 MB blocks).
BLOCK_ELEMS = 1 << 22
_MAX_TRIPLES = 1 << 20


class RankingDistance(Protocol):
    """Row-block access to an N x N ranking distance that is never materialised."""

    size: int

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """Distances of rows start..stop-1 to all N items; called once per block, in order."""

    def pairs(self, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Distances d(i[t], j[t]); only called after every row block was read."""


@dataclass
class SparseRows:
    """CSR matrix as torch tensors; columns are sorted within each row."""

    crow: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    n_cols: int

    @property
    def n_rows(self) -> int:
        return self.crow.numel() - 1

    def row_ids(self) -> torch.Tensor:
        """Row index of every stored entry."""
        rows = torch.arange(self.n_rows, device=self.crow.device)
        return torch.repeat_interleave(rows, self.crow.diff())

    def slice_rows(self, start: int, stop: int) -> "SparseRows":
        """Rows start..stop-1 as a new matrix."""
        lo, hi = int(self.crow[start]), int(self.crow[stop])
        return SparseRows(self.crow[start:stop + 1] - lo, self.col[lo:hi], self.val[lo:hi], self.n_cols)

    def row_sums(self) -> torch.Tensor:
        """Sum of each row (as :func:`segment_sums` rounds it)."""
        return segment_sums(self.crow, self.val)


def _crow_from_counts(counts: torch.Tensor) -> torch.Tensor:
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def sort_candidates(vals: torch.Tensor, idx: torch.Tensor, k: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(values, indices) of the first k candidates per row by (value, index), and the unsure rows.

    ``vals``/``idx`` (rows x w, w > k) hold, per row, w candidates such that
    every entry left out is >= each candidate. The first k are then exact
    unless the last candidate equals the k-th (its tie group may continue
    outside): those rows are returned in the third tensor.
    """
    idx, order = idx.sort(dim=1)
    vals = vals.gather(1, order)
    vals, order = vals.sort(dim=1, stable=True)
    idx = idx.gather(1, order)
    unsure = (vals[:, -1] == vals[:, k - 1]).nonzero().squeeze(1)
    return vals[:, :k].contiguous(), idx[:, :k].contiguous(), unsure


def smallest_k(dist: torch.Tensor, k: int, margin: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and indices of the k smallest entries per row, ties by lower index first."""
    n = dist.shape[1]
    k = min(k, n)
    width = min(n, k + margin)
    if width == n:
        vals, idx = torch.sort(dist, dim=1, stable=True)
        return vals[:, :k], idx[:, :k]
    vals, idx = torch.topk(dist, width, dim=1, largest=False, sorted=True)
    # topk picks an arbitrary subset of a tie group; re-sort the candidates by
    # (value, index). That is exact when the k-th value's whole tie group is
    # inside the candidates, i.e. the last candidate is strictly larger.
    vals, idx, bad = sort_candidates(vals, idx, k)
    if bad.numel():
        full_vals, full_idx = torch.sort(dist[bad], dim=1, stable=True)
        vals[bad], idx[bad] = full_vals[:, :k], full_idx[:, :k]
    return vals, idx


def rank_rows(dist: RankingDistance, width: int, verbose: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """First `width` ranks (and their distances) of every row, read in row blocks.

    A distance that can rank faster itself (``first_ranks(width)``, e.g. from
    the symmetric tiles of a feature product) is asked first.
    """
    fast = getattr(dist, "first_ranks", None)
    if fast is not None:
        ranked = fast(width)
        if ranked is not None:
            return ranked
    n = dist.size
    block = max(1, BLOCK_ELEMS // max(n, 1))
    vals, idx = [], []
    for start in range(0, n, block):
        v, i = smallest_k(dist.rows(start, min(n, start + block)), width)
        vals.append(v)
        idx.append(i)
        if verbose:
            logger.info("ranked %d / %d rows", min(n, start + block), n)
    return torch.cat(vals), torch.cat(idx)


def reciprocal_sets(ranks: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """R(i,k) as (first k+1 ranks of i, mask of those whose first k+1 ranks contain i)."""
    fwd = ranks[:, :k + 1]
    own = torch.arange(ranks.shape[0], device=ranks.device)
    mask = torch.empty_like(fwd, dtype=torch.bool)
    block = max(1, BLOCK_ELEMS // (fwd.shape[1] ** 2))
    for s in range(0, fwd.shape[0], block):
        back = fwd[fwd[s:s + block]]  # (b, k+1, k+1): forward lists of i's neighbours
        mask[s:s + block] = (back == own[s:s + block, None, None]).any(-1)
    return fwd, mask


def expansion_sets(ranks: torch.Tensor, k1: int) -> SparseRows:
    """R(i,k1) united with each R(j, round(k1/2)), j in R(i,k1), sharing > 2/3 of its members."""
    n = ranks.shape[0]
    half = round(k1 / 2)  # Python rounds half to even, like np.around
    big, big_mask = reciprocal_sets(ranks, k1)
    small, small_mask = reciprocal_sets(ranks, half)
    big_m = torch.where(big_mask, big, -1)  # -1 / -2 never match each other or an index
    small_m = torch.where(small_mask, small, -2)
    small_len = small_mask.sum(1).double()
    kb, ks = big.shape[1], small.shape[1]
    block = max(1, BLOCK_ELEMS // (kb * kb * ks))
    crows, cols = [], []
    for s in range(0, n, block):
        cand = big[s:s + block]                    # (b, kb) candidates j
        cand_sets = small_m[cand]                  # (b, kb, ks) R(j, half)
        shared = (cand_sets[..., None] == big_m[s:s + block, None, None, :]).any(-1).sum(-1)
        # same float comparison as the original: |shared| > 2/3 * |R(j, half)|
        keep = big_mask[s:s + block] & (shared.double() > (2.0 / 3.0) * small_len[cand])
        added = torch.where(keep[..., None], cand_sets, -2).flatten(1)
        members = torch.cat([big_m[s:s + block], added], dim=1)
        members = torch.where(members < 0, n, members).sort(dim=1).values
        first = torch.ones_like(members, dtype=torch.bool)
        first[:, 1:] = members[:, 1:] != members[:, :-1]
        valid = first & (members < n)
        crows.append(valid.sum(1))
        cols.append(members[valid])
    col = torch.cat(cols)
    return SparseRows(_crow_from_counts(torch.cat(crows)), col, col.new_zeros(0), n)


def encode(dist: RankingDistance, sets: SparseRows, ranks: torch.Tensor,
           rank_vals: torch.Tensor) -> SparseRows:
    """V_i = exp(-d(i, set_i)) / sum, distances read from the rank cache when possible."""
    n = ranks.shape[0]
    rows = sets.row_ids()
    # rank cache as sorted keys i*N + j: one binary search per set member
    cols, order = ranks.sort(dim=1)
    keys = (torch.arange(n, device=ranks.device)[:, None] * n + cols).flatten()
    cached = rank_vals.gather(1, order).flatten()
    query = rows * n + sets.col
    pos = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
    d = cached[pos]
    miss = (keys[pos] != query).nonzero().squeeze(1)
    if miss.numel():
        d[miss] = dist.pairs(rows[miss], sets.col[miss]).to(d.dtype)
    logger.debug("rank cache answered %d of %d weights", rows.numel() - miss.numel(), rows.numel())
    w = torch.exp(-d)
    return SparseRows(sets.crow, sets.col, w / segment_sums(sets.crow, w)[rows], sets.n_cols)


def segment_sums(crow: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """Sum of each row's entries, rounded as ``torch.sum`` of that row alone rounds it.

    The reference normalises every V row by ``torch.sum`` of its weights;
    torch's vectorised reduction adds in an order set by the row's length,
    so rows of one length are summed together as the rows of one matrix.
    """
    lens = crow.diff()
    out = torch.zeros(lens.numel(), dtype=val.dtype, device=val.device)
    for length in torch.unique(lens).tolist():
        if length == 0:
            continue
        rows = (lens == length).nonzero().squeeze(1)
        out[rows] = val[crow[rows, None] + torch.arange(length, device=val.device)].sum(1)
    return out


def query_expansion(v: SparseRows, ranks: torch.Tensor, k2: int) -> SparseRows:
    """V_i := mean of the V rows of i's first k2 ranks (itself included)."""
    k2 = min(k2, ranks.shape[1])
    if k2 == 1:  # the original skips the step, even where rank 0 is not i itself
        return v
    n, n_cols = v.n_rows, v.n_cols
    src = ranks[:, :k2].reshape(-1)
    lens = v.crow.diff()[src]
    dest_row = torch.repeat_interleave(torch.arange(n, device=src.device).repeat_interleave(k2), lens)
    starts = torch.repeat_interleave(v.crow[:-1][src] - (lens.cumsum(0) - lens), lens)
    pos = starts + torch.arange(int(lens.sum()), device=src.device)
    keys, inv = torch.unique(dest_row * n_cols + v.col[pos], sorted=True, return_inverse=True)
    terms = v.val[pos]
    # index_add_ adds each entry's k2 terms one after the other, in rank order: the
    # order of torch's dense sum over the k2 rows (the reference's) for most columns
    val = torch.zeros(keys.numel(), dtype=v.val.dtype, device=keys.device).index_add_(0, inv, terms)
    lanes = dense_sum_lanes(n_cols, k2).to(keys.device)[v.col[pos]]
    if bool(lanes.any()):  # the columns torch adds in four lanes: rebuild those entries' sums
        rank = torch.arange(k2, device=src.device).repeat(n).repeat_interleave(lens)[lanes]
        entries, row = torch.unique(inv[lanes], return_inverse=True)
        table = torch.zeros(entries.numel(), k2, dtype=terms.dtype, device=terms.device)
        table[row, rank] = terms[lanes]
        val[entries] = lane_sum(table)
    counts = torch.bincount(keys // n_cols, minlength=n)
    return SparseRows(_crow_from_counts(counts), keys % n_cols, val / k2, n_cols)


def lane_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim in torch's scalar reduction order (fewer than 64 terms).

    Four running sums take terms 0, 4, 8, ... / 1, 5, ... / 2, ... / 3, ...;
    the terms past the last group of four go to the first; then the four
    are added in order.
    """
    k = t.shape[-1]
    groups = k // 4
    acc = [t.new_zeros(t.shape[:-1]) for _ in range(4)]
    for g in range(groups):
        for lane in range(4):
            acc[lane] = acc[lane] + t[..., 4 * g + lane]
    for i in range(4 * groups, k):
        acc[0] = acc[0] + t[..., i]
    return acc[0] + acc[1] + acc[2] + acc[3]


@functools.lru_cache(maxsize=16)
def dense_sum_lanes(n_cols: int, k: int) -> torch.Tensor:
    """Columns j whose sum over dim 1 of a dense (rows, k, n_cols) CPU float32 tensor
    torch adds in :func:`lane_sum`'s order rather than term after term.

    The reference's query expansion is such a sum (``V[ranks].view(n, k2, n).sum(1)``);
    its vectorised inner loop adds term after term, and the columns left over
    at the end of a row take the scalar path. Which columns those are depends
    on the CPU's vector width, so torch is asked: a small random probe of the
    same width, each column compared with both orders. A column that matches
    neither keeps term-after-term order.
    """
    if k < 2 or k >= 64:  # one term: no order; 64 or more: another scalar scheme
        return torch.zeros(n_cols, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    probe = torch.rand(16, k, n_cols, generator=g) * torch.pow(2.0, -torch.randint(0, 13, (16, k, n_cols), generator=g).float())
    dense = probe.sum(1)
    terms = probe.permute(0, 2, 1)
    seq = terms[..., 0].clone()
    for i in range(1, k):
        seq += terms[..., i]
    return ((lane_sum(terms) == dense) & (seq != dense)).any(0)


def _row_blocks(triples_per_row: torch.Tensor, max_rows: int) -> list[tuple[int, int]]:
    """Split rows into consecutive blocks of at most max_rows rows and ~_MAX_TRIPLES triples."""
    cum = triples_per_row.cumsum(0).cpu()
    blocks, start, n = [], 0, triples_per_row.numel()
    while start < n:
        base = int(cum[start - 1]) if start else 0
        stop = int(torch.searchsorted(cum, base + _MAX_TRIPLES, right=True))
        stop = min(n, start + max_rows, max(stop, start + 1))
        blocks.append((start, stop))
        start = stop
    return blocks


def min_sum_pairs(a: SparseRows, b: SparseRows, upper: bool = False
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (i, j, sum_k min(a_ik, b_jk)) for every pair with shared support, row block by row block.

    With ``upper`` (a is b) only pairs j >= i are produced. Pairs come sorted by (i, j).
    """
    dev, nb = b.crow.device, b.n_rows
    b_rows = b.row_ids()
    perm = torch.argsort(b.col * nb + b_rows)  # inverted index: entries ordered by (column, row)
    csc_rows, csc_val = b_rows[perm], b.val[perm]
    colptr = _crow_from_counts(torch.bincount(b.col, minlength=b.n_cols))
    if upper:  # start each column walk at i itself: rows are sorted within a column
        start = torch.empty_like(perm)
        start[perm] = torch.arange(perm.numel(), device=dev)
    else:
        start = colptr[a.col]
    lens = colptr[a.col + 1] - start
    a_rows = a.row_ids()
    per_row = torch.zeros(a.n_rows, dtype=torch.long, device=dev).index_add_(0, a_rows, lens)
    for r0, r1 in _row_blocks(per_row, max(1, BLOCK_ELEMS // max(nb, 1))):
        e0, e1 = int(a.crow[r0]), int(a.crow[r1])
        ln = lens[e0:e1]
        ent = torch.repeat_interleave(torch.arange(e0, e1, device=dev), ln)
        offs = torch.arange(ent.numel(), device=dev) - torch.repeat_interleave(ln.cumsum(0) - ln, ln)
        pos = start[ent] + offs
        mins = torch.minimum(a.val[ent], csc_val[pos])
        # with ``upper`` every partner j is >= r0: accumulate only columns r0.. (fewer to clear and scan)
        c0 = r0 if upper else 0
        width = nb - c0
        key = (a_rows[ent] - r0) * width + (csc_rows[pos] - c0)
        acc = torch.zeros((r1 - r0) * width, dtype=a.val.dtype, device=dev).index_add_(0, key, mins)
        hit = acc.nonzero().squeeze(1)  # minima are > 0, so a stored sum means shared support
        yield hit // width + r0, hit % width + c0, acc[hit]


def k_reciprocal_vectors(dist: RankingDistance, k1: int, k2: int, cache: int = 64,
                         verbose: bool = False) -> tuple[SparseRows, torch.Tensor]:
    """Sparse k-reciprocal encoding V (after query expansion) and the first ranks of each row."""
    width = max(k1 + 1, k2, cache)
    rank_vals, ranks = rank_rows(dist, width, verbose)
    sets = expansion_sets(ranks, k1)
    v = encode(dist, sets, ranks, rank_vals)
    logger.debug("expanded sets: %.1f members per row", sets.col.numel() / max(1, sets.n_rows))
    return query_expansion(v, ranks, k2), ranks
