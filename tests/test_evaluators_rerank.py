"""k-reciprocal re-ranking against a dense float64 transcription of the original algorithm."""
import numpy as np
import pytest

from dualref.evaluators.rerank import re_ranking


def reciprocal(rank, i, k):
    fwd = rank[i, :k + 1]
    return [j for j in fwd if i in rank[j, :k + 1]]


def oracle_rerank(q_g, q_q, g_g, k1=20, k2=6, lam=0.3):
    """Dense re-ranking as in the original: square, column-normalise, transpose, encode, mix."""
    nq = len(q_q)
    o = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64) ** 2
    d = (o / o.max(0)).T
    n = len(d)
    rank = np.argsort(d, axis=1, kind="stable")
    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        base = reciprocal(rank, i, k1)
        members = list(base)
        for j in base:
            cand = reciprocal(rank, j, half)
            if len(np.intersect1d(cand, base)) > 2 / 3 * len(cand):
                members += cand
        members = np.unique(members)
        w = np.exp(-d[i, members])
        v[i, members] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.empty((nq, n))
    for i in range(nq):
        m = np.minimum(v[i], v).sum(1)
        jac[i] = 1 - m / (2 - m)
    return ((1 - lam) * jac + lam * d[:nq])[:, nq:], jac[:, nq:]


def sq_dists(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def make(nq, ng, dup=True, seed=0, dim=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, (nq + ng) // 10), dim))
    x = centres[rng.integers(0, len(centres), nq + ng)] + 0.5 * rng.normal(size=(nq + ng, dim))
    if dup:  # exact duplicates inside the gallery and across query/gallery
        x[nq + 5:nq + 9] = x[nq + 4]
        x[nq + 20] = x[0]
    q, g = x[:nq], x[nq:]
    return sq_dists(q, g), sq_dists(q, q), sq_dists(g, g)


@pytest.mark.parametrize("k2,lam", [(6, 0.3), (1, 0.3), (6, 0.0), (6, 1.0)])
def test_matches_dense_original(k2, lam):
    q_g, q_q, g_g = make(60, 240, seed=k2)
    want, jac = oracle_rerank(q_g, q_q, g_g, 20, k2, lam)
    assert 0.05 < (jac < 1).mean() < 0.95  # the Jaccard part is non-trivial
    got = re_ranking(q_g.astype(np.float32), q_q.astype(np.float32), g_g.astype(np.float32), 20, k2, lam)
    assert got.shape == (60, 240) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_float64_and_asymmetric_inputs():
    q_g, q_q, g_g = make(30, 90, seed=7)
    rng = np.random.default_rng(1)
    g_g = g_g + 0.01 * rng.random(g_g.shape)  # not symmetric: the column convention matters
    q_q = q_q + 0.01 * rng.random(q_q.shape)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g, k1=8, k2=3), oracle_rerank(q_g, q_q, g_g, 8, 3)[0],
                               atol=1e-5)


@pytest.mark.parametrize("nq,ng", [(1, 1), (2, 3), (5, 10)])
def test_fewer_items_than_k1(nq, ng):
    q_g, q_q, g_g = make(nq, ng, dup=False, seed=nq)
    np.testing.assert_allclose(re_ranking(q_g, q_q, g_g), oracle_rerank(q_g, q_q, g_g)[0], atol=1e-5)
