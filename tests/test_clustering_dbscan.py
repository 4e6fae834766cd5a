"""eps-from-rho and DBSCAN: sparse input must match the dense definition exactly."""
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.cluster import DBSCAN

from dualref.clustering.dbscan import (DBSCANClusterer, PairFill, cluster_dbscan,
                                       count_clusters, eps_from_rho)
from dualref.utils.errors import UserError


def dense_eps(d: np.ndarray, rho: float) -> float:
    """The definition, written plainly: triu, drop zeros, full sort, mean of the head."""
    tri = np.triu(d, 1)
    tri = np.sort(tri[np.nonzero(tri)])
    top = max(1, int(np.round(rho * tri.size)))
    return float(np.mean(tri[:top], dtype=np.float64))


def to_sparse(d: np.ndarray, keep_diag: bool = True) -> sp.csr_matrix:
    """Jaccard convention: store every pair < 1 (zeros too), omit pairs at 1."""
    mask = d < 1
    if not keep_diag:
        np.fill_diagonal(mask, False)
    r, c = np.nonzero(mask)
    m = sp.csr_matrix((d[r, c], (r, c)), shape=d.shape)
    assert m.nnz == r.size  # explicit zeros survived construction
    return m


def random_dist(rng, n, p_one=0.5, p_zero=0.05, levels=None, symmetric=True):
    d = rng.random((n, n)).astype(np.float32)
    if levels is not None:  # quantise to force many ties
        d = np.floor(d * levels) / levels
    d[rng.random((n, n)) < p_one] = 1.0
    d[rng.random((n, n)) < p_zero] = 0.0
    if symmetric:
        d = np.triu(d, 1)
        d = d + d.T
    np.fill_diagonal(d, 0.0)
    return d


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rho", [1.6e-3, 0.05, 0.3, 0.7, 0.999])
def test_eps_sparse_equals_dense(seed, rho):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    d = random_dist(rng, n, p_one=rng.random(), p_zero=0.3 * rng.random(),
                    levels=[None, 4][seed % 2], symmetric=seed != 5)
    want = dense_eps(d, rho)
    assert eps_from_rho(d, rho) == want
    assert eps_from_rho(to_sparse(d), rho) == want
    assert eps_from_rho(to_sparse(d, keep_diag=False), rho) == want


def test_eps_reaches_the_omitted_ones():
    # 3 non-zero values below 1, the other 42 pairs sit at 1 and are omitted
    n = 10
    d = np.ones((n, n))
    np.fill_diagonal(d, 0)
    for (i, j), v in zip([(0, 1), (2, 3), (4, 5)], [0.1, 0.2, 0.3]):
        d[i, j] = d[j, i] = v
    d[6, 7] = d[7, 6] = 0.0  # a zero pair: neither counted nor averaged
    # 44 non-zero pairs; round(0.25 * 44) = 11 -> (0.1+0.2+0.3 + 8*1) / 11
    assert eps_from_rho(to_sparse(d), 0.25) == pytest.approx(8.6 / 11, abs=1e-15)
    assert eps_from_rho(to_sparse(d), 0.25) == dense_eps(d, 0.25)


def test_eps_rounds_half_to_even_and_at_least_one():
    d = np.zeros((6, 6))
    vals = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]  # 10 non-zero pairs
    iu = list(zip(*np.triu_indices(6, 1)))
    for (i, j), v in zip(iu, vals):
        d[i, j] = d[j, i] = v
    assert eps_from_rho(d, 0.25) == pytest.approx(np.mean(vals[:2]))  # 2.5 -> 2
    assert eps_from_rho(d, 0.35) == pytest.approx(np.mean(vals[:4]))  # 3.5 -> 4
    assert eps_from_rho(d, 0.01) == pytest.approx(0.1)  # 0.1 -> 0 -> 1


def test_eps_rejects_bad_input():
    d = random_dist(np.random.default_rng(0), 8)
    for rho in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(UserError, match="rho"):
            eps_from_rho(d, rho)
    with pytest.raises(ValueError, match="non-zero"):
        eps_from_rho(np.zeros((5, 5)), 0.1)
    with pytest.raises(ValueError, match="square"):
        eps_from_rho(np.zeros((3, 4)), 0.1)


def blobs_dist(rng, sizes, noise=10):
    """Jaccard-like matrix of 1-d blobs plus isolated noise points; far pairs at 1."""
    centres = np.arange(len(sizes)) * 10.0
    x = np.concatenate([c + rng.random(s) for c, s in zip(centres, sizes)]
                       + [rng.random(noise) * 10 * len(sizes)])
    d = np.minimum(np.abs(x[:, None] - x[None, :]) / 3.0, 1.0)
    d[rng.random(d.shape) < 0.02] = 0.0  # some exact zeros (stored explicitly)
    d = np.triu(d, 1)
    return d + d.T


@pytest.mark.parametrize("seed", range(4))
def test_dbscan_sparse_labels_equal_dense(seed):
    rng = np.random.default_rng(seed)
    d = blobs_dist(rng, rng.integers(1, 12, size=8))
    for eps in (0.05, 0.1, eps_from_rho(d, 0.05)):
        want = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(d)
        np.testing.assert_array_equal(cluster_dbscan(d, eps), want)
        np.testing.assert_array_equal(cluster_dbscan(to_sparse(d), eps), want)
        np.testing.assert_array_equal(cluster_dbscan(to_sparse(d, False), eps), want)
        # scikit-learn on the raw sparse matrix agrees as well (no pre-filtering)
        raw = DBSCAN(eps=eps, min_samples=4, metric="precomputed").fit_predict(to_sparse(d))
        np.testing.assert_array_equal(raw, want)


def test_dbscan_hand_worked():
    # two groups of 5 at mutual distance 0.1 (one pair at exactly 0), one loner
    d = np.ones((11, 11))
    d[:5, :5] = 0.1
    d[5:10, 5:10] = 0.1
    d[1, 2] = d[2, 1] = 0.0
    np.fill_diagonal(d, 0)
    labels = cluster_dbscan(to_sparse(d, keep_diag=False), eps=0.2)
    np.testing.assert_array_equal(labels, [0] * 5 + [1] * 5 + [-1])
    assert labels.dtype == np.int64
    assert count_clusters(labels) == (2, 1)
    assert count_clusters(np.full(4, -1)) == (0, 4)


def test_clusterer_fixes_eps_once_and_checkpoints_it():
    rng = np.random.default_rng(1)
    d1 = blobs_dist(rng, [6, 7, 8])
    d2 = blobs_dist(rng, [9, 5])
    c = DBSCANClusterer(rho=0.05)
    np.testing.assert_array_equal(c(to_sparse(d1)), cluster_dbscan(d1, eps_from_rho(d1, 0.05)))
    eps1 = c.eps
    assert eps1 == eps_from_rho(d1, 0.05)
    c(to_sparse(d2))
    assert c.eps == eps1  # not re-derived from the second matrix
    resumed = DBSCANClusterer(rho=0.05)
    resumed.load_state_dict(c.state_dict())
    assert resumed.eps == eps1
    np.testing.assert_array_equal(resumed(d2), cluster_dbscan(d2, eps1))
    with pytest.raises(UserError, match="rho"):
        DBSCANClusterer(rho=1.5)


def _with_source_term(d: np.ndarray, terms: np.ndarray, lam: float):
    """Dense (1 - lam) d + lam (s_i + s_j), and its sparse form omitting the pairs where d = 1."""
    n = d.shape[0]
    dense = (1 - lam) * d.astype(np.float64) + lam * (terms[:, None] + terms[None, :])
    np.fill_diagonal(dense, 0.0)  # the diagonal is excluded from eps anyway
    r, c = np.nonzero(d < 1)
    sparse = sp.csr_matrix((dense[r, c], (r, c)), shape=(n, n))
    return dense, sparse


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("rho", [1.6e-3, 0.05, 0.4, 0.9])
def test_eps_counts_omitted_pairs_at_their_source_term_value(seed, rho):
    # With lambda > 0 an omitted pair lies at (1 - lam) + lam (s_i + s_j), not at 1.
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(3, 70))
    d = random_dist(rng, n, p_one=0.3 + 0.65 * rng.random(), p_zero=0.1 * rng.random(),
                    levels=[None, 5][seed % 2])
    terms = rng.random(n)
    if seed % 3 == 0:
        terms = np.floor(terms * 3) / 3  # ties among the omitted values
    terms /= terms.max()
    lam = [0.1, 0.3, 0.7, 1.0][seed % 4]
    dense, sparse = _with_source_term(d, terms, lam)
    fill = PairFill(1 - lam, lam, terms)
    assert eps_from_rho(sparse, rho, fill) == pytest.approx(dense_eps(dense, rho), rel=1e-12, abs=1e-15)
    # counting the omitted pairs at 1 instead is a different (wrong) answer on these inputs
    if rho >= 0.4:
        assert eps_from_rho(sparse, rho) != pytest.approx(dense_eps(dense, rho), rel=1e-9)


def test_eps_with_source_term_when_no_omitted_pair_is_needed():
    rng = np.random.default_rng(7)
    d = random_dist(rng, 40, p_one=0.5)
    terms = rng.random(40) / 1.0
    dense, sparse = _with_source_term(d, terms, 0.2)
    assert eps_from_rho(sparse, 1e-3, PairFill(0.8, 0.2, terms)) == pytest.approx(dense_eps(dense, 1e-3))
