"""``build_transforms(cfg, is_train)``: FastReID's training and test pipelines from ``INPUT.*``."""
import logging

from .transforms import (AugMix, CenterCrop, ColorJitter, Compose, Pad, RandomAffine, RandomApply,
                         RandomAutoAugment, RandomCrop, RandomErasing, RandomHorizontalFlip, RandomPatch,
                         RandomResizedCrop, Resize, ToTensor)

logger = logging.getLogger(__name__)


def _size(value, key: str):
    size = list(value)
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or any(int(s) <= 0 for s in size):
        raise ValueError(f"{key}={list(value)} must be [height, width] with positive values")
    return [int(s) for s in size]


def build_transforms(cfg, is_train: bool = True) -> Compose:
    """Return the pipeline turning a PIL image into a float32 CHW array in 0..255 (no normalisation: the model
    normalises with ``MODEL.PIXEL_MEAN/STD``).

    Training, in order, each step only if enabled: RandomApply(AutoAugment ImageNet policy, ``AUTOAUG.PROB``) on the
    raw image -> bicubic Resize(``SIZE_TRAIN``) -> RandomResizedCrop (``CROP``) -> Pad(``PADDING.SIZE``,
    ``PADDING.MODE``) + RandomCrop(``SIZE_TRAIN``) -> RandomHorizontalFlip(``FLIP.PROB``) -> RandomApply(ColorJitter
    (``CJ.*``), ``CJ.PROB``) -> RandomAffine (``AFFINE``) -> AugMix (``AUGMIX.PROB``) -> ToTensor -> RandomErasing
    (``REA.PROB``, ``REA.VALUE``) -> RandomPatch (``RPT.PROB``, per batch).

    Reference quirk: ACL-DGReID feeds the model the output of a second pipeline that ALWAYS contains the ColorJitter
    step (with ``CJ.PROB`` and the ``CJ.*`` strengths), whatever ``INPUT.CJ.ENABLED`` says. ``INPUT.CJ.
    REFERENCE_ALWAYS_ON`` (default True) reproduces that; False lets ``CJ.ENABLED`` decide, as in FastReID. (That
    second pipeline also drops AFFINE/AUGMIX/RPT, which only reached the discarded ``images0``; here they are applied
    when enabled, as in FastReID. All three are off in the reference config.)

    Test: bicubic Resize(``SIZE_TEST``) -> CenterCrop(``CROP.SIZE``) if ``CROP.ENABLED`` -> ToTensor.
    """
    inp = cfg.INPUT
    if not is_train:
        steps = [Resize(_size(inp.SIZE_TEST, "INPUT.SIZE_TEST"))]
        if inp.CROP.ENABLED:
            steps.append(CenterCrop(_size(inp.CROP.SIZE, "INPUT.CROP.SIZE")))
        steps.append(ToTensor())
        return Compose(steps)

    size_train = _size(inp.SIZE_TRAIN, "INPUT.SIZE_TRAIN")
    steps, batch_steps = [], []
    if inp.AUTOAUG.ENABLED:
        steps.append(RandomAutoAugment(p=inp.AUTOAUG.PROB))
    steps.append(Resize(size_train))
    if inp.CROP.ENABLED:
        steps.append(RandomResizedCrop(_size(inp.CROP.SIZE, "INPUT.CROP.SIZE"), scale=inp.CROP.SCALE,
                                       ratio=inp.CROP.RATIO))
    if inp.PADDING.ENABLED:
        steps += [Pad(inp.PADDING.SIZE, inp.PADDING.MODE), RandomCrop(size_train)]
    if inp.FLIP.ENABLED:
        steps.append(RandomHorizontalFlip(inp.FLIP.PROB))
    if inp.CJ.ENABLED or inp.CJ.REFERENCE_ALWAYS_ON:
        if inp.CJ.REFERENCE_ALWAYS_ON and not inp.CJ.ENABLED:
            logger.info("INPUT.CJ.REFERENCE_ALWAYS_ON: ColorJitter(p=%s) is applied although INPUT.CJ.ENABLED is "
                        "False (the reference's behaviour)", inp.CJ.PROB)
        jitter = ColorJitter(inp.CJ.BRIGHTNESS, inp.CJ.CONTRAST, inp.CJ.SATURATION, inp.CJ.HUE)
        steps.append(RandomApply([jitter], p=inp.CJ.PROB))
    if inp.AFFINE.ENABLED:
        steps.append(RandomAffine(degrees=10, scale=(0.9, 1.1), shear=0.1, fill=0))
    if inp.AUGMIX.ENABLED:
        steps.append(AugMix(prob=inp.AUGMIX.PROB))
    steps.append(ToTensor())
    if inp.REA.ENABLED:
        steps.append(RandomErasing(p=inp.REA.PROB, value=inp.REA.VALUE))
    if inp.RPT.ENABLED:
        batch_steps.append(RandomPatch(prob_happen=inp.RPT.PROB))
    return Compose(steps, batch_steps)
