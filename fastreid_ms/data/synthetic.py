"""Synthetic re-id datasets written in the real on-disk layouts (Market-1501, DukeMTMC-reID, MSMT17, CUHK-SYSU,
CUHK03), for tests, the demo and benchmarks.

Every identity has a stable appearance (clothing colours, top pattern, trousers/shorts/skirt, hair, bag, build) and
every image varies it by camera (background, colour cast, brightness), pose (stride, arm swing, facing direction),
crop (position, scale) and noise, so that a model trained on the train split ranks same-identity gallery images first
far above chance. Output is deterministic for a given seed and size settings.
"""
import json
import logging
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

ALL_DATASETS = ("Market1501", "DukeMTMC", "MSMT17", "cuhkSYSU", "CUHK03")
_NUM_CAMERAS = {"Market1501": 6, "DukeMTMC": 8, "MSMT17": 15, "cuhkSYSU": 1, "CUHK03": 2}
_SUMMARY_FILE = "synthetic_reid.json"
_CUHK03_PLACEHOLDERS = (os.path.join("cuhk03_release", "cuhk-03.mat"), "cuhk03_new_protocol_config_detected.mat",
                        "cuhk03_new_protocol_config_labeled.mat")
# default folder of each dataset under the root (FastReID's layouts)
DATASET_FOLDERS = {"Market1501": "Market-1501-v15.09.15", "DukeMTMC": "DukeMTMC-reID", "MSMT17": "MSMT17_V1",
                   "cuhkSYSU": "cuhk_sysu", "CUHK03": "cuhk03"}


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
class _Image:
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


class _Writer:
    """Renders and saves the images of one dataset; keeps its identity appearances and camera looks."""

    def __init__(self, name: str, folder: str, rng: np.random.Generator, size: Tuple[int, int], num_cameras: int):
        self.name, self.folder, self.rng, self.size = name, folder, rng, size
        self.cameras = [_camera(rng) for _ in range(num_cameras)]
        self.people: Dict[int, _Appearance] = {}

    def appearance(self, person: int) -> _Appearance:
        if person not in self.people:
            self.people[person] = _appearance(self.rng)
        return self.people[person]

    def write(self, image: _Image) -> str:
        path = os.path.join(self.folder, image.rel_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        look = image.person if image.look is None else image.look
        rendered = _render(self.appearance(look), self.cameras[image.camera], self.size, self.rng)
        if path.endswith(".png"):
            rendered.save(path)
        else:
            rendered.save(path, quality=90)
        return path


def _stats(items: Sequence[Tuple]) -> Dict[str, int]:
    return {"ids": len({i[1] for i in items}), "images": len(items), "cams": len({i[2] for i in items})}


def _train_counts(rng, sizes: SyntheticSizes) -> List[int]:
    return [int(rng.integers(sizes.min_images, sizes.max_images + 1)) for _ in range(sizes.num_train_ids)]


def _test_cameras(rng, sizes: SyntheticSizes, num_cameras: int) -> List[int]:
    k = min(max(2, sizes.test_cameras), num_cameras)
    return sorted(int(c) for c in rng.choice(num_cameras, k, replace=False))


def _market_like(writer: _Writer, sizes: SyntheticSizes, duke: bool) -> Dict:
    """Market-1501 (``PPPP_cCsS_FFFFFF_BB.jpg``) or DukeMTMC-reID (``PPPP_cC_fFFFFFFF.jpg``) folders."""
    rng, ncam = writer.rng, len(writer.cameras)
    frame = iter(range(1, 10 ** 7))
    pids = rng.choice(np.arange(1, 1502), sizes.num_train_ids + sizes.num_test_ids, replace=False)
    train_pids, test_pids = sorted(pids[:sizes.num_train_ids].tolist()), sorted(pids[sizes.num_train_ids:].tolist())

    def name(pid: int, cam: int) -> str:
        if duke:
            return f"{pid:04d}_c{cam + 1}_f{next(frame):07d}.jpg"
        pid_text = f"{pid:04d}" if pid >= 0 else "-1"
        return f"{pid_text}_c{cam + 1}s{int(rng.integers(1, 7))}_{next(frame):06d}_{int(rng.integers(1, 9)):02d}.jpg"

    records = {"train": [], "query": [], "gallery": []}
    for pid, count in zip(train_pids, _train_counts(rng, sizes)):
        for _ in range(count):
            cam = int(rng.integers(ncam))
            records["train"].append(_Image(os.path.join("bounding_box_train", name(pid, cam)), pid, cam))
    for pid in test_pids:
        for cam in _test_cameras(rng, sizes, ncam):
            records["query"].append(_Image(os.path.join("query", name(pid, cam)), pid, cam))
            for _ in range(sizes.test_images):
                records["gallery"].append(_Image(os.path.join("bounding_box_test", name(pid, cam)), pid, cam))
    for k in range(sizes.num_distractors):
        pid = int(max(pids) + 1 + k) if duke else 0  # Market: pid 0 = distractors, each a different person
        cam = int(rng.integers(ncam))
        records["gallery"].append(_Image(os.path.join("bounding_box_test", name(pid, cam)), pid, cam, -1 - k))
    junk = []
    if not duke:
        for k in range(sizes.num_junk):
            cam = int(rng.integers(ncam))
            junk.append(_Image(os.path.join("bounding_box_test", name(-1, cam)), -1, cam, -10000 - k))
    for image in [i for split in records.values() for i in split] + junk:
        writer.write(image)
    return {split: _stats([(i.rel_path, i.person, i.camera) for i in images]) for split, images in records.items()}


def _msmt17(writer: _Writer, sizes: SyntheticSizes, version: str) -> Dict:
    """MSMT17_V1 (train/, test/) or MSMT17_V2 (mask_train_v2/, mask_test_v2/) with the four list files."""
    rng, ncam = writer.rng, len(writer.cameras)
    train_dir, test_dir = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}[version]
    times = ["0113morning", "0113noon", "0302afternoon", "0303morning"]
    counters: Dict[Tuple[str, int], int] = {}

    def rel(pid: int, cam: int, split_dir: str) -> str:
        n = counters.get((split_dir, pid), 0)
        counters[(split_dir, pid)] = n + 1
        stem = f"{pid:04d}_{n:03d}_{cam + 1:02d}_{times[int(rng.integers(len(times)))]}_{int(rng.integers(10000)):04d}"
        return f"{pid:04d}/{stem}_{int(rng.integers(3))}.jpg"

    lists = {"train": [], "val": [], "query": [], "gallery": []}
    for pid, count in enumerate(_train_counts(rng, sizes)):
        for _ in range(count):
            cam = int(rng.integers(ncam))
            lists["train"].append((rel(pid, cam, train_dir), pid, cam))
    for _ in range(sizes.num_val):
        pid, cam = int(rng.integers(sizes.num_train_ids)), int(rng.integers(ncam))
        lists["val"].append((rel(pid, cam, train_dir), pid, cam))
    for pid in range(sizes.num_test_ids):
        for cam in _test_cameras(rng, sizes, ncam):
            lists["query"].append((rel(pid, cam, test_dir), pid, cam))
            for _ in range(sizes.test_images):
                lists["gallery"].append((rel(pid, cam, test_dir), pid, cam))
    for split, entries in lists.items():
        split_dir = train_dir if split in ("train", "val") else test_dir
        person_offset = 0 if split in ("train", "val") else 100000
        for rel_path, pid, cam in entries:
            writer.write(_Image(os.path.join(split_dir, rel_path), pid, cam, pid + person_offset))
        with open(os.path.join(writer.folder, f"list_{split}.txt"), "w") as f:
            f.writelines(f"{rel_path} {pid}\n" for rel_path, pid, _ in entries)
    return {split: _stats(entries) for split, entries in lists.items()}


def _cuhk_sysu(writer: _Writer, sizes: SyntheticSizes) -> Dict:
    """cuhk_sysu/cropped_images/p<pid>_s<image>.jpg (train only, one dummy camera)."""
    rng = writer.rng
    pids = sorted(rng.choice(np.arange(1, 20000), sizes.num_train_ids, replace=False).tolist())
    image_id = iter(range(1, 10 ** 7))
    items = []
    for pid, count in zip(pids, _train_counts(rng, sizes)):
        for _ in range(count):
            rel_path = os.path.join("cropped_images", f"p{pid}_s{next(image_id)}.jpg")
            writer.write(_Image(rel_path, pid, 0))
            items.append((rel_path, pid, 0))
    return {"train": _stats(items), "query": _stats([]), "gallery": _stats([])}


def _cuhk03(writer: _Writer, sizes: SyntheticSizes, num_classic_splits: int = 2) -> Dict:
    """cuhk03/images_{labeled,detected}/<campair>_<pid3>_<view>_<img2>.png and the split JSONs (absolute paths,
    as FastReID's preprocessing writes them)."""
    rng = writer.rng
    num_people = sizes.num_train_ids + sizes.num_test_ids
    people = []  # (label 1-based, campair, pid in pair, [(view, img)]); >= 2 images per view
    low, high = max(2, sizes.min_images // 2), min(5, max(2, sizes.max_images // 2))
    for label in range(1, num_people + 1):
        n1, n2 = int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))
        shots = [(1, i) for i in range(1, n1 + 1)] + [(2, i) for i in range(6, 6 + n2)]
        people.append((label, int(rng.integers(1, 6)), label, shots))
    paths: Dict[str, Dict[int, List[Tuple[str, int]]]] = {}
    for kind in ("labeled", "detected"):
        paths[kind] = {}
        for label, campair, pid_in_pair, shots in people:
            paths[kind][label] = []
            for view, img in shots:
                rel_path = os.path.join(f"images_{kind}", f"{campair}_{pid_in_pair:03d}_{view}_{img:02d}.png")
                writer.write(_Image(rel_path, label, view - 1))
                paths[kind][label].append((os.path.join(os.path.abspath(writer.folder), rel_path), view - 1))

    order = rng.permutation(num_people) + 1
    train_labels = sorted(order[:sizes.num_train_ids].tolist())
    test_labels = sorted(order[sizes.num_train_ids:].tolist())
    summary = {}
    for kind in ("labeled", "detected"):
        train = [[p, relabel, cam] for relabel, label in enumerate(train_labels) for p, cam in paths[kind][label]]
        query, gallery = [], []
        for label in test_labels:
            shots = paths[kind][label]
            for view in (0, 1):
                in_view = [s for s in shots if s[1] == view]
                if in_view:
                    query.append([in_view[0][0], int(label), view])
                    gallery += [[p, int(label), cam] for p, cam in in_view[1:]]
        split = {"train": train, "query": query, "gallery": gallery,
                 "num_train_pids": len(train_labels), "num_train_imgs": len(train),
                 "num_query_pids": len({q[1] for q in query}), "num_query_imgs": len(query),
                 "num_gallery_pids": len({g[1] for g in gallery}), "num_gallery_imgs": len(gallery)}
        with open(os.path.join(writer.folder, f"splits_new_{kind}.json"), "w") as f:
            json.dump([split], f, indent=1)
        classic = []
        for _ in range(num_classic_splits):
            perm = rng.permutation(num_people) + 1
            test = sorted(perm[:sizes.num_test_ids].tolist())
            train_c = sorted(perm[sizes.num_test_ids:].tolist())
            c_train = [[p, i, cam] for i, label in enumerate(train_c) for p, cam in paths[kind][label]]
            c_test = [[p, i, cam] for i, label in enumerate(test) for p, cam in paths[kind][label]]
            classic.append({"train": c_train, "query": c_test, "gallery": c_test,
                            "num_train_pids": len(train_c), "num_train_imgs": len(c_train),
                            "num_query_pids": len(test), "num_query_imgs": len(c_test),
                            "num_gallery_pids": len(test), "num_gallery_imgs": len(c_test)})
        with open(os.path.join(writer.folder, f"splits_classic_{kind}.json"), "w") as f:
            json.dump(classic, f, indent=1)
        summary[kind] = {name: _stats([tuple(e) for e in split[name]]) for name in ("train", "query", "gallery")}
    # upstream FastReID's / ACL-DGReID's CUHK03 class requires the raw .mat files to exist, and never reads them
    # once the split JSONs above exist: empty placeholders make the folder readable by those classes too
    os.makedirs(os.path.join(writer.folder, "cuhk03_release"), exist_ok=True)
    for placeholder in _CUHK03_PLACEHOLDERS:
        open(os.path.join(writer.folder, placeholder), "wb").close()
    return {**summary["labeled"], "detected": summary["detected"]}


def make_synthetic_reid(root: str, datasets: Sequence[str] = ALL_DATASETS, *, seed: int = 0,
                        image_size: Tuple[int, int] = (128, 64),
                        sizes: Optional[Dict[str, object]] = None, msmt17_version: str = "V1",
                        market1501_dir: str = "Market-1501-v15.09.15", cuhk03_dir: str = "cuhk03") -> Dict:
    """Write synthetic datasets under ``root`` in the layouts the dataset classes read; return their statistics.

    Args:
        root: the folder to use as ``DATASETS.ROOT``.
        datasets: any of Market1501, DukeMTMC, MSMT17, cuhkSYSU, CUHK03.
        seed: everything (appearances, images, file names) is a function of the seed and the sizes.
        image_size: (height, width) of the crops (Market-1501's are 128 x 64).
        sizes: per-dataset :class:`SyntheticSizes` or dicts of its fields (default ``SyntheticSizes()``).
        msmt17_version: "V1" (train/, test/) or "V2" (mask_train_v2/, mask_test_v2/).
        market1501_dir: "Market-1501-v15.09.15" (FastReID) or "market1501/Market-1501-v15.09.15" (ACL-DGReID).
        cuhk03_dir: "cuhk03" (FastReID) or "cuhk03_new" (ACL-DGReID).

    Returns:
        ``{name: {"folder": ..., "train"/"query"/"gallery" (and MSMT17 "val", CUHK03 "detected"):
        {"ids", "images", "cams"}}}`` as the parsers should report them (train stats without combineall); also
        written to ``<root>/synthetic_reid.json``.
    """
    unknown = [d for d in datasets if d not in ALL_DATASETS]
    if unknown:
        raise ValueError(f"unknown synthetic dataset(s) {unknown}; choose from {list(ALL_DATASETS)}")
    if msmt17_version not in ("V1", "V2"):
        raise ValueError(f"msmt17_version must be 'V1' or 'V2', got {msmt17_version!r}")
    sizes = dict(sizes or {})
    image_size = [int(v) for v in image_size]
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"image_size must be (height, width) >= 1, got {image_size}")
    folders = {**DATASET_FOLDERS, "Market1501": market1501_dir, "MSMT17": f"MSMT17_{msmt17_version}",
               "CUHK03": cuhk03_dir}
    written = _read_summary(root)
    specs = {}
    for name in datasets:
        spec = sizes.get(name, SyntheticSizes())
        specs[name] = spec if isinstance(spec, SyntheticSizes) else SyntheticSizes(**spec)
        _check_sizes(name, specs[name])
        _check_existing(root, folders[name], name, written.get(name),
                        {"seed": seed, "image_size": image_size, "sizes": asdict(specs[name])})
    summary = {}
    for index, name in enumerate(ALL_DATASETS):
        if name not in datasets:
            continue
        spec = specs[name]
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        folder = folders[name]
        writer = _Writer(name, os.path.join(root, folder), rng, tuple(image_size), _NUM_CAMERAS[name])
        if name in ("Market1501", "DukeMTMC"):
            stats = _market_like(writer, spec, duke=name == "DukeMTMC")
        elif name == "MSMT17":
            stats = _msmt17(writer, spec, msmt17_version)
        elif name == "cuhkSYSU":
            stats = _cuhk_sysu(writer, spec)
        else:
            stats = _cuhk03(writer, spec)
        summary[name] = {"folder": writer.folder, "seed": seed, "image_size": image_size, "sizes": asdict(spec),
                         **stats}
        logger.info("synthetic %s written to %s: %s", name, writer.folder,
                    {k: v for k, v in stats.items() if k in ("train", "query", "gallery")})
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, _SUMMARY_FILE), "w") as f:
        json.dump({"datasets": {**written, **summary}}, f, indent=1)
    return summary


def _check_sizes(name: str, spec: SyntheticSizes) -> None:
    counts = asdict(spec)
    positive = ("num_train_ids", "num_test_ids", "min_images", "test_images")
    bad = {k: v for k, v in counts.items() if v < (1 if k in positive else 0)}
    if "test_cameras" not in bad and spec.test_cameras < 2:
        bad["test_cameras"] = spec.test_cameras
    if bad:
        raise ValueError(f"synthetic {name}: {bad} - identities, images per id and test images must be >= 1, test "
                         f"cameras >= 2, the other counts >= 0")
    if spec.max_images < spec.min_images:
        raise ValueError(f"synthetic {name}: need min_images <= max_images, got {spec.min_images}, {spec.max_images}")


def _read_summary(root: str) -> Dict[str, Dict]:
    path = os.path.join(root, _SUMMARY_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return dict(json.load(f).get("datasets", {}))


def _check_existing(root: str, folder: str, name: str, written: Optional[Dict], settings: Dict) -> None:
    """Refuse to write into a dataset folder that holds files of other settings (or of unknown origin): the runs
    would mix (more ids than asked, query ids of one run among the training ids of the other)."""
    path = os.path.join(root, folder)
    if not os.path.isdir(path) or not os.listdir(path):
        return
    if written is None:
        raise ValueError(f"{path} already holds files that {_SUMMARY_FILE} does not describe; write the synthetic "
                         f"{name} into an empty DATASETS.ROOT / --root, or delete that folder")
    old = {k: written.get(k) for k in settings}
    if old != settings:
        changes = ", ".join(f"{k}: {old[k]} -> {settings[k]}" for k in settings if old[k] != settings[k])
        raise ValueError(f"{path} was written with other settings ({changes}); write into an empty root, or "
                         f"delete that folder")



def ensure_synthetic_datasets(cfg) -> List[str]:
    """With ``DATASETS.SYNTHETIC.ENABLED``: write the synthetic version of every ``DATASETS.NAMES`` / ``TESTS``
    dataset whose folder is absent under ``DATASETS.ROOT`` (sizes and seed from ``DATASETS.SYNTHETIC.*``); existing
    folders are left alone. Returns the names generated. With several processes, rank 0 writes and the others
    wait."""
    from fastreid_ms.utils import comm

    syn = cfg.DATASETS.SYNTHETIC
    if not syn.ENABLED:
        return []
    names = list(dict.fromkeys(list(cfg.DATASETS.NAMES) + list(cfg.DATASETS.TESTS)))
    unknown = [n for n in names if n not in DATASET_FOLDERS]
    if unknown:
        raise ValueError(f"DATASETS.SYNTHETIC.ENABLED: no synthetic generator for {unknown}; it writes "
                         f"{sorted(DATASET_FOLDERS)}")
    root = cfg.DATASETS.ROOT
    missing = [n for n in names if not os.path.isdir(os.path.join(root, DATASET_FOLDERS[n]))]
    if missing and comm.is_main_process():
        logger.info("Generating synthetic datasets %s under %s (DATASETS.SYNTHETIC.ENABLED)", missing, root)
        sizes = SyntheticSizes(num_train_ids=int(syn.TRAIN_IDS), num_test_ids=int(syn.TEST_IDS),
                               min_images=int(syn.MIN_IMAGES), max_images=int(syn.MAX_IMAGES),
                               test_images=int(syn.TEST_IMAGES))
        make_synthetic_reid(root, missing, seed=int(syn.SEED), image_size=tuple(int(v) for v in syn.IMAGE_SIZE),
                            sizes={n: sizes for n in missing})
    comm.synchronize()
    return missing
