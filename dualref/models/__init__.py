"""Re-ID models: ``names()`` for argparse choices, ``create(name, ...)`` to build one."""
import os
from typing import List, Optional, Union

from ..utils.errors import ParamError
from .resnet import DEPTHS, TRAIN_FEATURES, ReIDResNet, TrainOutput

__all__ = ["arch_of", "names", "create", "ReIDResNet", "TrainOutput", "TRAIN_FEATURES"]


def names() -> List[str]:
    """Architectures ``create`` accepts."""
    return list(DEPTHS)


def create(arch: str, pretrained: bool = True, num_features: int = 0, norm: bool = False,
           dropout: float = 0.0, num_classes: int = 0,
           pretrained_path: Optional[Union[str, os.PathLike]] = None,
           train_feature: Optional[str] = None, classifier_std: float = 0.001) -> ReIDResNet:
    """Build a re-ID model by architecture name (see :class:`ReIDResNet`)."""
    if arch not in DEPTHS:
        raise ParamError("arch", arch, f"unknown model (expected one of {', '.join(names())})")
    return ReIDResNet(arch, pretrained=pretrained, num_features=num_features, norm=norm,
                      dropout=dropout, num_classes=num_classes, pretrained_path=pretrained_path,
                      train_feature=train_feature, classifier_std=classifier_std)


# (blocks in layer3, bottleneck?) -> architecture; layer3 (base.5) tells them apart.
_SIGNATURES = {(2, False): "resnet18", (6, False): "resnet34", (6, True): "resnet50",
               (23, True): "resnet101", (36, True): "resnet152"}


def arch_of(state_dict: dict) -> Optional[str]:
    """The ResNet a ``ReIDResNet`` state dict belongs to (None if it is not one)."""
    keys = [k[len("module."):] if k.startswith("module.") else k for k in state_dict]
    blocks = {int(k.split(".")[2]) for k in keys if k.startswith("base.5.")}
    bottleneck = any(k.startswith("base.5.0.conv3.") for k in keys)
    return _SIGNATURES.get((len(blocks), bottleneck)) if blocks else None
