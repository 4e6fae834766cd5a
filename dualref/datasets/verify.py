"""Find images that cannot be decoded, so a run can skip them (``--skip-bad-images``)."""
import logging
from typing import List, Sequence, Tuple

from PIL import Image
from tqdm import tqdm

logger = logging.getLogger(__name__)

Item = Tuple[str, int, int]


def readable(path: str) -> bool:
    """True when PIL can fully decode the image at ``path``."""
    try:
        with Image.open(path) as img:
            img.load()  # verify() misses truncated pixel data; load() decodes it
        return True
    except (OSError, SyntaxError, ValueError):
        return False


def drop_unreadable(items: Sequence[Item], split: str = "",
                    verbose: bool = False) -> Tuple[List[Item], List[str]]:
    """Items whose image decodes, and the paths of those that do not."""
    kept, bad = [], []
    for item in tqdm(items, desc=f"checking {split} images", disable=not verbose, leave=False):
        if readable(item[0]):
            kept.append(item)
        else:
            bad.append(item[0])
    if bad:
        logger.warning("%s: skipping %d undecodable image(s), e.g. %s", split or "dataset",
                       len(bad), bad[0])
    return kept, bad


def skip_bad_images(dataset, verbose: bool = False) -> int:
    """Drop undecodable images from every split of ``dataset``; return how many."""
    total = 0
    for split in ("train", "query", "gallery"):
        kept, bad = drop_unreadable(getattr(dataset, split), split, verbose)
        setattr(dataset, split, kept)
        total += len(bad)
    return total
