"""Evaluation glue: distances, query/gallery split, result type."""
import numpy as np
import torch

from dualref.evaluators.evaluator import (evaluate_distmat, evaluate_features,
                                          query_gallery_items, split_features,
                                          squared_euclidean)


def test_squared_euclidean_matches_direct_formula():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=gen), torch.randn(9, 5, generator=gen)
    expected = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).numpy()
    np.testing.assert_allclose(squared_euclidean(x, y, block=3), expected, rtol=1e-5, atol=1e-5)


def test_split_features_picks_rows_of_shared_items():
    query = [("b.jpg", 1, 0), ("a.jpg", 2, 1)]
    gallery = [("a.jpg", 2, 1), ("c.jpg", 1, 1)]
    items = query_gallery_items(query, gallery)
    assert items == [("a.jpg", 2, 1), ("b.jpg", 1, 0), ("c.jpg", 1, 1)]
    feats = torch.arange(3.0).unsqueeze(1)
    q, g = split_features(feats, items, query, gallery)
    assert q.squeeze(1).tolist() == [1.0, 0.0] and g.squeeze(1).tolist() == [0.0, 2.0]


def test_perfect_features_score_one_and_lines_are_logged(caplog):
    query = [("q0", 0, 0), ("q1", 1, 0)]
    gallery = [("g0", 0, 1), ("g1", 1, 1), ("g2", 2, 1)]
    q = torch.eye(3)[:2]
    g = torch.eye(3)
    with caplog.at_level("INFO", logger="dualref"):
        result = evaluate_features(q, g, query, gallery)
    assert result.mAP == 1.0 and result.cmc == {1: 1.0, 5: 1.0, 10: 1.0}
    assert "Mean AP: 100.0%" in caplog.text and "top-1" in caplog.text
    record = result.to_dict()
    assert record["rank1"] == 1.0 and record["mAP"] == 1.0


def test_evaluate_distmat_hand_worked_case():
    # query 0 (id 0, cam 0): gallery ranks id1, id0(cam1) -> AP 0.5, rank-1 miss
    query = [("q", 0, 0)]
    gallery = [("a", 1, 1), ("b", 0, 1), ("c", 0, 0)]  # c: same id+cam, ignored
    dist = np.array([[0.1, 0.2, 0.0]], dtype=np.float32)
    result = evaluate_distmat(dist, query, gallery)
    assert abs(result.mAP - 0.5) < 1e-9
    assert result.cmc[1] == 0.0 and result.cmc[5] == 1.0
