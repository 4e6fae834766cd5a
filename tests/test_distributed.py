"""Two gloo processes on the CPU give the numbers of one process.

One spawn (2 ranks) checks: the loss trajectory over the same global batch
(ghost and rank-synchronised BatchNorm groups), gathered features in item
order, and that only rank 0 writes a run's files.
"""
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from conftest import IMAGE_OPTS
from dualref.datasets.samplers import BatchShardSampler, RandomMultipleGallerySampler

STEPS, BATCH, K, NUM_IDS = 3, 16, 4, 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Batches:
    """Fixed global batches of 4 ids x 4; this rank's slice of each."""

    def __init__(self, rank: int, world: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.batches, self.step, per = [], 0, BATCH // world
        for _ in range(STEPS):
            images = torch.randn(BATCH, 3, IMAGE_OPTS["height"], IMAGE_OPTS["width"], generator=gen)
            ids = torch.randperm(NUM_IDS, generator=gen)[:BATCH // K].repeat_interleave(K)
            indexes = ids * K + torch.arange(BATCH) % K
            part = slice(rank * per, (rank + 1) * per)
            self.batches.append((images[part], [""] * per, ids[part], torch.zeros(per).long(),
                                 indexes[part]))

    def next(self):
        self.step += 1
        return self.batches[self.step - 1]


def _trajectory(bn_group_size: int, rank: int = 0, world: int = 1):
    """Losses of STEPS Dual-Refinement steps and the final weights."""
    from dualref.losses.memory import SpreadOutMemory
    from dualref.losses.spread import SpreadLoss
    from dualref.models import create
    from dualref.pipeline.common import prepare_model
    from dualref.trainers import ClusterTrainer, LossWeights

    torch.manual_seed(0)
    model = create("resnet18", pretrained=False, num_classes=NUM_IDS * K, norm=True)
    model = prepare_model(model, torch.device("cpu"), BATCH, bn_group_size=bn_group_size)
    spread = SpreadLoss(512, NUM_IDS * K, init_memory=torch.randn(NUM_IDS * K, 512), knn=2)
    losses = []

    class Recording(ClusterTrainer):
        def compute_losses(self, batch):
            terms = super().compute_losses(batch)
            losses.append(float(terms["loss"].detach()))
            return terms

    trainer = Recording(model, NUM_IDS, LossWeights(alpha=0.5, lmd=0.5),
                        refined_labels=torch.arange(NUM_IDS * K) // K,
                        terms=[SpreadOutMemory(spread, 0.1)],
                        device=torch.device("cpu"), verbose=False)
    # SGD, not Adam: Adam's step would amplify float noise of near-zero gradients.
    optimizer = torch.optim.SGD(list(model.parameters()) + list(spread.parameters()), lr=1e-3)
    trainer.train_epoch(0, _Batches(rank, world), optimizer, STEPS)
    return losses, model, spread


def _write_images(folder) -> list:
    items = []
    rng = np.random.default_rng(0)
    for i in range(11):  # odd: the two ranks get different numbers of items
        path = os.path.join(folder, f"{i:02d}.png")
        Image.fromarray(rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)).save(path)
        items.append((path, i % 3, i % 2))
    return items


def _worker(rank: int, world: int, port: int, out: str, data_root: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from dualref.datasets.loaders import build_test_loader
    from dualref.features import extract_features
    from dualref.pipeline.pretrain import PretrainConfig, pretrain
    from dualref.utils import distributed
    from dualref.utils.device import setup_device, unwrap

    setup_device("cpu")
    result = {}
    for group in (4, 16):  # ghost groups inside a rank; groups synchronised over both ranks
        losses, model, spread = _trajectory(group, rank, world)
        result[group] = {"losses": losses, "memory": spread.memory.detach().clone(),
                         "state": {k: v.clone() for k, v in unwrap(model).state_dict().items()}}
    loader = build_test_loader(_write_images(out) if rank == 0 else [], 32, 16, 4, 0)
    items = distributed.broadcast_object(loader.dataset.items)
    loader = build_test_loader(items, 32, 16, batch_size=4, workers=0)
    result["items"] = items
    result["features"] = extract_features(model, loader, torch.device("cpu"), verbose=False)
    result["shard"] = len(loader.sampler)
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    pretrain(PretrainConfig(
        dataset_source="market1501", dataset_target="dukemtmc", data_dir=data_root,
        logs_dir=os.path.join(out, f"run{rank}"), arch="resnet18", pretrained=False,
        batch_size=16, num_instances=4, workers=0, epochs=1, iters=2, eval_step=1,
        device="cpu", verbose=False, **IMAGE_OPTS))
    distributed.shutdown()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, synthetic_root):
    out = str(tmp_path_factory.mktemp("ddp"))
    mp.spawn(_worker, args=(2, _free_port(), out, synthetic_root), nprocs=2, join=True)
    return out, [torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=False) for r in (0, 1)]


@pytest.mark.parametrize("group", [4, 16])
def test_two_ranks_follow_the_single_process_trajectory(two_ranks, group):
    _, ranks = two_ranks
    losses, model, spread = _trajectory(group)
    for result in ranks:
        assert result[group]["losses"] == pytest.approx(losses, rel=1e-4, abs=1e-5)
        assert torch.allclose(result[group]["memory"], spread.memory, atol=1e-5)
    state = model.state_dict()
    for key, value in ranks[0][group]["state"].items():  # rank 0's buffers are the model's
        assert torch.allclose(value.float(), state[key].float(), atol=1e-4), key


def test_gathered_features_are_single_process_features_in_item_order(two_ranks):
    from dualref.datasets.loaders import build_test_loader
    from dualref.features import extract_features
    from dualref.models import create

    _, ranks = two_ranks
    assert sorted(r["shard"] for r in ranks) == [5, 6]
    model = create("resnet18", pretrained=False, num_classes=NUM_IDS * K, norm=True)
    model.load_state_dict(ranks[0][16]["state"])
    loader = build_test_loader(ranks[0]["items"], 32, 16, batch_size=4, workers=0)
    single = extract_features(model, loader, torch.device("cpu"), verbose=False)
    for result in ranks:
        assert torch.allclose(result["features"], single, atol=1e-5)


def test_only_rank_zero_writes_run_files(two_ranks):
    out, _ = two_ranks
    assert not os.path.exists(os.path.join(out, "run1"))
    run0 = os.path.join(out, "run0")
    assert {"checkpoint.pth.tar", "model_best.pth.tar", "results.json",
            "metrics.jsonl"} <= set(os.listdir(run0))
    records = [json.loads(line) for line in open(os.path.join(run0, "metrics.jsonl"))]
    assert [r["epoch"] for r in records] == [0, 1]


def test_shards_cover_each_identity_once_and_concatenate_to_the_single_batches():
    items = [(f"{i}.jpg", i // 5, i % 3) for i in range(60)]  # 12 ids x 5 images
    single = list(RandomMultipleGallerySampler(items, num_instances=4, seed=3))
    world, batch = 2, 16
    shards = [list(BatchShardSampler(RandomMultipleGallerySampler(items, num_instances=4, seed=3),
                                     batch, world, r)) for r in range(world)]
    per = batch // world
    rebuilt = []
    for b in range(len(single) // batch):
        for shard in shards:
            rebuilt += shard[b * per:(b + 1) * per]
    assert rebuilt == single[:len(rebuilt)] and len(rebuilt) == 48
    pids = [items[i][1] for i in rebuilt]
    groups = [pids[i:i + 4] for i in range(0, len(pids), 4)]
    assert all(len(set(g)) == 1 for g in groups)  # whole identity groups on each rank
    assert sorted(g[0] for g in groups) == sorted(set(g[0] for g in groups))  # once per round
    # Deterministic per seed and pass.
    again = list(BatchShardSampler(RandomMultipleGallerySampler(items, num_instances=4, seed=3),
                                   batch, world, 1))
    assert again == shards[1]


def test_a_global_batch_that_breaks_identity_groups_is_refused():
    from dualref.datasets.loaders import build_train_loader
    from dualref.utils.errors import UserError

    items = [(f"{i}.jpg", i // 5, i % 3) for i in range(60)]
    with pytest.raises(UserError, match="multiple of 8"):
        build_train_loader(items, 32, 16, batch_size=12, num_instances=4, workers=0, iters=1,
                           num_replicas=2, rank=0)


def test_scripts_start_torchrun_when_asked():
    import subprocess

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(**env):
        full = {k: v for k, v in os.environ.items() if k not in ("NPROC", "NNODES")}
        full.update(TORCHRUN="echo torchrun", **env)
        return subprocess.run(["sh", "scripts/pretrain.sh", "dukemtmc", "market1501", "1", "--x"],
                              cwd=repo, env=full, capture_output=True, text=True).stdout

    single = run(NPROC="4")
    assert single.startswith("torchrun --standalone --nnodes 1 --nproc_per_node 4 "
                             "examples/source_pretrain.py -ds dukemtmc")
    assert single.rstrip().endswith("--x")
    multi = run(NPROC="8", NNODES="2", NODE_RANK="1", MASTER_ADDR="10.0.0.1", MASTER_PORT="1234")
    assert multi.startswith("torchrun --nnodes 2 --node_rank 1 --nproc_per_node 8 "
                            "--master_addr 10.0.0.1 --master_port 1234 examples/source_pretrain.py")
