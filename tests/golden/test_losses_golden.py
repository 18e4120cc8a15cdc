"""Golden tests of the loss functions and of ACL-DGReID's Baseline.losses composition (fastreid_ms/modeling/losses)
against the PyTorch reference fixtures ``loss_*.npz``.

Values and gradients (``mindspore.value_and_grad`` of the fixture's scalar, i.e. the sum of the recorded losses) are
compared with the README's rule and tolerances. Every hyper-parameter comes from the fixture's MANIFEST info; the
Baseline fixtures were made with the reference config, so their loss settings come from the repository's
``configs/bagtricks_DR50_mix.yml`` through ``loss_kwargs_from_cfg``. Inputs the reference gives no gradient
(info ``no_grad``) must get an exactly zero MindSpore gradient.
"""
import re
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor

from golden import Fixture, assert_close
from fastreid_ms.config import get_cfg
from fastreid_ms.modeling.losses import (acl_losses, centerLoss, cross_entropy_loss, domain_SCT_loss, interCluster,
                                         intraCluster, loss_kwargs_from_cfg, triplet_loss, triplet_loss_Meta)

REFERENCE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bagtricks_DR50_mix.yml"


def check_value_and_grad(fx, fn, inputs, out_key="out_loss"):
    """``value_and_grad(fn)`` at the fixture inputs ``inputs`` (keys), compared with ``out_key`` and ``grad_<key>``."""
    args = [Tensor(fx[k]) for k in inputs]
    value, grads = ms.value_and_grad(fn, grad_position=tuple(range(len(args))))(*args)
    if len(args) == 1:  # MindSpore returns a lone gradient unwrapped
        grads = (grads,)
    assert_close(value.asnumpy(), fx[out_key], fx.tol("out/post"), f"{fx.name} {out_key}")
    for key, grad in zip(inputs, grads):
        assert_close(grad.asnumpy(), fx[f"grad_{key}"], fx.tol("grad"), f"{fx.name} grad_{key}")


def test_cross_entropy():
    fx = Fixture("loss_cross_entropy")
    eps, alpha = fx.info["eps"], fx.info["alpha"]
    check_value_and_grad(fx, lambda x: cross_entropy_loss(x, fx["in_labels"], eps, alpha), ["in_logits"])


def test_triplet():
    fx = Fixture("loss_triplet")
    info = fx.info
    check_value_and_grad(
        fx, lambda x: triplet_loss(x, fx["in_targets"], info["margin"], info["norm_feat"], info["hard_mining"]),
        ["in_feat"])


@pytest.mark.parametrize("name", ["loss_triplet_meta_add", "loss_triplet_meta_mtrain"])
def test_triplet_meta(name):
    fx = Fixture(name)
    args = fx.info["args"]
    check_value_and_grad(
        fx, lambda x: triplet_loss_Meta(x, fx["in_targets"], domain_labels=fx["in_domains"], **args), ["in_feat"])


def test_domain_sct():
    fx = Fixture("loss_domain_sct")
    info = fx.info
    check_value_and_grad(fx, lambda x: domain_SCT_loss(x, fx["in_domains"], info["norm_feat"], info["type"]),
                         ["in_feat"])


def test_center():
    fx = Fixture("loss_center")
    check_value_and_grad(fx, lambda x: centerLoss(x, fx["in_labels"]), ["in_distmat"])


def test_cluster():
    fx = Fixture("loss_cluster")
    intra_margin, inter_margin = fx.info["intra_margin"], fx.info["inter_margin"]
    terms = {
        "intra": lambda p: intraCluster(p, fx["in_domains"], intra_margin),
        "inter": lambda p: interCluster(p, fx["in_domains"], inter_margin),
        "intra_single": lambda p: intraCluster(p, fx["in_domains_single"], intra_margin),
        "inter_single": lambda p: interCluster(p, fx["in_domains_single"], inter_margin),
    }
    paths = Tensor(fx["in_paths"])
    for key, term in terms.items():
        assert_close(term(paths).asnumpy(), fx[f"out_{key}"], fx.tol("out/post"), f"loss_cluster out_{key}")

    # The fixture's note names the outputs whose sum grad_in_paths differentiates, e.g. "d(intra+inter+intra_single)".
    match = re.search(r"d\(([a-z_+]+)\)/dpaths", fx.info["note"])
    assert match, f"loss_cluster note does not say which outputs grad_in_paths differentiates: {fx.info['note']!r}"
    summed = match.group(1).split("+")
    assert set(summed) <= set(terms), f"unknown outputs {summed} in the loss_cluster note"

    def total(p):
        loss = 0
        for key in summed:
            loss = loss + terms[key](p)
        return loss

    grad = ms.grad(total)(Tensor(fx["in_paths"]))
    assert_close(grad.asnumpy(), fx["grad_in_paths"], fx.tol("grad"), "loss_cluster grad_in_paths")
    # Outputs left out of the sum have no gradient in the reference (inter_single is the constant domain-id mean).
    for key in sorted(set(terms) - set(summed)):
        grad = ms.grad(terms[key])(Tensor(fx["in_paths"]))
        assert np.array_equal(grad.asnumpy(), np.zeros_like(fx["in_paths"])), f"{key} must have no gradient"


def reference_loss_kwargs():
    if not REFERENCE_CONFIG.is_file():
        pytest.fail(f"{REFERENCE_CONFIG} (the reference config the Baseline fixtures were made with) is missing",
                    pytrace=False)
    cfg = get_cfg()
    cfg.merge_from_file(str(REFERENCE_CONFIG))
    return loss_kwargs_from_cfg(cfg)


@pytest.mark.parametrize("name", ["loss_baseline_basic", "loss_baseline_mtrain", "loss_baseline_mtest"])
def test_baseline_losses(name):
    fx = Fixture(name)
    info = fx.info
    assert info["grads_of"] == "sum of all returned losses", f"{name}: unexpected grads_of {info['grads_of']!r}"
    loss_kwargs = reference_loss_kwargs()
    inputs = ["in_cls_outputs1", "in_cls_outputs2", "in_cls_outputs3", "in_features"]
    keys_seen = []

    def total(c1, c2, c3, features):
        outputs = {"cls_outputs1": c1, "cls_outputs2": c2, "cls_outputs3": c3, "features": features}
        losses = acl_losses(outputs, fx["in_targets"], fx["in_domains"], info["opt"]["type"],
                            tuple(info["num_classes"]), loss_kwargs)
        keys_seen[:] = list(losses)
        loss_sum = 0
        for value in losses.values():
            loss_sum = loss_sum + value
        return loss_sum, losses

    args = [Tensor(fx[k]) for k in inputs]
    (_, losses), grads = ms.value_and_grad(total, grad_position=(0, 1, 2, 3), has_aux=True)(*args)
    assert keys_seen == info["loss_keys"], f"{name}: loss keys {keys_seen} != reference {info['loss_keys']}"
    for key in info["loss_keys"]:
        assert_close(losses[key].asnumpy(), fx[f"out_{key}"], fx.tol("loss"), f"{name} out_{key}")
    for key, grad in zip(inputs, grads):
        if key in info["no_grad"]:
            assert f"grad_{key}" not in fx, f"{name}: {key} is listed in no_grad but has a gradient"
            assert np.array_equal(grad.asnumpy(), np.zeros_like(fx[key])), f"{name}: {key} must get no gradient"
        else:
            assert_close(grad.asnumpy(), fx[f"grad_{key}"], fx.tol("grad"), f"{name} grad_{key}")
