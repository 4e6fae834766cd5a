"""Synthetic two-domain data: layout, names, determinism, splits, domain gap."""
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dualref.datasets.synthetic import MARKER, generate, main
from dualref.utils.errors import UserError

SMALL = dict(num_ids=8, images_per_id=4, gallery_per_id=4, height=32, width=16)
MARKET_NAME = re.compile(r"(-1|\d{4})_c([1-6])s\d_\d{6}_\d{2}\.jpg")
DUKE_NAME = re.compile(r"(\d{4})_c([1-8])_f\d{7}\.jpg")
RELEASES = {"market1501": ("Market-1501-v15.09.15", MARKET_NAME),
            "dukemtmc": ("DukeMTMC-reID", DUKE_NAME)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root, seed=3, **SMALL)
    return root


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def _split(root: Path, domain: str, split: str) -> list:
    """(pid, cam) of every file of a split, parsed with the real name format."""
    release, pattern = RELEASES[domain]
    out = []
    for path in sorted((root / domain / release / split).iterdir()):
        match = pattern.fullmatch(path.name)
        assert match, path.name
        out.append((int(match[1]), int(match[2])))
    return out


@pytest.mark.parametrize("domain", list(RELEASES))
def test_layout_names_and_splits(data, domain):
    train, query, gallery = (_split(data, domain, s)
                             for s in ("bounding_box_train", "query", "bounding_box_test"))
    train_ids = {p for p, _ in train}
    assert len(train_ids) == 4 and len(train) >= 16
    assert not train_ids & {p for p, _ in query + gallery}  # disjoint train / test ids
    cams = defaultdict(set)
    for pid, cam in train + query + gallery:
        cams[pid].add(cam)
    assert all(len(cams[p]) >= 2 for p in train_ids | {p for p, _ in query})
    for pid, cam in query:
        assert any(g == pid and c != cam for g, c in gallery), (pid, cam)
    with Image.open(next((data / domain).rglob("*.jpg"))) as img:
        assert img.size == (16, 32)


def test_market_has_junk_and_distractors(data):
    gallery_ids = [p for p, _ in _split(data, "market1501", "bounding_box_test")]
    assert gallery_ids.count(-1) >= 1 and gallery_ids.count(0) >= 2


def test_loaders_read_it(data):
    datasets = pytest.importorskip("dualref.datasets")
    if not hasattr(datasets, "create"):
        pytest.skip("dualref.datasets.create not available yet")
    market = datasets.create("market1501", data / "market1501")
    duke = datasets.create("dukemtmc", data / "dukemtmc")
    for ds, num_cams in ((market, 6), (duke, 8)):
        assert {pid for _, pid, _ in ds.train} == set(range(4))
        assert all(0 <= cam < num_cams for _, _, cam in ds.train + ds.query + ds.gallery)
        assert len(ds.query) >= 4 and all(pid > 0 for _, pid, _ in ds.query)
    assert all(pid != -1 for _, pid, _ in market.gallery)
    assert any(pid == 0 for _, pid, _ in market.gallery)


def test_deterministic_per_seed(data, tmp_path):
    generate(tmp_path / "same", seed=3, **SMALL)
    generate(tmp_path / "other", seed=4, **SMALL)
    reference = _files(data)
    assert _files(tmp_path / "same") == reference
    assert _files(tmp_path / "other") != reference


def _mean_colour(root: Path, domain: str) -> np.ndarray:
    images = [np.asarray(Image.open(p), dtype=np.float64) for p in (root / domain).rglob("*.jpg")]
    return np.mean([img.reshape(-1, 3).mean(0) for img in images], axis=0)


def test_domains_differ_in_image_statistics(data):
    market, duke = _mean_colour(data, "market1501"), _mean_colour(data, "dukemtmc")
    assert market.mean() - duke.mean() > 40  # bright outdoor vs dark indoor (0..255 scale)


def test_skip_force_and_refuse_foreign_data(tmp_path, caplog):
    args = dict(seed=1, domains=["dukemtmc"], **SMALL)
    first = generate(tmp_path, **args)["dukemtmc"]
    marker = tmp_path / "dukemtmc" / MARKER
    stamp = marker.stat().st_mtime_ns
    assert generate(tmp_path, **args)["dukemtmc"]["skipped"]
    assert marker.stat().st_mtime_ns == stamp
    again = generate(tmp_path, force=True, **args)["dukemtmc"]
    assert not again["skipped"] and again["images"] == first["images"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dukemtmc"]  # no temp leftovers
    (tmp_path / "market1501").mkdir()
    with pytest.raises(UserError, match="not written by the synthetic generator"):
        generate(tmp_path, seed=1, domains=["market1501"], **SMALL)


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert main([str(tmp_path), "--num-ids", "1"]) == 2
    assert "num_ids" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--domains", "msmt17"])


def _attributes(person):
    return {"top": tuple(person.top), "pattern": person.pattern, "bag": person.bag,
            "bottom": tuple(person.bottom), "accent": tuple(person.accent),
            "hair": (tuple(person.hair), person.long_hair)}


def test_hard_scenes_have_twins_that_differ_in_one_attribute():
    from dualref.datasets import synthetic as syn

    layout, style = syn.LAYOUTS["market1501"], syn.sr.STYLES["market1501"]
    shots = syn.plan(np.random.default_rng([0, layout.code, 0]), layout, 60, 6, 1, 4)
    easy = syn._people(shots, 0, layout, style, syn.SCENES["easy"])
    hard = syn._people(shots, 0, layout, style, syn.SCENES["hard"])
    def one_apart(people):
        attrs = [_attributes(p) for p in people.values()]
        return sum(any(sum(a[k] != b[k] for k in a) == 1 for b in attrs if b is not a)
                   for a in attrs)
    assert one_apart(hard) >= 0.2 * len(hard) > one_apart(easy)
    assert sum(p.back_top is not None for p in hard.values()) >= 0.3 * len(hard)
    assert all(p.back_top is None for p in easy.values())


def _pixels(path):
    return np.asarray(Image.open(path), dtype=np.float32)


@pytest.mark.parametrize("scenes", ["easy", "hard"])
def test_tracklets_are_consecutive_near_identical_frames(tmp_path, scenes):
    generate(tmp_path, seed=0, num_ids=12, images_per_id=8, gallery_per_id=4, height=32,
             width=16, domains=["dukemtmc"], scenes=scenes)
    folder = tmp_path / "dukemtmc" / "DukeMTMC-reID" / "bounding_box_train"
    names = sorted(p.name for p in folder.iterdir())
    close = 0
    for a, b in zip(names, names[1:]):
        same_cam = a.split("_f")[0] == b.split("_f")[0]
        next_frame = int(b.split("_f")[1][:7]) == int(a.split("_f")[1][:7]) + 1
        if same_cam and next_frame:
            diff = np.abs(_pixels(folder / a) - _pixels(folder / b)).mean()
            close += diff < 25
    assert (close >= 5) if scenes == "hard" else (close == 0)


def test_unknown_scenes_are_refused(tmp_path):
    with pytest.raises(UserError, match="scenes"):
        generate(tmp_path, scenes="medium", **SMALL)


def test_camera_view_bias():
    from dualref.datasets import synthetic_render as sr

    rng = np.random.default_rng(0)
    for _ in range(10):
        probs = sr.view_bias(rng, 0.6)
        assert sum(probs) == pytest.approx(1.0) and max(probs) >= 0.6


@pytest.mark.parametrize("domain,num_ids", [("market1501", 200), ("dukemtmc", 800)])
def test_person_ids_stay_in_the_release_range(domain, num_ids):
    """Market-1501 ids end at 1501, Duke's at 7140 (tools written for them assert it)."""
    from dualref.datasets.synthetic import LAYOUTS, plan

    layout = LAYOUTS[domain]
    shots = plan(np.random.default_rng(0), layout, num_ids, 2, 1, 2)
    pids = {s.pid for s in shots if s.pid > 0}
    assert len(pids) >= num_ids
    assert max(pids) <= layout.max_pid
    # below the cap the ids spread over 1 .. 10 N + 9 as before (the demo's data unchanged)
    small = {s.pid for s in plan(np.random.default_rng(0), layout, 100, 2, 1, 2) if s.pid > 0}
    assert 1009 >= max(small) > 500


def test_too_many_ids_for_the_release_is_refused(tmp_path):
    with pytest.raises(UserError, match="num_ids=1600: market1501 person ids go up to 1501"):
        generate(tmp_path, num_ids=1600, domains=("market1501",))
    assert not any(tmp_path.iterdir())
