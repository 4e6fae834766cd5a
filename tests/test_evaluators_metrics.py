"""mAP and CMC against plain per-query oracles (sklearn AP, the open-reid CMC loop) and hand-worked cases."""
import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from dualref.evaluators import metrics
from dualref.evaluators.metrics import NoValidQueryError, cmc, mean_ap
from dualref.utils.errors import UserError


# ------------------------------------------------------------------ oracles

def _valid(dist, qid, gid, qcam, gcam, i, scs=False):
    keep = (gid != qid[i]) | (gcam != qcam[i])
    if scs:
        keep &= gcam != qcam[i]
    return keep


def oracle_map(dist, qid, gid, qcam, gcam):
    aps = []
    for i in range(len(qid)):
        keep = _valid(dist, qid, gid, qcam, gcam, i)
        y_true = gid[keep] == qid[i]
        if y_true.any():
            aps.append(average_precision_score(y_true, -dist[i][keep]))
    return float(np.mean(aps))


def oracle_cmc(dist, qid, gid, qcam, gcam, topk, scs, fmb):
    """The open-reid loop, with a stable sort so ties follow gallery order."""
    ret, n_valid = np.zeros(topk), 0
    for i in range(len(qid)):
        order = np.argsort(dist[i], kind="stable")
        keep = _valid(dist, qid, gid[order], qcam, gcam[order], i, scs)
        hits = np.nonzero(gid[order][keep] == qid[i])[0]
        if len(hits) == 0:
            continue
        for j, k in enumerate(hits):
            if k - j >= topk:
                break
            ret[k - j] += 1 if fmb else 1 / len(hits)
            if fmb:
                break
        n_valid += 1
    return ret.cumsum() / n_valid


def expected_single_shot(dist, qid, gid, qcam, gcam, topk, scs):
    """Exact expectation of the single-gallery-shot CMC (one uniform pick per id)."""
    ret, n_valid = np.zeros(topk), 0
    for i in range(len(qid)):
        order = np.argsort(dist[i], kind="stable")
        order = order[_valid(dist, qid, gid[order], qcam, gcam[order], i, scs)]
        ids = gid[order]
        mine = np.nonzero(ids == qid[i])[0]
        if len(mine) == 0:
            continue
        n_valid += 1
        others = [np.nonzero(ids == g)[0] for g in np.unique(ids) if g != qid[i]]
        for x in mine:  # the picked match, then a Poisson-binomial over other ids
            prob = np.array([1.0])
            for pos in others:
                p = np.mean(pos < x)
                prob = np.r_[prob * (1 - p), 0] + np.r_[0, prob * p]
            ret[:min(topk, len(prob))] += prob[:topk] / len(mine)
    return ret.cumsum() / n_valid


def _random_case(seed, m=23, n=41, n_ids=6, n_cams=3, ties=False, dup_cols=False):
    rng = np.random.default_rng(seed)
    dist = rng.integers(0, 5, (m, n)).astype(np.float32) if ties else rng.random((m, n)).astype(np.float32)
    if dup_cols:  # exact duplicate gallery columns
        src = rng.integers(0, n, n // 3)
        dst = rng.integers(0, n, n // 3)
        dist[:, dst] = dist[:, src]
    qid, gid = rng.integers(0, n_ids, m), rng.integers(0, n_ids, n)
    qcam, gcam = rng.integers(0, n_cams, m), rng.integers(0, n_cams, n)
    return dist, qid, gid, qcam, gcam


CASES = [dict(), dict(ties=True), dict(dup_cols=True), dict(ties=True, dup_cols=True),
         dict(n_cams=2, n_ids=3, m=30, n=12)]


@pytest.fixture(params=[False, True], ids=["one-block", "tiny-blocks"])
def blocks(request, monkeypatch):
    """Run each test once as one block and once split into many blocks, threads and tie batches."""
    if request.param:
        monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 50)


# ------------------------------------------------------------------ against oracles

@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("seed", [0, 1])
def test_mean_ap_matches_sklearn(blocks, case, seed):
    args = _random_case(seed, **CASES[case])
    assert mean_ap(*args) == pytest.approx(oracle_map(*args), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("scs,fmb", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("topk", [1, 5, 100])
def test_cmc_matches_open_reid_loop(blocks, case, scs, fmb, topk):
    args = _random_case(case + 10, **CASES[case])
    got = cmc(*args, topk=topk, separate_camera_set=scs, first_match_break=fmb)
    want = oracle_cmc(*args, topk=topk, scs=scs, fmb=fmb)
    assert got.shape == (topk,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scs", [False, True])
def test_single_shot_mean_matches_exact_expectation(scs):
    args = _random_case(3, m=8, n=30, n_ids=4, n_cams=2, ties=True)
    runs = [cmc(*args, topk=10, separate_camera_set=scs, single_gallery_shot=True, seed=s)
            for s in range(150)]
    want = expected_single_shot(*args, topk=10, scs=scs)
    np.testing.assert_allclose(np.mean(runs, axis=0), want, atol=0.02)
    assert np.all(np.asarray(runs) <= 1) and np.all(np.diff(runs, axis=1) >= 0)


def test_single_shot_is_exact_when_each_id_has_one_item(blocks):
    # Two items per id on different cameras: one is always removed, so sampling has no choice.
    rng = np.random.default_rng(5)
    gid = np.repeat(np.arange(9), 2)
    gcam = np.tile([0, 1], 9)
    qid, qcam = rng.integers(0, 9, 11), np.zeros(11, int)
    dist = rng.random((11, 18))
    got = cmc(dist, qid, gid, qcam, gcam, topk=12, separate_camera_set=True, single_gallery_shot=True)
    want = oracle_cmc(dist, qid, gid, qcam, gcam, topk=12, scs=True, fmb=True)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_single_shot_is_seeded_and_ignores_first_match_break():
    args = _random_case(4, ties=True)
    a = cmc(*args, topk=5, single_gallery_shot=True, seed=7)
    b = cmc(*args, topk=5, single_gallery_shot=True, first_match_break=True, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cmc(*args, topk=5, single_gallery_shot=True, seed=8))


# ------------------------------------------------------------------ hand-worked

def test_hand_worked_all_valid():
    dist = np.array([[0, 1, 2, 3], [0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]], float)
    ids = np.arange(4)  # defaults: query camera 0, gallery camera 1
    np.testing.assert_allclose(cmc(dist, topk=4, first_match_break=True), [0.25, 0.75, 0.75, 1.0])
    assert mean_ap(dist, ids, ids) == pytest.approx((1 + 1 / 2 + 1 / 2 + 1 / 4) / 4)


def test_hand_worked_same_camera_items_removed():
    dist = np.array([[0.1, 0.4, 0.2, 0.3], [0.5, 0.1, 0.3, 0.2]])
    args = (dist, [0, 1], [0, 0, 1, 1], [0, 0], [0, 1, 1, 0])
    # q0 loses g0 -> g2, g3, g1(match): rank 2; q1 loses g3 -> g1, g2(match), g0: rank 1.
    np.testing.assert_allclose(cmc(*args, topk=3, first_match_break=True), [0, 0.5, 1])
    np.testing.assert_allclose(cmc(*args, topk=3), [0, 0.5, 1])
    assert mean_ap(*args) == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_hand_worked_tied_matches():
    dist = np.array([[0.3, 0.1, 0.3, 0.2]])
    args = (dist, [0], [0, 1, 0, 1], [0], [1, 1, 1, 1])
    # Both matches tie at 0.3 behind two non-matches: one threshold, precision 2/4.
    assert mean_ap(*args) == pytest.approx(0.5)
    np.testing.assert_allclose(cmc(*args, topk=4, first_match_break=True), [0, 0, 1, 1])
    np.testing.assert_allclose(cmc(*args, topk=4), [0, 0, 1, 1])


def test_ties_broken_by_gallery_order():
    dist = np.array([[0.2, 0.2, 0.1, 0.5]])
    late = cmc(dist, [0], [1, 0, 1, 0], [0], [1] * 4, topk=4, first_match_break=True)
    early = cmc(dist, [0], [0, 1, 1, 0], [0], [1] * 4, topk=4, first_match_break=True)
    np.testing.assert_allclose(late, [0, 0, 1, 1])
    np.testing.assert_allclose(early, [0, 1, 1, 1])


def test_separate_camera_set_drops_query_camera():
    dist = np.array([[0.1, 0.3, 0.2, 0.05]])
    args = (dist, [0], [1, 0, 1, 2], [0], [0, 1, 1, 0])
    np.testing.assert_allclose(cmc(*args, topk=4, first_match_break=True), [0, 0, 0, 1])
    np.testing.assert_allclose(cmc(*args, topk=4, first_match_break=True, separate_camera_set=True),
                               [0, 1, 1, 1])


def test_topk_beyond_gallery_repeats_last_value():
    dist = np.array([[0.3, 0.1], [0.1, 0.3]])
    got = cmc(dist, [0, 0], [0, 1], [0, 0], [1, 1], topk=5, first_match_break=True)
    np.testing.assert_allclose(got, [0.5, 1, 1, 1, 1])


# ------------------------------------------------------------------ inputs and errors

def test_torch_and_numpy_inputs_agree():
    dist, qid, gid, qcam, gcam = _random_case(9, ties=True)
    as_torch = [torch.from_numpy(x) for x in (dist, qid, gid, qcam, gcam)]
    assert mean_ap(*as_torch) == mean_ap(dist, qid, gid, qcam, gcam)
    np.testing.assert_array_equal(cmc(*as_torch, topk=7, first_match_break=True),
                                  cmc(dist, list(qid), list(gid), list(qcam), list(gcam), topk=7,
                                      first_match_break=True))


def test_queries_without_valid_match_are_skipped():
    dist = np.array([[0.1, 0.2], [0.2, 0.1], [0.3, 0.4]])
    # q1's only same-id item shares its camera; q2's id is absent from the gallery.
    args = (dist, [0, 1, 5], [0, 1], [0, 1, 0], [1, 1])
    assert mean_ap(*args) == pytest.approx(1.0)
    np.testing.assert_allclose(cmc(*args, topk=2, first_match_break=True), [1, 1])


@pytest.mark.parametrize("metric", [mean_ap, lambda *a: cmc(*a, first_match_break=True)])
def test_no_valid_query_raises(metric):
    dist = np.random.default_rng(0).random((3, 4))
    with pytest.raises(NoValidQueryError) as err:  # every same-id item shares the query camera
        metric(dist, [0, 1, 2], [0, 1, 2, 0], [0, 0, 0], [0, 0, 0, 0])
    assert isinstance(err.value, UserError) and isinstance(err.value, RuntimeError)


@pytest.mark.parametrize("bad", [
    dict(distmat=np.zeros(4)), dict(query_ids=[0, 1]), dict(gallery_cams=[0.5, 1, 1]),
    dict(distmat=np.array([[np.nan, 1, 2]] * 3)), dict(topk=0), dict(seed=-1),
])
def test_bad_inputs_raise_user_error(bad):
    kwargs = dict(distmat=np.ones((3, 3)), query_ids=[0, 1, 2], gallery_ids=[0, 1, 2],
                  query_cams=[0, 0, 0], gallery_cams=[1, 1, 1])
    kwargs.update(bad)
    with pytest.raises(UserError):
        cmc(**kwargs) if {"topk", "seed"} & set(bad) else mean_ap(**kwargs)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("flags", [None, dict(first_match_break=True), dict(separate_camera_set=True),
                                   dict(), dict(single_gallery_shot=True)])
def test_non_finite_distances_raise_user_error(bad_value, flags):
    dist, qid, gid, qcam, gcam = _random_case(2)
    dist[3, 7] = bad_value
    with pytest.raises(UserError, match="NaN or infinite"):
        mean_ap(dist, qid, gid, qcam, gcam) if flags is None else cmc(dist, qid, gid, qcam, gcam, **flags)
