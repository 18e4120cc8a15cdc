"""Training and test transforms (PIL/numpy, explicit random generators)."""
from .autoaugment import AutoAugment
from .build import build_transforms
from .transforms import (AugMix, CenterCrop, ColorJitter, Compose, Pad, RandomAffine, RandomApply,
                         RandomAutoAugment, RandomCrop, RandomErasing, RandomHorizontalFlip, RandomPatch,
                         RandomResizedCrop, Resize, ToTensor)

__all__ = ["AutoAugment", "build_transforms", "AugMix", "CenterCrop", "ColorJitter", "Compose", "Pad",
           "RandomAffine", "RandomApply", "RandomAutoAugment", "RandomCrop", "RandomErasing", "RandomHorizontalFlip",
           "RandomPatch", "RandomResizedCrop", "Resize", "ToTensor"]
