"""Retrieval metrics for re-ID: mean average precision and the CMC curve.

Both follow the open-reid protocol used by the original Dual-Refinement code:
for each query, gallery items with the same id AND the same camera are
removed; queries left without any correct match are skipped.  Ties in
distance are broken by gallery order (a stable ordering).

The work is vectorised over blocks of queries and never fully sorts a row
unless it has to: a query's matches are read from a gallery-by-id index,
and ranks are counts of items ordered before a match.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
import os

import numpy as np
import torch

from ..utils.errors import UserError

_CHUNK_ELEMENTS = 1 << 22  # ~16 MB of float32 per block of queries
_SINGLE_SHOT_REPEATS = 10  # as in open-reid's CUHK03 protocol
_NO_VALID = "no query has a gallery item with its id on another camera"


class NoValidQueryError(UserError, RuntimeError):
    """No query has a correct match in the gallery (the original raises RuntimeError)."""


@dataclass
class _Inputs:
    dist: np.ndarray
    qids: np.ndarray
    gids: np.ndarray
    qcams: np.ndarray
    gcams: np.ndarray
    by_id: np.ndarray  # gallery indices sorted by id (stable)
    start: np.ndarray  # per query: first slot of its id in by_id
    stop: np.ndarray


def mean_ap(distmat, query_ids=None, gallery_ids=None,
            query_cams=None, gallery_cams=None) -> float:
    """Mean over valid queries of average precision; tied distances form one threshold (as sklearn)."""
    inp = _prepare(distmat, query_ids, gallery_ids, query_cams, gallery_cams)
    parts = _map_chunks(partial(_ap_chunk, inp), inp)
    total, valid = np.sum(parts, axis=0)
    if valid == 0:
        raise NoValidQueryError(f"mean_ap: {_NO_VALID}")
    return float(total / valid)


def cmc(distmat, query_ids=None, gallery_ids=None, query_cams=None, gallery_cams=None,
        topk: int = 100, separate_camera_set: bool = False, single_gallery_shot: bool = False,
        first_match_break: bool = False, seed: int = 0) -> np.ndarray:
    """Cumulative match curve of length ``topk`` over valid queries (open-reid flags).

    ``first_match_break`` counts a query at the rank of its first match (the
    Market-1501 protocol); otherwise each match counts ``1 / #matches`` at its
    rank among non-matches.  ``single_gallery_shot`` samples one gallery item
    per id, 10 times per query, from a generator seeded by ``seed`` (the
    original used the global numpy state); each sample weighs 1/10 with or
    without ``first_match_break`` (the original weighed 1 there, giving values
    above 1); results are fixed for a given seed and matrix shape.  Ranks
    past the gallery size repeat the last value.
    """
    for name, value, low in (("topk", topk, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise UserError(f"cmc: {name} must be an integer >= {low}, got {value!r}")
    inp = _prepare(distmat, query_ids, gallery_ids, query_cams, gallery_cams)
    if single_gallery_shot:
        fn = partial(_single_shot_chunk, inp, topk=topk, separate_camera_set=separate_camera_set, seed=seed)
    elif first_match_break:
        fn = partial(_first_match_chunk, inp, topk=topk, separate_camera_set=separate_camera_set)
    else:
        fn = partial(_all_matches_chunk, inp, topk=topk, separate_camera_set=separate_camera_set)
    parts = _map_chunks(fn, inp)
    hist = np.sum([h for h, _ in parts], axis=0)
    weight = sum(w for _, w in parts)  # valid queries (x repeats when sampling)
    if weight == 0:
        raise NoValidQueryError(f"cmc: {_NO_VALID}")
    # Summed 1/#matches weights can overshoot 1 by an ulp.
    return np.minimum(np.cumsum(hist) / weight, 1.0)


# ---------------------------------------------------------------- inputs

def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # ragged lists and the like
        raise UserError(f"{name}: cannot be read as an array ({err})") from None


def _labels(x, default: np.ndarray, name: str, size: int) -> np.ndarray:
    arr = default if x is None else _as_numpy(x, name).reshape(-1)
    if arr.shape[0] != size:
        raise UserError(f"{name}: expected {size} entries to match distmat, got {arr.shape[0]}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)):
        raise UserError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _prepare(distmat, query_ids, gallery_ids, query_cams, gallery_cams) -> _Inputs:
    dist = _as_numpy(distmat, "distmat")
    if dist.ndim != 2:
        raise UserError(f"distmat: expected a 2-D query x gallery matrix, got shape {dist.shape}")
    if not np.issubdtype(dist.dtype, np.floating):
        dist = dist.astype(np.float64)  # exact for integer distances below 2**53
    m, n = dist.shape
    if m == 0 or n == 0:
        raise NoValidQueryError(f"distmat: empty query or gallery (shape {dist.shape})")
    # Same defaults as open-reid: every query its own id, queries and gallery on different cameras.
    qids = _labels(query_ids, np.arange(m), "query_ids", m)
    gids = _labels(gallery_ids, np.arange(n), "gallery_ids", n)
    qcams = _labels(query_cams, np.zeros(m, np.int64), "query_cams", m)
    gcams = _labels(gallery_cams, np.ones(n, np.int64), "gallery_cams", n)
    by_id = np.argsort(gids, kind="stable")
    start = np.searchsorted(gids[by_id], qids, side="left")
    stop = np.searchsorted(gids[by_id], qids, side="right")
    return _Inputs(dist, qids, gids, qcams, gcams, by_id, start, stop)


def _map_chunks(fn, inp: _Inputs) -> list:
    """Apply ``fn`` to blocks of query rows; numpy releases the GIL, so threads use every core."""
    m, n = inp.dist.shape
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    blocks = [slice(i, min(i + step, m)) for i in range(0, m, step)]
    workers = min(len(blocks), torch.get_num_threads(), os.cpu_count() or 1)
    if workers <= 1:
        return [fn(rows) for rows in blocks]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, blocks))


@dataclass
class _Block:
    dist: np.ndarray   # (c, n) distances of the block, finite
    cols: np.ndarray   # (c, L) gallery columns sharing the query id (padded)
    match: np.ndarray  # (c, L) same id, other camera
    junk: np.ndarray   # (c, L) same id, same camera: removed from the ranking
    md: np.ndarray     # (c, L) match distances, NaN elsewhere
    jd: np.ndarray     # (c, L) junk distances, NaN elsewhere


def _check_finite(ok: bool) -> None:
    if not ok:  # sklearn refuses these too
        raise UserError("distmat: contains NaN or infinite distances")


def _block(inp: _Inputs, rows: slice) -> _Block:
    """The block's distances (a view) and, per query, the gallery items sharing its id."""
    dist = inp.dist[rows]
    start, stop = inp.start[rows], inp.stop[rows]
    slot = np.arange(max(int((stop - start).max(initial=0)), 1))
    inlist = slot < (stop - start)[:, None]
    n = dist.shape[1]
    cols = np.where(inlist, inp.by_id[np.minimum(start[:, None] + slot, n - 1)], 0)
    same_cam = inp.gcams[cols] == inp.qcams[rows, None]
    match, junk = inlist & ~same_cam, inlist & same_cam
    same_id = np.take_along_axis(dist, cols, axis=1)
    return _Block(dist, cols, match, junk, np.where(match, same_id, np.nan), np.where(junk, same_id, np.nan))


def _ranked(blk: _Block, inp: _Inputs, rows: slice, separate_camera_set: bool) -> np.ndarray:
    """Copy of the block distances where items left out of the ranking are +inf."""
    dc = blk.dist.copy()
    if separate_camera_set:  # also drops junk, which shares the query camera
        dc[inp.gcams[None, :] == inp.qcams[rows, None]] = np.inf
    else:
        r, t = np.nonzero(blk.junk)
        dc[r, blk.cols[r, t]] = np.inf
    return dc


# ---------------------------------------------------------------- ranks

def _bisect(sorted_rows: np.ndarray, values: np.ndarray, right: bool) -> np.ndarray:
    """Per row, how many entries are < (or <= if ``right``) each value; NaN values give 0."""
    c, n = sorted_rows.shape
    lo = np.zeros(values.shape, np.int64)
    hi = np.full(values.shape, n, np.int64)
    rows = np.arange(c)[:, None]
    while (active := lo < hi).any():
        mid = (lo + hi) // 2
        probe = sorted_rows[rows, np.minimum(mid, n - 1)]
        before = probe <= values if right else probe < values
        lo = np.where(active & before, mid + 1, lo)
        hi = np.where(active & ~before, mid, hi)
    return lo


def _rank_before(dc: np.ndarray, v: np.ndarray, vcol: np.ndarray, sorted_dc=None) -> np.ndarray:
    """Per (row, t): finite items of ``dc`` ordered before (v, vcol) by (distance, column)."""
    if sorted_dc is None:  # one threshold per row: two passes beat a sort
        lt = np.count_nonzero(dc < v, axis=1)[:, None]
        eq = np.count_nonzero(dc == v, axis=1)[:, None]
    else:
        lt = _bisect(sorted_dc, v, right=False)
        eq = _bisect(sorted_dc, v, right=True) - lt
    # Only exact ties need the column tie-break; handle them in bounded batches.
    r_all, t_all = np.nonzero(eq > 1)
    step = max(1, _CHUNK_ELEMENTS // max(dc.shape[1], 1))
    cols = np.arange(dc.shape[1])
    for i in range(0, len(r_all), step):
        r, t = r_all[i:i + step], t_all[i:i + step]
        tied = (dc[r] == v[r, t, None]) & (cols < vcol[r, t, None])
        lt[r, t] += np.count_nonzero(tied, axis=1)
    return lt


def _hist(ranks: np.ndarray, weights: np.ndarray, topk: int) -> np.ndarray:
    keep = ranks < topk
    return np.bincount(ranks[keep], weights[keep], minlength=topk)[:topk]


# ---------------------------------------------------------------- per block

def _ap_chunk(inp: _Inputs, rows: slice) -> tuple:
    blk = _block(inp, rows)
    ranked = np.sort(blk.dist, axis=1)
    _check_finite(np.isfinite(ranked[:, [0, -1]]).all())  # NaN sorts last
    ms = np.sort(blk.md, axis=1)  # NaN padding sorts last
    n_match = blk.match.sum(axis=1)
    # Items up to each threshold, junk (same id and camera) taken back out.
    seen = _bisect(ranked, ms, right=True) - _bisect(np.sort(blk.jd, axis=1), ms, right=True)
    hits = _bisect(ms, ms, right=True)  # matches up to each threshold (ties share it)
    prec = np.divide(hits, seen, out=np.zeros(ms.shape), where=~np.isnan(ms))
    has = n_match > 0
    return float((prec.sum(axis=1)[has] / n_match[has]).sum()), int(has.sum())


def _first_match_chunk(inp: _Inputs, rows: slice, topk: int, separate_camera_set: bool) -> tuple:
    blk = _block(inp, rows)
    has = blk.match.any(axis=1)
    v = np.min(np.where(blk.match, blk.md, np.inf), axis=1)
    f = np.min(np.where(blk.match & (blk.md == v[:, None]), blk.cols, np.iinfo(np.int64).max), axis=1)
    v = np.where(has, v, np.nan)  # NaN matches nothing, so match-less rows cost no tie-breaking
    _check_finite(np.isfinite(blk.dist).all())
    if separate_camera_set:
        ranks = _rank_before(_ranked(blk, inp, rows, True), v[:, None], f[:, None])[:, 0]
    else:  # count on the distances as they are, then take junk back out: no copy
        junk_before = (blk.jd < v[:, None]) | ((blk.jd == v[:, None]) & (blk.cols < f[:, None]))
        ranks = _rank_before(blk.dist, v[:, None], f[:, None])[:, 0] - junk_before.sum(axis=1)
    return _hist(ranks[has], np.ones(int(has.sum())), topk), int(has.sum())


def _all_matches_chunk(inp: _Inputs, rows: slice, topk: int, separate_camera_set: bool) -> tuple:
    blk = _block(inp, rows)
    _check_finite(np.isfinite(blk.dist).all())
    order = np.lexsort((blk.cols, blk.md), axis=1)  # by (distance, column), NaN padding last
    v = np.take_along_axis(blk.md, order, axis=1)
    vcol = np.take_along_axis(blk.cols, order, axis=1)
    dc = _ranked(blk, inp, rows, separate_camera_set)
    before = _rank_before(dc, v, vcol, sorted_dc=np.sort(dc, axis=1))
    ranks = before - np.arange(v.shape[1])  # the original ranks each match among non-matches
    n_match = blk.match.sum(axis=1)
    real = ~np.isnan(v)
    weights = np.broadcast_to(1.0 / np.maximum(n_match, 1)[:, None], v.shape)
    return _hist(ranks[real], weights[real], topk), int((n_match > 0).sum())


def _single_shot_chunk(inp: _Inputs, rows: slice, topk: int, separate_camera_set: bool,
                       seed: int) -> tuple:
    blk = _block(inp, rows)
    _check_finite(np.isfinite(blk.dist).all())
    c, n = blk.dist.shape
    has = blk.match.any(axis=1)
    allowed = np.isfinite(_ranked(blk, inp, rows, separate_camera_set))
    sorted_ids = inp.gids[inp.by_id]
    group_start = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    group_size = np.diff(np.r_[group_start, n])
    # One generator per block keeps results independent of thread scheduling.
    rng = np.random.default_rng([seed, rows.start])
    span = (1 << 62) // n
    hist = np.zeros(topk)
    ridx = np.arange(c)[:, None]
    for _ in range(_SINGLE_SHOT_REPEATS):
        # Unique random keys per row; the largest key of each id is a uniform pick among its items.
        keys = rng.integers(0, span, size=(c, n)) * n + np.arange(n)
        keys[~allowed] = -1
        by_id = keys[:, inp.by_id]
        best = np.repeat(np.maximum.reduceat(by_id, group_start, axis=1), group_size, axis=1)
        picked = np.empty((c, n), bool)
        picked[:, inp.by_id] = (by_id == best) & (by_id >= 0)
        slot = np.argmax(blk.match & picked[ridx, blk.cols], axis=1)
        v = blk.md[np.arange(c), slot]
        f = blk.cols[np.arange(c), slot]
        dc = np.where(picked, blk.dist, np.inf)
        ranks = _rank_before(dc[has], v[has, None], f[has, None])[:, 0]
        hist += _hist(ranks, np.ones(len(ranks)), topk)  # whole counts: no rounding drift
    return hist, int(has.sum()) * _SINGLE_SHOT_REPEATS
