"""Image operations used by the transforms (PIL / numpy), and FastReID's AugMix operation list.

Every random choice takes an explicit ``numpy.random.Generator`` so that a sample's augmentation depends only on the
generator it is given (the loaders seed one per sample from (seed, rank, position in the stream)).
"""
import math
from typing import Sequence, Tuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

BICUBIC = Image.Resampling.BICUBIC
BILINEAR = Image.Resampling.BILINEAR
NEAREST = Image.Resampling.NEAREST
AFFINE = Image.Transform.AFFINE


def to_chw_float(image) -> np.ndarray:
    """PIL image or HWC array -> float32 CHW array in 0..255 (FastReID ``to_tensor``: no division by 255)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)


def resize(image: Image.Image, size: Tuple[int, int], interpolation=BICUBIC) -> Image.Image:
    """Resize to ``size`` = (height, width)."""
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), interpolation)


def pad(image: Image.Image, padding: int, mode: str = "constant", fill: int = 0) -> Image.Image:
    """Pad every side by ``padding`` pixels: ``constant`` (with ``fill``), ``edge``, ``reflect`` or ``symmetric``."""
    if padding <= 0:
        return image
    if mode == "constant":
        return ImageOps.expand(image, border=padding, fill=(fill,) * len(image.getbands()))
    if mode not in ("edge", "reflect", "symmetric"):
        raise ValueError(f"INPUT.PADDING.MODE={mode!r} is not supported; use constant, edge, reflect or symmetric")
    array = np.pad(np.asarray(image), ((padding, padding), (padding, padding), (0, 0)), mode=mode)
    return Image.fromarray(array)


def crop(image: Image.Image, top: int, left: int, height: int, width: int) -> Image.Image:
    return image.crop((left, top, left + width, top + height))


def hflip(image: Image.Image) -> Image.Image:
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def adjust_brightness(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def adjust_contrast(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Contrast(image).enhance(factor)


def adjust_saturation(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Color(image).enhance(factor)


def adjust_hue(image: Image.Image, hue_factor: float) -> Image.Image:
    """Shift the hue channel (HSV, uint8 with wrap-around) by ``hue_factor`` in [-0.5, 0.5] (torchvision PIL path)."""
    h, s, v = image.convert("HSV").split()
    shift = np.uint8(int(hue_factor * 255) % 256)
    with np.errstate(over="ignore"):
        h = Image.fromarray(np.asarray(h, dtype=np.uint8) + shift, "L")
    return Image.merge("HSV", (h, s, v)).convert(image.mode)


def inverse_affine_matrix(center: Sequence[float], angle: float, translate: Sequence[float], scale: float,
                          shear: Sequence[float]) -> list:
    """Inverse affine matrix for PIL ``Image.transform`` (torchvision ``_get_inverse_affine_matrix``; angles and
    shear in degrees)."""
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    matrix = [x / scale for x in (d, -b, 0.0, -c, a, 0.0)]
    matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty)
    matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty)
    matrix[2] += cx
    matrix[5] += cy
    return matrix


# ----- FastReID's AugMix operations (transforms/functional.py); `level` is the severity 1..10 -----

def _int_parameter(level: float, maxval: float) -> int:
    return int(level * maxval / 10)


def _float_parameter(level: float, maxval: float) -> float:
    return float(level) * maxval / 10.0


def _sample_level(n: float, rng: np.random.Generator) -> float:
    return rng.uniform(0.1, n)


def _autocontrast(image, level, size, rng):
    return ImageOps.autocontrast(image)


def _equalize(image, level, size, rng):
    return ImageOps.equalize(image)


def _posterize(image, level, size, rng):
    return ImageOps.posterize(image, 4 - _int_parameter(_sample_level(level, rng), 4))


def _shear(image, level, size, rng, axis):
    value = _float_parameter(_sample_level(level, rng), 0.3)
    if rng.uniform() > 0.5:
        value = -value
    coeffs = (1, value, 0, 0, 1, 0) if axis == "x" else (1, 0, 0, value, 1, 0)
    return image.transform(size, AFFINE, coeffs, resample=BILINEAR)


def _shear_x(image, level, size, rng):
    return _shear(image, level, size, rng, "x")


def _shear_y(image, level, size, rng):
    return _shear(image, level, size, rng, "y")


def _enhance_factor(level, rng):
    return _float_parameter(_sample_level(level, rng), 1.8) + 0.1


def _color(image, level, size, rng):
    return ImageEnhance.Color(image).enhance(_enhance_factor(level, rng))


def _contrast(image, level, size, rng):
    return ImageEnhance.Contrast(image).enhance(_enhance_factor(level, rng))


def _brightness(image, level, size, rng):
    return ImageEnhance.Brightness(image).enhance(_enhance_factor(level, rng))


def _sharpness(image, level, size, rng):
    return ImageEnhance.Sharpness(image).enhance(_enhance_factor(level, rng))


AUGMENTATIONS_REID = [_autocontrast, _equalize, _posterize, _shear_x, _shear_y, _color, _contrast, _brightness,
                      _sharpness]
