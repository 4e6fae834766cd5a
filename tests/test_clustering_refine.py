"""Off-line label refinement against a loop-by-loop oracle."""
import numpy as np
import pytest
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from dualref.clustering.refine import cluster_prototypes, refine_labels
from dualref.utils.errors import UserError


def oracle_refine(feats, labels, R, seed=0):
    """The SPEC's recipe, one sample and one cluster at a time."""
    x = [f / np.linalg.norm(f) for f in feats.astype(np.float64)]
    protos = {}
    for c in sorted({int(v) for v in labels if v >= 0}):
        members = np.array([x[i] for i in range(len(x)) if labels[i] == c])
        if len(members) > R:
            km = KMeans(n_clusters=R, init="k-means++", n_init=10, random_state=seed)
            with threadpool_limits(1):  # speed only: k-means is thread-count independent
                centres = list(km.fit(members).cluster_centers_)
        else:
            centres = [members.mean(axis=0)] * R
        protos[c] = [p / np.linalg.norm(p) for p in centres]
    out = []
    for xi in x:
        best, best_score = None, -np.inf
        for c, ps in protos.items():
            score = sum(float(np.dot(p, xi)) for p in ps)
            if score > best_score:  # strict: ties keep the lowest cluster id
                best, best_score = c, score
        out.append(best)
    return np.array(out)


def clustered_data(rng, sizes, n_outliers, dim=12, spread=0.6):
    centres = rng.standard_normal((len(sizes), dim)) * 2
    feats = [c + spread * rng.standard_normal((s, dim)) for c, s in zip(centres, sizes)]
    labels = [np.full(s, k) for k, s in enumerate(sizes)]
    feats.append(rng.standard_normal((n_outliers, dim)) * 2)
    labels.append(np.full(n_outliers, -1))
    feats, labels = np.concatenate(feats), np.concatenate(labels)
    perm = rng.permutation(labels.size)
    # a few members deliberately given the wrong coarse label
    labels = labels[perm]
    flip = rng.random(labels.size) < 0.15
    labels[flip & (labels >= 0)] = rng.integers(0, len(sizes), size=labels.size)[flip & (labels >= 0)]
    return feats[perm], labels


@pytest.mark.parametrize("backend", ["batched", "sklearn"])
@pytest.mark.parametrize("R", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", range(3))
def test_refine_matches_loop_oracle(R, seed, backend):
    rng = np.random.default_rng(seed)
    # sizes 1, R, R+1 and larger clusters, plus outliers
    sizes = [1, R, R + 1, 3 * R + 2, 9, 4]
    feats, labels = clustered_data(rng, sizes, n_outliers=7)
    got = refine_labels(feats, labels, R, seed=seed, backend=backend)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, oracle_refine(feats, labels, R, seed))
    assert got.min() >= 0 and got.max() < len(sizes)
    # float32 input (the network's dtype) gives the same labels on well-separated data
    np.testing.assert_array_equal(
        refine_labels(feats.astype(np.float32), labels, R, seed=seed, backend=backend), got)


def test_refine_parallel_equals_serial_and_keeps_label_values():
    rng = np.random.default_rng(7)
    feats, labels = clustered_data(rng, [12, 3, 8, 15, 6], n_outliers=5)
    serial = refine_labels(feats, labels, 3)
    np.testing.assert_array_equal(refine_labels(feats, labels, 3, n_jobs=2), serial)
    # non-contiguous cluster ids are kept as they are
    shifted = np.where(labels >= 0, labels * 10 + 3, -1)
    np.testing.assert_array_equal(refine_labels(feats, shifted, 3), serial * 10 + 3)


def test_refine_R1_is_nearest_normalised_centroid():
    # hand-checkable: unit vectors on the axes
    feats = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 0, 1, 1, -1, 0])  # sample 5 sits nearer cluster 1
    np.testing.assert_array_equal(refine_labels(feats, labels, 1), [0, 0, 1, 1, 0, 1])


def test_refine_ties_go_to_lowest_cluster():
    feats = np.tile([[1.0, 2.0, 3.0]], (6, 1))
    labels = np.array([1, 1, 0, 0, 2, -1])  # identical prototypes everywhere
    np.testing.assert_array_equal(refine_labels(feats, labels, 2), np.zeros(6))


def test_prototypes_are_unit_norm_and_small_clusters_repeat_their_mean():
    rng = np.random.default_rng(3)
    feats = rng.standard_normal((9, 4))
    labels = np.array([0, 0, 0, 0, 0, 1, 1, -1, 2])
    ids, protos = cluster_prototypes(feats, labels, R=3)
    np.testing.assert_array_equal(ids, [0, 1, 2])
    assert protos.shape == (3, 3, 4)
    np.testing.assert_allclose(np.linalg.norm(protos, axis=-1), 1.0, rtol=1e-12)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    mean1 = unit[5:7].mean(0)
    np.testing.assert_allclose(protos[1], np.tile(mean1 / np.linalg.norm(mean1), (3, 1)))
    np.testing.assert_allclose(protos[2], np.tile(unit[8], (3, 1)))


def test_refine_degenerate_and_bad_input():
    feats = np.random.default_rng(0).standard_normal((5, 3))
    np.testing.assert_array_equal(refine_labels(feats, np.full(5, -1), 2), np.full(5, -1))
    for R in (0, -1, 1.5):
        with pytest.raises(UserError, match="R="):
            refine_labels(feats, np.zeros(5, int), R)
    with pytest.raises(ValueError, match="labels"):
        refine_labels(feats, np.zeros(4, int), 2)
    with pytest.raises(UserError, match="refine_backend='gpu'"):
        refine_labels(feats, np.zeros(5, int), 2, backend="gpu")
    with pytest.raises(UserError, match="n_init=0"):
        refine_labels(feats, np.zeros(5, int), 2, n_init=0)


def realistic_clusters(seed, n_ids=120, dim=64):
    """Identities with three view modes each, unit features, 10% outliers (DBSCAN-like)."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for i in range(n_ids):
        modes = rng.standard_normal(dim) + 0.6 * rng.standard_normal((3, dim))
        n = int(rng.integers(2, 40))
        feats.append(modes[rng.integers(0, 3, n)] + 0.5 * rng.standard_normal((n, dim)))
        labels += [i] * n
    labels = np.array(labels)
    labels[rng.random(labels.size) < 0.1] = -1
    return np.concatenate(feats).astype(np.float32), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_refinement_agrees_with_sklearn_on_realistic_clusters(seed):
    feats, labels = realistic_clusters(seed)
    batched = refine_labels(feats, labels, 5)
    reference = refine_labels(feats, labels, 5, backend="sklearn")
    assert (batched == reference).mean() >= 0.99
    _, protos_b = cluster_prototypes(feats, labels, 5)
    _, protos_s = cluster_prototypes(feats, labels, 5, backend="sklearn")
    same = np.abs(protos_b - protos_s).max(axis=(1, 2)) < 1e-5
    assert same.mean() >= 0.98  # identical k-means solutions for (almost) every cluster
