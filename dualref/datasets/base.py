"""Shared dataset machinery: the ``(path, pid, camid)`` contract and folder layouts."""
from __future__ import annotations

import logging
import os
import re
from typing import ClassVar, Optional

from ..utils.errors import UserError

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]
"""One image: (path, person id, 0-based camera id)."""

JUNK_PID = -1


def relabel(items: list[Item]) -> list[Item]:
    """Map person ids to 0..K-1 in increasing order of the original id."""
    # Sorted (not set-iteration) order, so labels are the same on every run.
    mapping = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, mapping[pid], cam) for path, pid, cam in items]


def statistics(items: list[Item]) -> tuple[int, int, int]:
    """Return (# identities, # images, # cameras) of a split."""
    return (len({pid for _, pid, _ in items}), len(items),
            len({cam for _, _, cam in items}))


class ReIDDataset:
    """A re-ID dataset: ``train``, ``query``, ``gallery`` lists sorted by path.

    Subclasses implement :meth:`_load`; this class sorts the splits (so row i
    of any feature matrix is item i), counts train ids/cameras and logs the
    usual statistics table.
    """

    name: ClassVar[str] = "dataset"

    def __init__(self, root: str, verbose: bool = True, name: Optional[str] = None):
        self.root = str(root)
        if name is not None:
            self.name = name  # the registry name, when one class serves several
        self.images_dir, train, query, gallery = self._load()
        self.train: list[Item] = sorted(train)
        self.query: list[Item] = sorted(query)
        self.gallery: list[Item] = sorted(gallery)
        self.num_train_pids, _, self.num_train_cams = statistics(self.train)
        if verbose:
            self.log_statistics()

    def _load(self) -> tuple[str, list[Item], list[Item], list[Item]]:
        """Return (images_dir, train, query, gallery); train already relabelled."""
        raise NotImplementedError

    def log_statistics(self) -> None:
        """Log the subset | # ids | # images | # cameras table."""
        rule = "  " + "-" * 40
        logger.info("=> %s loaded from %s", self.name, self.images_dir)
        logger.info("  subset   | # ids | # images | # cameras")
        logger.info(rule)
        for subset, items in (("train", self.train), ("query", self.query),
                              ("gallery", self.gallery)):
            ids, images, cams = statistics(items)
            logger.info("  %-8s | %5d | %8d | %9d", subset, ids, images, cams)
        logger.info(rule)


class FolderDataset(ReIDDataset):
    """A release folder with one flat ``*.jpg`` folder per split (Market, Duke).

    The person id and camera are read from each file name with ``pattern``
    (named groups ``pid`` and ``cam``); id ``-1`` (junk) is dropped, id ``0``
    (distractor) is kept; cameras 1..num_cams are stored 0-based.
    """

    release: ClassVar[str]
    splits: ClassVar[tuple[str, str, str]] = ("bounding_box_train", "query",
                                              "bounding_box_test")
    pattern: ClassVar[re.Pattern]
    file_format: ClassVar[str]
    num_cams: ClassVar[int]

    def layout(self) -> str:
        """The expected folder tree, for error messages."""
        return "{}/{{{}}}/*.jpg".format(os.path.join(self.root, self.release),
                                        ",".join(self.splits))

    def _load(self) -> tuple[str, list[Item], list[Item], list[Item]]:
        images_dir = os.path.join(self.root, self.release)
        folders = [os.path.join(images_dir, split) for split in self.splits]
        for folder in [images_dir] + folders:
            if not os.path.isdir(folder):
                raise UserError(f"{self.name}: expected {self.layout()}; missing {folder}")
        train, query, gallery = (self._scan(folder) for folder in folders)
        return images_dir, relabel(train), query, gallery

    def _scan(self, folder: str) -> list[Item]:
        """Parse every ``*.jpg`` in ``folder``; junk images are left out."""
        names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))
        if not names:
            raise UserError(f"{self.name}: no *.jpg images in {folder} "
                            f"(expected {self.layout()})")
        items = [self._parse(os.path.join(folder, n)) for n in names]
        items = [item for item in items if item[1] != JUNK_PID]
        if not items:
            raise UserError(f"{self.name}: only junk (id -1) images in {folder}")
        return items

    def _parse(self, path: str) -> Item:
        """Read (path, pid, 0-based camid) from the file name."""
        match = self.pattern.fullmatch(os.path.basename(path))
        if match is None:
            raise UserError(f"{self.name}: cannot parse file name {path} "
                            f"(expected {self.file_format})")
        pid, cam = int(match["pid"]), int(match["cam"])
        if not 1 <= cam <= self.num_cams:
            raise UserError(f"{self.name}: camera {cam} out of range 1..{self.num_cams} "
                            f"in file name {path}")
        if pid < JUNK_PID:
            raise UserError(f"{self.name}: negative person id {pid} in file name {path}")
        return path, pid, cam - 1
