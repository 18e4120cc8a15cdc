"""Rendering of synthetic people for the synthetic re-id datasets (``fastreid_ms.data.synthetic``).

Every identity has a stable appearance (clothing colours, top pattern, trousers/shorts/skirt, hair, bag, build) and
every image varies it by camera (background, colour cast, brightness), pose (stride, arm swing, facing direction),
crop (position, scale) and noise. :class:`Writer` renders and saves the images of one dataset folder.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw


@dataclass
class SyntheticSizes:
    """Sizes of one synthetic dataset.

    num_train_ids / num_test_ids: identities in train and in query+gallery (disjoint, as in the real benchmarks);
    min_images / max_images: images per train identity (uniform; 1 gives single-image ids);
    test_images: gallery images per camera of a test identity (one query image per camera is added);
    test_cameras: cameras per test identity (>= 2 so every query has a cross-camera match);
    num_distractors: extra gallery images (Market pid 0, Duke gallery-only ids, MSMT/CUHK03: none);
    num_junk: Market-1501 junk images (pid -1) in the gallery folder, which the parser skips;
    num_val: MSMT17 list_val.txt images (of train ids; used with DATASETS.COMBINEALL only).
    """

    num_train_ids: int = 16
    num_test_ids: int = 8
    min_images: int = 2
    max_images: int = 6
    test_images: int = 1
    test_cameras: int = 2
    num_distractors: int = 4
    num_junk: int = 2
    num_val: int = 4


@dataclass
class _Appearance:
    top: Tuple[int, int, int]
    top2: Tuple[int, int, int]
    pattern: str
    bottom: Tuple[int, int, int]
    bottom_style: str
    shoes: Tuple[int, int, int]
    skin: Tuple[int, int, int]
    hair: Tuple[int, int, int]
    long_hair: bool
    bag: str
    bag_color: Tuple[int, int, int]
    width: float
    height: float


@dataclass
class _Camera:
    background: Tuple[int, int, int]
    clutter: Tuple[int, int, int]
    gain: Tuple[float, float, float]
    brightness: float


@dataclass
class ImageSpec:
    """One rendered image: relative path (inside the dataset folder), person, camera (0-based)."""

    rel_path: str
    person: int
    camera: int
    look: Optional[int] = None  # appearance key when it differs from ``person`` (distractors, junk)


def _color(rng: np.random.Generator, min_value: float = 0.25) -> Tuple[int, int, int]:
    hue, sat, val = rng.random(), rng.uniform(0.35, 1.0), rng.uniform(min_value, 1.0)
    i, f = int(hue * 6) % 6, hue * 6 - int(hue * 6)
    p, q, t = val * (1 - sat), val * (1 - f * sat), val * (1 - (1 - f) * sat)
    rgb = [(val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q)][i]
    return tuple(int(round(255 * c)) for c in rgb)


def _appearance(rng: np.random.Generator) -> _Appearance:
    skin_base = rng.uniform(0.35, 0.95)
    skin = (int(255 * min(1, skin_base + 0.1)), int(220 * skin_base), int(190 * skin_base))
    return _Appearance(
        top=_color(rng), top2=_color(rng), pattern=str(rng.choice(["plain", "hstripes", "vstripes", "logo"])),
        bottom=_color(rng, 0.1), bottom_style=str(rng.choice(["trousers", "trousers", "shorts", "skirt"])),
        shoes=_color(rng, 0.05), skin=skin, hair=_color(rng, 0.05), long_hair=bool(rng.random() < 0.4),
        bag=str(rng.choice(["none", "backpack", "shoulder"])), bag_color=_color(rng, 0.1),
        width=float(rng.uniform(0.85, 1.2)), height=float(rng.uniform(0.92, 1.05)))


def _camera(rng: np.random.Generator) -> _Camera:
    return _Camera(background=_color(rng, 0.3), clutter=_color(rng, 0.2),
                   gain=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)), brightness=float(rng.uniform(-20, 20)))


def _render(app: _Appearance, cam: _Camera, size: Tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """Draw one person image of ``size`` = (height, width)."""
    height, width = size
    ss = 2
    canvas_h, canvas_w = height * ss, width * ss
    img = Image.new("RGB", (canvas_w, canvas_h), cam.background)
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = rng.uniform(-0.2, 1.0) * canvas_w, rng.uniform(-0.2, 1.0) * canvas_h
        w, h = rng.uniform(0.2, 0.7) * canvas_w, rng.uniform(0.1, 0.5) * canvas_h
        tone = tuple(int(np.clip(c + rng.uniform(-30, 30), 0, 255)) for c in cam.clutter)
        draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tone)

    person = Image.new("RGBA", (canvas_w, canvas_h), (0, 0, 0, 0))
    pd = ImageDraw.Draw(person)
    ph = canvas_h * rng.uniform(0.72, 0.94) * app.height
    cx = canvas_w / 2 + rng.uniform(-0.1, 0.1) * canvas_w
    y0 = (canvas_h - ph) / 2 + rng.uniform(-0.04, 0.04) * canvas_h
    torso_w = 0.30 * ph * 0.5 * app.width
    stride = rng.uniform(-0.12, 0.12) * ph
    swing = rng.uniform(-0.08, 0.08) * ph

    def y(f):
        return y0 + f * ph

    limb = 0.055 * ph
    # legs (hip -> foot), shoes
    for side, sign in ((-1, 1), (1, -1)):
        hip_x = cx + side * torso_w * 0.45
        foot_x = hip_x + sign * stride * 0.5
        knee_x, knee_y = (hip_x + foot_x) / 2, y(0.74)
        upper = app.bottom if app.bottom_style != "skirt" else app.skin
        lower = app.bottom if app.bottom_style == "trousers" else app.skin
        pd.polygon([(hip_x - limb, y(0.52)), (hip_x + limb, y(0.52)), (knee_x + limb, knee_y),
                    (knee_x - limb, knee_y)], fill=upper)
        pd.polygon([(knee_x - limb, knee_y), (knee_x + limb, knee_y), (foot_x + limb * 0.9, y(0.95)),
                    (foot_x - limb * 0.9, y(0.95))], fill=lower)
        pd.ellipse([foot_x - limb * 1.5, y(0.94), foot_x + limb * 1.5, y(0.99)], fill=app.shoes)
    if app.bottom_style == "skirt":
        pd.polygon([(cx - torso_w, y(0.5)), (cx + torso_w, y(0.5)), (cx + torso_w * 1.4, y(0.7)),
                    (cx - torso_w * 1.4, y(0.7))], fill=app.bottom)
    if app.bag == "backpack":
        pd.rectangle([cx - torso_w * 1.25, y(0.2), cx - torso_w * 0.7, y(0.45)], fill=app.bag_color)
    # torso and its pattern
    box = [cx - torso_w, y(0.17), cx + torso_w, y(0.53)]
    pd.rounded_rectangle(box, radius=limb, fill=app.top)
    if app.pattern == "hstripes":
        for k in range(4):
            top_y = y(0.21 + 0.08 * k)
            pd.rectangle([box[0], top_y, box[2], top_y + 0.035 * ph], fill=app.top2)
    elif app.pattern == "vstripes":
        for k in range(3):
            left = box[0] + (k + 0.5) * (box[2] - box[0]) / 3.5
            pd.rectangle([left, box[1], left + 0.12 * (box[2] - box[0]), box[3]], fill=app.top2)
    elif app.pattern == "logo":
        pd.rectangle([cx - torso_w * 0.45, y(0.25), cx + torso_w * 0.45, y(0.37)], fill=app.top2)
    # arms
    for side, sign in ((-1, 1), (1, -1)):
        shoulder_x = cx + side * (torso_w + limb * 0.6)
        hand_x = shoulder_x + sign * swing
        pd.polygon([(shoulder_x - limb * 0.8, y(0.18)), (shoulder_x + limb * 0.8, y(0.18)),
                    (hand_x + limb * 0.7, y(0.5)), (hand_x - limb * 0.7, y(0.5))], fill=app.top)
        pd.ellipse([hand_x - limb * 0.8, y(0.49), hand_x + limb * 0.8, y(0.55)], fill=app.skin)
    if app.bag == "shoulder":
        pd.line([(cx - torso_w, y(0.18)), (cx + torso_w * 1.1, y(0.45))], fill=app.bag_color, width=max(1, int(limb)))
        pd.rectangle([cx + torso_w * 0.9, y(0.42), cx + torso_w * 1.5, y(0.55)], fill=app.bag_color)
    # head and hair
    r = 0.075 * ph
    hy = y(0.09)
    if app.long_hair:
        pd.rectangle([cx - r * 1.1, hy, cx + r * 1.1, y(0.26)], fill=app.hair)
    pd.ellipse([cx - r, hy - r, cx + r, hy + r], fill=app.skin)
    pd.chord([cx - r * 1.05, hy - r * 1.1, cx + r * 1.05, hy + r * 0.6], 180, 360, fill=app.hair)

    if rng.random() < 0.5:
        person = person.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img.paste(person, (0, 0), person)
    img = img.resize((width, height), Image.Resampling.LANCZOS)

    array = np.asarray(img, dtype=np.float32)
    gain = np.asarray(cam.gain, np.float32) * rng.uniform(0.92, 1.08)
    array = array * gain + cam.brightness + rng.uniform(-10, 10) + rng.normal(0.0, 5.0, array.shape)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


class Writer:
    """Renders and saves the images of one dataset; keeps its identity appearances and camera looks."""

    def __init__(self, name: str, folder: str, rng: np.random.Generator, size: Tuple[int, int], num_cameras: int):
        self.name, self.folder, self.rng, self.size = name, folder, rng, size
        self.cameras = [_camera(rng) for _ in range(num_cameras)]
        self.people: Dict[int, _Appearance] = {}

    def appearance(self, person: int) -> _Appearance:
        if person not in self.people:
            self.people[person] = _appearance(self.rng)
        return self.people[person]

    def write(self, image: ImageSpec) -> str:
        path = os.path.join(self.folder, image.rel_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        look = image.person if image.look is None else image.look
        rendered = _render(self.appearance(look), self.cameras[image.camera], self.size, self.rng)
        if path.endswith(".png"):
            rendered.save(path)
        else:
            rendered.save(path, quality=90)
        return path


def split_stats(items: Sequence[Tuple]) -> Dict[str, int]:
    return {"ids": len({i[1] for i in items}), "images": len(items), "cams": len({i[2] for i in items})}


def train_counts(rng, sizes: SyntheticSizes) -> List[int]:
    return [int(rng.integers(sizes.min_images, sizes.max_images + 1)) for _ in range(sizes.num_train_ids)]


def test_cameras(rng, sizes: SyntheticSizes, num_cameras: int) -> List[int]:
    k = min(max(2, sizes.test_cameras), num_cameras)
    return sorted(int(c) for c in rng.choice(num_cameras, k, replace=False))
