"""Ranked-list figures on tiny solid-colour images."""
import numpy as np
import pytest
from PIL import Image

from dualref.utils.errors import UserError
from dualref.visualize import (CELL, FRAME, GREEN, GREY, MARGIN, RED, SEPARATOR, cell_origin,
                               choose_queries, compare_ranked_lists, ranked_gallery,
                               save_ranked_lists)


def _image(folder, name, colour):
    path = folder / name
    Image.new("RGB", (8, 16), colour).save(path)
    return str(path)


@pytest.fixture
def data(tmp_path):
    """Query 0 (id 1, cam 0); gallery: same id+cam (junk), a different id, the true match."""
    query = [(_image(tmp_path, "q0.png", (0, 0, 255)), 1, 0),
             (_image(tmp_path, "q1.png", (0, 0, 128)), 2, 0)]
    gallery = [(_image(tmp_path, "g0.png", (255, 255, 0)), 1, 0),   # same id, same camera
               (_image(tmp_path, "g1.png", (255, 0, 255)), 3, 1),   # wrong id
               (_image(tmp_path, "g2.png", (0, 255, 255)), 1, 1),   # true match
               (_image(tmp_path, "g3.png", (50, 50, 50)), 2, 1)]
    distmat = np.array([[0.0, 1.0, 2.0, 3.0],
                        [3.0, 2.0, 1.0, 0.0]])
    return distmat, query, gallery


def _pixel(img, col, row, dx=1, dy=1):
    x, y = cell_origin(col, row)
    return img.getpixel((x + dx, y + dy))


def test_ranking_excludes_same_id_same_camera(data):
    distmat, query, gallery = data
    assert ranked_gallery(distmat[0], query[0], gallery, topk=10) == [1, 2, 3]
    assert ranked_gallery(distmat[1], query[1], gallery, topk=2) == [3, 2]


def test_frames_green_for_match_red_otherwise(data, tmp_path):
    distmat, query, gallery = data
    path = tmp_path / "out" / "ranked.png"
    picked = save_ranked_lists(distmat, query, gallery, path, num_queries=1, topk=3, seed=None)
    assert picked == [0]
    with Image.open(path) as img:
        img = img.convert("RGB")
        width, height = cell_origin(4, 0)[0], cell_origin(0, 1)[1]
        assert img.size == (width, height)
        assert _pixel(img, 0, 0) == GREY
        assert _pixel(img, 0, 0, FRAME + 2, FRAME + 2) == (0, 0, 255)  # the query image itself
        assert _pixel(img, 1, 0) == RED          # rank 1: g1, another id (g0 removed)
        assert _pixel(img, 1, 0, FRAME + 2, FRAME + 2) == (255, 0, 255)
        assert _pixel(img, 2, 0) == GREEN        # rank 2: g2, the true match
        assert _pixel(img, 2, 0, FRAME + 2, FRAME + 2) == (0, 255, 255)
        assert _pixel(img, 3, 0) == RED
        # the junk image (yellow) appears nowhere
        assert (255, 255, 0) not in {c for _, c in img.getcolors(maxcolors=1 << 16)}


def test_query_choice_is_deterministic(data):
    distmat, query, gallery = data
    assert choose_queries(distmat, query, gallery, 5, seed=0) == [0, 1]
    many = [(f"q{i}", i % 3, 0) for i in range(20)]
    gal = [(f"g{i}", i, 1) for i in range(3)]
    dist = np.zeros((20, 3))
    assert choose_queries(dist, many, gal, 4, seed=None) == [0, 6, 13, 19]
    seeded = choose_queries(dist, many, gal, 4, seed=3)
    assert seeded == choose_queries(dist, many, gal, 4, seed=3) and len(set(seeded)) == 4


def test_compare_blocks_stack_with_labels(data, tmp_path):
    distmat, query, gallery = data
    path = tmp_path / "cmp.png"
    compare_ranked_lists({"direct transfer": distmat, "Dual-Refinement": distmat[:, ::-1]},
                         query, gallery, path, num_queries=2, topk=2, title="Duke->Market")
    with Image.open(path) as img:
        one = cell_origin(0, 2, label=True)[1]
        assert img.height == 2 * one + (cell_origin(0, 0, True, True)[1] - MARGIN) + SEPARATOR
        assert img.width == cell_origin(3, 0, label=True)[0]
        assert img.width > 3 * CELL[0]


def test_shape_mismatch_is_user_error(data, tmp_path):
    distmat, query, gallery = data
    with pytest.raises(UserError, match="distance matrix"):
        save_ranked_lists(distmat[:, :2], query, gallery, tmp_path / "x.png")
