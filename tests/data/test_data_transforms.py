"""Transforms: pipeline order from the config, the reference's always-on ColorJitter switch, 0..255 float CHW
output, determinism for a given generator, and each augmentation's effect."""
import numpy as np
import pytest
from PIL import Image

from fastreid_ms.config import get_cfg
from fastreid_ms.data.transforms import (AugMix, AutoAugment, CenterCrop, ColorJitter, RandomAffine, RandomApply,
                                         RandomErasing, RandomPatch, RandomResizedCrop, build_transforms)


def _image(seed=0, size=(48, 24)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8))


def _cfg(**flags):
    cfg = get_cfg()
    cfg.INPUT.SIZE_TRAIN = [64, 32]
    cfg.INPUT.SIZE_TEST = [64, 32]
    for key, value in flags.items():
        node = cfg.INPUT
        parts = key.split("__")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return cfg


def _types(compose):
    out = []
    for t in compose.transforms:
        out.append(type(t).__name__)
        if isinstance(t, RandomApply):
            out += [type(inner).__name__ for inner in t.transforms]
    return out + [type(t).__name__ for t in compose.batch_transforms]


def test_reference_training_pipeline_order():
    cfg = _cfg(AUTOAUG__ENABLED=True, AUTOAUG__PROB=0.1, PADDING__ENABLED=True, FLIP__ENABLED=True,
               REA__ENABLED=True, RPT__ENABLED=True)
    assert _types(build_transforms(cfg, True)) == [
        "RandomAutoAugment", "AutoAugment", "Resize", "Pad", "RandomCrop", "RandomHorizontalFlip", "RandomApply",
        "ColorJitter", "ToTensor", "RandomErasing", "RandomPatch"]


@pytest.mark.parametrize("always_on,enabled,expected", [(True, False, True), (False, False, False),
                                                        (False, True, True), (True, True, True)])
def test_color_jitter_switch(always_on, enabled, expected):
    cfg = _cfg(CJ__ENABLED=enabled, CJ__REFERENCE_ALWAYS_ON=always_on, CJ__PROB=1.0)
    pipeline = build_transforms(cfg, True)
    assert ("ColorJitter" in _types(pipeline)) == expected
    plain = build_transforms(_cfg(CJ__ENABLED=False, CJ__REFERENCE_ALWAYS_ON=False), True)
    out = pipeline(_image(), np.random.default_rng(1))
    ref = plain(_image(), np.random.default_rng(1))
    assert (not np.array_equal(out, ref)) == expected


def test_reference_default_is_always_on():
    assert get_cfg().INPUT.CJ.REFERENCE_ALWAYS_ON is True


def test_output_is_float_chw_0_255_and_deterministic():
    cfg = _cfg(AUTOAUG__ENABLED=True, AUTOAUG__PROB=1.0, PADDING__ENABLED=True, FLIP__ENABLED=True,
               REA__ENABLED=True, AFFINE__ENABLED=True, AUGMIX__ENABLED=True, AUGMIX__PROB=1.0)
    pipeline = build_transforms(cfg, True)
    a = pipeline(_image(), np.random.default_rng(5))
    b = pipeline(_image(), np.random.default_rng(5))
    c = pipeline(_image(), np.random.default_rng(6))
    assert a.dtype == np.float32 and a.shape == (3, 64, 32) and a.max() > 1.0 and a.min() >= 0 and a.max() <= 255
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_test_pipeline_is_bicubic_resize_without_scaling():
    image = _image()
    out = build_transforms(_cfg(), False)(image, np.random.default_rng(0))
    expected = np.asarray(image.resize((32, 64), Image.Resampling.BICUBIC), np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(out, expected)
    cropped = build_transforms(_cfg(CROP__ENABLED=True, CROP__SIZE=[32, 16]), False)(image, None)
    assert cropped.shape == (3, 32, 16)


def test_random_erasing_fills_with_value():
    value = [11.5, 22.5, 33.5]
    image = np.full((3, 64, 32), 200.0, np.float32)
    out = RandomErasing(p=1.0, value=value)(image, np.random.default_rng(0))
    erased = (out != 200.0).all(axis=0)
    assert erased.sum() >= 0.02 * 64 * 32 * 0.5
    for c in range(3):
        assert np.all(out[c][erased] == value[c])
    assert np.array_equal(RandomErasing(p=0.0, value=value)(image, np.random.default_rng(0)), image)


def test_random_patch_pastes_patches_from_the_batch():
    rng = np.random.default_rng(0)
    images = np.stack([np.full((3, 32, 16), float(v), np.float32) for v in (10, 100, 200, 250)])
    out = RandomPatch(prob_happen=1.0)(images, rng)
    assert out.shape == images.shape
    changed = [not np.array_equal(o, i) for o, i in zip(out, images)]
    assert any(changed)
    assert set(np.unique(out).tolist()) <= {10.0, 100.0, 200.0, 250.0}


@pytest.mark.parametrize("op", [AutoAugment(), ColorJitter(0.15, 0.15, 0.1, 0.1), RandomAffine(),
                                AugMix(prob=1.0), RandomResizedCrop((40, 20)), CenterCrop((40, 20))])
def test_single_ops_run_and_are_seeded(op):
    image = _image(3)
    outs = [np.asarray(op(image, np.random.default_rng(s)), np.float32) for s in (1, 1)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert outs[0].ndim == 3 and outs[0].shape[-1] == 3


def test_autoaugment_changes_images_over_many_draws():
    image = _image(4)
    op = AutoAugment()
    changed = sum(not np.array_equal(np.asarray(op(image, np.random.default_rng(s))), np.asarray(image))
                  for s in range(20))
    assert changed >= 10


def test_bad_padding_mode_is_rejected():
    with pytest.raises(ValueError, match="PADDING.MODE"):
        build_transforms(_cfg(PADDING__ENABLED=True, PADDING__MODE="wrap"), True)
