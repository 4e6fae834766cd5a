"""Write fake dataset trees (empty image files) in the real on-disk layouts."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

MARKET_RELEASE = "Market-1501-v15.09.15"
DUKE_RELEASE = "DukeMTMC-reID"
FOLDER_SPLITS = ("bounding_box_train", "query", "bounding_box_test")


def touch_files(folder: Path, names: Iterable[str]) -> None:
    """Create ``folder`` and an empty file per name, in the given order."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")


def make_folder_tree(root: Path, release: str, splits: Mapping[str, Iterable[str]]) -> Path:
    """Write ``root/release/<split>/<name>`` for a Market/Duke-style layout."""
    for split, names in splits.items():
        touch_files(root / release / split, names)
    return root / release


def make_msmt_tree(root: Path, release: str, train_dir: str, test_dir: str,
                   lists: Mapping[str, list[tuple[str, int]]]) -> Path:
    """Write an MSMT17 release: list files plus the images they name."""
    base = root / release
    for list_name, rows in lists.items():
        image_dir = base / (train_dir if list_name in ("list_train.txt", "list_val.txt")
                            else test_dir)
        touch_files(image_dir, [rel for rel, _ in rows])
        base.mkdir(parents=True, exist_ok=True)
        (base / list_name).write_text("".join(f"{rel} {label}\n" for rel, label in rows))
    return base
