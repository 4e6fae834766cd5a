"""Dataset loaders on fake trees in the real layouts, against hand-worked lists."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

import dualref.datasets as datasets
from _fake_trees import (DUKE_RELEASE, FOLDER_SPLITS, MARKET_RELEASE, make_folder_tree,
                         make_msmt_tree, touch_files)
from dualref.datasets.base import relabel
from dualref.utils.errors import UserError

TRAIN, QUERY, GALLERY = FOLDER_SPLITS


def market_tree(root: Path) -> Path:
    """A small Market tree; names listed deliberately out of sorted order."""
    return make_folder_tree(root, MARKET_RELEASE, {
        TRAIN: ["0010_c3s1_000200_01.jpg", "0002_c6s2_000100_02.jpg",
                "-1_c3s1_000001_01.jpg", "0007_c2s1_000100_01.jpg",
                "0002_c1s1_000451_03.jpg", "Thumbs.db"],
        QUERY: ["0007_c1s1_000002_00.jpg", "-1_c4s1_000003_00.jpg",
                "0002_c2s1_000001_00.jpg"],
        GALLERY: ["0007_c5s1_000009_01.jpg", "-1_c2s1_000010_01.jpg",
                  "0000_c1s1_000151_01.jpg", "0002_c4s1_000001_02.jpg"],
    })


class ListHandler(logging.Handler):
    """Collects formatted records (caplog misses them if 'dualref' stops propagating)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def log_lines():
    handler = ListHandler()
    log = logging.getLogger("dualref.datasets.base")
    old_level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)
    log.setLevel(old_level)


def test_names_sorted_and_unknown_name_lists_them(tmp_path):
    assert datasets.names() == ["custom", "dukemtmc", "market1501", "msmt17"]
    with pytest.raises(UserError) as err:
        datasets.create("market", str(tmp_path))
    assert "'market'" in str(err.value)
    assert "custom, dukemtmc, market1501, msmt17" in str(err.value)


def test_relabel_uses_numeric_id_order_not_input_order():
    items = [("a", 10, 0), ("b", 2, 0), ("c", 7, 1), ("d", 2, 3)]
    assert relabel(items) == [("a", 2, 0), ("b", 0, 0), ("c", 1, 1), ("d", 0, 3)]


def test_market_exact_lists(tmp_path, log_lines):
    release = market_tree(tmp_path)
    ds = datasets.create("market1501", str(tmp_path))
    tr, q, g = (str(release / s) for s in FOLDER_SPLITS)
    assert ds.name == "market1501" and ds.images_dir == str(release)
    # -1 dropped, ids 2,7,10 -> 0,1,2, cameras 0-based, sorted by path.
    assert ds.train == [(os.path.join(tr, "0002_c1s1_000451_03.jpg"), 0, 0),
                        (os.path.join(tr, "0002_c6s2_000100_02.jpg"), 0, 5),
                        (os.path.join(tr, "0007_c2s1_000100_01.jpg"), 1, 1),
                        (os.path.join(tr, "0010_c3s1_000200_01.jpg"), 2, 2)]
    assert ds.query == [(os.path.join(q, "0002_c2s1_000001_00.jpg"), 2, 1),
                        (os.path.join(q, "0007_c1s1_000002_00.jpg"), 7, 0)]
    # Distractor id 0 stays in the gallery with its original id.
    assert ds.gallery == [(os.path.join(g, "0000_c1s1_000151_01.jpg"), 0, 0),
                          (os.path.join(g, "0002_c4s1_000001_02.jpg"), 2, 3),
                          (os.path.join(g, "0007_c5s1_000009_01.jpg"), 7, 4)]
    assert (ds.num_train_pids, ds.num_train_cams) == (3, 4)
    assert "  train    |     3 |        4 |         4" in log_lines
    assert "  gallery  |     3 |        3 |         3" in log_lines


def test_quiet_load_logs_nothing(tmp_path, log_lines):
    market_tree(tmp_path)
    datasets.create("market1501", str(tmp_path), verbose=False)
    assert log_lines == []


def test_market_pid_zero_in_train_is_an_ordinary_identity(tmp_path):
    # The original keeps id 0 outside the gallery too; it gets label 0 in train.
    market_tree(tmp_path)
    touch_files(tmp_path / MARKET_RELEASE / TRAIN, ["0000_c4s1_000001_01.jpg"])
    ds = datasets.create("market1501", str(tmp_path), verbose=False)
    assert [(os.path.basename(p), pid, cam) for p, pid, cam in ds.train] == [
        ("0000_c4s1_000001_01.jpg", 0, 3), ("0002_c1s1_000451_03.jpg", 1, 0),
        ("0002_c6s2_000100_02.jpg", 1, 5), ("0007_c2s1_000100_01.jpg", 2, 1),
        ("0010_c3s1_000200_01.jpg", 3, 2)]


def test_market_missing_split_names_layout_and_folder(tmp_path):
    market_tree(tmp_path)
    (tmp_path / MARKET_RELEASE / QUERY).rename(tmp_path / MARKET_RELEASE / "Query")
    with pytest.raises(UserError) as err:
        datasets.create("market1501", str(tmp_path))
    msg = str(err.value)
    assert msg.startswith("market1501: expected ")
    assert (f"{tmp_path / MARKET_RELEASE}/{{bounding_box_train,query,bounding_box_test}}"
            "/*.jpg") in msg
    assert msg.endswith(f"missing {tmp_path / MARKET_RELEASE / QUERY}")
    assert "\n" not in msg


def test_market_missing_release_folder(tmp_path):
    make_folder_tree(tmp_path, "Market-1501", {TRAIN: ["0002_c1s1_000451_03.jpg"]})
    with pytest.raises(UserError, match=r"missing .*Market-1501-v15\.09\.15$"):
        datasets.create("market1501", str(tmp_path))


@pytest.mark.parametrize("bad_name, fragment", [
    ("0002_c1.jpg", "cannot parse file name"),
    ("abcd_c1s1_000001_01.jpg", "cannot parse file name"),
    ("0002_c7s1_000001_01.jpg", "camera 7 out of range 1..6"),
    ("0002_c0s1_000001_01.jpg", "camera 0 out of range 1..6"),
    ("-2_c1s1_000001_01.jpg", "negative person id -2"),
])
def test_market_bad_file_name_names_the_file(tmp_path, bad_name, fragment):
    market_tree(tmp_path)
    touch_files(tmp_path / MARKET_RELEASE / GALLERY, [bad_name])
    with pytest.raises(UserError) as err:
        datasets.create("market1501", str(tmp_path))
    assert fragment in str(err.value)
    assert str(tmp_path / MARKET_RELEASE / GALLERY / bad_name) in str(err.value)


def test_market_empty_or_all_junk_split(tmp_path):
    market_tree(tmp_path)
    query = tmp_path / MARKET_RELEASE / QUERY
    for f in query.iterdir():
        f.unlink()
    with pytest.raises(UserError, match=r"no \*\.jpg images in .*query"):
        datasets.create("market1501", str(tmp_path))
    touch_files(query, ["-1_c1s1_000001_01.jpg"])
    with pytest.raises(UserError, match=r"only junk .*query"):
        datasets.create("market1501", str(tmp_path))


def test_duke_exact_lists_and_errors(tmp_path):
    release = make_folder_tree(tmp_path, DUKE_RELEASE, {
        TRAIN: ["0005_c2_f0046182.jpg", "0001_c8_f0000001.jpg", "0001_c1_f0000002.jpg"],
        QUERY: ["0005_c3_f0000100.jpg"],
        GALLERY: ["0005_c7_f0000200.jpg", "0003_c1_f0000300.jpg"],
    })
    ds = datasets.create("dukemtmc", str(tmp_path), verbose=False)
    tr, q, g = (str(release / s) for s in FOLDER_SPLITS)
    assert ds.train == [(os.path.join(tr, "0001_c1_f0000002.jpg"), 0, 0),
                        (os.path.join(tr, "0001_c8_f0000001.jpg"), 0, 7),
                        (os.path.join(tr, "0005_c2_f0046182.jpg"), 1, 1)]
    assert ds.query == [(os.path.join(q, "0005_c3_f0000100.jpg"), 5, 2)]
    assert ds.gallery == [(os.path.join(g, "0003_c1_f0000300.jpg"), 3, 0),
                          (os.path.join(g, "0005_c7_f0000200.jpg"), 5, 6)]
    assert (ds.num_train_pids, ds.num_train_cams, ds.name) == (2, 3, "dukemtmc")
    # A Market-style name is not a Duke name.
    touch_files(release / QUERY, ["0005_c3s1_000001_01.jpg"])
    with pytest.raises(UserError, match=r"dukemtmc: cannot parse file name .*0005_c3s1"):
        datasets.create("dukemtmc", str(tmp_path))
    with pytest.raises(UserError, match=r"DukeMTMC-reID/\{bounding_box_train,query,"):
        datasets.create("dukemtmc", str(tmp_path / "elsewhere"))


MSMT_LISTS = {
    "list_train.txt": [("0003/0003_002_05_0303noon_0100_1.jpg", 3),
                       ("0000/0000_000_01_0303morning_0015_0.jpg", 0)],
    "list_val.txt": [("0001/0001_001_15_0303afternoon_0010_0.jpg", 1),
                     ("0000/0000_005_03_0303morning_0200_0.jpg", 0)],
    "list_query.txt": [("0002/0002_000_11_0303morning_0001_0.jpg", 2),
                       ("0000/0000_001_02_0303noon_0002_0.jpg", 0)],
    "list_gallery.txt": [("0002/0002_003_04_0303noon_0003_0.jpg", 5)],
}


def test_msmt_v1_train_val_merge_and_list_paths(tmp_path):
    base = make_msmt_tree(tmp_path, "MSMT17_V1", "train", "test", MSMT_LISTS)
    with open(base / "list_gallery.txt", "a") as handle:
        handle.write("\n   \n")  # trailing blank lines are tolerated
    ds = datasets.create("msmt17", str(tmp_path), verbose=False)
    tr, te = str(base / "train"), str(base / "test")
    assert ds.images_dir == str(base)
    # list_train + list_val, sorted by path; ids 0,1,3 -> 0,1,2; cameras 0-based.
    assert ds.train == [(os.path.join(tr, "0000/0000_000_01_0303morning_0015_0.jpg"), 0, 0),
                        (os.path.join(tr, "0000/0000_005_03_0303morning_0200_0.jpg"), 0, 2),
                        (os.path.join(tr, "0001/0001_001_15_0303afternoon_0010_0.jpg"), 1, 14),
                        (os.path.join(tr, "0003/0003_002_05_0303noon_0100_1.jpg"), 2, 4)]
    assert ds.query == [(os.path.join(te, "0000/0000_001_02_0303noon_0002_0.jpg"), 0, 1),
                        (os.path.join(te, "0002/0002_000_11_0303morning_0001_0.jpg"), 2, 10)]
    # The list label (5), not the file name prefix, is the gallery id.
    assert ds.gallery == [(os.path.join(te, "0002/0002_003_04_0303noon_0003_0.jpg"), 5, 3)]
    assert (ds.num_train_pids, ds.num_train_cams) == (3, 4)


def test_msmt_v2_fallback_only_without_v1(tmp_path):
    v2 = make_msmt_tree(tmp_path, "MSMT17_V2", "mask_train_v2", "mask_test_v2", MSMT_LISTS)
    ds = datasets.create("msmt17", str(tmp_path), verbose=False)
    assert ds.images_dir == str(v2)
    assert ds.train[0][0] == str(v2 / "mask_train_v2/0000/0000_000_01_0303morning_0015_0.jpg")
    assert ds.gallery[0][0] == str(v2 / "mask_test_v2/0002/0002_003_04_0303noon_0003_0.jpg")
    v1 = make_msmt_tree(tmp_path, "MSMT17_V1", "train", "test", MSMT_LISTS)
    assert datasets.create("msmt17", str(tmp_path), verbose=False).images_dir == str(v1)


def test_msmt_missing_pieces(tmp_path):
    with pytest.raises(UserError) as err:
        datasets.create("msmt17", str(tmp_path))
    msg = str(err.value)
    assert "train,test,list_train.txt,list_val.txt,list_query.txt,list_gallery.txt" in msg
    assert msg.endswith(f"missing {tmp_path / 'MSMT17_V1'}")
    base = make_msmt_tree(tmp_path, "MSMT17_V1", "train", "test", MSMT_LISTS)
    (base / "list_val.txt").unlink()
    with pytest.raises(UserError, match=r"missing .*MSMT17_V1/list_val\.txt$"):
        datasets.create("msmt17", str(tmp_path))


@pytest.mark.parametrize("line, fragment", [
    ("0000/0000_000_01_0303morning_0015_0.jpg\n", "list_query.txt line 3: expected"),
    ("0000/0000_000_01_0303morning_0015_0.jpg x\n", "list_query.txt line 3: expected"),
    ("0000/0000_000_xx_0303morning_0015_0.jpg 0\n", "cannot parse file name"),
    ("0000/0000_000_16_0303morning_0015_0.jpg 0\n", "camera 16 out of range 1..15"),
])
def test_msmt_malformed_list_lines(tmp_path, line, fragment):
    base = make_msmt_tree(tmp_path, "MSMT17_V1", "train", "test", MSMT_LISTS)
    with open(base / "list_query.txt", "a") as handle:
        handle.write(line)
    with pytest.raises(UserError, match=fragment):
        datasets.create("msmt17", str(tmp_path))


def test_msmt_empty_list(tmp_path):
    base = make_msmt_tree(tmp_path, "MSMT17_V1", "train", "test", MSMT_LISTS)
    (base / "list_gallery.txt").write_text("")
    with pytest.raises(UserError, match=r"no images listed in .*list_gallery\.txt"):
        datasets.create("msmt17", str(tmp_path))
