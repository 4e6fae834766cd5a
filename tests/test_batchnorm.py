"""BatchNorm groups: same statistics and outputs as an explicit split of the batch."""
import copy

import pytest
import torch
from torch import nn

from dualref.models.batchnorm import GroupBatchNorm, convert_batchnorm, plan_groups
from dualref.utils.errors import UserError


def _pair(layer: nn.Module, group_size: int, stats: str = "first"):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(0.5, 1.5)
    return layer, convert_batchnorm(copy.deepcopy(layer), group_size, stats)


@pytest.mark.parametrize("make,shape", [(lambda: nn.BatchNorm2d(3), (12, 3, 4, 2)),
                                        (lambda: nn.BatchNorm1d(5), (12, 5))])
def test_groups_equal_an_explicit_split(make, shape):
    plain, grouped = _pair(make(), group_size=4)
    x = torch.randn(*shape, requires_grad=True)
    out = grouped(x)
    replicas = [copy.deepcopy(plain) for _ in range(3)]  # DataParallel replicas of 4 images
    expected = torch.cat([r(chunk) for r, chunk in zip(replicas, x.split(4))])
    assert torch.equal(out, expected)
    # Running statistics: the first group's update, as DataParallel kept device 0's.
    assert torch.equal(grouped.running_mean, replicas[0].running_mean)
    assert torch.equal(grouped.running_var, replicas[0].running_var)
    assert int(grouped.num_batches_tracked) == 1
    # Gradients flow to the input and the shared affine parameters.
    out.square().sum().backward()
    assert x.grad is not None and grouped.weight.grad is not None


def test_mean_statistics_average_the_groups():
    plain, grouped = _pair(nn.BatchNorm2d(3), group_size=4, stats="mean")
    x = torch.randn(8, 3, 2, 2)
    grouped(x)
    replicas = [copy.deepcopy(plain) for _ in range(2)]
    for r, chunk in zip(replicas, x.split(4)):
        r(chunk)
    expected = torch.stack([r.running_var for r in replicas]).mean(0)
    assert torch.allclose(grouped.running_var, expected)


def test_small_batches_and_eval_mode_are_plain_batchnorm():
    plain, grouped = _pair(nn.BatchNorm2d(3), group_size=16)
    x = torch.randn(16, 3, 2, 2)
    assert torch.equal(grouped(x), plain(x))  # one group: bit for bit the same
    assert torch.equal(grouped.running_mean, plain.running_mean)
    plain.eval(), grouped.eval()
    y = torch.randn(40, 3, 2, 2)
    assert torch.equal(grouped(y), plain(y))


def test_conversion_keeps_parameters_state_keys_and_frozen_bias():
    from dualref import models

    model = models.create("resnet18", pretrained=False, num_classes=4)
    keys = list(model.state_dict())
    bias = model.feat_bn.bias
    convert_batchnorm(model, 16)
    assert list(model.state_dict()) == keys
    assert isinstance(model.feat_bn, GroupBatchNorm) and model.feat_bn.bias is bias
    assert not model.feat_bn.bias.requires_grad
    assert all(not type(m).__name__.startswith("BatchNorm") for m in model.modules())


def test_plan_groups():
    assert plan_groups(16, 64) == 1 and plan_groups(0, 4) == 1
    assert plan_groups(16, 8) == 2 and plan_groups(16, 4) == 4
    with pytest.raises(UserError):
        plan_groups(16, 6)
