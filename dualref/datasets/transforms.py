"""Image transforms for training and testing (the authors' augmentation recipe)."""
import math
from typing import Sequence, Union

import torch
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RandomErasing:
    """Erase one random rectangle of a (normalised) image tensor with a constant per channel.

    Zhong et al., "Random Erasing Data Augmentation" (AAAI 2020), as the authors
    apply it: after ``Normalize``, the rectangle is filled with the raw ``fill``
    numbers (the ImageNet mean by default), so in pixel space the fill is *not*
    the mean colour; we keep that to reproduce the published numbers. The
    aspect ratio is drawn uniformly in [min_aspect, 1/min_aspect] (not
    log-uniformly as torchvision does) and up to ``max_attempts`` rectangles
    are tried before giving up. Draws come from torch's RNG, which DataLoader
    workers seed per worker.
    """

    def __init__(
        self,
        probability: float = 0.5,
        min_area: float = 0.02,
        max_area: float = 0.4,
        min_aspect: float = 0.3,
        fill: Sequence[float] = IMAGENET_MEAN,
        max_attempts: int = 100,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if not 0.0 < min_area <= max_area <= 1.0:
            raise ValueError(f"need 0 < min_area <= max_area <= 1, got {min_area}, {max_area}")
        if not 0.0 < min_aspect <= 1.0:
            raise ValueError(f"min_aspect must be in (0, 1], got {min_aspect}")
        self.probability = probability
        self.min_area = min_area
        self.max_area = max_area
        self.min_aspect = min_aspect
        self.fill = tuple(float(v) for v in fill)
        self.max_attempts = max_attempts

    @staticmethod
    def _uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand(()).item()

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        """Return ``img`` (C x H x W) with at most one rectangle erased."""
        if torch.rand(()).item() >= self.probability:
            return img
        channels, height, width = img.shape
        for _ in range(self.max_attempts):
            target_area = self._uniform(self.min_area, self.max_area) * height * width
            aspect = self._uniform(self.min_aspect, 1.0 / self.min_aspect)
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            # Strict inequalities as in the reference implementation.
            if w < width and h < height:
                top = int(torch.randint(0, height - h + 1, ()).item())
                left = int(torch.randint(0, width - w + 1, ()).item())
                out = img.clone()
                for c in range(channels):
                    # A single-channel image takes the first fill value.
                    out[c, top:top + h, left:left + w] = self.fill[c if channels == len(self.fill) else 0]
                return out
        return img

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(probability={self.probability}, area=({self.min_area}, "
                f"{self.max_area}), min_aspect={self.min_aspect}, fill={self.fill})")


def build_train_transform(
    height: int,
    width: int,
    random_erasing: Union[bool, RandomErasing] = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    padding: int = 10,
    flip_probability: float = 0.5,
) -> T.Compose:
    """Bicubic resize, flip, pad + random crop, normalise, optional random erasing.

    ``random_erasing``: True for the paper's (p 0.5, area 0.02-0.4, aspect
    0.3-3.33, filled with ``mean``), or a configured :class:`RandomErasing`.
    """
    steps = [
        T.Resize((height, width), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(p=flip_probability),
        T.Pad(padding),
        T.RandomCrop((height, width)),
        T.ToTensor(),
        T.Normalize(mean=list(mean), std=list(std)),
    ]
    if isinstance(random_erasing, RandomErasing):
        steps.append(random_erasing)
    elif random_erasing:
        steps.append(RandomErasing(probability=0.5, fill=mean))
    return T.Compose(steps)


def build_test_transform(
    height: int,
    width: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> T.Compose:
    """Bicubic resize and normalise, nothing random."""
    return T.Compose([
        T.Resize((height, width), interpolation=T.InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=list(mean), std=list(std)),
    ])
