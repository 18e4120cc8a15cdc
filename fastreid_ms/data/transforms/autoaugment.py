"""AutoAugment, ImageNet "original" policy, as FastReID/ACL-DGReID use it (timm-style implementation).

Each call picks one of the 25 two-operation sub-policies uniformly; each operation runs with its own probability.
Magnitudes are on a 0..10 scale; geometric ops fill with (128, 128, 128), pick bilinear or bicubic resampling at
random, and translate by up to 57 pixels (``translate_const``). Randomness comes from the generator passed in.
"""
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .functional import AFFINE, BICUBIC, BILINEAR

_MAX_LEVEL = 10.0
_FILL = (128, 128, 128)
_TRANSLATE_CONST = 57
_RANDOM_INTERPOLATION = (BILINEAR, BICUBIC)


def _negate_half(value: float, rng: np.random.Generator) -> float:
    return -value if rng.random() > 0.5 else value


def _affine(image, coeffs, rng):
    resample = _RANDOM_INTERPOLATION[int(rng.integers(len(_RANDOM_INTERPOLATION)))]
    return image.transform(image.size, AFFINE, coeffs, resample=resample, fillcolor=_FILL)


def _shear_x(image, level, rng):
    return _affine(image, (1, _negate_half(level / _MAX_LEVEL * 0.3, rng), 0, 0, 1, 0), rng)


def _shear_y(image, level, rng):
    return _affine(image, (1, 0, 0, _negate_half(level / _MAX_LEVEL * 0.3, rng), 1, 0), rng)


def _translate_x(image, level, rng):
    return _affine(image, (1, 0, _negate_half(level / _MAX_LEVEL * _TRANSLATE_CONST, rng), 0, 1, 0), rng)


def _translate_y(image, level, rng):
    return _affine(image, (1, 0, 0, 0, 1, _negate_half(level / _MAX_LEVEL * _TRANSLATE_CONST, rng)), rng)


def _rotate(image, level, rng):
    degrees = _negate_half(level / _MAX_LEVEL * 30.0, rng)
    resample = _RANDOM_INTERPOLATION[int(rng.integers(len(_RANDOM_INTERPOLATION)))]
    return image.rotate(degrees, resample=resample, fillcolor=_FILL)


def _posterize_original(image, level, rng):
    bits = int(level / _MAX_LEVEL * 4) + 4
    return image if bits >= 8 else ImageOps.posterize(image, bits)


def _solarize(image, level, rng):
    return ImageOps.solarize(image, int(level / _MAX_LEVEL * 256))


def _enhance(enhancer, image, level):
    return enhancer(image).enhance(level / _MAX_LEVEL * 1.8 + 0.1)


def _color(image, level, rng):
    return _enhance(ImageEnhance.Color, image, level)


def _contrast(image, level, rng):
    return _enhance(ImageEnhance.Contrast, image, level)


def _brightness(image, level, rng):
    return _enhance(ImageEnhance.Brightness, image, level)


def _sharpness(image, level, rng):
    return _enhance(ImageEnhance.Sharpness, image, level)


def _auto_contrast(image, level, rng):
    return ImageOps.autocontrast(image)


def _equalize(image, level, rng):
    return ImageOps.equalize(image)


def _invert(image, level, rng):
    return ImageOps.invert(image)


NAME_TO_OP = {
    "AutoContrast": _auto_contrast, "Equalize": _equalize, "Invert": _invert, "Rotate": _rotate,
    "PosterizeOriginal": _posterize_original, "Solarize": _solarize, "Color": _color, "Contrast": _contrast,
    "Brightness": _brightness, "Sharpness": _sharpness, "ShearX": _shear_x, "ShearY": _shear_y,
    "TranslateX": _translate_x, "TranslateY": _translate_y,
}

# ImageNet policy of Cubuk et al. (https://arxiv.org/abs/1805.09501): (op, probability, magnitude) pairs
IMAGENET_POLICY: List[Tuple[Tuple[str, float, int], Tuple[str, float, int]]] = [
    (("PosterizeOriginal", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("PosterizeOriginal", 0.6, 7), ("PosterizeOriginal", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("PosterizeOriginal", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("PosterizeOriginal", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
]


class AutoAugment:
    """Apply one uniformly chosen sub-policy of ``policy`` (default: the ImageNet policy) to a PIL image."""

    def __init__(self, policy: Sequence = IMAGENET_POLICY):
        for sub_policy in policy:
            for name, _, _ in sub_policy:
                if name not in NAME_TO_OP:
                    raise ValueError(f"AutoAugment: unknown operation {name!r}; known: {sorted(NAME_TO_OP)}")
        self.policy = [tuple(sub_policy) for sub_policy in policy]

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        sub_policy = self.policy[int(rng.integers(len(self.policy)))]
        for name, prob, magnitude in sub_policy:
            if prob < 1.0 and rng.random() > prob:
                continue
            image = NAME_TO_OP[name](image, min(_MAX_LEVEL, max(0.0, float(magnitude))), rng)
        return image

    def __repr__(self) -> str:
        return f"AutoAugment(ImageNet policy, {len(self.policy)} sub-policies)"
