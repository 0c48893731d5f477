"""Crowded camera scenes with exact ground truth, built from real people in real footage.

No labelled crowded night footage can be had here, so the vision tests and benchmark make
their own, from real pictures:

- **people**: cut out of real fixed-camera footage by background subtraction: the walkers
  of OpenCV's sample street video ``vtest.avi`` (Debian's opencv-doc, installed by
  ``make vtest``; 50-150 px tall) and the people of ``one-by-one-person-detection.mp4``
  (../shared/data, CC BY 4.0; 200-430 px tall), each with its own mask;
- **backgrounds**: the empty scenes of the same footage (the street's temporal median,
  the empty room), cropped to 16:9 and enlarged to the scene's size;
- **a scene**: ``people`` people (20 or more: a crowd) walking slowly on a ground plane,
  each one's height set by how far down the picture its feet are (``heights``: from the
  farthest to the nearest), drawn far to near so that near people hide far ones; the
  ground truth is each pasted figure's own mask box, with the share of it still visible;
- **variants** of the same scene: ``day`` as pasted; ``night`` (dark, gamma 1.6, a colour
  cast, sensor noise, JPEG quality 60); ``ir`` (grey, low contrast, blurred, noisy: what
  a camera's infrared mode looks like, crudely).

Limits, said plainly: pasted people have cut-out edges and no shadows, they float a
little on the background, the small ones come from some 60 walkers of one street and the
large ones from a handful of people in one room. The figures are a regression check for
scale and density, not a promise for a county's own cameras (``shaftwatch eval vision``
measures those).

Written as a MOT-format sequence (what ``shaftwatch eval vision`` reads): ``img1/000001.jpg``
..., ``gt/gt.txt`` (frame, id, left, top, width, height, 1, 1, visibility) and ``seqinfo.ini``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tests.helpers import PEOPLE

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
VARIANTS = ("day", "night", "ir")


@dataclass
class Cutout:
    source: str
    image: np.ndarray  # BGR
    mask: np.ndarray  # uint8, 255 on the person


def _frames(path: Path, indexes) -> dict[int, np.ndarray]:
    """Frames by index, read in one pass (seeking in these files is slow)."""
    wanted = set(indexes)
    cap = cv2.VideoCapture(str(path))
    out = {}
    for i in range(max(wanted) + 1):
        if i not in wanted:
            if not cap.grab():
                break
            continue
        ok, image = cap.read()
        if not ok:
            break
        out[i] = image
    cap.release()
    return out


@functools.lru_cache(maxsize=1)
def _street() -> np.ndarray:
    """vtest.avi without its walkers: the median of every 8th frame."""
    return np.median(np.stack(list(_frames(VTEST, range(0, 795, 8)).values())), axis=0).astype(np.uint8)


def _foreground(image: np.ndarray, background: np.ndarray, threshold: int) -> np.ndarray:
    diff = cv2.absdiff(image, background).max(axis=2)
    mask = (diff > threshold).astype(np.uint8) * 255
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 5), np.uint8))


def _cut(image, labels, stats, j, source) -> Cutout:
    x, y, w, h, _ = stats[j]
    return Cutout(source, image[y:y + h, x:x + w].copy(), ((labels[y:y + h, x:x + w] == j) * 255).astype(np.uint8))


@functools.lru_cache(maxsize=1)
def cutouts() -> tuple[list[Cutout], list[Cutout]]:
    """(small, large) real people: walkers of vtest.avi (when installed), people of one-by-one."""
    small: list[Cutout] = []
    if VTEST.exists():
        background = _street()
        for i, image in _frames(VTEST, range(5, 795, 25)).items():
            count, labels, stats, _ = cv2.connectedComponentsWithStats(_foreground(image, background, 40))
            for j in range(1, count):
                x, y, w, h, area = stats[j]
                # isolated, whole, upright figures: a person, not a pair or a part at the border
                if 40 <= h <= 150 and 2.2 <= h / w <= 4.5 and area >= 0.35 * w * h and x > 2 and y > 2 \
                        and x + w < 766 and y + h < 574:
                    small.append(_cut(image, labels, stats, j, f"vtest:{i}"))
    large: list[Cutout] = []
    room = _frames(PEOPLE, [0])[0]  # the empty room
    for i, image in _frames(PEOPLE, range(20, 1390, 45)).items():
        count, labels, stats, _ = cv2.connectedComponentsWithStats(_foreground(image, room, 45))
        if count < 2:
            continue
        j = 1 + int(np.argmax(stats[1:, 4]))
        x, y, w, h, area = stats[j]
        if h >= 120 and area >= 0.3 * w * h and x > 2 and x + w < 766 and y + h < 430:
            large.append(_cut(image, labels, stats, j, f"one-by-one:{i}"))
    return small or large, large


@functools.lru_cache(maxsize=4)
def background(name: str, width: int, height: int) -> np.ndarray:
    """An empty real scene at the given size: ``street`` (vtest's median, else the room) or ``room``."""
    if name == "street" and VTEST.exists():
        image = _street()
    else:
        image = _frames(PEOPLE, [0])[0]
    h, w = image.shape[:2]
    crop_h = min(h, round(w * height / width))  # to the scene's aspect, keeping the bottom (the ground)
    image = image[h - crop_h:, :]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


@dataclass
class Walker:
    cutout: Cutout
    x: float  # footpoint, frame pixels
    y: float
    vx: float  # per frame
    vy: float
    flip: bool


def _height_at(y: float, top: float, bottom: float, heights: tuple[int, int]) -> float:
    far, near = heights
    return far + (near - far) * (y - top) / max(1.0, bottom - top)


def _render(variant: str, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if variant == "night":
        out = (image / 255.0) ** 1.6 * 0.35 * 255 * np.array([1.15, 0.95, 0.8])
        return np.clip(out + rng.normal(0, 5, out.shape), 0, 255).astype(np.uint8)
    if variant == "ir":
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        grey = cv2.GaussianBlur(110 + 0.55 * (grey - grey.mean()), (3, 3), 0) + rng.normal(0, 6, grey.shape)
        return cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    return np.clip(image + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)


QUALITY = {"day": 90, "night": 60, "ir": 70}


def write_sequence(directory: Path, variant: str = "night", people: int = 25, frames: int = 8,
                   size: tuple[int, int] = (1920, 1080), heights: tuple[int, int] = (50, 340),
                   empty_frames: int = 1, scene: str = "street", seed: int = 11) -> Path:
    """A crowd walking through a real scene, as a MOT sequence in ``directory``. The first
    ``empty_frames`` frames show the empty scene (a camera's motion gate learns it)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}")
    width, height = size
    rng = np.random.default_rng(seed)
    small, large = cutouts()
    top, bottom = 0.3 * height, height - 2.0
    walkers = []
    for _ in range(people):
        y = float(rng.uniform(top, bottom))
        h = _height_at(y, top, bottom, heights)
        pool = large if h > 170 or not small else small
        cut = pool[int(rng.integers(len(pool)))]
        speed = float(rng.uniform(0.06, 0.15)) * h * rng.choice([-1, 1])
        walkers.append(Walker(cut, float(rng.uniform(0.05, 0.95) * width), y, speed,
                              float(rng.uniform(-0.01, 0.01)) * height, bool(rng.random() < 0.5)))
    base = background(scene, width, height).astype(np.float32)
    (directory / "img1").mkdir(parents=True, exist_ok=True)
    (directory / "gt").mkdir(exist_ok=True)
    rows = []
    for k in range(frames):
        canvas = base.copy()
        owner = np.zeros((height, width), np.int16)  # which person each pixel shows (0: background)
        boxes = {}
        if k >= empty_frames:
            for pid, walker in sorted(enumerate(walkers, 1), key=lambda pw: pw[1].y):  # far first
                h = int(round(_height_at(walker.y, top, bottom, heights)))
                cut = walker.cutout
                w = max(4, int(round(cut.image.shape[1] * h / cut.image.shape[0])))
                interpolation = cv2.INTER_AREA if h < cut.image.shape[0] else cv2.INTER_LINEAR
                figure = cv2.resize(cut.image, (w, h), interpolation=interpolation)
                mask = cv2.resize(cut.mask, (w, h), interpolation=interpolation)
                if walker.flip:
                    figure, mask = figure[:, ::-1], mask[:, ::-1]
                x0, y0 = int(round(walker.x - w / 2)), int(round(walker.y - h))
                fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + w), min(height, y0 + h)
                if fx1 - fx0 < 4 or fy1 - fy0 < 4:
                    continue
                part = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
                alpha = cv2.GaussianBlur(mask[part].astype(np.float32) / 255, (3, 3), 0)[..., None]
                region = canvas[fy0:fy1, fx0:fx1]
                canvas[fy0:fy1, fx0:fx1] = region * (1 - alpha) + figure[part] * alpha
                solid = mask[part] > 127
                owner[fy0:fy1, fx0:fx1][solid] = pid
                ys, xs = np.nonzero(solid)
                if len(xs):
                    boxes[pid] = (fx0 + int(xs.min()), fy0 + int(ys.min()), fx0 + int(xs.max()) + 1,
                                  fy0 + int(ys.max()) + 1, int(solid.sum()))
        for pid, (bx0, by0, bx1, by1, pixels) in boxes.items():
            visible = float(np.count_nonzero(owner[by0:by1, bx0:bx1] == pid)) / max(1, pixels)
            rows.append(f"{k + 1},{pid},{bx0},{by0},{bx1 - bx0},{by1 - by0},1,1,{visible:.3f}")
        image = _render(variant, canvas, rng)
        cv2.imwrite(str(directory / "img1" / f"{k + 1:06d}.jpg"), image,
                    [cv2.IMWRITE_JPEG_QUALITY, QUALITY[variant]])
        if k >= empty_frames:
            for walker in walkers:
                walker.x += walker.vx
                walker.y += walker.vy
                if not 0.03 * width < walker.x < 0.97 * width:
                    walker.vx = -walker.vx
                if not top < walker.y < bottom:
                    walker.vy = -walker.vy
                walker.y = min(max(walker.y, top), bottom)
    (directory / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (directory / "seqinfo.ini").write_text(
        f"[Sequence]\nname={directory.name}\nimDir=img1\nframeRate=1\nseqLength={frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n")
    return directory


def write_street_sequence(directory: Path, step: int = 10, min_area: int = 150) -> Path:
    """The real street of vtest.avi (768x576, people 40-150 px) as a MOT sequence, one
    picture every ``step`` frames (10: one a second), with pseudo ground truth from
    background subtraction: isolated, whole, upright figures are people (conf 1); every other
    foreground blob (pairs, groups, people at the border, bags) is an area to ignore
    (conf 0). People standing still long enough to be part of the background are not
    labelled, so precision here is a lower bound."""
    if not VTEST.exists():
        raise FileNotFoundError(f"{VTEST} is missing (make vtest)")
    background = _street()
    (directory / "img1").mkdir(parents=True, exist_ok=True)
    (directory / "gt").mkdir(exist_ok=True)
    rows, k = [], 0
    for index, image in sorted(_frames(VTEST, range(5, 795, step)).items()):
        k += 1
        cv2.imwrite(str(directory / "img1" / f"{k:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        count, labels, stats, _ = cv2.connectedComponentsWithStats(_foreground(image, background, 40))
        for j in range(1, count):
            x, y, w, h, area = stats[j]
            if area < min_area:
                continue
            person = 40 <= h <= 150 and 2.2 <= h / w <= 4.5 and area >= 0.35 * w * h and x > 2 and y > 2 \
                and x + w < 766 and y + h < 574
            rows.append(f"{k},{j},{x},{y},{w},{h},{1 if person else 0},1,1.0")
    (directory / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (directory / "seqinfo.ini").write_text(f"[Sequence]\nname=vtest\nimDir=img1\nframeRate={10 / step:g}\n"
                                           f"seqLength={k}\nimWidth=768\nimHeight=576\nimExt=.jpg\n")
    return directory


def write_room_sequence(directory: Path, step: int = 15) -> Path:
    """The demo's room (one-by-one-person-detection.mp4, 768x432, people 200-430 px) as a MOT
    sequence: its empty first frame, then one picture every ``step`` frames (15: 1.5 s)
    that shows exactly one whole person, boxed by background subtraction."""
    room = _frames(PEOPLE, [0])[0]
    (directory / "img1").mkdir(parents=True, exist_ok=True)
    (directory / "gt").mkdir(exist_ok=True)
    cv2.imwrite(str(directory / "img1" / "000001.jpg"), room, [cv2.IMWRITE_JPEG_QUALITY, 90])
    rows, k = [], 1
    for index, image in sorted(_frames(PEOPLE, range(20, 1390, step)).items()):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(_foreground(image, room, 45))
        if count < 2:
            continue
        j = 1 + int(np.argmax(stats[1:, 4]))
        x, y, w, h, area = stats[j]
        if h < 120 or area < 0.3 * w * h or x <= 2 or x + w >= 766 or y + h >= 430:
            continue
        k += 1
        cv2.imwrite(str(directory / "img1" / f"{k:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        rows.append(f"{k},1,{x},{y},{w},{h},1,1,1.0")
    (directory / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (directory / "seqinfo.ini").write_text(f"[Sequence]\nname=room\nimDir=img1\nframeRate={10 / step:g}\n"
                                           f"seqLength={k}\nimWidth=768\nimHeight=432\nimExt=.jpg\n")
    return directory
