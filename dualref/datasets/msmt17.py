"""MSMT17 (Wei et al., CVPR 2018): 4,101 identities, 15 cameras, list-file splits."""
from __future__ import annotations

import os
import re

from .base import Item, ReIDDataset, relabel
from ..utils.errors import UserError

# (release folder, train image folder, test image folder); V1 is preferred,
# V2 (faces blurred) differs only in the image folder names.
RELEASES = (("MSMT17_V1", "train", "test"),
            ("MSMT17_V2", "mask_train_v2", "mask_test_v2"))
LIST_FILES = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
NUM_CAMS = 15
# PPPP_SSS_CC_<time>_<frame>_<box>.jpg; the camera is the third field.
FILE_PATTERN = re.compile(r"\d+_\d+_(?P<cam>\d+)_.*\.jpg")


class MSMT17(ReIDDataset):
    """``<root>/MSMT17_V1/{train,test}`` with ``list_{train,val,query,gallery}.txt``.

    Train = list_train + list_val (32,621 images / 1,041 ids), ids relabelled
    0..K-1; query (11,659) and gallery (82,161) keep their list labels.
    """

    name = "msmt17"

    def layout(self) -> str:
        """The expected folder tree, for error messages."""
        release, train_dir, test_dir = RELEASES[0]
        entries = ",".join((train_dir, test_dir) + LIST_FILES)
        return (f"{os.path.join(self.root, release)}/{{{entries}}} "
                f"(or {RELEASES[1][0]} with {RELEASES[1][1]},{RELEASES[1][2]})")

    def _load(self) -> tuple[str, list[Item], list[Item], list[Item]]:
        release, train_dir, test_dir = self._find_release()
        images_dir = os.path.join(self.root, release)
        for entry in (train_dir, test_dir) + LIST_FILES:
            if not os.path.exists(os.path.join(images_dir, entry)):
                raise UserError(f"{self.name}: expected {self.layout()}; "
                                f"missing {os.path.join(images_dir, entry)}")
        lists = [os.path.join(images_dir, f) for f in LIST_FILES]
        train_root, test_root = (os.path.join(images_dir, d) for d in (train_dir, test_dir))
        train = self._read_list(lists[0], train_root) + self._read_list(lists[1], train_root)
        query = self._read_list(lists[2], test_root)
        gallery = self._read_list(lists[3], test_root)
        return images_dir, relabel(train), query, gallery

    def _find_release(self) -> tuple[str, str, str]:
        """Return the first release whose folder exists under the root."""
        for release in RELEASES:
            if os.path.isdir(os.path.join(self.root, release[0])):
                return release
        raise UserError(f"{self.name}: expected {self.layout()}; "
                        f"missing {os.path.join(self.root, RELEASES[0][0])}")

    def _read_list(self, list_file: str, image_root: str) -> list[Item]:
        """Parse ``relative/path.jpg LABEL`` lines into items under ``image_root``."""
        items = []
        with open(list_file, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 2 or not re.fullmatch(r"\d+", fields[1]):
                    raise UserError(f"{self.name}: {list_file} line {lineno}: expected "
                                    f"'relative/path.jpg LABEL', got {line.strip()!r}")
                path = os.path.join(image_root, fields[0])
                items.append((path, int(fields[1]), self._camera(path)))
        if not items:
            raise UserError(f"{self.name}: no images listed in {list_file}")
        return items

    def _camera(self, path: str) -> int:
        """0-based camera id from the file name's third underscore field."""
        match = FILE_PATTERN.fullmatch(os.path.basename(path))
        if match is None:
            raise UserError(f"{self.name}: cannot parse file name {path} "
                            "(expected PPPP_SSS_CC_*.jpg)")
        cam = int(match["cam"])
        if not 1 <= cam <= NUM_CAMS:
            raise UserError(f"{self.name}: camera {cam} out of range 1..{NUM_CAMS} "
                            f"in file name {path}")
        return cam - 1
