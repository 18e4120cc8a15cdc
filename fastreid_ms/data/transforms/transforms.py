"""Transforms of FastReID's training and test pipelines, written for PIL/numpy with an explicit random generator.

Per-sample transforms are called as ``t(image, rng)``; ``rng`` is a ``numpy.random.Generator`` owned by that
sample. ``RandomPatch`` works on a whole batch (``t(images, rng)``), see its docstring.
"""
import math
from typing import Sequence, Tuple

import numpy as np

from . import functional as F
from .autoaugment import AutoAugment


class Compose:
    """Apply ``transforms`` in order; ``batch_transforms`` are applied by the loader to each finished batch."""

    def __init__(self, transforms: Sequence, batch_transforms: Sequence = ()):
        self.transforms = list(transforms)
        self.batch_transforms = list(batch_transforms)

    def __call__(self, image, rng: np.random.Generator):
        for t in self.transforms:
            image = t(image, rng)
        return image

    def apply_batch(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.batch_transforms:
            images = t(images, rng)
        return images

    def __repr__(self) -> str:
        lines = [f"    {t!r}" for t in self.transforms] + [f"    {t!r} (per batch)" for t in self.batch_transforms]
        return "Compose(\n" + "\n".join(lines) + "\n)"


class RandomApply:
    """Apply ``transforms`` with probability ``p`` (torchvision ``RandomApply``)."""

    def __init__(self, transforms: Sequence, p: float = 0.5):
        self.transforms = list(transforms)
        self.p = p

    def __call__(self, image, rng):
        if rng.random() >= self.p:
            return image
        for t in self.transforms:
            image = t(image, rng)
        return image

    def __repr__(self) -> str:
        return f"RandomApply(p={self.p}, {self.transforms!r})"


class RandomAutoAugment(RandomApply):
    """``RandomApply([AutoAugment()], p)``: the ImageNet AutoAugment policy on the raw image with probability p."""

    def __init__(self, p: float):
        super().__init__([AutoAugment()], p)


class Resize:
    """Resize to (height, width), bicubic by default (``interpolation=3`` in FastReID)."""

    def __init__(self, size: Sequence[int], interpolation=F.BICUBIC):
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation

    def __call__(self, image, rng):
        return F.resize(image, self.size, self.interpolation)

    def __repr__(self) -> str:
        return f"Resize({self.size}, bicubic)"


class RandomResizedCrop:
    """torchvision ``RandomResizedCrop``: a crop of random area fraction ``scale`` and aspect ``ratio``, resized."""

    def __init__(self, size: Sequence[int], scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation=F.BICUBIC):
        self.size = (int(size[0]), int(size[-1]))
        self.scale, self.ratio, self.interpolation = tuple(scale), tuple(ratio), interpolation

    def __call__(self, image, rng):
        width, height = image.size
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
                return F.resize(F.crop(image, top, left, h, w), self.size, self.interpolation)
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
        return F.resize(F.crop(image, top, left, h, w), self.size, self.interpolation)

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class CenterCrop:
    def __init__(self, size: Sequence[int]):
        self.size = (int(size[0]), int(size[-1]))

    def __call__(self, image, rng):
        width, height = image.size
        h, w = self.size
        return F.crop(image, int(round((height - h) / 2.0)), int(round((width - w) / 2.0)), h, w)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class Pad:
    """Pad every side by ``padding`` pixels (``constant`` mode fills with 0)."""

    def __init__(self, padding: int, mode: str = "constant"):
        if mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"INPUT.PADDING.MODE={mode!r} is not supported; use constant, edge, reflect or "
                             f"symmetric")
        self.padding, self.mode = int(padding), mode

    def __call__(self, image, rng):
        return F.pad(image, self.padding, self.mode)

    def __repr__(self) -> str:
        return f"Pad({self.padding}, {self.mode})"


class RandomCrop:
    """Crop (height, width) at a uniformly random position (torchvision ``RandomCrop`` without padding)."""

    def __init__(self, size: Sequence[int]):
        self.size = (int(size[0]), int(size[-1]))

    def __call__(self, image, rng):
        width, height = image.size
        h, w = self.size
        if height < h or width < w:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the image ({height}, {width})")
        top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
        return F.crop(image, top, left, h, w)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, image, rng):
        return F.hflip(image) if rng.random() < self.p else image

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """torchvision ``ColorJitter``: brightness/contrast/saturation factors uniform in [max(0, 1 - x), 1 + x], hue
    shift uniform in [-hue, hue], applied in a random order."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, hue: float = 0.0):
        if not 0 <= hue <= 0.5:
            raise ValueError(f"ColorJitter: hue={hue} must be in [0, 0.5] (INPUT.CJ.HUE)")
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, image, rng):
        order = rng.permutation(4)
        factors = [rng.uniform(max(0.0, 1 - x), 1 + x) if x > 0 else None
                   for x in (self.brightness, self.contrast, self.saturation)]
        hue = rng.uniform(-self.hue, self.hue) if self.hue > 0 else None
        ops = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        values = factors + [hue]
        for i in order:
            if values[i] is not None:
                image = ops[i](image, values[i])
        return image

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation}, "
                f"hue={self.hue})")


class RandomAffine:
    """torchvision ``RandomAffine(degrees, scale, shear)`` as FastReID configures it (``INPUT.AFFINE``): rotation
    uniform in [-degrees, degrees], scale uniform in ``scale``, x-shear uniform in [-shear, shear] degrees, nearest
    resampling, fill 0."""

    def __init__(self, degrees: float = 10.0, scale: Tuple[float, float] = (0.9, 1.1), shear: float = 0.1,
                 fill: int = 0):
        self.degrees, self.scale, self.shear, self.fill = degrees, tuple(scale), shear, fill

    def __call__(self, image, rng):
        angle = rng.uniform(-self.degrees, self.degrees)
        scale = rng.uniform(self.scale[0], self.scale[1])
        shear_x = rng.uniform(-self.shear, self.shear)
        width, height = image.size
        matrix = F.inverse_affine_matrix((width * 0.5, height * 0.5), angle, (0.0, 0.0), scale, (shear_x, 0.0))
        return image.transform(image.size, F.AFFINE, matrix, resample=F.NEAREST,
                               fillcolor=(self.fill,) * len(image.getbands()))

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees}, scale={self.scale}, shear={self.shear})"


class AugMix:
    """FastReID's ``AugMix(prob)``: with probability ``prob``, mix ``mixture_width`` chains of
    ``functional.AUGMENTATIONS_REID`` operations (Dirichlet weights) with the image (Beta weight). Returns a float32
    HWC array (so it must come right before ``ToTensor``)."""

    def __init__(self, prob: float = 0.5, aug_prob_coeff: float = 0.1, mixture_width: int = 3,
                 mixture_depth: int = 1, severity: int = 1):
        self.prob, self.aug_prob_coeff = prob, aug_prob_coeff
        self.mixture_width, self.mixture_depth, self.severity = mixture_width, mixture_depth, severity

    def __call__(self, image, rng):
        if rng.random() > self.prob:
            return image
        weights = rng.dirichlet([self.aug_prob_coeff] * self.mixture_width).astype(np.float32)
        m = np.float32(rng.beta(self.aug_prob_coeff, self.aug_prob_coeff))
        original = np.asarray(image, dtype=np.float32)
        mix = np.zeros_like(original)
        for i in range(self.mixture_width):
            augmented = image
            depth = self.mixture_depth if self.mixture_depth > 0 else int(rng.integers(1, 4))
            for _ in range(depth):
                op = F.AUGMENTATIONS_REID[int(rng.integers(len(F.AUGMENTATIONS_REID)))]
                augmented = op(augmented, self.severity, augmented.size, rng)
            mix += weights[i] * np.asarray(augmented, dtype=np.float32)
        return (1 - m) * original + m * mix

    def __repr__(self) -> str:
        return f"AugMix(prob={self.prob})"


class ToTensor:
    """PIL image / HWC array -> float32 CHW array in 0..255 (FastReID's ``ToTensor``: no division by 255)."""

    def __call__(self, image, rng=None):
        return F.to_chw_float(image)

    def __repr__(self) -> str:
        return "ToTensor(0..255)"


class RandomErasing:
    """torchvision ``RandomErasing`` on a CHW float array: with probability ``p`` fill a random rectangle (area
    fraction in ``scale``, aspect in ``ratio``, 10 attempts) with the per-channel ``value`` (0..255 units)."""

    def __init__(self, p: float = 0.5, value: Sequence[float] = (0.0, 0.0, 0.0), scale=(0.02, 0.33),
                 ratio=(0.3, 3.3)):
        self.p, self.value, self.scale, self.ratio = p, np.asarray(value, np.float32), tuple(scale), tuple(ratio)

    def __call__(self, image: np.ndarray, rng):
        if rng.random() >= self.p:
            return image
        channels, height, width = image.shape
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            erase_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if not (h < height and w < width):
                continue
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            image = image.copy()
            image[:, top:top + h, left:left + w] = self.value.reshape(-1, 1, 1)[:channels]
            return image
        return image

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, value={self.value.tolist()})"


class RandomPatch:
    """Random patch occlusion (Zhou et al., OSNet; FastReID ``RandomPatch``) applied to a whole batch.

    For every image a random patch (area fraction in [patch_min_area, patch_max_area], aspect in
    [patch_min_ratio, 1/patch_min_ratio]) is cut into a pool; then, with probability ``prob_happen``, a patch drawn
    from the pool is flipped left-right with probability 1/2 and pasted at a random position.
    Difference from FastReID: the pool holds the patches of the CURRENT batch (FastReID keeps a 50,000-patch pool
    across batches inside each worker and starts pasting after 100 patches). A batch then depends only on its own
    samples and the seed, which keeps loading deterministic for any number of workers and resumable at any batch.
    """

    def __init__(self, prob_happen: float = 0.5, patch_min_area: float = 0.01, patch_max_area: float = 0.5,
                 patch_min_ratio: float = 0.1, prob_flip_leftright: float = 0.5):
        self.prob_happen, self.patch_min_area, self.patch_max_area = prob_happen, patch_min_area, patch_max_area
        self.patch_min_ratio, self.prob_flip_leftright = patch_min_ratio, prob_flip_leftright

    def _patch_size(self, width: int, height: int, rng):
        area = width * height
        for _ in range(100):
            target_area = rng.uniform(self.patch_min_area, self.patch_max_area) * area
            aspect = rng.uniform(self.patch_min_ratio, 1.0 / self.patch_min_ratio)
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if w < width and h < height:
                return w, h
        return None

    def __call__(self, images: np.ndarray, rng) -> np.ndarray:
        _, _, height, width = images.shape
        pool = []
        for image in images:
            size = self._patch_size(width, height, rng)
            if size is not None:
                w, h = size
                left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
                pool.append(image[:, top:top + h, left:left + w].copy())
        if not pool:
            return images
        images = images.copy()
        for image in images:
            if rng.random() > self.prob_happen:
                continue
            patch = pool[int(rng.integers(len(pool)))]
            if rng.random() > self.prob_flip_leftright:
                patch = patch[:, :, ::-1]
            h, w = patch.shape[1:]
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            image[:, top:top + h, left:left + w] = patch
        return images

    def __repr__(self) -> str:
        return f"RandomPatch(prob_happen={self.prob_happen})"
