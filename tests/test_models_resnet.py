"""The re-ID ResNet: key names of the released checkpoints, strides, outputs, weights."""
import urllib.error

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

from dualref import models
from dualref.models import resnet as resnet_mod
from dualref.utils.errors import UserError


@pytest.fixture(scope="module")
def resnet50():
    return models.create("resnet50", pretrained=False, num_classes=700)


def _r18(**kwargs) -> models.ReIDResNet:
    torch.manual_seed(0)
    return models.create("resnet18", pretrained=False, **kwargs)


def test_names_and_unknown_arch():
    assert models.names() == ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    with pytest.raises(UserError, match=r"arch='resnet51'.*resnet18, resnet34, resnet50"):
        models.create("resnet51", pretrained=False)
    with pytest.raises(UserError, match="train_feature='x'"):
        models.create("resnet18", pretrained=False, train_feature="x")


def test_resnet50_keys_match_released_checkpoints(resnet50):
    # Expected names derived from torchvision's own resnet50: conv1 -> base.0,
    # bn1 -> base.1, layerN -> base.(N+2); the ImageNet fc is dropped.
    renames = {"conv1.": "base.0.", "bn1.": "base.1.",
               **{f"layer{i}.": f"base.{i + 2}." for i in range(1, 5)}}
    expected = {}
    for name, value in torchvision.models.resnet50(weights=None).state_dict().items():
        prefix = next((p for p in renames if name.startswith(p)), None)
        if prefix is not None:
            expected[renames[prefix] + name[len(prefix):]] = tuple(value.shape)
    expected.update({"feat_bn.weight": (2048,), "feat_bn.bias": (2048,),
                     "feat_bn.running_mean": (2048,), "feat_bn.running_var": (2048,),
                     "feat_bn.num_batches_tracked": (), "classifier.weight": (700, 2048)})
    got = {name: tuple(value.shape) for name, value in resnet50.state_dict().items()}
    assert got == expected
    assert got["base.0.weight"] == (64, 3, 7, 7)
    assert got["base.6.2.conv3.weight"] == (2048, 512, 1, 1)


def test_resnet50_last_stage_stride_one_and_no_stem_relu(resnet50):
    assert isinstance(resnet50.base[2], nn.MaxPool2d)
    assert not any(isinstance(m, nn.ReLU) for m in resnet50.base.children())
    first = resnet50.base[6][0]
    assert first.conv2.stride == (1, 1) and first.downsample[0].stride == (1, 1)
    assert resnet50.base[5][0].conv2.stride == (2, 2)  # earlier stages untouched


def test_feature_map_is_16x8_for_256x128():
    model = _r18().eval()
    with torch.no_grad():
        fmap = model.base(torch.randn(1, 3, 256, 128))
    assert fmap.shape == (1, 512, 16, 8)


def test_feat_bn_bias_frozen_at_zero():
    model = _r18(num_classes=4).train()
    assert not model.feat_bn.bias.requires_grad
    assert torch.all(model.feat_bn.weight == 1) and torch.all(model.feat_bn.bias == 0)
    _, logits = model(torch.randn(4, 3, 32, 16))
    logits.sum().backward()
    assert model.feat_bn.bias.grad is None and model.feat_bn.weight.grad is not None


def test_eval_output_is_unit_norm():
    model = _r18(num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 16))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 512)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("kwargs, mode", [({}, "pooled"), ({"norm": True}, "bn_norm"),
                                          ({"train_feature": "bn_norm"}, "bn_norm")])
def test_train_output_tuple(kwargs, mode):
    model = _r18(num_classes=6, **kwargs).train()
    assert model.train_feature == mode
    images = torch.randn(4, 3, 32, 16)
    out = model(images)
    assert isinstance(out, models.TrainOutput) and len(out) == 2
    feature, logits = out
    assert feature.shape == (4, 512) and logits.shape == (4, 6)
    with torch.no_grad():
        pooled = model.gap(model.base(images)).flatten(1)
        bn_x = model.feat_bn(pooled)  # train-mode BN: batch statistics, same batch
    if mode == "pooled":
        assert torch.allclose(feature, pooled, atol=1e-5)
    else:
        assert torch.allclose(feature, F.normalize(bn_x, dim=1), atol=1e-5)
    # The classifier reads the un-normalised bn_x in both modes.
    assert torch.allclose(logits, model.classifier(bn_x), atol=1e-6)


def test_train_output_without_classifier():
    feature, logits = _r18().train()(torch.randn(2, 3, 32, 16))
    assert feature.shape == (2, 512) and logits.shape == (2, 0)


def test_embedding_layer_and_dropout():
    model = _r18(num_features=64, dropout=0.5, num_classes=3)
    assert model.feat.weight.shape == (64, 512) and model.feat_bn.weight.shape == (64,)
    assert model.classifier.weight.shape == (3, 64) and isinstance(model.drop, nn.Dropout)
    assert model.eval()(torch.randn(2, 3, 32, 16)).shape == (2, 64)


def test_channels_last_and_autocast():
    model = _r18(num_classes=5).to(memory_format=torch.channels_last)
    # 64x32, not smaller: CPU bf16 convs return NaN on 4x2 maps (a torch/oneDNN issue).
    images = torch.randn(2, 3, 64, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feature, logits = model.train()(images)
        out = model.eval()(images)
    assert torch.isfinite(feature).all() and logits.shape == (2, 5)
    assert torch.allclose(out.float().norm(dim=1), torch.ones(2), atol=2e-2)


def test_reset_classifier_rows_and_resize():
    model = _r18(num_classes=10)
    before = model.classifier.weight.detach().clone()
    centers = torch.randn(3, 512, dtype=torch.float64)
    model.reset_classifier(centers)
    weight = model.classifier.weight.detach()
    assert weight.shape == (10, 512) and weight.dtype == torch.float32
    assert torch.allclose(weight[:3], F.normalize(centers.float(), dim=1))
    assert torch.equal(weight[3:], before[3:])
    model.reset_classifier(centers[:2], resize=True)
    assert model.num_classes == 2 and model.classifier.weight.shape == (2, 512)
    assert torch.allclose(model.classifier.weight.detach(), F.normalize(centers[:2].float(), dim=1))
    with pytest.raises(ValueError, match="3 centres but the classifier has 2 rows"):
        model.reset_classifier(centers)
    with pytest.raises(ValueError, match=r"centers must be \(C, 512\)"):
        model.reset_classifier(torch.randn(3, 64))


def test_imagenet_weights_are_v1():
    assert resnet_mod.imagenet_weights("resnet50") is torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    assert resnet_mod.imagenet_cache_path("resnet50").name == "resnet50-0676ba61.pth"


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("network is unreachable")


def test_offline_without_cache_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(UserError) as info:
        models.create("resnet18", pretrained=True)
    assert str(expected) in str(info.value) and "--no-pretrained" in str(info.value)
    assert "\n" not in str(info.value)


def _imagenet_like_state() -> dict:
    torch.manual_seed(1)
    return torchvision.models.resnet18(weights=None).state_dict()


def test_cached_imagenet_file_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    state = _imagenet_like_state()
    cache = resnet_mod.imagenet_cache_path("resnet18")
    cache.parent.mkdir(parents=True)
    torch.save(state, cache)
    model = models.create("resnet18", pretrained=True)
    assert torch.equal(model.base[0].weight, state["conv1.weight"])
    assert torch.equal(model.base[6][1].bn2.running_var, state["layer4.1.bn2.running_var"])


def test_pretrained_path_loads_local_file(tmp_path):
    state = _imagenet_like_state()
    torch.save(state, tmp_path / "r18.pth")
    model = models.create("resnet18", pretrained_path=tmp_path / "r18.pth")
    assert torch.equal(model.base[3][0].conv1.weight, state["layer1.0.conv1.weight"])
    torch.save({"base.0.weight": state["conv1.weight"]}, tmp_path / "ours.pth")
    with pytest.raises(UserError, match=r"ours.pth: not a torchvision ResNet state dict"):
        models.create("resnet18", pretrained_path=tmp_path / "ours.pth")
    with pytest.raises(UserError, match="absent.pth: file not found"):
        models.create("resnet18", pretrained_path=tmp_path / "absent.pth")
