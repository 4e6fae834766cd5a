"""SpreadLoss against a brute-force, sort-based oracle of the authors' definition."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dualref.losses.spread import SpreadLoss
from dualref.utils.errors import UserError


def oracle_loss(inputs, memory, indexes, knn, m):
    """Per-sample loss: explicit sort, explicit positive list, double loop over pairs."""
    slots = F.normalize(memory, dim=1)
    num = memory.shape[0]
    per_sample = []
    for b in range(inputs.shape[0]):
        s = slots @ inputs[b]
        order = sorted(range(num), key=lambda j: -s[j].item())
        positives = [s[int(indexes[b])]] + [s[j] for j in order[:knn]]
        negatives = [s[j] for j in order[knn:num - 1]]
        total = torch.zeros((), dtype=s.dtype)
        for p in positives:
            for n in negatives:
                total = total + torch.exp(n - p + m)
        per_sample.append(torch.log(1 + total))
    return torch.stack(per_sample).mean()


def make_case(batch, num, dim, seed, own_on_top=False):
    """Random float64 features, unnormalised memory and indexes (repeats allowed)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = F.normalize(torch.randn(batch, dim, generator=gen, dtype=torch.float64), dim=1)
    memory = torch.randn(num, dim, generator=gen, dtype=torch.float64) * 3
    indexes = torch.randint(0, num, (batch,), generator=gen)
    if own_on_top:
        # Memory initialised from the same features: the own slot is the top neighbour.
        memory[indexes] = inputs * 2
    return inputs, memory, indexes


def run_module(inputs, memory, indexes, knn, m, grad_scale=1.0):
    """Loss value and gradients (inputs, memory) from SpreadLoss in float64."""
    module = SpreadLoss(memory.shape[1], memory.shape[0], m=m, knn=knn, grad_scale=grad_scale).double()
    with torch.no_grad():
        module.memory.copy_(memory)
    x = inputs.clone().requires_grad_(True)
    loss = module(x, indexes)
    loss.backward()
    return loss.detach(), x.grad, module.memory.grad


def run_oracle(inputs, memory, indexes, knn, m):
    """Loss value and gradients (inputs, memory) from the oracle."""
    x = inputs.clone().requires_grad_(True)
    mem = memory.clone().requires_grad_(True)
    loss = oracle_loss(x, mem, indexes, knn, m)
    loss.backward()
    return loss.detach(), x.grad, mem.grad


@pytest.mark.parametrize(
    "batch,num,dim,knn,m,seed,own_on_top",
    [
        (5, 30, 8, 6, 0.35, 0, False),
        (5, 30, 8, 6, 0.35, 1, True),
        (4, 25, 6, 1, 0.35, 2, True),
        (4, 25, 6, 1, 0.0, 3, False),
        (3, 8, 5, 6, 0.35, 4, True),  # N = knn + 2: exactly one negative
        (3, 8, 5, 6, 0.5, 5, False),
        (6, 12, 4, 3, 0.2, 6, False),
        (4, 20, 4, 0, 0.35, 7, False),  # knn = 0: own slot is the only positive
    ],
)
def test_matches_oracle_value_and_gradients(batch, num, dim, knn, m, seed, own_on_top):
    case = make_case(batch, num, dim, seed, own_on_top)
    got = run_module(*case, knn, m)
    want = run_oracle(*case, knn, m)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


def test_repeated_indexes_in_batch():
    inputs, memory, _ = make_case(6, 15, 5, seed=8)
    indexes = torch.tensor([3, 3, 3, 7, 7, 0])
    got = run_module(inputs, memory, indexes, 4, 0.35)
    want = run_oracle(inputs, memory, indexes, 4, 0.35)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


def test_pinned_by_hand():
    # Slots e1..e4, f = (0.8, 0.6, 0, 0), own slot 1, knn 1: sorted s = 0.8, 0.6, 0, 0.
    # Positives {s_1 = 0.6, top-1 = 0.8}; negatives = ranks 1..2 = {0.6, 0}.
    m = 0.35
    pairs = [(n, p) for p in (0.6, 0.8) for n in (0.6, 0.0)]
    want = math.log(1 + sum(math.exp(n - p + m) for n, p in pairs))
    module = SpreadLoss(4, 4, init_memory=torch.eye(4), m=m, knn=1)
    loss = module(torch.tensor([[0.8, 0.6, 0.0, 0.0]]), torch.tensor([1]))
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_own_slot_top_counts_twice():
    # Own slot 0 is the top-1 too: positives {1, 1}; negatives = rank 1 only ({0.6}).
    m = 0.35
    want = math.log(1 + 2 * math.exp(0.6 - 1.0 + m))
    memory = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]])
    module = SpreadLoss(2, 3, init_memory=memory, m=m, knn=1)
    loss = module(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(want, rel=1e-6)


def tie_group_sums(grad, memory):
    """Sum memory-gradient rows over groups of identical slots (which tied slot gets it is free)."""
    _, group = torch.unique(memory, dim=0, return_inverse=True)
    return torch.zeros(int(group.max()) + 1, grad.shape[1], dtype=grad.dtype).index_add_(0, group, grad)


@pytest.mark.parametrize("knn", [1, 3, 6])
def test_ties_from_duplicate_slots(knn):
    inputs, memory, indexes = make_case(4, 14, 5, seed=9, own_on_top=True)
    memory[8:14] = memory[indexes[0]]  # many exact copies of one sample's own slot
    memory[5] = memory[2]
    got = run_module(inputs, memory, indexes, knn, 0.35)
    want = run_oracle(inputs, memory, indexes, knn, 0.35)
    torch.testing.assert_close(got[0], want[0], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(got[1], want[1], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(tie_group_sums(got[2], memory), tie_group_sums(want[2], memory))


@pytest.mark.parametrize("knn", [1, 2, 4])
def test_ties_everywhere_value(knn):
    # f orthogonal to every slot: all similarities are 0 except ties at the last rank.
    inputs = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    memory = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0], [1.0, -1.0, 0], [2.0, 0, 0], [0, 0, -1.0]],
                          dtype=torch.float64)
    indexes = torch.tensor([0, 5])
    got = run_module(inputs, memory, indexes, knn, 0.35)[0]
    want = run_oracle(inputs, memory, indexes, knn, 0.35)[0]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_all_equal_keeps_one_dropped_slot():
    # All N entries tie: negatives must still be exactly N - knn - 1 of them.
    num, knn, m = 5, 2, 0.35
    module = SpreadLoss(2, num, init_memory=torch.ones(num, 2), m=m, knn=knn)
    s = 1.0
    loss = module(F.normalize(torch.ones(1, 2), dim=1), torch.tensor([0]))
    want = math.log(1 + (knn + 1) * (num - knn - 1) * math.exp(s - s + m))
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_grad_scale_scales_memory_gradient_only():
    case = make_case(4, 20, 6, seed=10, own_on_top=True)
    want = run_oracle(*case, 6, 0.35)
    got = run_module(*case, 6, 0.35, grad_scale=2.0)  # 1 / lmd with lmd = 0.5
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])
    torch.testing.assert_close(got[2], want[2] * 2.0)


def test_grad_scale_is_settable():
    module = SpreadLoss(6, 20, m=0.35, knn=6)
    module.grad_scale = 0.25
    x = F.normalize(torch.randn(3, 6), dim=1)
    module(x, torch.tensor([0, 1, 2])).backward()
    scaled = module.memory.grad.clone()
    module.memory.grad = None
    module.grad_scale = 1.0
    module(x, torch.tensor([0, 1, 2])).backward()
    torch.testing.assert_close(scaled, module.memory.grad * 0.25)
    with pytest.raises(UserError, match="grad_scale"):
        module.grad_scale = -1.0


def test_autocast_bf16_is_float32_and_close():
    torch.manual_seed(0)
    feats = F.normalize(torch.randn(64, 2048), dim=1)
    module = SpreadLoss(2048, 500, init_memory=torch.cat([feats, torch.randn(436, 2048)]))
    indexes = torch.arange(64)
    ref = module(feats, indexes)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_fp32_in = module(feats, indexes)
        loss_bf16_in = module(feats.bfloat16().requires_grad_(True), indexes)
    assert loss_fp32_in.dtype == loss_bf16_in.dtype == torch.float32
    torch.testing.assert_close(loss_fp32_in, ref)
    assert torch.isfinite(loss_bf16_in)
    torch.testing.assert_close(loss_bf16_in, ref, rtol=2e-2, atol=1e-3)
    loss_bf16_in.backward()
    assert module.memory.grad.dtype == torch.float32
    assert torch.isfinite(module.memory.grad).all()


def test_memory_initialisation():
    init = np.arange(12, dtype=np.float64).reshape(3, 4) + 1
    module = SpreadLoss(4, 3, init_memory=init, knn=1)
    assert isinstance(module.memory, torch.nn.Parameter)
    assert module.memory.dtype == torch.float32
    torch.testing.assert_close(module.memory.data, F.normalize(torch.from_numpy(init).float(), dim=1))
    assert [name for name, _ in module.named_parameters()] == ["memory"]
    assert "memory" in module.state_dict()
    rand = SpreadLoss(4, 10).memory.data
    assert rand.shape == (10, 4)
    torch.testing.assert_close(rand.norm(dim=1), torch.ones(10))
    with pytest.raises(UserError, match="init_memory"):
        SpreadLoss(4, 3, init_memory=torch.zeros(3, 5), knn=1)


def test_optimiser_updates_memory():
    module = SpreadLoss(6, 20, knn=3)
    before = module.memory.detach().clone()
    opt = torch.optim.Adam([{"params": [module.memory], "lr": 1e-2, "weight_decay": 5e-4}])
    module(F.normalize(torch.randn(4, 6), dim=1), torch.tensor([0, 1, 2, 3])).backward()
    opt.step()
    assert not torch.equal(module.memory.detach(), before)


@pytest.mark.parametrize(
    "kwargs,option",
    [
        ({"knn": 10}, "knn"),
        ({"knn": 9}, "knn"),  # N - 1: no negative would remain
        ({"knn": -1}, "knn"),
        ({"m": -0.1}, "m="),
    ],
)
def test_options_out_of_range(kwargs, option):
    with pytest.raises(UserError, match=option):
        SpreadLoss(4, 10, **kwargs)


def test_bad_batch_shape():
    module = SpreadLoss(4, 10)
    with pytest.raises(UserError, match="inputs"):
        module(torch.randn(3, 5), torch.tensor([0, 1, 2]))
    with pytest.raises(UserError, match="indexes"):
        module(torch.randn(3, 4), torch.tensor([0, 1]))
