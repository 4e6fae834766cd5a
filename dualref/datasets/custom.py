"""Your own unlabelled cameras as a target: ``-dt custom``.

Layout under ``--data-dir ROOT``::

    ROOT/custom/train/**/*.{jpg,jpeg,png}   person crops, any names and sub-folders
    ROOT/custom/query/*.jpg                 optional, Market-1501 names (PPPP_cC...)
    ROOT/custom/gallery/*.jpg               optional, together with query/

The train images need no identities and no cameras. Each gets its own
placeholder id (adaptation never reads target ids; the placeholders only keep
the ``(path, pid, camid)`` contract), and ``has_train_labels`` is False so no
stage scores pseudo-labels against them. Cameras are optional: ``cameras``
``"folder"`` takes the first sub-folder under ``train/`` as the camera, any
other string is a regular expression searched in the file name whose group
``cam`` (or first group) names the camera; without it every image is camera 0.
"""
from __future__ import annotations

import logging
import os
import re
from typing import ClassVar, Optional

from .base import Item, ReIDDataset, statistics
from ..utils.errors import ParamError, UserError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# Market-1501 style names for the labelled evaluation splits: id, then camera.
_LABELLED_NAME = re.compile(r"(?P<pid>-?\d+)_c(?P<cam>\d+)")


def find_images(folder: str) -> list[str]:
    """Every image under ``folder`` (recursively), sorted; hidden entries are skipped."""
    found = []
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(parent, f) for f in files
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


class CustomDataset(ReIDDataset):
    """An unlabelled target folder, with an optional labelled query/gallery."""

    name: ClassVar[str] = "custom"
    has_train_labels = False

    def __init__(self, root: str, verbose: bool = True, name: Optional[str] = None,
                 cameras: Optional[str] = None):
        self.cameras = cameras
        super().__init__(root, verbose=verbose, name=name)
        self.num_train_pids = 0  # unknown: the adaptation is what estimates them

    @property
    def has_test(self) -> bool:
        """Whether a labelled query/gallery exists to measure mAP on."""
        return bool(self.query)

    def layout(self) -> str:
        return (f"{self.root}/train/**/*.jpg|png (any names), optionally "
                f"{self.root}/{{query,gallery}}/PPPP_cC*.jpg")

    def _load(self) -> tuple[str, list[Item], list[Item], list[Item]]:
        train_dir = os.path.join(self.root, "train")
        if not os.path.isdir(train_dir):
            raise UserError(f"{self.name}: expected {self.layout()}; missing folder {train_dir}")
        paths = find_images(train_dir)
        if not paths:
            raise UserError(f"{self.name}: no .jpg/.jpeg/.png images under {train_dir}")
        cams = self._train_cameras(train_dir, paths)
        train = [(path, index, cam) for index, (path, cam) in enumerate(zip(paths, cams))]
        query_dir, gallery_dir = (os.path.join(self.root, s) for s in ("query", "gallery"))
        present = [os.path.isdir(query_dir), os.path.isdir(gallery_dir)]
        if present == [False, False]:
            return self.root, train, [], []
        if present != [True, True]:
            missing = gallery_dir if present[0] else query_dir
            raise UserError(f"{self.name}: query/ and gallery/ go together; missing {missing}")
        return self.root, train, self._labelled(query_dir), self._labelled(gallery_dir)

    def _train_cameras(self, train_dir: str, paths: list[str]) -> list[int]:
        """0-based camera of each train image, from its folder or file name (else 0)."""
        if not self.cameras:
            return [0] * len(paths)
        if self.cameras == "folder":
            keys = [os.path.relpath(p, train_dir).split(os.sep)[0] for p in paths]
            loose = [p for p, k in zip(paths, keys) if os.path.dirname(p) == train_dir]
            if loose:
                raise ParamError("camera_pattern", "folder", f"needs every train image of "
                                 f"{self.name} in a camera sub-folder of {train_dir}; found "
                                 f"{loose[0]}")
        else:
            try:
                pattern = re.compile(self.cameras)
            except re.error as err:
                raise ParamError("camera_pattern", self.cameras,
                                 f"not a regular expression ({err})") from err
            keys = [self._camera_key(pattern, p) for p in paths]
        index = {key: i for i, key in enumerate(sorted(set(keys)))}
        return [index[key] for key in keys]

    def _camera_key(self, pattern: re.Pattern, path: str) -> str:
        match = pattern.search(os.path.basename(path))
        key = None
        if match is not None and match.groups():
            key = match["cam"] if "cam" in pattern.groupindex else match[1]
        if key is None:
            raise ParamError("camera_pattern", self.cameras, f"no camera group matched in the file "
                             f"name {path} (use a group, e.g. 'c(\\d+)', or (?P<cam>...))")
        return key

    def _labelled(self, folder: str) -> list[Item]:
        """Query or gallery items with ids and cameras from Market-1501 style names."""
        paths = find_images(folder)
        if not paths:
            raise UserError(f"{self.name}: no images in {folder}")
        items = []
        for path in paths:
            match = _LABELLED_NAME.match(os.path.basename(path))
            if match is None:
                raise UserError(f"{self.name}: cannot read id and camera from {path} "
                                "(expected Market-1501 names, PPPP_cC..., e.g. 0002_c1s1_000451_03.jpg)")
            pid, cam = int(match["pid"]), int(match["cam"])
            if pid >= 0:  # -1: junk, left out as in Market-1501
                items.append((path, pid, cam))
        if not items:
            raise UserError(f"{self.name}: only junk (id -1) images in {folder}")
        return items

    def log_statistics(self) -> None:
        """The statistics table, with the unknown train identities shown as such."""
        rule = "  " + "-" * 40
        logger.info("=> %s loaded from %s", self.name, self.images_dir)
        logger.info("  subset   | # ids | # images | # cameras")
        logger.info(rule)
        logger.info("  %-8s | %5s | %8d | %9d", "train", "?", len(self.train), self.num_train_cams)
        for subset, items in (("query", self.query), ("gallery", self.gallery)):
            ids, images, cams = statistics(items)
            logger.info("  %-8s | %5d | %8d | %9d", subset, ids, images, cams)
        logger.info(rule)
        if not self.has_test:
            logger.info("  no query/gallery: adaptation reports pseudo-label statistics only, "
                        "and the best checkpoint is the last one")
