"""Warm-up multi-step schedule against SPEC stage 1 (3.5e-4, warm-up 0.01x over 10 epochs, x0.1 at 40/70)."""
import io
import warnings

import pytest
import torch

from dualref.utils.errors import UserError
from dualref.utils.lr_scheduler import WarmupMultiStepLR, lr_factor

BASE = 3.5e-4


def make(base=BASE):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base)
    return opt, WarmupMultiStepLR(opt, [40, 70], gamma=0.1, warmup_factor=0.01, warmup_iters=10)


def expected_factor(last_epoch):
    """Written out by hand: 0.01 + 0.099 * e during warm-up, then 1, 0.1, 0.01."""
    if last_epoch < 10:
        return 0.01 + 0.099 * last_epoch
    if last_epoch < 40:
        return 1.0
    if last_epoch < 70:
        return 0.1
    return 0.01


def test_pure_function_values():
    table = {0: 3.5e-6, 1: 3.815e-5, 5: 1.7675e-4, 9: 3.1535e-4, 10: 3.5e-4, 39: 3.5e-4,
             40: 3.5e-5, 69: 3.5e-5, 70: 3.5e-6, 79: 3.5e-6}
    for epoch, lr in table.items():
        assert BASE * lr_factor(epoch, [40, 70]) == pytest.approx(lr, rel=1e-12)
        assert lr_factor(epoch, [40, 70]) == pytest.approx(expected_factor(epoch), rel=1e-12)
    assert lr_factor(3, [40], warmup_method="constant") == pytest.approx(0.01)


def test_authors_calling_pattern_step_at_epoch_start():
    opt, sched = make()
    assert opt.param_groups[0]["lr"] == pytest.approx(3.5e-6)  # after construction: last_epoch 0
    trained = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step() before optimizer.step() is the authors' order
        for _ in range(80):
            sched.step()
            trained.append(opt.param_groups[0]["lr"])
            opt.step()
    # 0-based epoch e trains with the factor of e + 1.
    assert trained[0] == pytest.approx(BASE * 0.109)
    assert trained[8] == pytest.approx(BASE * 0.901)
    assert trained[9] == pytest.approx(BASE)
    assert trained[38] == pytest.approx(BASE) and trained[39] == pytest.approx(BASE * 0.1)
    assert trained[68] == pytest.approx(BASE * 0.1) and trained[69] == pytest.approx(BASE * 0.01)
    assert trained == pytest.approx([BASE * expected_factor(e + 1) for e in range(80)], rel=1e-12)


def test_state_dict_resume_through_weights_only_load():
    opt, sched = make()
    for _ in range(42):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2, sched2 = make()
    sched2.load_state_dict(state)
    opt2.step()
    sched2.step()
    opt.step()
    sched.step()
    assert sched2.last_epoch == 43
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"]) == pytest.approx(3.5e-5)


def test_rejects_bad_options():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(UserError, match=r"milestones=\[70, 40\]: must be increasing"):
        WarmupMultiStepLR(opt, [70, 40])
    with pytest.raises(UserError, match="cosine"):
        WarmupMultiStepLR(opt, [40], warmup_method="cosine")
