"""DR50 with a number of source domains other than the reference's three: Protocol 1's five, two and one. The head
has one classifier per domain (weight1..D), the routers' domain classifiers D outputs, and every per-domain loss
term runs over the D domains (checked against the terms computed domain by domain); the compiled pass gives the
op-by-op losses."""
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling import build_model
from fastreid_ms.modeling.losses import acl_losses, cross_entropy_loss, interCluster
from fastreid_ms.modeling.passes import TrainPass

REPO = Path(__file__).resolve().parents[2]
P1 = REPO / "configs" / "ACL-DGReID" / "P1_to_PRID_GRID_VIPeR_iLIDS.yml"
MIX = REPO / "configs" / "bagtricks_DR50_mix.yml"
FIVE_CLASSES = (3, 2, 4, 2, 3)


def dr50_cfg(config, names, num_classes):
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.DATASETS.NAMES = tuple(names)
    cfg.MODEL.HEADS.NUM_CLASSES_PER_DOMAIN = list(num_classes)
    return cfg


def batch(ids, domains, rng, size=(64, 32)):
    return {"images": rng.integers(0, 256, size=(len(ids), 3) + size).astype(np.float32),
            "targets": np.array(ids, dtype=np.int64), "domainids": np.array(domains, dtype=np.int64)}


def tensors(data):
    return ms.Tensor(data["images"]), ms.Tensor(data["targets"]), ms.Tensor(data["domainids"])


@pytest.fixture(scope="module")
def five():
    cfg = get_cfg()
    cfg.merge_from_file(str(P1))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES_PER_DOMAIN = list(FIVE_CLASSES)
    model = build_model(cfg)
    model.set_train(True)
    return model


def test_five_domain_model_has_one_classifier_per_domain(five):
    heads = five.heads
    assert heads.num_classes == FIVE_CLASSES and heads.num_domains == 5
    shapes = {p.name: p.shape for p in five.get_parameters()}
    for d, classes in enumerate(FIVE_CLASSES, 1):
        assert shapes[f"heads.weight{d}.weight"] == (classes, 2048)
        assert getattr(heads, f"cls_layer{d}").num_classes == classes
    assert "heads.weight6.weight" not in shapes
    assert shapes["heads.center.centers"] == (sum(FIVE_CLASSES), 2048)
    assert [shapes[f"backbone.router{s}.fc_classifier.weight"][0] for s in range(1, 5)] == [5] * 4


@pytest.mark.parametrize("names,num_classes", [(("Market1501", "DukeMTMC"), (3, 2)), (("Market1501",), (4,))])
def test_two_and_one_domain_models_build(names, num_classes):
    model = build_model(dr50_cfg(MIX, names, num_classes))
    shapes = {p.name: p.shape for p in model.get_parameters()}
    heads = sorted(n for n in shapes if n.startswith("heads.weight"))
    assert heads == [f"heads.weight{d}.weight" for d in range(1, len(names) + 1)]
    assert shapes["backbone.router1.fc_classifier.weight"] == (len(names), 1024)


def test_five_domain_loss_dicts_cover_every_domain(five):
    rng = np.random.default_rng(0)
    bounds = np.cumsum((0,) + FIVE_CLASSES)
    ids = [bounds[d] + k for d in range(5) for k in (0, 0, 1, 1)]
    domains = [d for d in range(5) for _ in range(4)]
    basic = batch(ids, domains, rng)
    losses, outputs = five(*tensors(basic), "basic", return_outputs=True)
    assert list(losses) == list(five.loss_names("basic"))
    assert [outputs[f"cls_outputs{d}"].shape for d in range(1, 6)] == [(20, c) for c in FIVE_CLASSES]
    assert "cls_outputs6" not in outputs
    # loss_cls = mean over the five domains of CE(classifier d on domain d's rows, local labels) x CE.SCALE
    labels = basic["targets"]
    per_domain = []
    for d in range(5):
        rows = np.flatnonzero(np.array(domains) == d)
        logits = ms.Tensor(outputs[f"cls_outputs{d + 1}"].asnumpy()[rows])
        per_domain.append(float(cross_entropy_loss(logits, ms.Tensor(labels[rows] - bounds[d]), 0.1).asnumpy()))
    np.testing.assert_allclose(float(losses["loss_cls"].asnumpy()), 0.5 * np.mean(per_domain), rtol=1e-5)

    # the meta phases: the cluster terms see domains 3 and 4 (a 3-domain set would drop them and return the
    # gradient-free constant 3.5 of the reference's single-domain case)
    mtrain = batch([bounds[3], bounds[3], bounds[3] + 1, bounds[3] + 1, bounds[4], bounds[4], bounds[4] + 1,
                    bounds[4] + 1], [3, 3, 3, 3, 4, 4, 4, 4], rng)
    losses, outputs = five(*tensors(mtrain), "mtrain", return_outputs=True)
    assert list(losses) == ["loss_triplet_add", "loss_triplet_mtrain", "loss_stc", "loss_domain_intra",
                            "loss_domain_inter"]
    inter = interCluster(outputs["paths"], ms.Tensor(mtrain["domainids"]), num_domains=5)
    np.testing.assert_allclose(float(losses["loss_domain_inter"].asnumpy()), float(inter.asnumpy()), rtol=1e-6)
    assert float(losses["loss_domain_inter"].asnumpy()) != 3.5
    mtest = batch([bounds[4], bounds[4], bounds[4] + 1, bounds[4] + 1], [4] * 4, rng)
    losses = five(*tensors(mtest), "mtest")
    assert list(losses) == ["loss_triplet_mtest", "loss_domain_intra", "loss_domain_inter", "loss_Center"]
    assert float(losses["loss_domain_inter"].asnumpy()) == 4.0   # one domain present: the reference's constant
    assert all(np.isfinite(v.asnumpy()) for v in losses.values())


def test_five_domain_compiled_pass_matches_op_by_op(five):
    rng = np.random.default_rng(1)
    data = batch([7, 7, 8, 8, 11, 11, 12, 12], [3, 3, 3, 3, 4, 4, 4, 4], rng)
    eager = {k: float(v.asnumpy()) for k, v in five(*tensors(data), "mtrain").items()}
    compiled, grads = TrainPass(five, five.trainable_params(), compile=True)(data, "mtrain")
    assert list(compiled) == list(eager)
    np.testing.assert_allclose([float(v.asnumpy()) for v in compiled.values()], list(eager.values()), rtol=1e-4)
    assert len(grads) == len(five.trainable_params())


def test_batch_checks_know_the_domain_count(five):
    two = build_model(dr50_cfg(MIX, ("Market1501", "DukeMTMC"), (3, 2)))
    two.set_train(True)
    with pytest.raises(ValueError, match=r"domain ids must lie in \[0, 2\)"):
        two.check_labels(np.array([0, 0, 1, 1, 3, 3, 4, 4]), np.array([0, 0, 0, 0, 2, 2, 2, 2]), "mtrain")
    five.check_labels(np.array([7, 7, 8, 8, 11, 11, 12, 12]), np.array([3, 3, 3, 3, 4, 4, 4, 4]), "mtrain")
    with pytest.raises(ValueError, match="num_domains=3 does not match the 5 class counts"):
        acl_losses({}, np.zeros(2, np.int64), np.zeros(2, np.int64), "mtest", FIVE_CLASSES, num_domains=3)
