"""Synthetic two-domain re-ID data in the real Market-1501 / DukeMTMC-reID layouts.

The project's built-in data for demos and tests (no download needed). Each
domain gets its own clothing palette, scenes, lighting and per-camera colour
casts (see :mod:`dualref.datasets.synthetic_render`), so a model trained on
one domain transfers worse to the other. Output is a pure function of the
options: the same seed gives byte-identical files.

    python -m dualref.datasets.synthetic examples/data --seed 0
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from . import synthetic_render as sr
from ..utils.errors import ParamError, UserError
from ..utils.io import write_json

logger = logging.getLogger(__name__)

MARKER = ".synthetic_complete.json"
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


@dataclass(frozen=True)
class Layout:
    """Where a domain lives on disk and how it names its files."""

    release: str
    num_cams: int
    code: int  # mixed into every seed so the two domains never share draws
    max_pid: int  # the release's largest person id (tools written for it check the range)

    def file_name(self, pid: int, cam: int, frame: int, rng: np.random.Generator) -> str:
        """A file name in the real release's format."""
        if self.release.startswith("Market"):
            pid_text = "-1" if pid < 0 else f"{pid:04d}"
            return f"{pid_text}_c{cam}s{rng.integers(1, 7)}_{frame:06d}_{rng.integers(1, 9):02d}.jpg"
        return f"{pid:04d}_c{cam}_f{frame:07d}.jpg"


LAYOUTS = {"market1501": Layout("Market-1501-v15.09.15", 6, 1, 1501),
           "dukemtmc": Layout("DukeMTMC-reID", 8, 2, 7140)}


@dataclass(frozen=True)
class Scenes:
    """How hard the scenes are: the confusions that make pseudo-labels noisy."""

    twins: float = 0.0          # share of ids that copy another id but for one attribute
    back_colour: float = 0.0    # share of ids whose back looks different from their front
    view_bias: float = 0.0      # share of each camera's views on its one dominant view
    passerby: float = 0.0       # chance of a second pedestrian half in the box
    occlude: float = 0.15       # chance of an occluder in front of the person
    tracklet: int = 1           # longest run of consecutive near-identical frames
    low_res: float = 1.0        # smallest per-camera resolution factor (1 = all sharp)
    light_spread: float = 0.0   # extra per-camera light level spread (+-)


# easy: the original demo scenes. hard: every confusion Dual-Refinement targets
# (similar identities merge, one identity splits across views and cameras).
SCENES = {"easy": Scenes(),
          "hard": Scenes(twins=0.3, back_colour=0.5, view_bias=0.6, passerby=0.25,
                         occlude=0.3, tracklet=4, low_res=0.5, light_spread=0.25)}


@dataclass(frozen=True)
class Shot:
    """One planned image: split folder, person id, 1-based camera, kind of content."""

    split: str
    pid: int
    cam: int
    kind: str = "person"  # person, or fragment for junk / distractor boxes


def _spread(rng: np.random.Generator, cams: np.ndarray, n: int) -> list[int]:
    """``n`` cameras drawn from ``cams``, each used at least once (n >= len(cams))."""
    extra = rng.choice(cams, size=n - len(cams)).tolist()
    return sorted(cams.tolist() + extra)


def _num_distractor_ids(layout: Layout, num_ids: int) -> int:
    """Duke-style gallery-only identities (a fifth of the test ids); none for Market."""
    return max(1, (num_ids // 2) // 5) if layout.num_cams == 8 else 0


def plan(rng: np.random.Generator, layout: Layout, num_ids: int, images_per_id: int,
         queries_per_id: int, gallery_per_id: int) -> list[Shot]:
    """Decide every image: disjoint train/test ids, >= 2 cameras per id, cross-camera queries."""
    num_train = (num_ids + 1) // 2
    num_test = num_ids - num_train
    num_extra = _num_distractor_ids(layout, num_ids)
    # ids spread over 1..10 N + 9, but never past the release's largest id
    high = min(10 * num_ids + 10, layout.max_pid + 1)
    pids = np.sort(rng.choice(np.arange(1, high), num_ids + num_extra, replace=False))
    order = rng.permutation(num_ids)
    train_ids, test_ids = pids[order[:num_train]], pids[order[num_train:]]
    shots: list[Shot] = []
    max_cams = min(4, layout.num_cams)
    for pid in sorted(train_ids):
        cams = rng.choice(np.arange(1, layout.num_cams + 1), int(rng.integers(2, max_cams + 1)),
                          replace=False)
        n = max(images_per_id, len(cams))
        shots += [Shot("bounding_box_train", int(pid), c) for c in _spread(rng, cams, n)]
    for pid in sorted(test_ids):
        cams = rng.choice(np.arange(1, layout.num_cams + 1), int(rng.integers(2, max_cams + 1)),
                          replace=False)
        # Every camera holds gallery images, so each query has a cross-camera match.
        n = max(gallery_per_id, len(cams))
        shots += [Shot("bounding_box_test", int(pid), c) for c in _spread(rng, cams, n)]
        shots += [Shot("query", int(pid), int(c)) for c in sorted(cams[:queries_per_id])]
    for pid in pids[num_ids:]:
        # Duke-style distractor identities: gallery only, one camera.
        cam = int(rng.integers(1, layout.num_cams + 1))
        shots += [Shot("bounding_box_test", int(pid), cam)] * int(rng.integers(1, 3))
    if layout.num_cams == 6:
        # Market-style junk (-1) and distractor (0) boxes in the gallery.
        for pid, count in ((-1, max(1, num_test // 10)), (0, max(2, num_test // 5))):
            shots += [Shot("bounding_box_test", pid, int(c), "fragment")
                      for c in rng.integers(1, layout.num_cams + 1, count)]
    return shots


def _people(shots: list[Shot], seed: int, layout: Layout, style: sr.DomainStyle,
            scenes: Scenes) -> dict[int, sr.Person]:
    """Every identity's appearance; hard scenes add twins and two-sided clothes."""
    people = {}
    for pid in sorted({s.pid for s in shots if s.kind == "person"}):
        people[pid] = sr.sample_person(np.random.default_rng([seed, layout.code, 2, pid]), style)
    if scenes == SCENES["easy"]:
        return people
    rng = np.random.default_rng([seed, layout.code, 4])
    for split in SPLITS[::2]:  # twins within train and within test: the ids clustered together
        pids = sorted({s.pid for s in shots if s.split == split and s.kind == "person"})
        originals: list[int] = []
        for pid in pids:
            if originals and rng.random() < scenes.twins:
                parent = originals[rng.integers(len(originals))]
                people[pid] = sr.vary_one(people[parent], rng, style)
            else:
                originals.append(pid)
    for pid in sorted(people):
        if rng.random() < scenes.back_colour:
            people[pid] = sr.with_back_colour(people[pid], rng, style)
    return people


def _tracklets(shots: list[Shot], rng: np.random.Generator, longest: int) -> list[int]:
    """For each shot, the index of the first shot of its tracklet.

    A tracklet is a run of consecutive frames of one person in one camera (in
    one split), 1..``longest`` long; its frames are near-identical.
    """
    starts, run = [], 0
    for index, shot in enumerate(shots):
        same = index > 0 and shots[index - 1] == shot and shot.kind == "person"
        if same and run < length:
            run += 1
            starts.append(starts[-1])
        else:
            length, run = int(rng.integers(1, longest + 1)), 1
            starts.append(index)
    return starts


def _write_domain(folder: Path, domain: str, seed: int, options: dict) -> dict:
    """Render one domain into ``folder`` (a fresh directory); return its counts."""
    layout, style = LAYOUTS[domain], sr.STYLES[domain]
    scenes = SCENES[options.get("scenes", "easy")]
    height, width = options["height"], options["width"]
    plan_rng = np.random.default_rng([seed, layout.code, 0])
    shots = plan(plan_rng, layout, options["num_ids"], options["images_per_id"],
                 options["queries_per_id"], options["gallery_per_id"])
    cameras = {c: sr.sample_camera(np.random.default_rng([seed, layout.code, 1, c]), style)
               for c in range(1, layout.num_cams + 1)}
    views = {c: sr.VIEW_PRIOR for c in cameras}
    scales = {c: 1.0 for c in cameras}
    hard = scenes != SCENES["easy"]
    if hard:
        for c in cameras:
            rng = np.random.default_rng([seed, layout.code, 5, c])
            cameras[c] = sr.harden_camera(cameras[c], rng, style, scenes.light_spread)
            views[c] = sr.view_bias(rng, scenes.view_bias)
            scales[c] = float(rng.uniform(scenes.low_res, 1.0))
    people = _people(shots, seed, layout, style, scenes)
    starts = _tracklets(shots, np.random.default_rng([seed, layout.code, 6]), scenes.tracklet)
    frames = {c: 0 for c in cameras}
    root = folder / layout.release
    for split in SPLITS:
        (root / split).mkdir(parents=True)
    pixels = None
    for index, shot in enumerate(shots):
        # One generator per image: content does not depend on the order of rendering.
        rng = np.random.default_rng([seed, layout.code, 3, index])
        if shot.kind == "fragment":
            who = sr.sample_person(rng, style)
            pixels = sr.render_fragment(cameras[shot.cam], style, rng, who, height, width)
        elif starts[index] != index:
            pixels = sr.next_frame(pixels, rng, style.noise)
        else:
            passerby = None
            if hard and rng.random() < scenes.passerby:
                passerby = sr.sample_person(np.random.default_rng([seed, layout.code, 7, index]),
                                            style)
            pixels = sr.render(people[shot.pid], cameras[shot.cam], style, rng, height, width,
                               occlude=scenes.occlude, views=views[shot.cam],
                               passerby=passerby, scale=scales[shot.cam])
        step = 1 if starts[index] != index else int(plan_rng.integers(1, 60))
        frames[shot.cam] += step
        name = layout.file_name(shot.pid, shot.cam, frames[shot.cam], plan_rng)
        Image.fromarray(pixels).save(root / shot.split / name, quality=90)
    counts = {split: sum(s.split == split for s in shots) for split in SPLITS}
    train_ids = {s.pid for s in shots if s.split == "bounding_box_train"}
    return {"images": counts, "train_ids": len(train_ids), "cameras": layout.num_cams,
            "scenes": options.get("scenes", "easy")}


def _marker_matches(path: Path, options: dict) -> bool:
    try:
        return json.loads((path / MARKER).read_text()).get("options") == options
    except (OSError, ValueError):
        return False


def generate(out_dir: str | os.PathLike, seed: int = 0, num_ids: int = 100,
             images_per_id: int = 14, queries_per_id: int = 2, gallery_per_id: int = 8,
             height: int = 64, width: int = 32,
             domains: Sequence[str] = ("market1501", "dukemtmc"), force: bool = False,
             scenes: str = "hard") -> dict:
    """Write the synthetic domains under ``out_dir``; return a summary per domain.

    A domain whose marker file records the same options is kept as is (unless
    ``force``); each domain is rendered into a temporary folder and renamed into
    place, so an interrupted run never leaves a half-written dataset.
    """
    for domain in domains:
        if domain not in LAYOUTS:
            raise UserError(f"unknown synthetic domain {domain!r}; choose from {sorted(LAYOUTS)}")
    if num_ids < 2 or images_per_id < 2 or gallery_per_id < 2 or queries_per_id < 1:
        raise UserError("synthetic data needs num_ids >= 2, images_per_id >= 2, "
                        "gallery_per_id >= 2 and queries_per_id >= 1")
    for domain in domains:
        layout = LAYOUTS[domain]
        if num_ids + _num_distractor_ids(layout, num_ids) > layout.max_pid:
            raise ParamError("num_ids", num_ids, f"{domain} person ids go up to "
                             f"{layout.max_pid}, too few for that many identities")
    if scenes not in SCENES:
        raise UserError(f"unknown synthetic scenes {scenes!r}; choose from {sorted(SCENES)}")
    if height < 16 or width < 8:
        raise UserError(f"synthetic images must be at least 16x8 pixels, got {height}x{width}")
    options = {"seed": seed, "num_ids": num_ids, "images_per_id": images_per_id,
               "queries_per_id": queries_per_id, "gallery_per_id": gallery_per_id,
               "height": height, "width": width, "scenes": scenes}
    out_dir = Path(out_dir)
    summary = {}
    for domain in domains:
        target = out_dir / domain
        if target.exists() and not (target / MARKER).exists():
            raise UserError(f"{target} exists and was not written by the synthetic generator; "
                            "refusing to overwrite it (choose another output folder)")
        if not force and _marker_matches(target, options):
            logger.info("synthetic %s: complete data found in %s, skipped", domain, target)
            summary[domain] = {**json.loads((target / MARKER).read_text())["summary"],
                               "skipped": True}
            continue
        start = time.perf_counter()
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{domain}.", suffix=".tmp", dir=out_dir))
        try:
            counts = _write_domain(tmp / "data", domain, seed, options)
            result = {**counts, "path": str(target), "seconds": round(time.perf_counter() - start, 2)}
            write_json(tmp / "data" / MARKER, {"options": options, "summary": result})
            _replace(tmp / "data", target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("synthetic %s: %s in %.1fs", domain, counts["images"], result["seconds"])
        summary[domain] = {**result, "skipped": False}
    return summary


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an old ``target`` is moved aside first, then deleted."""
    if target.exists():
        trash = new.parent / "old"
        os.replace(target, trash)
    os.replace(new, target)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m dualref.datasets.synthetic",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="data root; writes OUT_DIR/<domain>/<release>/...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-ids", type=int, default=100, help="identities per domain "
                        "(half train, half test)")
    parser.add_argument("--images-per-id", type=int, default=14, help="train images per id")
    parser.add_argument("--queries-per-id", type=int, default=2)
    parser.add_argument("--gallery-per-id", type=int, default=8)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--scenes", default="hard", choices=sorted(SCENES),
                        help="hard (default): near-identical ids, view-dependent clothes, "
                        "camera view bias, tracklets, passers-by, occluders, low-resolution "
                        "and differently lit cameras; easy: the simpler scenes of dualref <= 0.1")
    parser.add_argument("--domains", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--force", action="store_true", help="regenerate even if complete")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = generate(args.out_dir, seed=args.seed, num_ids=args.num_ids,
                           images_per_id=args.images_per_id, queries_per_id=args.queries_per_id,
                           gallery_per_id=args.gallery_per_id, height=args.height,
                           width=args.width, domains=args.domains, force=args.force,
                           scenes=args.scenes)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    for domain, info in summary.items():
        state = "kept" if info["skipped"] else f"written in {info['seconds']}s"
        print(f"{domain}: {info['images']} ({state}) -> {info['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
