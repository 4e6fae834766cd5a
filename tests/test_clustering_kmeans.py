"""Batched k-means against scikit-learn's KMeans, one problem at a time (the oracle)."""
import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from dualref.clustering.kmeans import batched_kmeans, first_centre_index, sklearn_draws


def sklearn_centres(x, R, n_init=10, seed=0):
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        return KMeans(R, init="k-means++", n_init=n_init, random_state=seed).fit(x).cluster_centers_


def groups_of(sizes):
    bounds = np.cumsum([0] + list(sizes))
    return [np.arange(a, b) for a, b in zip(bounds, bounds[1:])]


def check_against_sklearn(x, groups, R, n_init=10, seed=0, atol=1e-5):
    """Every group's centres equal scikit-learn's, except groups handed back for a redo."""
    centres, redo = batched_kmeans(torch.from_numpy(x), groups, R, n_init=n_init, seed=seed)
    assert centres.shape == (len(groups), R, x.shape[1]) and centres.dtype == torch.float32
    for g, idx in enumerate(groups):
        if g in redo:
            continue
        np.testing.assert_allclose(centres[g].numpy(), sklearn_centres(x[idx], R, n_init, seed),
                                   atol=atol, err_msg=f"group {g} ({len(idx)} points)")
    return redo


def test_first_centre_is_the_one_numpy_choice_returns():
    for seed in (0, 5):
        first, _ = sklearn_draws(seed, 10, 5)
        for n in range(6, 300):
            want = np.random.RandomState(seed).choice(n, p=np.ones(n, np.float32) / np.float32(n))
            assert first_centre_index(n, first[:1])[0] == want, n


def test_draws_follow_the_random_state_stream():
    first, trials = sklearn_draws(3, 2, 5)
    rs = np.random.RandomState(3)
    L = 2 + int(np.log(5))
    assert trials.shape == (2, 4, L)
    assert first[0] == rs.random_sample()
    np.testing.assert_array_equal(trials[0], np.stack([rs.uniform(size=L) for _ in range(4)]))
    assert first[1] == rs.random_sample()


@pytest.mark.parametrize("R", [2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_groups_of_many_sizes(R, seed):
    rng = np.random.default_rng(seed)
    sizes = [R + 1, R + 2, 9, 17, 33, 64, 65, 120]  # across the power-of-two buckets
    centres = [rng.standard_normal(16) for _ in sizes]
    x = np.concatenate([c + 0.8 * rng.standard_normal((n, 16)) for c, n in zip(centres, sizes)])
    x = x.astype(np.float32)
    perm = rng.permutation(len(x))  # members need not be contiguous rows
    inv = np.argsort(perm)
    groups = [inv[g] for g in groups_of(sizes)]
    redo = check_against_sklearn(x[perm], groups, R, seed=seed)
    assert len(redo) == 0


def test_float64_input_and_other_restarts():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((90, 8))
    assert len(check_against_sklearn(x, groups_of([30, 25, 35]), 4, n_init=3, seed=7)) == 0


def test_ties_duplicates_and_one_big_group():
    rng = np.random.default_rng(2)
    # exact duplicates: many equal distances in k-means++ and in the assignment
    dup = np.repeat(rng.standard_normal((4, 6)), [5, 3, 3, 2], axis=0)
    grid = np.array([[i, j] for i in range(4) for j in range(4)], dtype=np.float64)  # ties
    grid = np.pad(grid, ((0, 0), (0, 4)))
    big = rng.standard_normal((400, 6)) * np.array([3, 1, 1, 1, 1, 1])
    x = np.concatenate([dup, grid, big]).astype(np.float32)
    check_against_sklearn(x, groups_of([len(dup), len(grid), len(big)]), 3)


def test_fewer_distinct_points_than_centres_is_redone_or_equal():
    # 6 points but only 2 distinct: some centre must come out empty or repeated
    x = np.repeat(np.eye(2, 3, dtype=np.float32), 3, axis=0)
    redo = check_against_sklearn(x, [np.arange(6)], 3)
    assert set(redo) <= {0}


def test_same_result_whatever_the_other_groups():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((200, 10)).astype(np.float32)
    alone, _ = batched_kmeans(torch.from_numpy(x), [np.arange(40)], 5)
    together, _ = batched_kmeans(torch.from_numpy(x), [np.arange(40, 200), np.arange(40)], 5)
    torch.testing.assert_close(alone[0], together[1], rtol=0, atol=1e-6)
