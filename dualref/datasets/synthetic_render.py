"""Procedural pedestrian images: parametric people, domain styles, camera nuisances.

Everything is a pure function of a ``numpy.random.Generator``, so the caller
controls determinism. Images are float32 HxWx3 in [0, 1] until :func:`render`
quantises them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

_SKIN = np.array([[0.96, 0.80, 0.69], [0.87, 0.67, 0.52], [0.68, 0.49, 0.35], [0.45, 0.31, 0.22]])
_HAIR = np.array([[0.06, 0.05, 0.05], [0.32, 0.20, 0.11], [0.85, 0.72, 0.42], [0.60, 0.60, 0.60]])
_PATTERNS = ("solid", "hstripe", "vstripe", "split", "logo")
VIEWS = ("front", "back", "side")
VIEW_PRIOR = (0.4, 0.35, 0.25)
# Share of a background that varies per image rather than per camera.
SCENE_MIX = 0.7


@dataclass(frozen=True)
class DomainStyle:
    """What makes a domain look like itself (palettes, scenes, optics)."""

    tops: np.ndarray            # (K, 3) clothing palette for upper body
    bottoms: np.ndarray         # (K, 3) palette for trousers / skirts
    accents: np.ndarray         # (K, 3) stripes, logos, bags
    p_short_sleeves: float
    p_shorts: float
    scene: str                  # "outdoor" or "indoor"
    brightness: tuple[float, float]
    cast: float                 # max per-channel camera gain deviation
    noise: float
    blur: float                 # max blur tap weight
    pattern_weights: tuple[float, ...]


def _rgb(*colours: tuple[float, float, float]) -> np.ndarray:
    return np.array(colours, dtype=np.float32)


# Domain A (Market-like): bright, saturated summer clothes on sunny street scenes.
MARKET = DomainStyle(
    tops=_rgb((.9, .1, .1), (.1, .3, .9), (.95, .85, .1), (.1, .7, .2), (.95, .95, .95),
              (.08, .08, .08), (1., .5, .05), (.95, .45, .7), (.1, .8, .85), (.55, .2, .75)),
    bottoms=_rgb((.2, .3, .65), (.08, .08, .08), (.5, .5, .5), (.78, .68, .45), (.92, .92, .92),
                 (.75, .1, .1)),
    accents=_rgb((.95, .95, .95), (.05, .05, .05), (.9, .1, .1), (.1, .3, .9), (.95, .85, .1),
                 (.1, .7, .2)),
    p_short_sleeves=0.6, p_shorts=0.35, scene="outdoor", brightness=(0.95, 1.15),
    cast=0.08, noise=0.02, blur=0.15, pattern_weights=(0.4, 0.2, 0.1, 0.15, 0.15))

def _mute(palette: np.ndarray, saturation: float, light: float) -> np.ndarray:
    """Desaturate and darken a palette: same hues, winter-clothes look."""
    grey = palette.mean(axis=1, keepdims=True)
    return (light * (grey + saturation * (palette - grey))).astype(np.float32)


# Domain B (Duke-like): the same hues muted and darkened (plus browns/olives that
# domain A lacks), indoors under tinted lights; shared hues let some knowledge transfer.
DUKE = DomainStyle(
    tops=np.concatenate([_mute(MARKET.tops, 0.55, 0.75),
                         _rgb((.42, .28, .18), (.35, .38, .18), (.72, .66, .55))]),
    bottoms=np.concatenate([_mute(MARKET.bottoms, 0.55, 0.7), _rgb((.3, .2, .13))]),
    accents=_mute(MARKET.accents, 0.6, 0.8),
    p_short_sleeves=0.1, p_shorts=0.05, scene="indoor", brightness=(0.8, 1.0),
    cast=0.15, noise=0.03, blur=0.2, pattern_weights=(0.5, 0.15, 0.1, 0.15, 0.1))

STYLES = {"market1501": MARKET, "dukemtmc": DUKE}


@dataclass(frozen=True)
class Person:
    """One identity's appearance; shared by all of its images."""

    top: np.ndarray
    pattern: str
    accent: np.ndarray
    short_sleeves: bool
    bottom: np.ndarray
    bottom_style: str           # pants, shorts, skirt
    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    bag: str                    # none, backpack, handbag
    bag_colour: np.ndarray
    height: float
    width: float
    back_top: Optional[np.ndarray] = None   # colour seen from behind (a jacket's back)


def sample_person(rng: np.random.Generator, style: DomainStyle) -> Person:
    """Draw an identity; attributes are independent so colours repeat across ids."""
    pick = lambda palette: palette[rng.integers(len(palette))]  # noqa: E731
    weights = np.asarray(style.pattern_weights) / np.sum(style.pattern_weights)
    bottom_style = rng.choice(["pants", "shorts", "skirt"],
                              p=[0.85 - style.p_shorts, style.p_shorts, 0.15])
    return Person(
        top=pick(style.tops), pattern=str(rng.choice(_PATTERNS, p=weights)),
        accent=pick(style.accents), short_sleeves=bool(rng.random() < style.p_short_sleeves),
        bottom=pick(style.bottoms), bottom_style=str(bottom_style),
        skin=pick(_SKIN).astype(np.float32), hair=pick(_HAIR).astype(np.float32),
        long_hair=bool(rng.random() < 0.3),
        bag=str(rng.choice(["none", "backpack", "handbag"], p=[0.5, 0.3, 0.2])),
        bag_colour=pick(style.accents), height=float(rng.uniform(0.86, 1.0)),
        width=float(rng.uniform(0.85, 1.2)))


@dataclass(frozen=True)
class Camera:
    """A fixed view: scene colours, layout and colour cast."""

    wall: np.ndarray
    floor: np.ndarray
    detail: np.ndarray
    horizon: float
    period: float
    gains: np.ndarray
    light: float


def _scene_colours(rng: np.random.Generator, scene: str):
    """Wall, floor and detail colours of one ``scene``-type view."""
    if scene == "outdoor":
        wall = rng.uniform([0.65, 0.6, 0.5], [0.95, 0.92, 0.85])     # light facades / sky
        floor = rng.uniform(0.45, 0.7) * np.ones(3) + rng.uniform(-0.05, 0.05, 3)
        detail = rng.choice([[0.25, 0.55, 0.2], [0.35, 0.35, 0.4], [0.55, 0.4, 0.3]])
    else:
        wall = rng.uniform([0.15, 0.12, 0.1], [0.45, 0.4, 0.4])      # dark corridors
        floor = rng.uniform(0.1, 0.3) * np.ones(3) + rng.uniform(-0.04, 0.04, 3)
        detail = rng.uniform(0.3, 0.55, 3)                             # pillars / doors
    return wall, floor, np.asarray(detail, np.float64)


def sample_camera(rng: np.random.Generator, style: DomainStyle) -> Camera:
    """Draw a camera of ``style``'s scene type with its own colour cast."""
    wall, floor, detail = _scene_colours(rng, style.scene)
    gains = 1.0 + rng.uniform(-style.cast, style.cast, 3)
    return Camera(wall=wall.astype(np.float32), floor=floor.astype(np.float32),
                  detail=detail.astype(np.float32), horizon=float(rng.uniform(0.35, 0.7)),
                  period=float(rng.uniform(0.3, 0.7)), gains=gains.astype(np.float32),
                  light=float(rng.uniform(*style.brightness)))


def _smooth(rng: np.random.Generator, h: int, w: int, cells: int, amp: float) -> np.ndarray:
    """Low-frequency noise field (bilinear upsampling of a coarse grid)."""
    coarse = rng.normal(0.0, amp, (cells + 1, cells + 1, 3)).astype(np.float32)
    return np.einsum("hi,ijc,wj->hwc", _lerp_matrix(h, cells), coarse, _lerp_matrix(w, cells))


def _lerp_matrix(n: int, cells: int) -> np.ndarray:
    """(n, cells+1) weights of linear interpolation from a coarse grid to n samples."""
    pos = np.linspace(0, cells, n)
    return np.maximum(0, 1 - np.abs(pos[:, None] - np.arange(cells + 1)[None])).astype(np.float32)


def background(rng: np.random.Generator, cam: Camera, scene: str, h: int, w: int) -> np.ndarray:
    """The camera's scene seen through a randomly shifted crop."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / h
    # Each box sees a different part of the scene (people walk through it): the
    # camera only sets its flavour, so the background is no camera fingerprint
    # that would out-weigh the person when target images are clustered.
    own = _scene_colours(rng, scene)
    wall, floor, detail = ((1 - SCENE_MIX) * c + SCENE_MIX * o
                           for c, o in zip((cam.wall, cam.floor, cam.detail), own))
    cam = replace(cam, wall=wall.astype(np.float32), floor=floor.astype(np.float32),
                  detail=detail.astype(np.float32),
                  period=cam.period * float(rng.uniform(0.7, 1.4)))
    horizon = cam.horizon + rng.uniform(-0.12, 0.12)
    shift = rng.uniform(0, 1)
    img = np.where((yy < horizon)[..., None], cam.wall, cam.floor)
    if scene == "outdoor":
        # Windows on the facade, a grass/kerb strip at the horizon.
        win = ((np.mod(xx / cam.period * 3 + shift, 1) < 0.4)
               & (np.mod(yy / cam.period * 3, 1) < 0.5) & (yy < horizon - 0.08))
        img = np.where(win[..., None], cam.wall * 0.6, img)
        strip = (yy > horizon) & (yy < horizon + 0.06)
        img = np.where(strip[..., None], cam.detail, img)
        img = img + (0.15 * (1 - yy))[..., None]                       # sky light from above
    else:
        # Lit vertical pillars / door frames, floor tile lines.
        pillar = np.mod(xx / cam.period + shift, 1) < 0.18
        img = np.where((pillar & (yy < horizon))[..., None], cam.detail * 0.8, img)
        tiles = (yy > horizon) & (np.mod((yy - horizon) * 12, 1) < 0.12)
        img = np.where(tiles[..., None], cam.floor * 1.6, img)
        img = img * (0.7 + 0.5 * np.exp(-((yy - 0.05) ** 2) / 0.05))[..., None]
    return img + _smooth(rng, h, w, 3, 0.04)


def _soft(d: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage from a signed distance (pixels, negative inside)."""
    return np.clip(0.5 - d, 0.0, 1.0)


def _capsule(yy, xx, p0, p1, r) -> np.ndarray:
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
    return _soft(np.hypot(yy - y0 - t * dy, xx - x0 - t * dx) - r)


def _box(yy, xx, y0, y1, x0, x1) -> np.ndarray:
    return _soft(-np.minimum(np.minimum(yy - y0, y1 - yy), np.minimum(xx - x0, x1 - xx)))


def _paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    img += mask[..., None] * (colour - img)


class _Pose(NamedTuple):
    """Where one drawing of a person goes: body unit, centre, key heights, view, colours."""

    view: str
    u: float  # body unit: 1/100 of the drawn height
    cx: float
    top: float
    half: float  # half the torso width
    swing: float
    top_c: np.ndarray
    bottom_c: np.ndarray
    accent_c: Optional[np.ndarray]  # None where the pattern is not drawn

    @property
    def sh_y(self) -> float:
        return self.top + 17 * self.u

    @property
    def hip_y(self) -> float:
        return self.top + 52 * self.u

    @property
    def knee_y(self) -> float:
        return self.top + 75 * self.u

    @property
    def foot_y(self) -> float:
        return self.top + 97 * self.u


def _pose(h: int, w: int, p: Person, rng: np.random.Generator, jitter: float,
          views: tuple[float, ...], dx: float) -> _Pose:
    """Every random draw of one drawing, in a fixed order (the images depend on it)."""
    view = rng.choice(list(VIEWS), p=list(views))
    ph = h * p.height * rng.uniform(0.84, 0.98)
    top = rng.uniform(0.0, h - ph)
    cx = w / 2 + (dx + rng.uniform(-jitter, jitter)) * w
    u = ph / 100.0
    half = 14 * u * p.width * (0.6 if view == "side" else 1.0)
    swing = rng.uniform(-1, 1)
    col = lambda c: np.clip(c * rng.uniform(0.9, 1.1) + rng.normal(0, 0.02, 3), 0, 1)  # noqa: E731
    seen_top = p.back_top if view == "back" and p.back_top is not None else p.top
    top_c, bottom_c = col(seen_top), col(p.bottom)
    accent_c = col(p.accent) if view != "back" or p.pattern != "logo" else None
    return _Pose(view, u, cx, top, half, swing, top_c, bottom_c, accent_c)


def draw_person(img: np.ndarray, p: Person, rng: np.random.Generator, jitter: float,
                views: tuple[float, ...] = VIEW_PRIOR, dx: float = 0.0) -> None:
    """Paint ``p`` onto ``img`` in place with a random view, pose, scale and shift.

    ``views`` are the probabilities of front / back / side; ``dx`` moves the
    person sideways by that share of the width (a passer-by at the edge).
    """
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    pose = _pose(h, w, p, rng, jitter, views, dx)
    _draw_legs(img, yy, xx, p, pose)
    _draw_torso(img, yy, xx, p, pose)
    _draw_arms(img, yy, xx, p, pose)
    _draw_head(img, yy, xx, p, pose)


def _draw_legs(img: np.ndarray, yy: np.ndarray, xx: np.ndarray, p: Person, q: _Pose) -> None:
    """Legs (shoes at the end), bottom clothes over them, a side-view backpack behind."""
    u, cx, half = q.u, q.cx, q.half
    for side in (-1, 1):
        hip = (q.hip_y, cx + side * 0.45 * half)
        foot = (q.foot_y, hip[1] + side * q.swing * 6 * u * (1 if q.view == "side" else 0.4))
        leg = _capsule(yy, xx, hip, foot, 4.2 * u * p.width)
        _paint(img, leg, p.skin if p.bottom_style != "pants" else q.bottom_c)
        if p.bottom_style == "shorts":
            _paint(img, leg * (yy < (q.hip_y + q.knee_y) / 2 + 2 * u), q.bottom_c)
        _paint(img, _capsule(yy, xx, (q.foot_y - 2 * u, foot[1]),
                             (q.foot_y, foot[1] + 3 * u * side), 2.5 * u), np.array([0.1, 0.1, 0.1]))
    if p.bottom_style == "skirt":
        skirt = _box(yy, xx, q.hip_y - 2 * u, q.knee_y,
                     cx - half * (0.9 + (yy - q.hip_y) / (60 * u)),
                     cx + half * (0.9 + (yy - q.hip_y) / (60 * u)))
        _paint(img, skirt, q.bottom_c)
    if p.bag == "backpack" and q.view == "side":
        _paint(img, _box(yy, xx, q.sh_y + 3 * u, q.hip_y - 4 * u, cx - half - 9 * u,
                         cx - half + 2 * u), p.bag_colour)


def _draw_torso(img: np.ndarray, yy: np.ndarray, xx: np.ndarray, p: Person, q: _Pose) -> None:
    """Torso with its pattern; a backpack's body (back view) or straps (front view)."""
    u, cx, half = q.u, q.cx, q.half
    torso = _box(yy, xx, q.sh_y, q.hip_y + 2 * u, cx - half, cx + half)
    _paint(img, torso, q.top_c)
    ty, tx = (yy - q.sh_y) / u, (xx - cx) / u
    pattern = {"solid": np.zeros_like(yy), "hstripe": (np.mod(ty, 10) < 4).astype(np.float32),
               "vstripe": (np.mod(tx + 50, 8) < 3).astype(np.float32),
               "split": (ty > 18).astype(np.float32),
               "logo": ((np.abs(tx) < 6) & (ty > 8) & (ty < 20)).astype(np.float32)}[p.pattern]
    if q.accent_c is not None:
        _paint(img, torso * pattern, q.accent_c)
    if p.bag == "backpack" and q.view == "back":
        _paint(img, _box(yy, xx, q.sh_y + 3 * u, q.hip_y - 2 * u, cx - 0.75 * half,
                         cx + 0.75 * half), p.bag_colour)
    if p.bag == "backpack" and q.view == "front":
        for side in (-1, 1):
            _paint(img, _box(yy, xx, q.sh_y, q.hip_y - 10 * u, cx + side * 0.55 * half - 1.5 * u,
                             cx + side * 0.55 * half + 1.5 * u), p.bag_colour)


def _draw_arms(img: np.ndarray, yy: np.ndarray, xx: np.ndarray, p: Person, q: _Pose) -> None:
    """Arms: sleeves in the top colour, skin below the elbow for short sleeves; a handbag."""
    u, cx, half = q.u, q.cx, q.half
    for side in ((1,) if q.view == "side" else (-1, 1)):
        shoulder = (q.sh_y + 3 * u, cx + side * (half - 1 * u) * (0.3 if q.view == "side" else 1))
        hand = (q.top + 50 * u, shoulder[1] + side * 3 * u + q.swing * 8 * u * (q.view == "side"))
        arm = _capsule(yy, xx, shoulder, hand, 3.2 * u)
        _paint(img, arm, p.skin)
        elbow_y = (shoulder[0] + hand[0]) / 2
        _paint(img, arm * (yy < (elbow_y if p.short_sleeves else hand[0] - 3 * u)), q.top_c)
        if p.bag == "handbag" and side == 1:
            _paint(img, _box(yy, xx, hand[0] - 2 * u, hand[0] + 10 * u, hand[1] - 5 * u,
                             hand[1] + 5 * u), p.bag_colour)


def _draw_head(img: np.ndarray, yy: np.ndarray, xx: np.ndarray, p: Person, q: _Pose) -> None:
    """Head and hair (long hair falls behind the head unless seen from the front)."""
    u, cx = q.u, q.cx
    head_c = (q.top + 8 * u, cx + (2 * u if q.view == "side" else 0))
    head = _capsule(yy, xx, head_c, head_c, 7.5 * u)
    if p.long_hair and q.view != "front":
        _paint(img, _box(yy, xx, head_c[0], q.sh_y + 12 * u, cx - 7 * u, cx + 7 * u), p.hair)
    _paint(img, head, p.skin)
    hair_line = head_c[0] + (8 * u if q.view == "back" else -2 * u)
    _paint(img, head * (yy < hair_line), p.hair)


def _blur(img: np.ndarray, a: float) -> np.ndarray:
    """Separable 3-tap blur [a, 1-2a, a]."""
    for axis in (0, 1):
        pad = np.pad(img, [(1, 1) if i == axis else (0, 0) for i in range(3)], mode="edge")
        lo, mid, hi = (np.take(pad, np.arange(k, k + img.shape[axis]), axis=axis) for k in range(3))
        img = a * lo + (1 - 2 * a) * mid + a * hi
    return img


def render(person: Person, cam: Camera, style: DomainStyle, rng: np.random.Generator,
           height: int, width: int, occlude: float = 0.15, jitter: float = 0.08,
           views: tuple[float, ...] = VIEW_PRIOR, passerby: Optional[Person] = None,
           scale: float = 1.0) -> np.ndarray:
    """One uint8 HxWx3 image of ``person`` seen by ``cam``.

    Hard-scene extras (off by default): ``views`` biases the view, ``passerby``
    walks half in the frame behind the person, ``scale`` < 1 is a camera with
    fewer pixels (rendered small, then enlarged to ``height`` x ``width``).
    """
    img = background(rng, cam, style.scene, height, width).astype(np.float32)
    if passerby is not None:
        side = 1.0 if rng.random() < 0.5 else -1.0
        draw_person(img, passerby, rng, 0.05, dx=side * rng.uniform(0.45, 0.65))
    draw_person(img, person, rng, jitter, views=views)
    if rng.random() < occlude:
        # Something in front of the person: a pole, a bin, a passer-by's edge.
        x0 = rng.uniform(-0.2, 0.9) * width
        y0 = rng.uniform(0.3, 0.8) * height
        colour = rng.uniform(0.05, 0.7, 3).astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
        _paint(img, _box(yy, xx, y0, height + 1, x0, x0 + rng.uniform(0.15, 0.4) * width), colour)
    img = img * cam.gains * cam.light * rng.uniform(0.9, 1.1)
    img = _blur(img, rng.uniform(0, style.blur))
    if scale < 1.0:
        img = _resample(img, scale)
    img = img + rng.normal(0, style.noise, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _resample(img: np.ndarray, scale: float) -> np.ndarray:
    """Shrink by ``scale`` and enlarge back: the detail a low-resolution camera loses."""
    h, w = img.shape[:2]
    small = (max(4, round(w * scale)), max(8, round(h * scale)))
    channels = []
    for c in range(3):
        plane = Image.fromarray(img[..., c].astype(np.float32), mode="F")
        channels.append(np.asarray(plane.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)))
    return np.stack(channels, axis=-1)


# --- hard scenes: the confusions clustering pseudo-labels suffer from -----------------

def view_bias(rng: np.random.Generator, strength: float) -> tuple[float, ...]:
    """A camera's view probabilities: ``strength`` of them on one dominant view.

    People walk past a camera mostly in one direction, so one camera sees mostly
    backs and another mostly fronts: an identity looks different across cameras.
    """
    dominant = np.eye(len(VIEWS))[rng.integers(len(VIEWS))]
    probs = (1 - strength) * np.asarray(VIEW_PRIOR) + strength * dominant
    return tuple(float(x) for x in probs / probs.sum())


def harden_camera(cam: Camera, rng: np.random.Generator, style: DomainStyle,
                  light_spread: float) -> Camera:
    """A stronger per-camera colour cast and a light level spread by ``light_spread``."""
    gains = cam.gains * (1.0 + rng.uniform(-style.cast, style.cast, 3))
    light = cam.light * float(rng.uniform(1 - light_spread, 1 + light_spread))
    return replace(cam, gains=gains.astype(np.float32), light=light)


def with_back_colour(person: Person, rng: np.random.Generator, style: DomainStyle) -> Person:
    """The person wears something whose back differs from its front (a jacket, a cape)."""
    others = [c for c in style.tops if not np.allclose(c, person.top)]
    return replace(person, back_top=others[rng.integers(len(others))].copy())


def vary_one(person: Person, rng: np.random.Generator, style: DomainStyle) -> Person:
    """A near-identical identity: ``person`` with exactly one attribute changed."""
    pick = lambda palette, old: next(c for c in rng.permutation(palette)  # noqa: E731
                                     if not np.allclose(c, old))
    what = rng.choice(["pattern", "bag", "bottom", "accent", "hair"])
    if what == "pattern":
        return replace(person, pattern=str(rng.choice([x for x in _PATTERNS if x != person.pattern])))
    if what == "bag":
        bags = [b for b in ("none", "backpack", "handbag") if b != person.bag]
        return replace(person, bag=str(rng.choice(bags)))
    if what == "bottom":
        return replace(person, bottom=pick(style.bottoms, person.bottom))
    if what == "accent":
        return replace(person, accent=pick(style.accents, person.accent))
    return replace(person, hair=pick(_HAIR.astype(np.float32), person.hair),
                   long_hair=not person.long_hair)


def next_frame(pixels: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """The next frame of a tracklet: the same box shifted a pixel, new sensor noise."""
    img = pixels.astype(np.float32) / 255
    dy, dx = (int(v) for v in rng.integers(-1, 2, 2))
    img = np.roll(img, (dy, dx), axis=(0, 1))
    img = img * rng.uniform(0.96, 1.04) + rng.normal(0, noise, img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def render_fragment(cam: Camera, style: DomainStyle, rng: np.random.Generator,
                    person: Person, height: int, width: int) -> np.ndarray:
    """A bad detection (junk / distractor): background with a cut-off body part."""
    img = render(person, cam, style, rng, height * 3, width, occlude=0.0, jitter=0.5)
    start = int(rng.integers(0, 2 * height))
    return img[start:start + height]
