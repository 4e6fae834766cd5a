"""Re-ID models: ``names()`` for argparse choices, ``create(name, ...)`` to build one."""
import os
from typing import List, Optional, Union

from ..utils.errors import UserError
from .resnet import DEPTHS, TRAIN_FEATURES, ReIDResNet, TrainOutput

__all__ = ["names", "create", "ReIDResNet", "TrainOutput", "TRAIN_FEATURES"]


def names() -> List[str]:
    """Architectures ``create`` accepts."""
    return list(DEPTHS)


def create(arch: str, pretrained: bool = True, num_features: int = 0, norm: bool = False,
           dropout: float = 0.0, num_classes: int = 0,
           pretrained_path: Optional[Union[str, os.PathLike]] = None,
           train_feature: Optional[str] = None) -> ReIDResNet:
    """Build a re-ID model by architecture name (see :class:`ReIDResNet`)."""
    if arch not in DEPTHS:
        raise UserError(f"--arch {arch!r}: unknown model (expected one of {', '.join(names())})")
    return ReIDResNet(arch, pretrained=pretrained, num_features=num_features, norm=norm,
                      dropout=dropout, num_classes=num_classes, pretrained_path=pretrained_path,
                      train_feature=train_feature)
