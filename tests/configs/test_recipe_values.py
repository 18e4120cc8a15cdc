"""The shipped FastReID recipes carry upstream's values (configs/Base-{bagtricks,AGW,SBS,MGN}.yml and the per-dataset
children) and the port builds the layers those values name."""
from pathlib import Path

import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.data.transforms import build_transforms
from fastreid_ms.data.transforms.transforms import ColorJitter, RandomApply, RandomAutoAugment
from fastreid_ms.layers import CircleSoftmax, GeneralizedMeanPooling, GeneralizedMeanPoolingP, GlobalAvgPool
from fastreid_ms.layers import Linear as LinearLogits
from fastreid_ms.modeling import build_heads

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DATASETS = {"Market1501": "market1501", "DukeMTMC": "dukemtmc", "MSMT17": "msmt17"}
OUTPUT_PREFIX = {"bagtricks": "bagtricks", "AGW": "agw", "sbs": "sbs", "mgn": "mgn"}


def merged(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_DIR / path))
    return cfg


def recipe_files():
    for folder in DATASETS:
        for recipe in ("bagtricks", "AGW", "sbs"):
            for variant in ("R50", "R50-ibn", "S50", "R101-ibn"):
                yield folder, recipe, variant
        yield folder, "mgn", "R50-ibn"


@pytest.mark.parametrize("folder,recipe,variant", list(recipe_files()))
def test_child_configs_set_dataset_backbone_and_output(folder, recipe, variant):
    cfg = merged(f"{folder}/{recipe}_{variant}.yml")
    assert tuple(cfg.DATASETS.NAMES) == (folder,) and tuple(cfg.DATASETS.TESTS) == (folder,)
    assert cfg.OUTPUT_DIR == f"logs/{DATASETS[folder]}/{OUTPUT_PREFIX[recipe]}_{variant}"
    bb = cfg.MODEL.BACKBONE
    assert bb.NAME == ("build_resnest_backbone" if variant == "S50" else "build_resnet_backbone")
    assert bb.DEPTH == ("101x" if variant == "R101-ibn" else "50x")
    assert bb.WITH_IBN == variant.endswith("-ibn")
    assert bb.LAST_STRIDE == 1 and bb.PRETRAIN


def test_bagtricks_values():
    cfg = merged("Market1501/bagtricks_R50.yml")
    heads, tri = cfg.MODEL.HEADS, cfg.MODEL.LOSSES.TRI
    assert (heads.POOL_LAYER, heads.NECK_FEAT, heads.CLS_LAYER, heads.WITH_BNNECK) == (
        "GlobalAvgPool", "before", "Linear", True)
    assert (tri.MARGIN, tri.HARD_MINING, cfg.MODEL.LOSSES.CE.EPSILON) == (0.3, True, 0.1)
    assert (cfg.SOLVER.MAX_EPOCH, list(cfg.SOLVER.STEPS), cfg.SOLVER.BASE_LR) == (120, [40, 90], 0.00035)
    assert (cfg.DATALOADER.SAMPLER_TRAIN, cfg.DATALOADER.NUM_INSTANCE) == ("NaiveIdentitySampler", 4)
    assert not cfg.MODEL.BACKBONE.WITH_NL and cfg.MODEL.FREEZE_LAYERS == []


def test_agw_values():
    cfg = merged("DukeMTMC/AGW_R50.yml")
    tri = cfg.MODEL.LOSSES.TRI
    assert cfg.MODEL.BACKBONE.WITH_NL and cfg.MODEL.HEADS.POOL_LAYER == "GeneralizedMeanPooling"
    assert (tri.MARGIN, tri.HARD_MINING) == (0.0, False)  # weighted-regularised triplet, soft margin
    assert cfg.SOLVER.SCHED == "MultiStepLR" and cfg.MODEL.HEADS.NECK_FEAT == "before"


def test_sbs_values():
    cfg = merged("MSMT17/sbs_R101-ibn.yml")
    heads, tri, solver = cfg.MODEL.HEADS, cfg.MODEL.LOSSES.TRI, cfg.SOLVER
    assert cfg.MODEL.BACKBONE.WITH_NL and list(cfg.MODEL.FREEZE_LAYERS) == ["backbone"]
    assert (heads.NECK_FEAT, heads.POOL_LAYER, heads.CLS_LAYER, heads.SCALE, heads.MARGIN) == (
        "after", "GeneralizedMeanPoolingP", "CircleSoftmax", 64, 0.35)
    assert (tri.MARGIN, tri.HARD_MINING) == (0.0, True)
    assert list(cfg.INPUT.SIZE_TRAIN) == [384, 128] and list(cfg.INPUT.SIZE_TEST) == [384, 128]
    assert cfg.INPUT.AUTOAUG.ENABLED and cfg.INPUT.AUTOAUG.PROB == 0.1
    assert cfg.DATALOADER.NUM_INSTANCE == 16
    assert (solver.OPT, solver.MAX_EPOCH, solver.SCHED, solver.DELAY_EPOCHS, solver.ETA_MIN_LR) == (
        "Adam", 60, "CosineAnnealingLR", 30, 7e-7)
    assert (solver.FREEZE_ITERS, solver.CHECKPOINT_PERIOD, cfg.TEST.EVAL_PERIOD) == (1000, 20, 10)


def test_mgn_values():
    cfg = merged("Market1501/mgn_R50-ibn.yml")
    assert cfg.MODEL.META_ARCHITECTURE == "MGN"
    assert list(cfg.MODEL.FREEZE_LAYERS) == ["backbone", "b1", "b2", "b3"]
    assert not cfg.MODEL.BACKBONE.WITH_NL and cfg.MODEL.HEADS.EMBEDDING_DIM == 256
    assert cfg.MODEL.HEADS.CLS_LAYER == "CircleSoftmax" and cfg.SOLVER.SCHED == "CosineAnnealingLR"


@pytest.mark.parametrize("path,pool,cls", [
    ("Market1501/bagtricks_R50.yml", GlobalAvgPool, LinearLogits),
    ("Market1501/AGW_R50.yml", GeneralizedMeanPooling, LinearLogits),
    ("Market1501/sbs_R50.yml", GeneralizedMeanPoolingP, CircleSoftmax),
])
def test_heads_build_the_named_layers(path, pool, cls):
    cfg = merged(path)
    cfg.MODEL.HEADS.NUM_CLASSES = 3
    head = build_heads(cfg)
    assert type(head.pool_layer) is pool
    assert type(head.cls_layer) is cls
    if cls is CircleSoftmax:
        assert (head.cls_layer.s, head.cls_layer.m) == (64, 0.35)


def test_fastreid_recipes_augment_as_upstream():
    """FastReID's training pipeline: AutoAugment only in SBS/MGN (p 0.1), no ColorJitter in any recipe."""
    for path, autoaug in (("Market1501/bagtricks_R50.yml", False), ("Market1501/sbs_R50.yml", True),
                          ("Market1501/mgn_R50-ibn.yml", True)):
        steps = build_transforms(merged(path), is_train=True).transforms
        assert not any(isinstance(s, RandomApply) and any(isinstance(t, ColorJitter) for t in s.transforms)
                       for s in steps), path
        found = [s for s in steps if isinstance(s, RandomAutoAugment)]
        assert bool(found) == autoaug, path
        if autoaug:
            assert found[0].p == 0.1
