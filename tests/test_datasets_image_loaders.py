"""ImageDataset, IterLoader and the train/test loader builders on a tiny folder of images."""
import numpy as np
import pytest
import torch
from PIL import Image

from dualref.datasets.loaders import IterLoader, ImageDataset, build_test_loader, build_train_loader
from dualref.utils.errors import UserError


@pytest.fixture
def items(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    for pid in [-1, 0, 1, 2, 3]:
        for n in range(3):
            name = f"{pid:+d}_c{n}_{n}.{'png' if n % 2 else 'jpg'}"
            arr = rng.integers(0, 256, size=(20, 10, 3), dtype=np.uint8)
            Image.fromarray(arr).save(tmp_path / name)
            out.append((name, pid, n))
    return str(tmp_path), sorted(out)


def test_dataset_returns_item_and_index(items):
    root, data = items
    ds = ImageDataset(data, root=root)
    img, path, pid, camid, index = ds[4]
    assert (path, pid, camid, index) == (*data[4], 4)
    assert img.mode == "RGB" and img.size == (10, 20)


def test_bad_image_names_the_file(items, tmp_path):
    root, data = items
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    ds = ImageDataset(data + [("broken.jpg", 9, 0), ("missing.jpg", 9, 1)], root=root)
    with pytest.raises(UserError, match="broken.jpg"):
        ds[len(data)]
    with pytest.raises(UserError, match="missing.jpg"):
        ds[len(data) + 1]


def test_train_loader_yields_iters_batches_of_p_by_k(items):
    root, data = items
    loader = build_train_loader(data, 16, 8, batch_size=4, num_instances=2, workers=0, iters=5,
                                random_erasing=True, seed=0, root=root)
    assert len(loader) == 5
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == 5  # 4 ids x 2 = 2 batches per pass: the loader restarts
        for imgs, paths, pids, camids, index in batches:
            assert imgs.shape == (4, 3, 16, 8)
            for n, i in enumerate(index.tolist()):
                assert (paths[n], pids[n].item(), camids[n].item()) == data[i]
            assert -1 not in pids.tolist()
            assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]


def test_train_loader_seeded_with_workers(items):
    root, data = items

    def first_batches(seed):
        loader = build_train_loader(data, 16, 8, batch_size=4, num_instances=2, workers=1, iters=2,
                                    random_erasing=True, seed=seed, root=root)
        return [loader.next() for _ in range(2)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for x, y in zip(a, b):
        assert torch.equal(x[0], y[0]) and torch.equal(x[4], y[4])
    assert any(not torch.equal(x[0], z[0]) for x, z in zip(a, c))


def test_target_loader_plain_shuffle_and_too_large_batch(items):
    root, data = items
    loader = build_train_loader(data, 16, 8, batch_size=5, num_instances=0, workers=0, iters=3, root=root)
    seen = [loader.next()[4] for _ in range(3)]
    assert all(len(ix) == 5 for ix in seen)
    assert len(set(torch.cat(seen).tolist())) == 15  # one full pass covers every item, -1 included
    # a pass shorter than the batch (few identities) gives one smaller batch per pass
    short = build_train_loader(data, 16, 8, batch_size=10, num_instances=2, workers=0, iters=2, root=root)
    assert [len(short.next()[4]) for _ in range(2)] == [8, 8]
    outliers = [(p, -1, c) for p, _, c in data]
    with pytest.raises(UserError, match="outlier"):
        build_train_loader(outliers, 16, 8, batch_size=4, num_instances=2, workers=0, iters=1, root=root)
    with pytest.raises(UserError, match="not divisible"):
        build_train_loader(data, 16, 8, batch_size=6, num_instances=4, workers=0, iters=1, root=root)


def test_test_loader_keeps_item_order(items):
    root, data = items
    batches = list(build_test_loader(data, 16, 8, batch_size=4, workers=0, root=root))
    index = torch.cat([b[4] for b in batches])
    assert index.tolist() == list(range(len(data)))
    paths = [p for b in batches for p in b[1]]
    assert paths == [d[0] for d in data]


def test_iter_loader_restarts_and_new_epoch_resets():
    it = IterLoader([1, 2, 3], length=5)
    assert [it.next() for _ in range(5)] == [1, 2, 3, 1, 2]
    it.new_epoch()
    assert it.next() == 1
    assert list(it) == [1, 2, 3, 1, 2]
    with pytest.raises(RuntimeError, match="no batch"):
        IterLoader([], length=1).next()


@pytest.mark.parametrize("num_instances", [2, 0])
def test_iter_loader_state_resumes_the_same_batches(items, num_instances):
    import io
    root, data = items

    def make():
        return build_train_loader(data, 16, 8, batch_size=4, num_instances=num_instances, workers=1,
                                  iters=3, random_erasing=True, seed=4, root=root)

    run = make()
    run.new_epoch()
    [run.next() for _ in range(3)]  # epoch 0 (crosses a pass boundary)
    buf = io.BytesIO()
    torch.save(run.state_dict(), buf)
    buf.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    fresh = make()
    run.new_epoch()
    resumed.new_epoch()
    fresh.new_epoch()
    a, b, c = run.next(), resumed.next(), fresh.next()
    assert torch.equal(a[4], b[4]) and torch.equal(a[0], b[0])
    assert not (torch.equal(a[4], c[4]) and torch.equal(a[0], c[0]))
