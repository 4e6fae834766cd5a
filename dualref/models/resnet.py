"""ResNet backbone with a BatchNorm neck and a bias-free classifier (as the paper)."""
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple, Optional, Union
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn import init

from ..utils.errors import ParamError, UserError

logger = logging.getLogger(__name__)

DEPTHS = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}
TRAIN_FEATURES = ("pooled", "bn_norm")


class TrainOutput(NamedTuple):
    """What a train-mode forward returns, whatever the flags."""

    feature: Tensor  # read by the triplet / spread losses
    logits: Tensor  # classifier output, shape (B, num_classes); (B, 0) without classifier


class ReIDResNet(nn.Module):
    """torchvision ResNet, last stage stride 1, no stem ReLU, BN neck, classifier.

    ``train_feature`` picks the feature returned in train mode: ``"pooled"``
    (the pooled backbone output ``x``: source pre-training and the baseline)
    or ``"bn_norm"`` (L2-normalised ``bn_x``: Dual-Refinement). The original
    switched this with ``norm=True`` plus a forward argument; here it is fixed
    at construction so the return type never changes.
    """

    def __init__(self, arch: str = "resnet50", pretrained: bool = True, num_features: int = 0,
                 norm: bool = False, dropout: float = 0.0, num_classes: int = 0,
                 pretrained_path: Optional[Union[str, os.PathLike]] = None,
                 train_feature: Optional[str] = None, classifier_std: float = 0.001):
        super().__init__()
        if arch not in DEPTHS:
            raise ParamError("arch", arch, f"unknown model (expected one of {', '.join(DEPTHS)})")
        train_feature = train_feature or ("bn_norm" if norm else "pooled")
        if train_feature not in TRAIN_FEATURES:
            raise ParamError("train_feature", train_feature, f"expected one of {', '.join(TRAIN_FEATURES)}")
        self.arch, self.norm, self.train_feature = arch, norm, train_feature
        self.classifier_std = classifier_std
        resnet = build_backbone(arch, pretrained, pretrained_path)
        # The stem ReLU is left out on purpose: index 2 is the maxpool, which
        # fixes the state-dict key names of the released checkpoints.
        self.base = nn.Sequential(resnet.conv1, resnet.bn1, resnet.maxpool,
                                  resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
        self.gap = nn.AdaptiveAvgPool2d(1)
        out_planes = resnet.fc.in_features
        self.has_embedding = num_features > 0
        if self.has_embedding:
            self.feat: Optional[nn.Linear] = nn.Linear(out_planes, num_features)
            init.kaiming_normal_(self.feat.weight, mode="fan_out")
            init.constant_(self.feat.bias, 0)
            self.num_features = num_features
        else:
            self.feat = None
            self.num_features = out_planes
        self.feat_bn = nn.BatchNorm1d(self.num_features)
        init.constant_(self.feat_bn.weight, 1)
        init.constant_(self.feat_bn.bias, 0)
        # A zero BN shift keeps bn_x centred, as in the paper; it is never trained.
        self.feat_bn.bias.requires_grad_(False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_classes = 0
        self.classifier: Optional[nn.Linear] = None
        if num_classes > 0:
            self.resize_classifier(num_classes)

    def forward(self, images: Tensor) -> Union[Tensor, TrainOutput]:
        """Eval: L2-normalised ``bn_x``. Train: ``TrainOutput(feature, logits)``."""
        x = self.gap(self.base(images)).flatten(1)
        bn_x = self.feat_bn(self.feat(x) if self.feat is not None else x)
        if not self.training:
            return F.normalize(bn_x, dim=1)
        feature = F.normalize(bn_x, dim=1) if self.train_feature == "bn_norm" else x
        if self.has_embedding and not self.norm:
            bn_x = F.relu(bn_x)  # the original's un-normalised embedding branch
        bn_x = self.drop(bn_x)
        if self.classifier is None:
            logits = bn_x.new_zeros((bn_x.size(0), 0))
        else:
            logits = self.classifier(bn_x)  # always the un-normalised bn_x
        return TrainOutput(feature, logits)

    def resize_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a fresh one with ``num_classes`` rows."""
        if num_classes <= 0:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        ref = self.feat_bn.weight
        classifier = nn.Linear(self.num_features, num_classes, bias=False,
                               device=ref.device, dtype=ref.dtype)
        init.normal_(classifier.weight, std=self.classifier_std)
        self.classifier, self.num_classes = classifier, num_classes

    @torch.no_grad()
    def reset_classifier(self, centers: Tensor, resize: bool = False) -> None:
        """Set classifier rows 0..C-1 to the L2-normalised cluster ``centers`` (C x D).

        With ``resize`` the classifier gets exactly C rows; otherwise it keeps
        its size (as the original, whose classifier has one row per target
        image) and the caller uses only the first C logits.
        """
        if centers.dim() != 2 or centers.size(1) != self.num_features:
            raise ValueError(f"centers must be (C, {self.num_features}), got {tuple(centers.shape)}")
        count = centers.size(0)
        if resize or self.classifier is None:
            self.resize_classifier(count)
        if count > self.num_classes:
            raise ValueError(f"{count} centres but the classifier has {self.num_classes} rows")
        weight = self.classifier.weight
        weight[:count].copy_(F.normalize(centers.float(), dim=1).to(weight))


def build_backbone(arch: str, pretrained: bool,
                   pretrained_path: Optional[Union[str, os.PathLike]]) -> torchvision.models.ResNet:
    """torchvision ResNet with ImageNet (V1) weights and a stride-1 last stage."""
    resnet = getattr(torchvision.models, arch)(weights=None)
    if pretrained_path is not None:
        _load_imagenet(resnet, _read_local(pretrained_path), f"pretrained_path {pretrained_path}")
    elif pretrained:
        _load_imagenet(resnet, _read_cached_or_download(arch), f"ImageNet weights for {arch}")
    first = resnet.layer4[0]
    # Stride 1 in the last stage doubles the final feature map (16x8 for 256x128).
    # Bottlenecks stride in conv2, basic blocks in conv1 (the original only
    # reset conv2, which breaks resnet18/34); resetting both covers either.
    for conv in (first.conv1, first.conv2, first.downsample[0]):
        conv.stride = (1, 1)
    return resnet


def imagenet_weights(arch: str) -> torchvision.models.WeightsEnum:
    """The V1 ImageNet weights entry, what ``pretrained=True`` used to give."""
    return getattr(torchvision.models, f"ResNet{DEPTHS[arch]}_Weights").IMAGENET1K_V1


def imagenet_cache_path(arch: str) -> Path:
    """Where torch hub keeps (and looks for) the ImageNet weights file."""
    name = os.path.basename(urlparse(imagenet_weights(arch).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def _read_cached_or_download(arch: str) -> dict:
    url = imagenet_weights(arch).url
    path = imagenet_cache_path(arch)
    if not path.is_file():
        logger.info("downloading ImageNet weights %s to %s", url, path)
        match = re.search(r"-([a-f0-9]+)\.", path.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None)
        except (OSError, RuntimeError) as err:  # URLError is an OSError; hash mismatch a RuntimeError
            raise UserError(f"ImageNet weights for {arch}: cannot download {url} ({err}); place the file at "
                            f"{path} or pass --no-pretrained") from err
    return _read_local(path)


def _read_local(path: Union[str, os.PathLike]) -> dict:
    # Imported here: checkpoint loading lives in utils and is shared with training.
    from ..utils.checkpoint import load_checkpoint
    state = load_checkpoint(path)
    return state.get("state_dict", state)


def _load_imagenet(resnet: nn.Module, state: dict, what: str) -> None:
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    expected = resnet.state_dict()
    missing = [k for k in expected if k not in state and not k.startswith("fc.")]
    if missing:
        raise UserError(f"{what}: not a torchvision {type(resnet).__name__} state dict "
                        f"(missing {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape
             and not k.startswith("fc.")]
    if wrong:
        raise UserError(f"{what}: shapes do not match this architecture ({', '.join(wrong[:3])})")
    # The ImageNet fc head is never used; skip it if it has another shape.
    kept = {k: v for k, v in state.items() if k in expected and v.shape == expected[k].shape}
    resnet.load_state_dict(kept, strict=False)
    logger.info("%s: loaded %d tensors", what, len(kept))
