"""The meta-learning trainer with a number of source domains other than the reference's three: the held-out rule
(meta-test domain uniform over D, meta-train on the D - 1 others, the domain itself when D = 1), and a short real
training run on tiny synthetic data with two sources through DefaultTrainer with op-by-op passes (MODEL.COMPILE
False)."""
from pathlib import Path

import numpy as np

from fastreid_ms.config import get_cfg
from fastreid_ms.engine import DefaultTrainer
from fastreid_ms.engine.meta_train_loop import MetaLearningTrainer
from fastreid_ms.utils.events import EventStorage

REPO = Path(__file__).resolve().parents[2]
MIX = REPO / "configs" / "bagtricks_DR50_mix.yml"
IMS_PER_BATCH = 8


def _rule_trainer(num_domains, seed=3):
    t = MetaLearningTrainer.__new__(MetaLearningTrainer)
    t.domain_loaders = [None] * num_domains
    t.meta_rng = np.random.RandomState(seed)
    return t


def test_meta_test_domain_is_uniform_over_d_and_meta_train_takes_the_others():
    t = _rule_trainer(5)
    draws = [t.draw_meta_test_domain() for _ in range(500)]
    assert set(draws) == set(range(5)) and min(np.bincount(draws)) > 70
    assert t.meta_train_domains(2) == (0, 1, 3, 4)
    assert _rule_trainer(2).meta_train_domains(0) == (1,)
    assert _rule_trainer(3).meta_train_domains(1) == (0, 2)          # the reference's rule
    single = _rule_trainer(1)
    assert {single.draw_meta_test_domain() for _ in range(5)} == {0} and single.meta_train_domains(0) == (0,)


def tiny_cfg(config, root, output_dir, names=None, tests=None):
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    cfg.merge_from_list([
        "DATASETS.ROOT", str(root), "OUTPUT_DIR", str(output_dir), "DATASETS.SYNTHETIC.ENABLED", "True",
        "DATASETS.SYNTHETIC.IMAGE_SIZE", "[64, 32]", "DATASETS.SYNTHETIC.TRAIN_IDS", "4",
        "DATASETS.SYNTHETIC.TEST_IDS", "4", "DATASETS.SYNTHETIC.MIN_IMAGES", "2", "DATASETS.SYNTHETIC.MAX_IMAGES", "2",
        "DATASETS.SYNTHETIC.TEST_IMAGES", "1", "MODEL.BACKBONE.PRETRAIN", "False", "MODEL.COMPILE", "False",
        "INPUT.SIZE_TRAIN", "[64, 32]", "INPUT.SIZE_TEST", "[64, 32]", "SOLVER.IMS_PER_BATCH", str(IMS_PER_BATCH),
        "SOLVER.BASE_LR", "0.004", "SOLVER.DP_REPLICAS", "1", "SOLVER.WARMUP_ITERS", "0",
        "SOLVER.META.FIRST_ITER_BASIC_STEPS", "1", "SOLVER.META.PERIOD", "2", "DATALOADER.NUM_WORKERS", "0",
        "TEST.IMS_PER_BATCH", "32", "TEST.ROUTER_ANALYSIS.NUM_IMAGES", "4", "SEED", "7"])
    if names is not None:
        cfg.DATASETS.NAMES = tuple(names)
    if tests is not None:
        cfg.DATASETS.TESTS = tuple(tests)
    return cfg


def train_two_iterations(cfg):
    """DefaultTrainer's step trainer for iterations 0 (a basic and a meta step) and 1 (a basic step:
    SOLVER.META.PERIOD 2 keeps the op-by-op run short); returns the trainer and the per-pass loss records."""
    trainer = DefaultTrainer(cfg)
    with EventStorage(0) as storage:
        for it in range(2):
            storage.iter = it
            trainer.iter = it
            trainer.run_step()
        records = storage.step_losses()
    return trainer, records


def check_records(records):
    assert [r["phase"] for r in records] == ["basic", "mtrain", "mtest", "basic"]
    for record in records:
        losses = {k: v for k, v in record.items() if k.startswith("loss")}
        assert losses and all(np.isfinite(v) for v in losses.values()), record
    assert {"loss_cls", "loss_stc", "loss_triplet_mtest"} <= {k for r in records for k in r}


def test_two_sources_train(tmp_path):
    """Two source domains train, their class counts filled from the data (one source: its build and loss dict are
    tested in tests/modeling, its meta-batch rule above; Protocol 1's five sources train in tests/configs)."""
    names = ("Market1501", "DukeMTMC")
    cfg = tiny_cfg(MIX, tmp_path / "data", tmp_path / "out", names=names, tests=("CUHK03",))
    trainer, records = train_two_iterations(cfg)
    check_records(records)
    counts = trainer._trainer.data_loader.dataset.num_classes_per_domain
    assert trainer.cfg.MODEL.HEADS.NUM_CLASSES_PER_DOMAIN == counts and len(counts) == 2  # filled from the data
    assert (trainer.cfg.MODEL.HEADS.NUM_CLASSES1, trainer.cfg.MODEL.HEADS.NUM_CLASSES3) == (0, 0)
    assert trainer.model.heads.num_classes == tuple(counts)
    assert trainer.model.heads.num_domains == len(names)
    assert len(trainer.model.backbone.router1.fc_classifier.weight) == len(names)
    mtrain, mtest = trainer._trainer.next_meta_batches()
    assert len(mtrain["targets"]) == IMS_PER_BATCH // 2
    assert set(mtrain["domainids"].tolist()) | set(mtest["domainids"].tolist()) == {0, 1}
