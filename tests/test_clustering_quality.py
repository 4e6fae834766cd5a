"""Pairwise clustering quality against brute-force pair counting."""
import itertools

import numpy as np
import pytest

from dualref.clustering.quality import cluster_quality


def brute_force(labels, ids):
    """O(N^2) loop over all unordered pairs."""
    both = cl = same = same_all = 0
    for i, j in itertools.combinations(range(len(labels)), 2):
        if ids[i] == ids[j]:
            same_all += 1
        if labels[i] < 0 or labels[j] < 0:
            continue
        cl += labels[i] == labels[j]
        same += ids[i] == ids[j]
        both += labels[i] == labels[j] and ids[i] == ids[j]
    p = both / cl if cl else 0.0
    r = both / same if same else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f, (both / same_all if same_all else 0.0)


@pytest.mark.parametrize("seed", range(20))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    ids = rng.integers(0, int(rng.integers(1, 15)), size=n) * 7 - 3  # arbitrary id values
    labels = rng.integers(-1, int(rng.integers(1, 12)), size=n)
    labels[rng.random(n) < 0.3] = -1
    q = cluster_quality(labels, ids)
    p, r, f, r_all = brute_force(labels, ids)
    assert (q["precision"], q["recall"], q["fscore"], q["recall_all"]) == pytest.approx(
        (p, r, f, r_all), abs=1e-12)
    clustered = labels[labels >= 0]
    sizes = np.bincount(clustered)[np.bincount(clustered) > 0] if clustered.size else []
    assert q["num_clusters"] == len(sizes)
    assert q["num_outliers"] == int((labels < 0).sum())
    assert q["num_samples"] == n
    assert q["num_singletons"] == sum(s == 1 for s in sizes)
    if len(sizes):
        assert (q["cluster_size_min"], q["cluster_size_max"]) == (min(sizes), max(sizes))
        assert q["cluster_size_mean"] == pytest.approx(np.mean(sizes))


def test_hand_worked():
    # clusters {0,1,2} and {3,4}; ids 0,0,1 | 1,1; sample 5 (id 1) is an outlier
    q = cluster_quality([0, 0, 0, 1, 1, -1], [0, 0, 1, 1, 1, 1])
    # same cluster: 3 + 1 = 4 pairs, of which same id: (0,1) and (3,4) = 2
    assert q["precision"] == pytest.approx(2 / 4)
    # same id among clustered: id0 {0,1}: 1, id1 {2,3,4}: 3 -> 4 pairs
    assert q["recall"] == pytest.approx(2 / 4)
    assert q["fscore"] == pytest.approx(0.5)
    # same id among all: 1 + C(4,2) = 7
    assert q["recall_all"] == pytest.approx(2 / 7)
    assert q["num_ids"] == 2


def test_edge_cases():
    perfect = cluster_quality([2, 2, 5, 5, 5], [1, 1, 0, 0, 0])
    assert (perfect["precision"], perfect["recall"], perfect["fscore"]) == (1.0, 1.0, 1.0)
    single = cluster_quality(np.zeros(6, int), [0, 0, 0, 1, 1, 1])
    assert single["precision"] == pytest.approx(6 / 15) and single["recall"] == 1.0
    outliers = cluster_quality(np.full(5, -1), np.arange(5) % 2)
    assert outliers["precision"] == outliers["recall"] == outliers["fscore"] == 0.0
    assert (outliers["num_clusters"], outliers["num_outliers"]) == (0, 5)
    assert outliers["cluster_size_max"] == 0
    one = cluster_quality([0], [3])
    assert one["fscore"] == 0.0 and one["num_singletons"] == 1
    with pytest.raises(ValueError, match="differ"):
        cluster_quality([0, 1], [0])
