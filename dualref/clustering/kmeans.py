"""Many small k-means problems at once, each solved as scikit-learn's KMeans solves it.

Label refinement runs one k-means per cluster (R centres, k-means++ init,
``n_init`` restarts, a fixed seed): about 760 fits at Market-1501 size. One
scikit-learn fit costs 5-7 ms, almost all of it Python and thread start-up,
so here all clusters of similar size are solved together as padded tensors,
on any torch device.

Same algorithm, same random numbers (scikit-learn >= 1.3's ``KMeans(
init="k-means++", n_init=n_init, random_state=seed)``):

* every fit draws from a fresh ``RandomState(seed)`` in a fixed order (one
  ``choice`` for the first centre, then ``uniform(size=2 + log R)`` per
  further centre, init after init), so the draws are the same for every
  cluster and are made once (:func:`sklearn_draws`);
* k-means++ greedy candidate selection, then Lloyd iterations with strict
  (labels unchanged) or tolerance (centre shift <= 1e-4 x mean variance)
  convergence, a final E-step when not strict, and the lowest-inertia
  restart kept unless it is the same partition as an earlier one.

Everything works on each cluster's Gram matrix (k-means needs only inner
products): a cluster of n points costs n x n per step instead of n x D, and a
centre is a weight vector over the members. Float64 throughout (float32 on
MPS). The one case not reproduced, a centre left empty during Lloyd
(scikit-learn then moves the farthest point into it), is reported so the
caller can fit those clusters with scikit-learn; it is rare, as k-means++
starts every centre on its own point.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["batched_kmeans", "sklearn_draws", "first_centre_index"]

# elements of the padded (B, n, D) member block gathered per chunk
_CHUNK_ELEMS = 1 << 25


def sklearn_draws(seed: int, n_init: int, R: int) -> tuple[np.ndarray, np.ndarray]:
    """(first (n_init,), trials (n_init, R - 1, L)): the uniforms one fit draws.

    ``first`` feeds ``choice(n, p=uniform)`` for the first centre; ``trials``
    are the ``uniform(size=L)`` of each later centre, L = 2 + int(log R).
    """
    trials_per_centre = 2 + int(np.log(R))
    rs = np.random.RandomState(seed)
    first = np.empty(n_init)
    trials = np.empty((n_init, max(R - 1, 0), trials_per_centre))
    for i in range(n_init):
        first[i] = rs.random_sample()
        for c in range(R - 1):
            trials[i, c] = rs.uniform(size=trials_per_centre)
    return first, trials


def first_centre_index(n: int, u: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """What ``RandomState.choice(n, p=w / w.sum())``, w = ones(n, dtype), returns for uniforms u."""
    weights = np.ones(n, dtype=dtype)
    p = (weights / weights.sum()).astype(np.float64)
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, u, side="right")


def _gram(x: torch.Tensor, mask: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
    """Gram matrices (B, n, n) of each cluster's centred members (zero outside the mask).

    Centred and multiplied in x's dtype, as scikit-learn centres and
    multiplies the data it is given; the result is in ``sizes``' dtype.
    """
    mean = x.sum(dim=1, keepdim=True) / sizes[:, None, None].to(x.dtype)
    xc = (x - mean) * mask[..., None].to(x.dtype)
    return torch.bmm(xc, xc.transpose(1, 2)).to(sizes.dtype)


def _as_float32(t: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """t rounded to float32 values (kept in t's dtype) when enabled.

    scikit-learn's k-means++ holds distances and potentials in the data's
    float32; candidates whose potentials are equal in exact arithmetic (two
    mutual nearest points: either one gives the same potential) then tie
    exactly and the first one wins. In float64 their last bits would decide.
    """
    return t.float().to(t.dtype) if enabled else t


def _kmeans_plusplus(G: torch.Tensor, mask: torch.Tensor, first: torch.Tensor,
                     trials: torch.Tensor, sizes: torch.Tensor, f32: bool) -> torch.Tensor:
    """Chosen member indices (B, I, R) of the greedy k-means++ of every restart.

    ``f32``: round distances and potentials to float32 as scikit-learn does
    for float32 data.
    """
    B = G.shape[0]
    sq = torch.diagonal(G, dim1=1, dim2=2)
    dist = _as_float32((sq[:, :, None] + sq[:, None, :] - 2 * G).clamp_min_(0), f32) \
        * mask[:, None, :]
    rows = torch.arange(B, device=G.device)
    chosen = [first]
    closest = dist[rows[:, None], first]                      # (B, I, n)
    pot = _as_float32(closest.sum(-1), f32)
    last = (sizes - 1).to(torch.long)[:, None, None]
    for c in range(trials.shape[1]):
        targets = trials[None, :, c, :] * pot[..., None]        # (B, I, L)
        cands = torch.searchsorted(closest.cumsum(-1), targets).minimum(last)
        to_cands = torch.minimum(dist[rows[:, None, None], cands], closest[:, :, None, :])
        cand_pot = _as_float32(to_cands.sum(-1), f32)           # (B, I, L)
        best = cand_pot.argmin(-1, keepdim=True)
        pot = cand_pot.gather(-1, best).squeeze(-1)
        closest = to_cands.gather(2, best[..., None].expand(-1, -1, -1, to_cands.shape[-1])
                                  ).squeeze(2)
        chosen.append(cands.gather(-1, best).squeeze(-1))
    return torch.stack(chosen, dim=-1)


def _times_gram(W: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """W @ G per cluster for W (B, I, R, n) and G (B, n, n), without expanding G."""
    B, I, R, n = W.shape
    return torch.bmm(W.reshape(B, I * R, n), G).reshape(B, I, R, n)


def _assign(G: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (B, I, n), ||c||^2 - 2 x.c (B, I, R, n)) for centres given as member weights W."""
    GW = _times_gram(W, G)                                     # c_r . x_j
    d = (GW * W).sum(-1, keepdim=True) - 2 * GW
    return d.argmin(dim=2), d


def _means(labels: torch.Tensor, mask: torch.Tensor, R: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(member weights (B, I, R, n) of the labels' means, True where a centre is empty)."""
    onehot = F.one_hot(labels, R).to(mask.dtype) * mask[:, None, :, None]
    counts = onehot.sum(dim=2)                                 # (B, I, R)
    W = onehot.transpose(2, 3) / counts.clamp_min(1)[..., None]
    return W, (counts == 0).any(-1)


def _lloyd(G: torch.Tensor, mask: torch.Tensor, W: torch.Tensor, tol: torch.Tensor,
           max_iter: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lloyd iterations of every restart: (labels, W, inertia (B, I), empty (B, I))."""
    R = W.shape[2]
    valid = mask.bool()[:, None, :]
    labels_old = torch.full(W.shape[:2] + W.shape[3:], -1, dtype=torch.long, device=G.device)
    active = torch.ones(W.shape[:2], dtype=torch.bool, device=G.device)
    empty = torch.zeros_like(active)
    for _ in range(max_iter):
        labels, _ = _assign(G, W)
        W_new, no_member = _means(labels, mask, R)
        delta = W_new - W
        shift = (_times_gram(delta, G) * delta).sum(dim=(-1, -2))
        strict = ((labels == labels_old) | ~valid).all(-1)
        empty |= active & no_member
        W = torch.where(active[..., None, None], W_new, W)
        labels_old = torch.where(active[..., None], labels, labels_old)
        active &= ~(strict | (shift <= tol[:, None]))
        if not bool(active.any()):
            break
    labels, d = _assign(G, W)  # the final E-step (a no-op after strict convergence)
    sq = torch.diagonal(G, dim1=1, dim2=2)[:, None, :]
    inertia = ((d.gather(2, labels[:, :, None]).squeeze(2) + sq) * mask[:, None, :]).sum(-1)
    return labels, W, inertia, empty


def _same_partition(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, R: int) -> torch.Tensor:
    """scikit-learn's _is_same_clustering(a, b): each label of a maps to one label of b."""
    pairs = F.one_hot(a, R).to(mask.dtype).mul(mask[..., None]).transpose(1, 2) \
        @ F.one_hot(b, R).to(mask.dtype)
    return ((pairs > 0).sum(-1) <= 1).all(-1)


def _best_restart(labels: torch.Tensor, inertia: torch.Tensor, mask: torch.Tensor,
                  R: int) -> torch.Tensor:
    """Index (B,) of the restart scikit-learn keeps: strictly lower inertia, another partition."""
    best = torch.zeros(labels.shape[0], dtype=torch.long, device=labels.device)
    rows = torch.arange(labels.shape[0], device=labels.device)
    for i in range(1, labels.shape[1]):
        better = (inertia[:, i] < inertia[rows, best]) & \
            ~_same_partition(labels[:, i], labels[rows, best], mask, R)
        best = torch.where(better, torch.full_like(best, i), best)
    return best


def _solve_block(x: torch.Tensor, mask: torch.Tensor, sizes: torch.Tensor, R: int,
                 first: torch.Tensor, trials: torch.Tensor, max_iter: int, tol: float,
                 f32: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres (B, R, D) of a block of padded clusters, and which need another solver.

    x (B, n, D) holds the members in the data's dtype (zero rows as padding);
    mask, sizes and trials are in the solver's dtype.
    """
    G = _gram(x, mask, sizes)
    tol_b = torch.diagonal(G, dim1=1, dim2=2).sum(-1) / (sizes * x.shape[-1]) * tol
    idx = _kmeans_plusplus(G, mask, first, trials, sizes, f32)
    W = F.one_hot(idx, x.shape[1]).to(G.dtype)                 # (B, I, R, n)
    labels, W, inertia, empty = _lloyd(G, mask, W, tol_b, max_iter)
    best = _best_restart(labels, inertia, mask, R)
    rows = torch.arange(x.shape[0], device=x.device)
    return torch.bmm(W[rows, best].to(x.dtype), x), empty.any(-1)


def batched_kmeans(features: torch.Tensor, groups: Sequence[np.ndarray], R: int,
                   n_init: int = 10, seed: int = 0, max_iter: int = 300, tol: float = 1e-4,
                   device: Optional[torch.device] = None
                   ) -> tuple[torch.Tensor, np.ndarray]:
    """(centres (G, R, D) float32 on the CPU, indices of groups to fit elsewhere).

    ``groups[g]`` holds the row indices of ``features`` in group g; every group
    must have more than R rows. Groups are solved in blocks of similar size.
    """
    device = torch.device(device) if device is not None else features.device
    dtype = torch.float32 if device.type == "mps" else torch.float64
    # scikit-learn's sample weights have the data's dtype; they set the first centre's odds
    weight_dtype = np.float64 if features.dtype == torch.float64 else np.float32
    first_u, trials = sklearn_draws(seed, n_init, R)
    trials_t = torch.as_tensor(trials, dtype=dtype, device=device)
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    data = features.to(device)
    centres = torch.empty(len(groups), R, features.shape[1], dtype=torch.float32)
    redo = np.zeros(len(groups), dtype=bool)
    order = np.argsort(sizes, kind="stable")
    start = 0
    while start < len(order):
        n_max = int(2 ** np.ceil(np.log2(sizes[order[start]])))
        stop = int(np.searchsorted(sizes[order], n_max, side="right"))
        stop = min(stop, start + max(1, _CHUNK_ELEMS // (n_max * features.shape[1])))
        block = order[start:stop]
        width = int(sizes[block].max())
        index = np.zeros((len(block), width), dtype=np.int64)
        mask = np.zeros((len(block), width))
        for row, g in enumerate(block):
            index[row, :sizes[g]] = groups[g]
            mask[row, :sizes[g]] = 1
        mask_t = torch.as_tensor(mask, dtype=dtype, device=device)
        x = data[torch.from_numpy(index).to(device)] * mask_t[..., None].to(data.dtype)
        first = torch.as_tensor(np.stack([first_centre_index(int(sizes[g]), first_u, weight_dtype)
                                          for g in block]), device=device)
        out, again = _solve_block(x, mask_t,
                                  torch.as_tensor(sizes[block], dtype=dtype, device=device),
                                  R, first, trials_t, max_iter, tol, weight_dtype == np.float32)
        centres[torch.from_numpy(block)] = out.float().cpu()
        redo[block] = again.cpu().numpy()
        start = stop
    return centres, np.flatnonzero(redo)
