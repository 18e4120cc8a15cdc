"""Every loss of ``fastreid_ms.modeling.losses`` inside a compiled MindSpore graph.

Each case runs ``mindspore.value_and_grad`` of the losses twice on the same inputs (int64 Tensor labels): once in
PyNative mode (the plain module-level function ``vg_*``) and once inside ``mindspore.jit`` (``jit_vg_* =
mindspore.jit(vg_*, fullgraph=True)``: graph mode with static shapes, strict, i.e. without MindSpore's fallback to
interpreting unsupported Python such as ``.asnumpy()``), and checks that the values and gradients agree to RTOL.
Loss settings (margins, flags, phase, metric, ...) are Python constants of the compiled graph; ``loss_kwargs`` dicts
are module-level constants selected by name. To keep the file fast, one compiled function covers several settings
of a loss (see the comment above ``_total``). The host-side ``check_*`` validators, which replace the data-dependent
exceptions the losses used to raise, are tested at the end.
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling.losses import (acl_loss_names, acl_losses, acl_regularizers, centerLoss, check_acl_batch,
                                         check_center_labels, check_cluster_domains, check_cross_entropy_labels,
                                         check_domain_sct_domains, check_focal_targets, check_reid_batch,
                                         check_triplet_meta_rows, cross_entropy_loss, domain_SCT_loss, focal_loss,
                                         interCluster, intraCluster, loss_kwargs_from_cfg, pairwise_circleloss,
                                         pairwise_cosface, reid_loss_names, reid_losses, triplet_loss,
                                         triplet_loss_Meta)

RTOL = 1e-6
NUM_CLASSES = (3, 2, 4)


def _loss_kwargs(names, **cluster):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.LOSSES.NAME", names, "MODEL.LOSSES.CE.EPSILON", 0.1, "MODEL.LOSSES.CE.SCALE", 0.5,
                         "MODEL.LOSSES.TRI.HARD_MINING", True, "MODEL.LOSSES.TRI.MARGIN", 0.3])
    kwargs = loss_kwargs_from_cfg(cfg)
    kwargs["cluster"].update(cluster)
    return kwargs


# loss_kwargs constants of the compiled compositions, selected by name (a constant string argument)
LOSS_KWARGS = {
    "acl": _loss_kwargs(("CrossEntropyLoss", "TripletLoss")),
    "all": _loss_kwargs(("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")),
    "switches": _loss_kwargs(("CrossEntropyLoss", "TripletLoss"), per_dimension_centroid=True,
                             zero_if_single_domain=True),
}


# ------------------------------------------------------------------------- value_and_grad, PyNative and compiled
# One compilation covers several settings of a loss (a constant tuple; loops over it are unrolled). MindSpore 2.10
# cannot take value_and_grad of the same function several times in one graph with different constants ("Unexpected
# meta function graph node ... PolyNode"), so each vg_* differentiates ONE function of a stacked input X (K, ...):
# loss k reads X[k] only and the function returns the sum of the K losses with the K values as aux, so X's gradient
# slice k is exactly the gradient of loss k. (Neither a tuple of copies nor the same Tensor passed K times works:
# PyNative returns no gradient for a tuple input and accumulates the gradients of one Tensor object passed twice,
# graph mode does neither.)
def _total(values):
    total = values[0].sum()
    for value in values[1:]:
        total = total + value.sum()  # .sum(): focal_loss(reduction='none') is a vector (gradient of its sum)
    return total, tuple(values)


def _multi_ce(logits, labels, settings):
    return _total([cross_entropy_loss(logits[k], labels, settings[k][0], settings[k][1]) for k in range(len(settings))])


def _multi_triplet(x, labels, settings):
    return _total([triplet_loss(x[k], labels, settings[k][0], settings[k][1], settings[k][2])
                   for k in range(len(settings))])


def _multi_triplet_meta(x, labels, domains, settings):
    values = []
    for k in range(len(settings)):
        margin, norm_feat, hard_mining, dist_type, loss_type, pos_flag, neg_flag = settings[k]
        values.append(triplet_loss_Meta(x[k], labels, margin, norm_feat, hard_mining, dist_type, loss_type, domains,
                                        pos_flag, neg_flag))
    return _total(values)


def _multi_domain_sct(x, domains, metrics):
    return _total([domain_SCT_loss(x[k], domains, True, metrics[k]) for k in range(len(metrics))])


def _multi_cluster(paths, domains):
    """intraCluster, interCluster and interCluster(zero_if_single_domain) for both centroid switches."""
    values = []
    for k, per_dim in ((0, False), (3, True)):
        values.append(intraCluster(paths[k], domains, 0.1, per_dimension_centroid=per_dim))
        values.append(interCluster(paths[k + 1], domains, 0.3, per_dimension_centroid=per_dim))
        values.append(interCluster(paths[k + 2], domains, 0.3, per_dimension_centroid=per_dim,
                                   zero_if_single_domain=True))
    return _total(values)


def _multi_center(distmat, labels):
    return _total([centerLoss(distmat[0], labels), centerLoss(distmat[1], labels, clamp_masked_entries=False)])


def _multi_circle_cosface(x, labels):
    return _total([pairwise_circleloss(x[0], labels, 0.25, 16.0), pairwise_cosface(x[1], labels, 0.35, 32.0)])


def _multi_focal(x, labels):
    return _total([focal_loss(x[0], labels, 0.25, 2.0, "mean"), focal_loss(x[1], labels, 0.25, 2.0, "sum"),
                   focal_loss(x[2], labels, 0.5, 1.5, "none")])


def vg_ce(logits, labels, settings):
    return ms.value_and_grad(_multi_ce, has_aux=True)(logits, labels, settings)


def vg_triplet(x, labels, settings):
    return ms.value_and_grad(_multi_triplet, has_aux=True)(x, labels, settings)


def vg_triplet_meta(x, labels, domains, settings):
    return ms.value_and_grad(_multi_triplet_meta, has_aux=True)(x, labels, domains, settings)


def vg_domain_sct(x, domains, metrics):
    return ms.value_and_grad(_multi_domain_sct, has_aux=True)(x, domains, metrics)


def vg_cluster(paths, domains):
    return ms.value_and_grad(_multi_cluster, has_aux=True)(paths, domains)


def vg_center(distmat, labels):
    return ms.value_and_grad(_multi_center, has_aux=True)(distmat, labels)


def vg_circle_cosface(x, labels):
    return ms.value_and_grad(_multi_circle_cosface, has_aux=True)(x, labels)


def vg_focal(x, labels):
    return ms.value_and_grad(_multi_focal, has_aux=True)(x, labels)


def pairs(result):
    """The (value, gradient) pair of each setting from a vg_* result ``((total, values), stacked grads)``."""
    (_, values), grads = result
    assert len(values) == grads.shape[0]
    return [(value, grads[k]) for k, value in enumerate(values)]


def stacked(array, count):
    """``count`` copies of ``array`` stacked on a new first axis (float32 Tensor): the input of the vg_* functions."""
    return Tensor(np.stack([np.asarray(array, np.float32)] * count))


def _acl_total(c1, c2, c3, features, paths, distmat, labels, domains, phase, kwargs_name):
    loss_kwargs = LOSS_KWARGS[kwargs_name]
    outputs = {"cls_outputs1": c1, "cls_outputs2": c2, "cls_outputs3": c3, "features": features}
    main = acl_losses(outputs, labels, domains, phase, NUM_CLASSES, loss_kwargs)
    extra = acl_regularizers(paths, domains, distmat, labels, phase, loss_kwargs)
    # Graph mode can merge neither returned dicts ({**main, **extra}) nor pick the dict per key with a conditional
    # expression; acl_loss_names lists acl_losses' keys first, then acl_regularizers'.
    names = acl_loss_names(phase, loss_kwargs)
    values = tuple([main[key] for key in names[:len(main)]] + [extra[key] for key in names[len(main):]])
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total, values


def vg_acl(c1, c2, c3, features, paths, distmat, labels, domains, phase, kwargs_name):
    return ms.value_and_grad(_acl_total, grad_position=(0, 1, 2, 3, 4, 5), has_aux=True)(
        c1, c2, c3, features, paths, distmat, labels, domains, phase, kwargs_name)


def _reid_total(cls_outputs, features, labels, kwargs_name):
    loss_kwargs = LOSS_KWARGS[kwargs_name]
    losses = reid_losses({"cls_outputs": cls_outputs, "features": features}, labels, loss_kwargs)
    values = tuple([losses[key] for key in reid_loss_names(loss_kwargs)])
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total, values


def vg_reid(cls_outputs, features, labels, kwargs_name):
    return ms.value_and_grad(_reid_total, grad_position=(0, 1), has_aux=True)(cls_outputs, features, labels,
                                                                             kwargs_name)


jit_vg_ce = ms.jit(vg_ce, fullgraph=True)
jit_vg_triplet = ms.jit(vg_triplet, fullgraph=True)
jit_vg_triplet_meta = ms.jit(vg_triplet_meta, fullgraph=True)
jit_vg_domain_sct = ms.jit(vg_domain_sct, fullgraph=True)
jit_vg_cluster = ms.jit(vg_cluster, fullgraph=True)
jit_vg_center = ms.jit(vg_center, fullgraph=True)
jit_vg_circle_cosface = ms.jit(vg_circle_cosface, fullgraph=True)
jit_vg_focal = ms.jit(vg_focal, fullgraph=True)
jit_vg_acl = ms.jit(vg_acl, fullgraph=True)
jit_vg_reid = ms.jit(vg_reid, fullgraph=True)


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree.asnumpy()]


def run_both(vg, jit_vg, *args):
    """``(value, grads)`` of ``vg(*args)`` in PyNative, after checking that the compiled ``jit_vg(*args)`` gives the
    same values and gradients (max abs difference <= RTOL * max abs PyNative value, per array)."""
    eager = vg(*args)
    compiled = jit_vg(*args)
    eager_leaves, compiled_leaves = _leaves(eager), _leaves(compiled)
    assert len(eager_leaves) == len(compiled_leaves)
    for i, (e, c) in enumerate(zip(eager_leaves, compiled_leaves)):
        assert e.shape == c.shape, f"output {i}: shape {c.shape} != {e.shape}"
        e64, c64 = e.astype(np.float64), c.astype(np.float64)
        assert np.array_equal(np.isfinite(e64), np.isfinite(c64)), f"output {i}: finiteness differs"
        finite = np.isfinite(e64)
        assert np.array_equal(e64[~finite], c64[~finite]), f"output {i}: non-finite entries differ"
        if finite.any():
            scale = max(float(np.max(np.abs(e64[finite]))), 1e-30)
            err = float(np.max(np.abs(e64[finite] - c64[finite])))
            assert err <= RTOL * scale, f"output {i}: compiled differs from PyNative by {err:.3g} (scale {scale:.3g})"
    return eager


def f32(a):
    return Tensor(np.asarray(a, np.float32))


def i64(a):
    return Tensor(np.asarray(a, np.int64))


def assert_finite(tree):
    for leaf in _leaves(tree):
        assert np.all(np.isfinite(leaf))


RNG = np.random.default_rng(1234)
X6 = f32(RNG.standard_normal((6, 5)))
Y6 = i64([0, 0, 1, 1, 2, 2])
X12 = f32(RNG.standard_normal((12, 6)))
Y12 = i64([0, 0, 1, 1, 3, 3, 4, 4, 5, 5, 7, 7])  # two identities in each domain's class range of NUM_CLASSES
D12 = i64(np.repeat([0, 1, 2], 4))
PATHS12 = f32(np.abs(RNG.standard_normal((12, 16))))


# ------------------------------------------------------------------------------------------------ the losses
def test_cross_entropy():
    logits = RNG.standard_normal((6, 4)).astype(np.float32)
    logits[0] = [200.0, 0.0, 0.0, 0.0]  # with eps = 0 its loss is exactly 0 and leaves the normaliser
    settings = ((0.1, 0.2), (0.0, 0.2), (-1.0, 0.3))  # label smoothing, plain CE, adaptive smoothing (eps < 0)
    assert_finite(run_both(vg_ce, jit_vg_ce, stacked(logits, 3), i64([0, 3, 1, 1, 2, 0]), settings))


def test_triplet_hard_weighted_cosine_and_soft_margin():
    settings = ((0.3, False, True), (0.3, False, False), (0.3, True, True), (0.0, False, True), (0.0, True, False))
    assert_finite(run_both(vg_triplet, jit_vg_triplet, stacked(X6.asnumpy(), len(settings)), Y6, settings))


def test_soft_margin_overflow_fallback_has_the_fallback_value_and_gradient():
    # dist_an - dist_ap ~ -200: the soft margin overflows to inf, the reference falls back to margin ranking 0.3
    x = stacked([[0.0, 0.0], [200.0, 0.0], [200.0, 1.0], [0.0, 1.0]], 2)
    y = i64([0, 0, 1, 1])
    (value, grad), (fallback_value, fallback_grad) = pairs(run_both(vg_triplet, jit_vg_triplet, x, y,
                                                                    ((0.0, False, True), (0.3, False, True))))
    assert np.isfinite(value.asnumpy()) and np.all(np.isfinite(grad.asnumpy()))
    assert float(value.asnumpy()) == float(fallback_value.asnumpy())
    assert np.array_equal(grad.asnumpy(), fallback_grad.asnumpy())


TRIPLET_META_SETTINGS = (
    (0.0, False, True, "euclidean", "logistic", (0, 0, 1), (0, 1, 0)),   # loss_triplet_add
    (0.3, False, True, "euclidean", "logistic", (1, 0, 0), (0, 1, 1)),   # loss_triplet_mtrain / mtest
    (0.0, True, False, "cosine", "hinge", (1, 0, 0), (0, 1, 1)),         # weighted mining, cosine, hinge
    (0.3, True, True, "cosine", "logistic", (1, 1, 0), (0, 0, 1)),        # other flags
)


def test_triplet_meta():
    domains = i64([0, 1, 0, 1, 2, 2, 0, 1, 0, 1, 2, 2])  # every anchor has a same-domain other id and other domains
    labels = i64([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    for setting in TRIPLET_META_SETTINGS:
        check_triplet_meta_rows(labels.asnumpy(), domains.asnumpy(), setting[-2], setting[-1])
    assert_finite(run_both(vg_triplet_meta, jit_vg_triplet_meta, stacked(X12.asnumpy(), len(TRIPLET_META_SETTINGS)),
                           labels, domains, TRIPLET_META_SETTINGS))


@pytest.mark.parametrize("domains", [[0, 0, 1, 1, 2, 2], [2, 0, 2, 0, 2, 0]], ids=["all", "absent1"])
def test_domain_sct(domains):
    assert_finite(run_both(vg_domain_sct, jit_vg_domain_sct, stacked(X6.asnumpy(), 3), i64(domains),
                           ("cosine_sim", "cosine", "euclidean")))


@pytest.mark.parametrize("domains", [[0, 0, 1, 1, 2, 2], [1, 1, 1, 1, 1, 1], [0, 2, 0, 2, 0, 2], [0, 0, 5, 5, 2, 2]],
                         ids=["all", "single", "absent1", "out_of_range"])
def test_cluster(domains):
    paths = stacked(np.abs(RNG.standard_normal((6, 16))), 6)
    results = pairs(run_both(vg_cluster, jit_vg_cluster, paths, i64(domains)))
    assert_finite(results)
    if domains == [1, 1, 1, 1, 1, 1]:  # interCluster: the reference's gradient-free domain_ids.float().mean(), or 0
        for per_dim in (0, 1):
            for zero_single, expected in ((False, 1.0), (True, 0.0)):
                value, grad = results[3 * per_dim + 1 + zero_single]
                assert float(value.asnumpy()) == expected
                assert not np.any(grad.asnumpy())


def test_center():
    distmat = stacked(np.abs(RNG.standard_normal((6, 9))), 2)
    assert_finite(run_both(vg_center, jit_vg_center, distmat, i64([0, 8, 3, 3, 5, 1])))


def test_circle_and_cosface():
    assert_finite(run_both(vg_circle_cosface, jit_vg_circle_cosface, stacked(X6.asnumpy(), 2), Y6))


def test_focal():
    # (N, C) input; the (N, C, *) layout is checked against the formula in tests/test_losses.py
    assert_finite(run_both(vg_focal, jit_vg_focal, stacked(RNG.standard_normal((5, 4)), 3), i64([0, 1, 2, 3, 1])))


# ------------------------------------------------------------------------------------------- compositions
def _acl_inputs(labels, features=X12, paths=PATHS12):
    n = labels.shape[0]
    rng = np.random.default_rng(99)
    return ([f32(rng.standard_normal((n, c))) for c in NUM_CLASSES] + [features, paths,
                                                                       f32(np.abs(rng.standard_normal((n, 9))))])


# mtest runs with the cluster switches on (one graph per phase keeps the file fast; the reference's single-domain
# constant of interCluster is covered by test_cluster)
ACL_CASES = (("basic", "acl"), ("mtrain", "acl"), ("mtest", "switches"))


@pytest.mark.parametrize("phase, kwargs_name", ACL_CASES)
def test_acl_losses_and_regularizers(phase, kwargs_name):
    check_acl_batch(Y12.asnumpy(), D12.asnumpy(), phase, NUM_CLASSES)
    (total, values), grads = run_both(vg_acl, jit_vg_acl, *_acl_inputs(Y12), Y12, D12, phase, kwargs_name)
    assert len(values) == len(acl_loss_names(phase, LOSS_KWARGS[kwargs_name]))
    assert_finite((total, values, grads))


def test_acl_basic_with_an_absent_domain_matches_the_present_domains_only():
    """No label in domain 1's class range [3, 5): loss_cls averages domains 0 and 2 (classifier 2 gets no
    gradient), and equals the PyNative CE on the gathered rows."""
    labels = i64([0, 0, 1, 1, 2, 2, 5, 5, 6, 6, 8, 8])
    inputs = _acl_inputs(labels)
    check_acl_batch(labels.asnumpy(), D12.asnumpy(), "basic", NUM_CLASSES)
    (_, values), grads = run_both(vg_acl, jit_vg_acl, *inputs, labels, D12, "basic", "acl")
    assert not np.any(grads[1].asnumpy()), "classifier 2 must get no gradient when its domain is absent"
    y = labels.asnumpy()
    expected = np.mean([
        float(cross_entropy_loss(f32(inputs[0].asnumpy()[:6]), y[:6], 0.1).asnumpy()) * 0.5,
        float(cross_entropy_loss(f32(inputs[2].asnumpy()[6:]), y[6:] - 5, 0.1).asnumpy()) * 0.5])
    names = acl_loss_names("basic", LOSS_KWARGS["acl"])
    loss_cls = float(values[names.index("loss_cls")].asnumpy())
    assert abs(loss_cls - expected) <= 1e-6 * abs(expected)


def test_acl_single_domain_batch_with_the_cluster_switches():
    """mtest batch of one domain with zero_if_single_domain: loss_domain_inter is 0 (the reference's constant, the
    domain id, is checked in test_cluster), and the mtest graph of test_acl_losses_and_regularizers is reused."""
    domains = i64(np.ones(12))
    check_acl_batch(Y12.asnumpy(), domains.asnumpy(), "mtest", NUM_CLASSES)
    (_, values), grads = run_both(vg_acl, jit_vg_acl, *_acl_inputs(Y12), Y12, domains, "mtest", "switches")
    names = acl_loss_names("mtest", LOSS_KWARGS["switches"])
    assert float(values[names.index("loss_domain_inter")].asnumpy()) == 0.0
    assert_finite((values, grads))


def test_reid_losses():
    check_reid_batch(Y6.asnumpy(), 3)
    (total, values), grads = run_both(vg_reid, jit_vg_reid, f32(RNG.standard_normal((6, 3))), X6, Y6, "all")
    assert len(values) == len(reid_loss_names(LOSS_KWARGS["all"])) == 4
    assert_finite((total, values, grads))


# ----------------------------------------------------------------------------------------- host-side checks
@pytest.mark.parametrize("check, args, message", [
    (check_cross_entropy_labels, (np.array([0, 5, 1]), 4), r"gt_classes must lie in \[0, 4\).*\[5\] at row\(s\) \[1\]"),
    (check_center_labels, (np.array([-2, 1]), 3), r"centerLoss labels must lie in \[0, 3\).*\[-2\] at row\(s\) \[0\]"),
    (check_focal_targets, (np.array([[0, 2], [1, 7]]), 3), r"focal_loss target must lie in \[0, 3\).*\[7\]"),
    (check_cluster_domains, (np.array([4, 4]),), r"no sample has a domain id in \[0, 3\).*\[4\]"),
    (check_domain_sct_domains, (np.array([0, 1, 3]),), r"domain ids must lie in \[0, 3\).*\[3\] at row\(s\) \[2\]"),
    (check_triplet_meta_rows, (np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), (0, 0, 1), (0, 1, 0)),
     r"anchor row\(s\) \[0, 1, 2, 3\] have no negative"),
    (check_reid_batch, (np.array([0, 3]), 3), r"targets must lie in \[0, 3\).*\[3\] at row\(s\) \[1\]"),
    (check_acl_batch, (np.array([9, 10]), np.array([0, 1]), "basic", NUM_CLASSES),
     r"no target lies in a domain's class range \[0, 9\)"),
    (check_acl_batch, (np.array([0, 0, 3, 3]), np.array([0, 0, 1, 1]), "mtrain", NUM_CLASSES),
     r"row\(s\) \[0, 1, 2, 3\] have no negative"),
    (check_acl_batch, (np.array([0, 1, 3, 4]), np.array([7, 7, 9, 9]), "mtest", NUM_CLASSES),
     r"no sample has a domain id in \[0, 3\)"),
])
def test_host_checks_raise_value_error_naming_the_problem(check, args, message):
    with pytest.raises(ValueError, match=message):
        check(*args)
