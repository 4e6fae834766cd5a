"""Ranked-list figures: each query followed by its top-k gallery images, framed by correctness."""
import io
import logging
import os
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .utils.errors import UserError
from .utils.io import atomic_open

logger = logging.getLogger(__name__)

Item = tuple  # (path, pid, camid)
CELL = (64, 128)  # (width, height) of every image
MARGIN, FRAME, GAP, SEPARATOR = 4, 3, 12, 12  # px: between cells, frame, after query, blocks
LABEL_WIDTH, TITLE_HEIGHT, FONT_SIZE = 140, 24, 14
GREEN, RED, GREY = (0, 170, 0), (220, 0, 0), (128, 128, 128)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def choose_queries(distmat: np.ndarray, query: Sequence[Item], gallery: Sequence[Item],
                   num_queries: int, seed: Optional[int] = 0) -> list[int]:
    """Query indices in increasing order: seeded sample, or evenly spaced when seed is None.

    Only queries with at least one true match in the gallery are drawn (unless none has one).
    """
    qpids = np.array([q[1] for q in query])
    qcams = np.array([q[2] for q in query])
    gpids = np.array([g[1] for g in gallery])
    gcams = np.array([g[2] for g in gallery])
    match = (gpids[None] == qpids[:, None]) & (gcams[None] != qcams[:, None])
    candidates = np.flatnonzero(match.any(axis=1)) if len(gallery) else np.array([], int)
    if candidates.size == 0:
        candidates = np.arange(len(query))
    count = min(num_queries, candidates.size)
    if seed is None:
        picks = candidates[np.linspace(0, candidates.size - 1, count).round().astype(int)]
    else:
        picks = np.random.default_rng(seed).choice(candidates, size=count, replace=False)
    return sorted(int(i) for i in picks)


def ranked_gallery(distances: np.ndarray, query_item: Item, gallery: Sequence[Item],
                   topk: int) -> list[int]:
    """Top-``topk`` gallery indices by distance (ties by gallery order), same id+camera removed."""
    order = np.argsort(np.asarray(distances), kind="stable")
    _, pid, cam = query_item[:3]
    keep = [int(j) for j in order if not (gallery[j][1] == pid and gallery[j][2] == cam)]
    return keep[:topk]


def _load(path: str) -> Image.Image:
    """An item's image, RGB, resized to the common cell size."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB").resize(CELL, Image.BILINEAR)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def _font() -> ImageFont.ImageFont:
    """PIL's built-in font at a readable size (Pillow < 10.1: its small bitmap font)."""
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:
        return ImageFont.load_default()


def _framed(img: Image.Image, colour: tuple) -> Image.Image:
    """``img`` inside a ``FRAME``-pixel border of ``colour``."""
    out = Image.new("RGB", (CELL[0] + 2 * FRAME, CELL[1] + 2 * FRAME), colour)
    out.paste(img, (FRAME, FRAME))
    return out


def cell_origin(col: int, row: int, label: bool = False, title: bool = False) -> tuple[int, int]:
    """Top-left pixel of the framed cell at (row, col); col 0 is the query."""
    x = MARGIN + (LABEL_WIDTH if label else 0) + col * (CELL[0] + 2 * FRAME + MARGIN)
    x += GAP if col > 0 else 0
    y = MARGIN + (TITLE_HEIGHT if title else 0) + row * (CELL[1] + 2 * FRAME + MARGIN)
    return x, y


def render_ranked_lists(distmat, query: Sequence[Item], gallery: Sequence[Item],
                        queries: Sequence[int], topk: int = 10, title: Optional[str] = None,
                        label: Optional[str] = None) -> Image.Image:
    """One row per chosen query: the query (grey frame), then its ranked gallery images."""
    dist = np.asarray(distmat, dtype=np.float64)
    if dist.shape != (len(query), len(gallery)):
        raise UserError(f"distance matrix is {dist.shape}, expected "
                        f"({len(query)}, {len(gallery)}) for the query and gallery given")
    has_label, has_title = label is not None, title is not None
    width, _ = cell_origin(topk + 1, 0, has_label, has_title)
    _, height = cell_origin(0, len(queries), has_label, has_title)
    canvas = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(canvas)
    if has_title:
        draw.text((MARGIN, MARGIN), title, fill=BLACK, font=_font())
    if has_label:
        y = (height + (TITLE_HEIGHT if has_title else 0) - FONT_SIZE) // 2
        draw.text((MARGIN, y), label, fill=BLACK, font=_font())
    for row, qi in enumerate(queries):
        canvas.paste(_framed(_load(query[qi][0]), GREY), cell_origin(0, row, has_label, has_title))
        for col, gj in enumerate(ranked_gallery(dist[qi], query[qi], gallery, topk), start=1):
            colour = GREEN if gallery[gj][1] == query[qi][1] else RED
            canvas.paste(_framed(_load(gallery[gj][0]), colour),
                         cell_origin(col, row, has_label, has_title))
    return canvas


def _write_png(image: Image.Image, path: Union[str, os.PathLike]) -> None:
    """Encode in memory, then write atomically."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    logger.info("wrote %s", path)


def save_ranked_lists(distmat, query: Sequence[Item], gallery: Sequence[Item],
                      path: Union[str, os.PathLike], num_queries: int = 4, topk: int = 10,
                      seed: Optional[int] = 0, title: Optional[str] = None,
                      label: Optional[str] = None) -> list[int]:
    """Save the ranked-list grid of ``num_queries`` queries as PNG; return their indices."""
    queries = choose_queries(np.asarray(distmat), query, gallery, num_queries, seed)
    _write_png(render_ranked_lists(distmat, query, gallery, queries, topk, title, label), path)
    return queries


def compare_ranked_lists(distmats: Mapping[str, object], query: Sequence[Item],
                         gallery: Sequence[Item], path: Union[str, os.PathLike],
                         num_queries: int = 4, topk: int = 10, seed: Optional[int] = 0,
                         title: Optional[str] = None) -> list[int]:
    """Stack one labelled block per distance matrix (e.g. direct transfer vs Dual-Refinement).

    Every block shows the same queries, so the rankings can be compared row by row.
    """
    if not distmats:
        raise UserError("no distance matrices to compare")
    first = np.asarray(next(iter(distmats.values())))
    queries = choose_queries(first, query, gallery, num_queries, seed)
    blocks = [render_ranked_lists(d, query, gallery, queries, topk,
                                  title=title if i == 0 else None, label=name)
              for i, (name, d) in enumerate(distmats.items())]
    width = max(b.width for b in blocks)
    height = sum(b.height for b in blocks) + SEPARATOR * (len(blocks) - 1)
    canvas = Image.new("RGB", (width, height), WHITE)
    draw, y = ImageDraw.Draw(canvas), 0
    for i, block in enumerate(blocks):
        if i:  # a grey rule between blocks
            draw.line([(MARGIN, y + SEPARATOR // 2), (width - MARGIN, y + SEPARATOR // 2)], GREY, 2)
            y += SEPARATOR
        canvas.paste(block, (0, y))
        y += block.height
    _write_png(canvas, path)
    return queries
