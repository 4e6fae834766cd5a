"""The clusterer interface: the table, --cluster, a toy clusterer end to end, Infomap."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import IMAGE_OPTS
from dualref import clustering
from dualref.clustering.base import Clusterer, relabel_consecutive
from dualref.clustering.infomap import InfomapClusterer, knn_graph
from dualref.clustering.quality import cluster_quality
from dualref.pipeline.adapt import AdaptConfig, adapt
from dualref.utils.checkpoint import load_checkpoint
from dualref.utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class EveryKth(Clusterer):
    """Toy: sample i joins cluster (i mod k); counts its calls across epochs (its state)."""

    needs_distances = False

    def __init__(self, k: int = 4) -> None:
        self.k, self.calls = k, 0

    def fit(self, features, dist=None, fill=1.0):
        self.calls += 1
        return np.arange(len(features)) % self.k

    def stats(self):
        return {"toy_calls": self.calls}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state.get("calls", 0))


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(clustering.CLUSTERERS, "every_kth", EveryKth)


def _config(root, logs_dir, init, **overrides):
    cfg = dict(dataset_source="dukemtmc", dataset_target="market1501", data_dir=root,
               logs_dir=str(logs_dir), init=init, arch="resnet18", batch_size=16,
               num_instances=4, workers=0, epochs=1, iters=2, R=2, device="cpu",
               verbose=False, print_freq=1000, **IMAGE_OPTS)
    cfg.update(overrides)
    return AdaptConfig(**cfg)


def test_a_registered_clusterer_drives_an_epoch_and_resumes(toy_registered, synthetic_root,
                                                           init_checkpoint, tmp_path):
    adapt(_config(synthetic_root, tmp_path, init_checkpoint, cluster="every_kth",
                  cluster_options={"k": 5}))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["num_clusters"] == 5 and record["num_outliers"] == 0
    assert record["toy_calls"] == 1 and "eps" not in record and "seconds_jaccard" not in record
    assert load_checkpoint(tmp_path / "checkpoint.pth.tar")["clusterer"] == {"calls": 1}
    # Resume: the clusterer's state comes back from the checkpoint (calls 1 -> 2).
    adapt(_config(synthetic_root, tmp_path, init_checkpoint, cluster="every_kth",
                  cluster_options={"k": 5}, epochs=2, resume="auto"))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["epoch"] == 1 and record["toy_calls"] == 2


def test_dbscan_is_the_default_and_keeps_eps_in_its_state(synthetic_root, init_checkpoint,
                                                          tmp_path):
    cfg = _config(synthetic_root, tmp_path, init_checkpoint, rho=0.02)
    assert cfg.cluster == "dbscan"
    adapt(cfg)
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    state = load_checkpoint(tmp_path / "checkpoint.pth.tar")["clusterer"]
    assert state == {"eps": record["eps"], "rho": 0.02, "min_samples": 4}


def test_create_and_options():
    assert clustering.names() == sorted(clustering.CLUSTERERS) and "dbscan" in clustering.names()
    db = clustering.create("dbscan", shared={"rho": 0.01, "min_samples": 3})
    assert (db.rho, db.min_samples) == (0.01, 3)
    im = clustering.create("infomap", shared={"rho": 0.01, "min_samples": 3}, k=7)
    assert im.k == 7  # infomap takes no rho: the shared value is not forced on it
    with pytest.raises(UserError, match="expected one of: dbscan, infomap"):
        clustering.create("kmeans")
    with pytest.raises(UserError, match="not an option of infomap"):
        clustering.create("infomap", eps=0.3)
    assert clustering.parse_options(["k=15", "min_sim=0.6", "name=x"]) == \
        {"k": 15, "min_sim": 0.6, "name": "x"}
    with pytest.raises(UserError, match="KEY=VALUE"):
        clustering.parse_options(["k15"])


def test_wrong_cluster_name_is_one_line_listing_the_names(synthetic_root, init_checkpoint,
                                                          tmp_path):
    proc = subprocess.run([sys.executable, "examples/dual_refine_train.py", "--cluster", "kmeans",
                           "--data-dir", synthetic_root, "--init", init_checkpoint, "-a",
                           "resnet18", "--logs-dir", str(tmp_path), "--device", "cpu", "-j", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "--cluster kmeans: unknown clusterer" in lines[0] and "dbscan, infomap" in lines[0]


def test_knn_graph_matches_a_full_sort():
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    idx, sim = knn_graph(x, 7)
    xn = torch.nn.functional.normalize(x, dim=1).numpy()
    full = xn @ xn.T
    np.fill_diagonal(full, -np.inf)
    want = np.argsort(-full, axis=1, kind="stable")[:, :7]
    np.testing.assert_allclose(sim, np.take_along_axis(full, want, 1), atol=1e-5)
    assert (np.sort(idx, 1) == np.sort(want, 1)).mean() > 0.999  # ties may swap


def test_infomap_recovers_separated_groups_and_isolates_outliers():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(12, 32, generator=g)
    x = centres.repeat_interleave(6, 0) + 0.25 * torch.randn(72, 32, generator=g)
    lonely = torch.randn(3, 32, generator=g) * 5  # far from everything and each other
    labels = InfomapClusterer(k=5, min_sim=0.5).fit(torch.cat([x, lonely]))
    truth = np.repeat(np.arange(12), 6)
    assert cluster_quality(labels[:72], truth)["fscore"] == 1.0
    assert (labels[72:] == -1).all()
    assert set(labels[labels >= 0]) == set(range(labels.max() + 1))  # consecutive ids


def test_infomap_edge_cases():
    assert (InfomapClusterer().fit(torch.randn(1, 8)) == -1).all()
    # every similarity below min_sim: no link, everyone an outlier
    x = torch.eye(10)
    assert (InfomapClusterer(min_sim=0.5).fit(x) == -1).all()


def test_relabel_consecutive_against_a_plain_loop():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(-1, 6, size=40) * 7
        labels[labels < 0] = -1
        got = relabel_consecutive(labels, min_size=3)
        mapping, want = {}, []
        counts = {v: int((labels == v).sum()) for v in set(labels.tolist())}
        for v in labels.tolist():
            if v < 0 or counts[v] < 3:
                want.append(-1)
            else:
                mapping.setdefault(v, len(mapping))
                want.append(mapping[v])
        assert got.tolist() == want
