"""Every runnable config under configs/ (recursively; ``Base-*`` files are only inherited) builds, trains for two
iterations and evaluates through ``tools/train_net.py``'s ``main`` - the path users run - on tiny synthetic data.

Configs that differ only in their data (``DATASETS.*`` other than the number of source domains, and
``OUTPUT_DIR``) share a model, losses, solver and schedule: the same recipe on Market1501, DukeMTMC and MSMT17, or
the ACL-DGReID protocols 2 and 3 of the DR50 recipe. One config of each such group (the recipe itself, or its
Market1501 version) trains and evaluates; every other member is checked to differ from it only in those keys and its train and test data are
built (datasets, samplers, loaders). So every model/solver recipe trains and every dataset setting loads, at the
cost of one training per recipe.

The overrides shrink sizes only (inputs, batch, iterations, synthetic datasets) and switch off what needs files or
devices this machine lacks (ImageNet weights, compiled graphs, the DataParallel replicas of the DR50 recipe); every
architecture, loss, pooling, classifier, sampler, augmentation, optimizer, scheduler and freeze setting of the
config stays as shipped. The synthetic datasets are generated once per session and shared by all configs.

Cost: 26-238 s per trained config on the shared 2-core CPU (R101 and MGN the slowest), mostly the op-by-op
(MODEL.COMPILE False) passes and optimizer update; compiling costs as much for two iterations.
"""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.data import build_reid_test_loader, build_reid_train_loader
from fastreid_ms.engine import default_argument_parser

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "configs"
CONFIGS = sorted(p for p in CONFIG_DIR.rglob("*.yml") if not p.name.startswith("Base-"))

# One synthetic setting for the whole session (the generator refuses a folder written with other settings):
# 8 train ids x 2 images per dataset (16 images: two batches of 8), 4 test ids.
SYNTHETIC = {
    "DATASETS.SYNTHETIC.ENABLED": True, "DATASETS.SYNTHETIC.SEED": 0, "DATASETS.SYNTHETIC.IMAGE_SIZE": [32, 16],
    "DATASETS.SYNTHETIC.TRAIN_IDS": 8, "DATASETS.SYNTHETIC.TEST_IDS": 4, "DATASETS.SYNTHETIC.MIN_IMAGES": 2,
    "DATASETS.SYNTHETIC.MAX_IMAGES": 2, "DATASETS.SYNTHETIC.TEST_IMAGES": 1,
}
IMAGES_PER_TRAIN_SET = 8 * 2
ITERATIONS = 2


def _load_train_net():
    spec = importlib.util.spec_from_file_location("train_net_under_test", REPO / "tools" / "train_net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def train_net():
    return _load_train_net()


@pytest.fixture(scope="session")
def dataset_root(tmp_path_factory):
    return tmp_path_factory.mktemp("shipped_configs_data")


def tiny_overrides(config: Path, dataset_root: Path, output_dir: Path):
    """``KEY VALUE`` command-line overrides that shrink ``config`` to two iterations on the synthetic data."""
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    num_train_sets = len(cfg.DATASETS.NAMES)
    num_instance = min(cfg.DATALOADER.NUM_INSTANCE, 4)
    # two iterations: the mixed train set holds num_train_sets * 16 images
    batch = num_train_sets * IMAGES_PER_TRAIN_SET // ITERATIONS
    if cfg.SOLVER.META.ENABLED:
        # the per-domain loaders draw half a batch of whole identities from each domain's 8 train ids
        batch = min(batch, 2 * SYNTHETIC["DATASETS.SYNTHETIC.TRAIN_IDS"] * num_instance)
    # MGN cuts the stride-16 map into 2 and 3 stripes: 48 rows give 3. The DR50 (ACL-DGReID) model produces
    # non-finite eval features on 32x16 inputs after two steps at its learning rate; 64x32 is its demo's size.
    size = [32, 16]
    if cfg.MODEL.META_ARCHITECTURE == "MGN":
        size = [48, 16]
    elif cfg.MODEL.BACKBONE.NAME == "build_meta_dynamic_router_resnet_backbone":
        size = [64, 32]
    values = {
        "MODEL.DEVICE": "cpu", "MODEL.BACKBONE.PRETRAIN": False, "MODEL.COMPILE": False,
        "INPUT.SIZE_TRAIN": size, "INPUT.SIZE_TEST": size, "INPUT.PADDING.SIZE": 2,
        "DATALOADER.NUM_WORKERS": 0,
        # the meta-learning recipe keeps its NUM_INSTANCE 2; the FastReID recipes' 4 / 16 become 4 (2 ids a batch)
        "DATALOADER.NUM_INSTANCE": num_instance,
        "SOLVER.IMS_PER_BATCH": batch, "SOLVER.MAX_EPOCH": 1, "SOLVER.WARMUP_ITERS": 0, "SOLVER.DELAY_EPOCHS": 0,
        "SOLVER.FREEZE_ITERS": min(cfg.SOLVER.FREEZE_ITERS, 1), "SOLVER.LOG_PERIOD": 1, "SOLVER.DP_REPLICAS": 1,
        "SOLVER.META.FIRST_ITER_BASIC_STEPS": 1,
        "TEST.EVAL_PERIOD": 1, "TEST.IMS_PER_BATCH": 16,
        "DATASETS.ROOT": str(dataset_root), **SYNTHETIC,
        "OUTPUT_DIR": str(output_dir), "SEED": 0,
    }
    return [str(x) for key, value in values.items() for x in (key, value)]


def test_every_recipe_is_shipped():
    names = {str(p.relative_to(CONFIG_DIR)) for p in CONFIGS}
    for dataset in ("Market1501", "DukeMTMC", "MSMT17"):
        for recipe in ("bagtricks", "AGW", "sbs"):
            for variant in ("R50", "R50-ibn", "R101-ibn"):
                assert f"{dataset}/{recipe}_{variant}.yml" in names
        assert f"{dataset}/mgn_R50-ibn.yml" in names
    for base in ("Base-bagtricks.yml", "Base-AGW.yml", "Base-SBS.yml", "Base-MGN.yml"):
        assert (CONFIG_DIR / base).is_file()


def recipe_key(config: Path) -> str:
    """The merged config without its data keys (``DATASETS.*`` except the number of source domains) and
    ``OUTPUT_DIR``, as YAML: configs with the same key train the same model the same way."""
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    num_domains = len(cfg.DATASETS.NAMES)
    cfg.DATASETS.clear()
    cfg.DATASETS.NUM_SOURCE_DOMAINS = num_domains
    cfg.OUTPUT_DIR = ""
    return cfg.dump()


def _groups():
    groups = {}
    for config in CONFIGS:
        groups.setdefault(recipe_key(config), []).append(config)
    return list(groups.values())


def _representative(group):
    """The config of a group that trains: a top-level one (the recipe itself), else the Market1501 one."""
    return min(group, key=lambda p: (len(p.relative_to(CONFIG_DIR).parts), "Market1501" not in p.parts, str(p)))


GROUPS = _groups()
TRAINED = [_representative(group) for group in GROUPS]
DATA_ONLY = [(config, trained) for group, trained in zip(GROUPS, TRAINED) for config in group if config != trained]


def _name(config: Path) -> str:
    return str(config.relative_to(CONFIG_DIR))


def test_groups_cover_every_config_and_every_recipe_trains():
    assert sorted(TRAINED + [config for config, _ in DATA_ONLY]) == CONFIGS
    assert len(TRAINED) == len(GROUPS) == 16  # 13 FastReID recipes, the DR50 mix, its demo, Protocol 1
    assert {_name(c) for c in TRAINED} >= {"bagtricks_DR50_mix.yml", "ACL-DGReID/P1_to_PRID_GRID_VIPeR_iLIDS.yml",
                                          "demo/DR50_mix_synthetic.yml", "Market1501/mgn_R50-ibn.yml"}


@pytest.mark.parametrize("config", TRAINED, ids=[_name(p) for p in TRAINED])
def test_config_trains_and_evaluates(config, train_net, dataset_root, tmp_path):
    args = default_argument_parser().parse_args(
        ["--config-file", str(config)] + tiny_overrides(config, dataset_root, tmp_path / "out"))
    results = train_net.main(args)
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    tests = list(cfg.DATASETS.TESTS)
    per_set = {tests[0]: results} if len(tests) == 1 else results
    assert sorted(per_set) == sorted(tests)
    for name, metrics in per_set.items():
        for key in ("Rank-1", "Rank-5", "mAP", "mINP", "metric"):
            assert key in metrics and math.isfinite(metrics[key]) and 0 <= metrics[key] <= 100, (name, key)
    metrics_file = tmp_path / "out" / "metrics.json"
    assert metrics_file.is_file()
    records = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    assert max(r.get("iteration", -1) for r in records) >= ITERATIONS - 1


@pytest.mark.parametrize("config,trained", DATA_ONLY, ids=[_name(c) for c, _ in DATA_ONLY])
def test_config_data_builds_and_the_rest_is_a_trained_recipe(config, trained, dataset_root, tmp_path):
    assert recipe_key(config) == recipe_key(trained)
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(tiny_overrides(config, dataset_root, tmp_path / "out"))
    train_loader, domain_loaders = build_reid_train_loader(cfg)
    assert len(domain_loaders) == len(cfg.DATASETS.NAMES) and len(train_loader.dataset) > 0
    batch = next(iter(train_loader))
    assert batch["images"].shape[0] == cfg.SOLVER.IMS_PER_BATCH
    train_loader.close()
    for name in cfg.DATASETS.TESTS:
        test_loader, num_query = build_reid_test_loader(cfg, name)
        assert 0 < num_query < len(test_loader.dataset)
