"""Loss behaviour the golden fixtures do not cover: soft-margin overflow fallback, weighted mining, circle/cosface,
focal loss, adaptive label smoothing, the CE non-zero normaliser, the switches beside the reference quirks, the host-side
batch checks (``check_*``: anchors without negatives, labels out of range, ...), and the Baseline compositions' key sets
(``acl_loss_names`` / ``reid_loss_names``), weights and domain selection. The losses run here in PyNative mode, mostly
with numpy labels (converted by the losses); ``tests/modeling/test_losses_compiled.py`` compares them with
``mindspore.jit``.

Expected values come from small float64 numpy implementations of the formulas; gradients from central finite
differences of those implementations.
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling.losses import (ACL_PHASES, acl_cls_accuracy, acl_loss_names, acl_losses, acl_regularizers,
                                         centerLoss, check_acl_batch, check_center_labels, check_cluster_domains,
                                         check_cross_entropy_labels, check_domain_sct_domains, check_focal_targets,
                                         check_reid_batch, check_triplet_meta_rows, cross_entropy_loss,
                                         domain_SCT_loss, focal_loss, interCluster, intraCluster, l2_normalize,
                                         log_accuracy, loss_kwargs_from_cfg, normalize, pairwise_circleloss,
                                         pairwise_cosface, reid_loss_names, reid_losses, triplet_loss,
                                         triplet_loss_Meta)

RTOL = 1e-5


def rel_err(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-30))


def numeric_grad(fn, x, h=1e-5):
    """Central finite differences of a float64 numpy function."""
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (fn(up) - fn(down)) / (2 * h)
    return grad


def value_and_grad(fn, x):
    value, grad = ms.value_and_grad(fn)(Tensor(x.astype(np.float32)))
    return float(value.asnumpy()), grad.asnumpy()


# ----------------------------------------------------------------------------------------------- numpy formulas
def np_euclidean(x):
    sq = (x ** 2).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 1e-12))


def np_l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def np_softmax_weights(dist, mask):
    max_v = (dist * mask).max(1, keepdims=True)
    diff = dist - max_v
    z = (np.exp(diff) * mask).sum(1, keepdims=True) + 1e-6
    return np.exp(diff) * mask / z


def np_weighted_triplet(x, labels, margin):
    dist = np_euclidean(x)
    is_pos = (labels[:, None] == labels[None, :]).astype(np.float64)
    is_neg = 1 - is_pos
    d_ap, d_an = dist * is_pos, dist * is_neg
    ap = (d_ap * np_softmax_weights(d_ap, is_pos)).sum(1)
    an = (d_an * np_softmax_weights(-d_an, is_neg)).sum(1)
    return np.maximum(ap - an + margin, 0).mean()


def np_logsumexp(v):
    m = v.max(1, keepdims=True)
    return (m + np.log(np.exp(v - m).sum(1, keepdims=True)))[:, 0]


def np_softplus(v):
    return np.where(v > 20, v, np.log1p(np.exp(np.minimum(v, 20))))


def np_pair_masks(labels):
    same = (labels[:, None] == labels[None, :]).astype(np.float64)
    return same - np.eye(len(labels)), 1 - same


def np_circle(x, labels, margin, gamma, frozen_x=None):
    """Circle loss; the alphas (detached in the reference) are computed at ``frozen_x`` when given."""
    is_pos, is_neg = np_pair_masks(labels)
    sim = np_l2n(x) @ np_l2n(x).T
    sim0 = sim if frozen_x is None else np_l2n(frozen_x) @ np_l2n(frozen_x).T
    alpha_p = np.maximum(-sim0 * is_pos + 1 + margin, 0)
    alpha_n = np.maximum(sim0 * is_neg + margin, 0)
    logit_p = -gamma * alpha_p * (sim * is_pos - (1 - margin)) - 99999999.0 * (1 - is_pos)
    logit_n = gamma * alpha_n * (sim * is_neg - margin) - 99999999.0 * (1 - is_neg)
    return np_softplus(np_logsumexp(logit_p) + np_logsumexp(logit_n)).mean()


def np_cosface(x, labels, margin, gamma):
    is_pos, is_neg = np_pair_masks(labels)
    sim = np_l2n(x) @ np_l2n(x).T
    logit_p = -gamma * sim * is_pos - 99999999.0 * (1 - is_pos)
    logit_n = gamma * (sim * is_neg + margin) - 99999999.0 * (1 - is_neg)
    return np_softplus(np_logsumexp(logit_p) + np_logsumexp(logit_n)).mean()


def np_log_softmax(x):
    z = x - x.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def np_cluster_blocks(paths, domains):
    p = np_l2n(paths)
    return [p[domains == d] for d in range(3) if (domains == d).any()]


# ----------------------------------------------------------------------------------------------------- triplet
def test_soft_margin_triplet_matches_formula_when_finite():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5))
    labels = np.array([0, 0, 1, 1, 2, 2])

    def np_loss(v):
        dist = np_euclidean(v)
        same = labels[:, None] == labels[None, :]
        ap = np.where(same, dist, -np.inf).max(1)
        an = np.where(~same, dist, np.inf).min(1)
        return np.log1p(np.exp(-(an - ap))).mean()

    value, grad = value_and_grad(lambda t: triplet_loss(t, labels, 0.0, False, True), x)
    assert rel_err(value, np_loss(x)) < RTOL
    assert rel_err(grad, numeric_grad(np_loss, x)) < 1e-3


def test_soft_margin_overflow_falls_back_to_margin_ranking_with_margin_0_3():
    # Two far-apart identities whose members sit on the other identity: dist_an - dist_ap ~ -200, exp(200) = inf.
    x = np.array([[0.0, 0.0], [200.0, 0.0], [200.0, 1.0], [0.0, 1.0]])
    labels = np.array([0, 0, 1, 1])

    def np_ranking(v, margin):
        dist = np_euclidean(v)
        same = labels[:, None] == labels[None, :]
        ap = np.where(same, dist, -np.inf).max(1)
        an = np.where(~same, dist, np.inf).min(1)
        return np.maximum(ap - an + margin, 0).mean()

    value, grad = value_and_grad(lambda t: triplet_loss(t, labels, 0.0, False, True), x)
    assert np.isfinite(value), "the inf soft-margin loss must be replaced by the fallback"
    assert rel_err(value, np_ranking(x, 0.3)) < RTOL
    assert np.all(np.isfinite(grad))
    assert rel_err(grad, numeric_grad(lambda v: np_ranking(v, 0.3), x)) < 1e-3


def test_weighted_mining_triplet_matches_formula():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 6))
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    value, grad = value_and_grad(lambda t: triplet_loss(t, labels, 0.3, False, False), x)
    assert rel_err(value, np_weighted_triplet(x, labels, 0.3)) < RTOL
    assert rel_err(grad, numeric_grad(lambda v: np_weighted_triplet(v, labels, 0.3), x)) < 1e-3
    hard = float(triplet_loss(Tensor(x.astype(np.float32)), labels, 0.3, False, True).asnumpy())
    assert abs(hard - value) > 1e-3, "weighted mining must differ from hard mining on this batch"


def test_hard_triplet_mask_multiply_treats_non_members_as_zero_for_meta_but_not_basic():
    """triplet_loss_Meta excludes pairs that are neither positive nor negative (boolean masks)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 4))
    labels = np.array([0, 0, 1, 1, 2, 2])
    domains = np.array([0, 0, 0, 1, 1, 1])
    loss = triplet_loss_Meta(Tensor(x.astype(np.float32)), labels, 0.3, False, True, "euclidean", "logistic",
                             domains, [0, 0, 1], [0, 1, 0])
    dist = np_euclidean(x)
    same_id = labels[:, None] == labels[None, :]
    same_dom = domains[:, None] == domains[None, :]
    is_pos = np.eye(6, dtype=bool) | ~same_dom
    is_neg = ~same_id & same_dom
    ap = np.where(is_pos, dist, -np.inf).max(1)
    an = np.where(is_neg, dist, np.inf).min(1)
    assert rel_err(loss.asnumpy(), np.maximum(ap - an + 0.3, 0).mean()) < RTOL


def test_triplet_meta_weighted_cosine_and_hinge_paths():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    labels = np.array([0, 0, 1, 1, 2, 2])
    dist = 2 - 2 * np_l2n(x) @ np_l2n(x).T
    same = (labels[:, None] == labels[None, :]).astype(np.float64)
    d_ap, d_an = dist * same, dist * (1 - same)
    ap = (d_ap * np_softmax_weights(d_ap, same)).sum(1)
    an = (d_an * np_softmax_weights(-d_an, 1 - same)).sum(1)
    loss = triplet_loss_Meta(Tensor(x.astype(np.float32)), labels, 0.0, False, False, "cosine", "hinge")
    assert rel_err(loss.asnumpy(), np.maximum(ap - an, 0).mean()) < RTOL


def test_triplet_meta_row_without_negative_is_reported_by_the_host_check_naming_the_rows():
    x = Tensor(np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32))
    labels = np.array([0, 0, 1, 1])
    domains = np.array([0, 0, 1, 1])  # each domain holds one identity: no "same domain, other id" negative
    with pytest.raises(ValueError, match=r"row\(s\) \[0, 1, 2, 3\] have no negative"):
        check_triplet_meta_rows(labels, domains, [0, 0, 1], [0, 1, 0])
    # The loss itself no longer inspects the data (it must compile): a row without negative gets dist_an = +inf,
    # so its soft-margin term is log1p(exp(-inf)) = 0 (the reference raises instead).
    loss = triplet_loss_Meta(x, labels, 0.0, False, True, "euclidean", "logistic", domains, [0, 0, 1], [0, 1, 0])
    assert float(loss.asnumpy()) == 0.0
    check_triplet_meta_rows(labels, np.array([0, 1, 0, 1]), [0, 0, 1], [0, 1, 0])  # every row has both: no error
    with pytest.raises(ValueError, match=r"row\(s\) \[0, 1\] have no negative"):
        check_triplet_meta_rows(np.array([3, 3]), None, [1, 0, 0], [0, 1, 1])  # one identity: no other id


def test_triplet_meta_rejects_bad_arguments():
    x = Tensor(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="dist_type"):
        triplet_loss_Meta(x, [0, 1], 0.3, False, True, "manhattan", "logistic")
    with pytest.raises(ValueError, match="loss_type"):
        triplet_loss_Meta(x, [0, 1], 0.0, False, True, "euclidean", "softplus")
    with pytest.raises(ValueError, match="pos_flag"):
        triplet_loss_Meta(x, [0, 1], 0.3, False, True, "euclidean", "logistic", [0, 0], [1, 0], [0, 1, 1])


def test_triplet_norm_feat_uses_cosine_distance():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((6, 4))
    labels = np.array([0, 0, 1, 1, 2, 2])
    dist = 2 - 2 * np_l2n(x) @ np_l2n(x).T
    same = labels[:, None] == labels[None, :]
    ap = np.where(same, dist, -np.inf).max(1)
    an = np.where(~same, dist, np.inf).min(1)
    loss = triplet_loss(Tensor(x.astype(np.float32)), labels, 0.3, True, True)
    assert rel_err(loss.asnumpy(), np.maximum(ap - an + 0.3, 0).mean()) < RTOL


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_domain_sct_other_metrics(metric):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((6, 4))
    domains = np.array([1, 0, 1, 0, 2, 2])
    f = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    terms = []
    for d in (0, 1, 2):
        feat = f[domains == d]
        center = feat.mean(0, keepdims=True)
        if metric == "euclidean":
            terms.append(-np.sqrt(np.maximum(((center - feat) ** 2).sum(1), 1e-12)).mean())
        else:
            terms.append(-(2 - 2 * np_l2n(center) @ np_l2n(feat).T).mean())
    loss = domain_SCT_loss(Tensor(x.astype(np.float32)), domains, True, metric)
    assert rel_err(loss.asnumpy(), np.mean(terms)) < RTOL
    # domain 1 absent: mean over the two domains present, finite value and gradient
    absent = np.array([0, 0, 2, 0, 2, 2])
    value, grad = value_and_grad(lambda t: domain_SCT_loss(t, Tensor(absent), True, metric), x)
    terms = []
    for d in (0, 2):
        feat = f[absent == d]
        center = feat.mean(0, keepdims=True)
        if metric == "euclidean":
            terms.append(-np.sqrt(np.maximum(((center - feat) ** 2).sum(1), 1e-12)).mean())
        else:
            terms.append(-(2 - 2 * np_l2n(center) @ np_l2n(feat).T).mean())
    assert rel_err(value, np.mean(terms)) < RTOL
    assert np.all(np.isfinite(grad))


def test_domain_sct_cosine_sim_with_an_absent_domain_has_finite_gradient():
    rng = np.random.default_rng(20)
    x = rng.standard_normal((6, 4))
    domains = np.array([2, 0, 2, 0, 2, 0])  # domain 1 absent: its zero centre must not produce 0/0

    def np_loss(v):
        f = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
        terms = []
        for d in (0, 2):
            feat = f[domains == d]
            c = feat.mean(0)
            terms.append((feat @ c / (np.linalg.norm(feat, axis=1) * np.linalg.norm(c))).mean())
        return np.mean(terms)

    value, grad = value_and_grad(lambda t: domain_SCT_loss(t, Tensor(domains), True, "cosine_sim"), x)
    assert rel_err(value, np_loss(x)) < RTOL
    assert rel_err(grad, numeric_grad(np_loss, x)) < 1e-3
    with pytest.raises(ValueError, match=r"domain ids must lie in \[0, 3\).*got \[3\] at row\(s\) \[2\]"):
        check_domain_sct_domains(np.array([0, 1, 3]))


# ------------------------------------------------------------------------------------------ circle / cosface
def test_pairwise_circleloss_matches_formula_with_detached_alphas():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5))
    labels = np.array([0, 0, 1, 1, 2, 2])
    margin, gamma = 0.25, 8.0
    value, grad = value_and_grad(lambda t: pairwise_circleloss(t, labels, margin, gamma), x)
    assert rel_err(value, np_circle(x, labels, margin, gamma)) < RTOL
    expected = numeric_grad(lambda v: np_circle(v, labels, margin, gamma, frozen_x=x), x)
    assert rel_err(grad, expected) < 1e-3


def test_pairwise_cosface_matches_formula():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 5))
    labels = np.array([0, 0, 1, 1, 2, 2])
    value, grad = value_and_grad(lambda t: pairwise_cosface(t, labels, 0.25, 8.0), x)
    assert rel_err(value, np_cosface(x, labels, 0.25, 8.0)) < RTOL
    assert rel_err(grad, numeric_grad(lambda v: np_cosface(v, labels, 0.25, 8.0), x)) < 1e-3


# ---------------------------------------------------------------------------------------- CE / focal / accuracy
def test_cross_entropy_adaptive_smoothing_uses_detached_softmax_prob():
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((5, 4)) * 2
    labels = np.array([0, 3, 1, 1, 2])
    alpha = 0.2
    prob = np.exp(np_log_softmax(logits))
    smooth = alpha * prob[np.arange(5), labels][:, None]
    targets = np.repeat(smooth / 3, 4, axis=1)
    targets[np.arange(5), labels] = 1 - smooth[:, 0]
    expected = (-targets * np_log_softmax(logits)).sum(1).mean()
    value, grad = value_and_grad(lambda t: cross_entropy_loss(t, labels, -1, alpha), logits)
    assert rel_err(value, expected) < RTOL
    # targets carry no gradient: d/dlogits = (softmax * sum(t) - t) / N
    assert rel_err(grad, (prob * targets.sum(1, keepdims=True) - targets) / 5) < 1e-5
    fixed = float(cross_entropy_loss(Tensor(logits.astype(np.float32)), labels, 0.1).asnumpy())
    assert abs(fixed - value) > 1e-3


def test_cross_entropy_divides_by_number_of_non_zero_losses():
    logits = np.array([[200.0, 0.0, 0.0], [0.5, 0.1, -0.3], [0.0, 1.0, 2.0]])
    labels = np.array([0, 1, 2])  # the first row's loss is exactly 0 in float32 without smoothing
    per_row = -np_log_softmax(logits)[np.arange(3), labels]
    value = float(cross_entropy_loss(Tensor(logits.astype(np.float32)), labels, 0.0).asnumpy())
    assert rel_err(value, per_row[1:].sum() / 2) < RTOL
    assert abs(value - per_row.mean()) > 1e-2


def test_cross_entropy_label_check_names_out_of_range_labels_and_rows():
    with pytest.raises(ValueError, match=r"gt_classes must lie in \[0, 3\) .*got \[3, -1\] at row\(s\) \[1, 2\]"):
        check_cross_entropy_labels(np.array([0, 3, -1]), 3)
    with pytest.raises(ValueError, match="integers"):
        check_cross_entropy_labels(np.array([0.0, 1.0]), 3)
    assert check_cross_entropy_labels(Tensor(np.array([0, 2])), 3).tolist() == [0, 2]


def test_losses_check_label_rank_and_dtype_statically():
    logits = Tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="gt_classes must be a 1-D"):
        cross_entropy_loss(logits, np.zeros((2, 1), np.int64), 0.1)
    with pytest.raises(ValueError, match="gt_classes must hold integers"):
        cross_entropy_loss(logits, np.array([0.0, 1.0]), 0.1)


def test_focal_loss_matches_formula():
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((5, 4))
    labels = np.array([0, 1, 2, 3, 1])
    prob = np.exp(np_log_softmax(logits))
    expected = (-0.25 * (1 - prob) ** 2 * np.log(prob))[np.arange(5), labels]
    out = focal_loss(Tensor(logits.astype(np.float32)), labels, 0.25, 2.0, reduction="none")
    assert rel_err(out.asnumpy(), expected) < RTOL
    assert rel_err(focal_loss(Tensor(logits.astype(np.float32)), Tensor(labels), 0.25).asnumpy(),
                   expected.mean()) < RTOL
    with pytest.raises(ValueError, match=r"focal_loss target must lie in \[0, 4\)"):
        check_focal_targets(np.array([0, 4]), 4)


def test_focal_loss_spatial_targets():
    rng = np.random.default_rng(18)
    logits = rng.standard_normal((2, 3, 2, 2))
    labels = rng.integers(0, 3, size=(2, 2, 2))
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    one_hot = np.moveaxis(np.eye(3)[labels], -1, 1)
    expected = (one_hot * -0.5 * (1 - prob) ** 2 * np.log(prob)).sum(1)
    out = focal_loss(Tensor(logits.astype(np.float32)), Tensor(labels), 0.5, 2.0, reduction="none")
    assert rel_err(out.asnumpy(), expected) < RTOL


def test_log_accuracy_top_k():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    labels = np.array([1, 1, 2, 1])
    assert log_accuracy(Tensor(logits.astype(np.float32)), labels, topk=(1, 2)) == [0.5, 1.0]


# --------------------------------------------------------------------------------- cluster / center quirks
def test_cluster_losses_scalar_centroid_default_and_per_dimension_switch():
    rng = np.random.default_rng(9)
    paths = np.abs(rng.standard_normal((9, 16)))
    domains = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    blocks = np_cluster_blocks(paths, domains)

    def np_intra(per_dim):
        terms = []
        for b in blocks:
            mu = b.mean(0, keepdims=True) if per_dim else b.mean()
            terms.append((np.maximum(np.linalg.norm(b - mu, axis=1) - 0.1, 0) ** 2).mean())
        return np.mean(terms)

    def np_inter(per_dim):
        mus = [b.mean(0) if per_dim else np.array([b.mean()]) for b in blocks]
        pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
        return np.mean([np.maximum(0.3 - np.linalg.norm(mus[i] - mus[j]), 0) ** 2 for i, j in pairs])

    p = Tensor(paths.astype(np.float32))
    for per_dim in (False, True):
        assert rel_err(intraCluster(p, domains, per_dimension_centroid=per_dim).asnumpy(), np_intra(per_dim)) < RTOL
        assert rel_err(interCluster(p, domains, per_dimension_centroid=per_dim).asnumpy(), np_inter(per_dim)) < RTOL
    assert abs(np_intra(False) - np_intra(True)) > 1e-3 and abs(np_inter(False) - np_inter(True)) > 1e-3


def test_inter_cluster_single_domain_constant_and_zero_switch():
    paths = Tensor(np.abs(np.random.default_rng(10).standard_normal((4, 16))).astype(np.float32))
    domains = np.array([2, 2, 2, 2])
    assert float(interCluster(paths, domains).asnumpy()) == 2.0
    grad = ms.grad(lambda p: interCluster(p, domains))(paths)
    assert np.array_equal(grad.asnumpy(), np.zeros((4, 16), np.float32))
    assert float(interCluster(paths, domains, zero_if_single_domain=True).asnumpy()) == 0.0
    # ids outside 0..2 are ignored by the pairs but still enter the reference's domain_ids.float().mean()
    assert float(interCluster(paths, Tensor(np.array([1, 1, 5, 5]))).asnumpy()) == 3.0


def test_cluster_losses_ignore_out_of_range_domains_and_host_check():
    rng = np.random.default_rng(19)
    paths = np.abs(rng.standard_normal((6, 16)))
    domains = np.array([0, 0, 7, 1, 1, -1])
    kept = np.array([0, 1, 3, 4])
    p, p_kept = Tensor(paths.astype(np.float32)), Tensor(paths[kept].astype(np.float32))
    assert rel_err(intraCluster(p, domains).asnumpy(), intraCluster(p_kept, domains[kept]).asnumpy()) < RTOL
    assert rel_err(interCluster(p, domains).asnumpy(), interCluster(p_kept, domains[kept]).asnumpy()) < RTOL
    check_cluster_domains(domains)
    with pytest.raises(ValueError, match=r"no sample has a domain id in \[0, 3\).*\[-1, 3, 7\]"):
        check_cluster_domains(np.array([3, 7, -1]))
    assert float(intraCluster(p[:3], np.array([3, 7, -1])).asnumpy()) == 0.0  # unchecked: nothing to average


def test_center_loss_clamps_masked_entries_by_default():
    distmat = np.zeros((3, 5), np.float32)  # every clamped entry becomes 1e-12
    labels = np.array([0, 4, 2])
    default = float(centerLoss(Tensor(distmat), labels).asnumpy())
    switched = float(centerLoss(Tensor(distmat), labels, clamp_masked_entries=False).asnumpy())
    assert rel_err(default, 5 * 1e-12) < RTOL   # (N * C entries of 1e-12) / N
    assert rel_err(switched, 1e-12) < RTOL      # only the N target entries
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\) .*got \[5\] at row\(s\) \[1\]"):
        check_center_labels(np.array([0, 5, 1]), 5)


def test_normalize_variants_differ_only_for_tiny_vectors():
    tiny = Tensor(np.array([[1e-13, 0.0], [3.0, 4.0]], np.float32))
    torch_like = l2_normalize(tiny, axis=1).asnumpy()
    reference_utils = normalize(tiny, axis=1).asnumpy()
    assert rel_err(torch_like[0], [0.1, 0.0]) < 1e-5            # F.normalize: x / max(||x||, 1e-12)
    assert rel_err(reference_utils[0], [1 / 11, 0.0]) < 1e-5    # losses.utils.normalize: x / (||x|| + 1e-12)
    assert rel_err(torch_like[1], reference_utils[1]) < 1e-6


# ------------------------------------------------------------------------------------------- compositions
def acl_batch(rng, num_classes=(3, 2, 4)):
    labels = np.array([0, 0, 1, 1, 3, 3, 4, 4, 5, 5, 7, 7])  # two identities in each domain's class range
    n = len(labels)
    outputs = {f"cls_outputs{i + 1}": Tensor(rng.standard_normal((n, c)).astype(np.float32))
               for i, c in enumerate(num_classes)}
    outputs.update({f"pred_class_logits{i + 1}": outputs[f"cls_outputs{i + 1}"] for i in range(3)})
    outputs["features"] = Tensor(rng.standard_normal((n, 8)).astype(np.float32))
    return outputs, labels, num_classes


def acl_kwargs(**overrides):
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.LOSSES.NAME", ("CrossEntropyLoss", "TripletLoss"), "MODEL.LOSSES.CE.EPSILON", 0.1,
                         "MODEL.LOSSES.CE.SCALE", 0.5, "MODEL.LOSSES.TRI.HARD_MINING", True])
    kwargs = loss_kwargs_from_cfg(cfg)
    kwargs.update(overrides)
    return kwargs


def test_acl_basic_selects_domains_by_label_range_not_domain_ids():
    outputs, labels, num_classes = acl_batch(np.random.default_rng(11))
    kwargs = acl_kwargs()
    right = acl_losses(outputs, labels, np.repeat([0, 1, 2], 4), "basic", num_classes, kwargs)
    wrong = acl_losses(outputs, labels, np.zeros(12, np.int64), "basic", num_classes, kwargs)
    assert list(right) == ["loss_cls", "loss_triplet"]
    assert float(right["loss_cls"].asnumpy()) == float(wrong["loss_cls"].asnumpy())
    bounds = [0, 3, 5, 9]
    expected = np.mean([
        float(cross_entropy_loss(Tensor(outputs[f"cls_outputs{d + 1}"].asnumpy()[rows]), labels[rows] - bounds[d],
                                 0.1).asnumpy()) * 0.5
        for d, rows in ((0, [0, 1, 2, 3]), (1, [4, 5, 6, 7]), (2, [8, 9, 10, 11]))])
    assert rel_err(right["loss_cls"].asnumpy(), expected) < RTOL


def test_acl_basic_averages_only_present_domains():
    outputs, _, num_classes = acl_batch(np.random.default_rng(12))
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 2, 0, 0])  # domain 0 only
    loss = acl_losses(outputs, labels, np.zeros(12, np.int64), "basic", num_classes, acl_kwargs())["loss_cls"]
    expected = float(cross_entropy_loss(outputs["cls_outputs1"], labels, 0.1).asnumpy()) * 0.5
    assert rel_err(loss.asnumpy(), expected) < RTOL


def test_acl_basic_ce_normaliser_counts_non_zero_losses_of_the_domain_rows_only():
    """eps = 0: a row whose CE is exactly 0 is left out of its domain's normaliser, the zero-loss rows of other
    domains (masked out) do not count either."""
    num_classes = (2, 3, 2)
    labels = np.array([0, 1, 2, 4, 5, 6])  # domain 0: rows 0, 1; domain 1: rows 2, 3; domain 2: rows 4, 5
    rng = np.random.default_rng(21)
    logits = [rng.standard_normal((6, c)).astype(np.float32) for c in num_classes]
    logits[0][0] = [200.0, 0.0]  # row 0's CE is exactly 0 in float32
    outputs = {f"cls_outputs{i + 1}": Tensor(v) for i, v in enumerate(logits)}
    outputs["features"] = Tensor(rng.standard_normal((6, 4)).astype(np.float32))
    kwargs = acl_kwargs(loss_names=("CrossEntropyLoss",), ce={"eps": 0.0, "alpha": 0.2, "scale": 1.0})
    loss = acl_losses(outputs, Tensor(labels), Tensor(np.zeros(6, np.int64)), "basic", num_classes, kwargs)
    per_domain = []
    for d, rows, offset in ((0, [0, 1], 0), (1, [2, 3], 2), (2, [4, 5], 5)):
        ls = np_log_softmax(logits[d][rows].astype(np.float64))
        per_row = -ls[np.arange(len(rows)), labels[rows] - offset]
        per_row = per_row[per_row > 1e-30] if d == 0 else per_row
        per_domain.append(per_row.sum() / len(per_row))
    assert rel_err(loss["loss_cls"].asnumpy(), np.mean(per_domain)) < 1e-4


def test_acl_losses_key_sets_and_errors():
    outputs, labels, num_classes = acl_batch(np.random.default_rng(13))
    domains = np.repeat([0, 1, 2], 4)
    assert list(acl_losses(outputs, labels, domains, "mtrain", num_classes)) == [
        "loss_triplet_add", "loss_triplet_mtrain", "loss_stc"]
    assert list(acl_losses(outputs, labels, domains, "mtest", num_classes)) == ["loss_triplet_mtest"]
    with_circle = acl_losses(outputs, labels, domains, "basic", num_classes,
                             acl_kwargs(loss_names=("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")))
    assert list(with_circle) == ["loss_cls", "loss_triplet", "loss_circle", "loss_cosface"]
    with pytest.raises(ValueError, match="num_classes"):
        acl_losses(outputs, labels, domains, "basic", (3, 2, 5), acl_kwargs())
    for bad_phase in ("meta", None, {"type": "mtest"}):
        with pytest.raises(ValueError, match="phase must be one of"):
            acl_losses(outputs, labels, domains, bad_phase, num_classes, acl_kwargs())
    with pytest.raises(ValueError, match="phase must be one of"):
        acl_regularizers(outputs["features"], domains, outputs["features"], labels, "meta")
    with pytest.raises(ValueError, match="unsupported loss"):
        acl_losses(outputs, labels, domains, "basic", num_classes, acl_kwargs(loss_names=("FocalLoss",)))
    with pytest.raises(ValueError, match="needs loss_kwargs"):
        acl_losses(outputs, labels, domains, "basic", num_classes, None)
    assert ACL_PHASES == ("basic", "mtrain", "mtest")


@pytest.mark.parametrize("phase", ["basic", "mtrain", "mtest"])
@pytest.mark.parametrize("loss_names", [("CrossEntropyLoss", "TripletLoss"), ("TripletLoss", "Cosface"),
                                        ("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")])
def test_acl_loss_names_equal_the_returned_keys(phase, loss_names):
    outputs, labels, num_classes = acl_batch(np.random.default_rng(22))
    domains = Tensor(np.repeat([0, 1, 2], 4))
    labels = Tensor(labels)
    kwargs = acl_kwargs(loss_names=loss_names)
    n = labels.shape[0]
    distmat = Tensor(np.abs(np.random.default_rng(23).standard_normal((n, sum(num_classes)))).astype(np.float32))
    paths = Tensor(np.abs(np.random.default_rng(24).standard_normal((n, 16))).astype(np.float32))
    losses = {**acl_losses(outputs, labels, domains, phase, num_classes, kwargs),
              **acl_regularizers(paths, domains, distmat, labels, phase, kwargs)}
    assert acl_loss_names(phase, kwargs) == tuple(losses)


def test_reid_loss_names_equal_the_returned_keys():
    rng = np.random.default_rng(25)
    outputs = {"cls_outputs": Tensor(rng.standard_normal((4, 3)).astype(np.float32)),
               "features": Tensor(rng.standard_normal((4, 5)).astype(np.float32))}
    for names in (("CrossEntropyLoss",), ("TripletLoss", "CircleLoss"), ("CrossEntropyLoss", "Cosface")):
        kwargs = acl_kwargs(loss_names=names)
        assert reid_loss_names(kwargs) == tuple(reid_losses(outputs, Tensor(np.array([0, 0, 2, 2])), kwargs))
    with pytest.raises(ValueError, match="unsupported loss"):
        reid_loss_names(acl_kwargs(loss_names=("CenterLoss",)))


def test_check_acl_batch_accepts_valid_batches_and_names_the_problem():
    num_classes = (3, 2, 4)
    targets = np.array([0, 0, 1, 1, 3, 3, 4, 4, 5, 5, 8, 8])  # two identities per domain
    domains = np.repeat([0, 1, 2], 4)
    for phase in ACL_PHASES:
        check_acl_batch(targets, domains, phase, num_classes)
        check_acl_batch(Tensor(targets), Tensor(domains), phase, num_classes)
    with pytest.raises(ValueError, match="phase must be one of"):
        check_acl_batch(targets, domains, "meta", num_classes)
    with pytest.raises(ValueError, match=r"no target lies in a domain's class range \[0, 9\).*\[9, 9, 12\]"):
        check_acl_batch(np.array([9, 9, 12]), np.array([0, 0, 1]), "basic", num_classes)
    with pytest.raises(ValueError, match=r"negative target\(s\) \[-1\] at row\(s\) \[1\]"):
        check_acl_batch(np.array([0, -1, 3]), np.array([0, 0, 1]), "basic", num_classes)
    with pytest.raises(ValueError, match=r"centerLoss labels must lie in \[0, 9\).*\[9, 9\] at row\(s\) \[2, 3\]"):
        check_acl_batch(np.array([0, 0, 9, 9]), np.array([0, 0, 1, 1]), "basic", num_classes)
    with pytest.raises(ValueError, match=r"centerLoss labels must lie in \[0, 9\)"):
        check_acl_batch(np.array([0, 0, 9, 9]), np.array([0, 0, 1, 1]), "mtest", num_classes)
    check_acl_batch(np.array([0, 0, 9, 9]), np.array([0, 1, 0, 1]), "mtrain", num_classes)  # no centre term
    with pytest.raises(ValueError, match=r"no sample has a domain id in \[0, 3\)"):
        check_acl_batch(targets, np.full(12, 5), "basic", num_classes)
    # mtrain: each domain holds one identity -> loss_triplet_add has no "same domain, other id" negative
    with pytest.raises(ValueError, match=r"neg_flag=\[0, 1, 0\]\).*row\(s\) \[0, 1, 2, 3\] have no negative"):
        check_acl_batch(np.array([0, 0, 3, 3]), np.array([0, 0, 1, 1]), "mtrain", num_classes)
    with pytest.raises(ValueError, match=r"domain ids must lie in \[0, 3\).*\[3, 3\] at row\(s\) \[2, 3\]"):
        check_acl_batch(np.array([0, 1, 3, 4]), np.array([0, 0, 3, 3]), "mtrain", num_classes)
    with pytest.raises(ValueError, match=r"row\(s\) \[0, 1\] have no negative"):
        check_acl_batch(np.array([4, 4]), np.array([1, 1]), "mtest", num_classes)
    with pytest.raises(ValueError, match="does not match targets shape"):
        check_acl_batch(targets, domains[:4], "basic", num_classes)
    with pytest.raises(ValueError, match="empty"):
        check_acl_batch(np.zeros(0, np.int64), np.zeros(0, np.int64), "basic", num_classes)


def test_check_reid_batch():
    check_reid_batch(np.array([0, 1, 2]), 3)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 3\).*\[3\] at row\(s\) \[2\]"):
        check_reid_batch(np.array([0, 1, 3]), 3)
    check_reid_batch(np.array([0, 1, 3]), 3, acl_kwargs(loss_names=("TripletLoss",)))  # no CE: nothing to check


def test_acl_regularizers_weights_and_keys_per_opt_type():
    rng = np.random.default_rng(14)
    paths = Tensor(np.abs(rng.standard_normal((6, 16))).astype(np.float32))
    distmat = Tensor(np.abs(rng.standard_normal((6, 9))).astype(np.float32))
    labels, domains = np.array([0, 0, 4, 4, 7, 7]), np.array([0, 0, 1, 1, 2, 2])
    center = float(centerLoss(distmat, labels).asnumpy())
    basic = acl_regularizers(paths, Tensor(domains), distmat, Tensor(labels), "basic")
    assert list(basic) == ["loss_domain_intra", "loss_domain_inter", "loss_Center"]
    assert rel_err(basic["loss_Center"].asnumpy(), 5e-4 * center) < RTOL
    assert rel_err(acl_regularizers(paths, domains, distmat, labels, "mtest")["loss_Center"].asnumpy(),
                   1e-3 * center) < RTOL
    assert list(acl_regularizers(paths, domains, distmat, labels, "mtrain")) == ["loss_domain_intra",
                                                                                 "loss_domain_inter"]
    switched = acl_regularizers(paths, domains, distmat, labels, "basic",
                                {"cluster": {"per_dimension_centroid": True, "zero_if_single_domain": False}})
    assert rel_err(switched["loss_domain_intra"].asnumpy(),
                   intraCluster(paths, domains, per_dimension_centroid=True).asnumpy()) < RTOL


def test_reid_losses_follow_loss_names_and_scales():
    rng = np.random.default_rng(15)
    labels = np.array([0, 0, 1, 1, 2, 2])
    outputs = {"cls_outputs": Tensor(rng.standard_normal((6, 3)).astype(np.float32)),
               "features": Tensor(rng.standard_normal((6, 8)).astype(np.float32))}
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.LOSSES.NAME", ("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface"),
                         "MODEL.LOSSES.CE.EPSILON", 0.1, "MODEL.LOSSES.CE.SCALE", 0.7,
                         "MODEL.LOSSES.TRI.SCALE", 2.0, "MODEL.LOSSES.TRI.MARGIN", 0.4,
                         "MODEL.LOSSES.CIRCLE.SCALE", 0.1, "MODEL.LOSSES.CIRCLE.GAMMA", 16,
                         "MODEL.LOSSES.COSFACE.SCALE", 0.3, "MODEL.LOSSES.COSFACE.MARGIN", 0.35])
    kwargs = loss_kwargs_from_cfg(cfg)
    assert kwargs["tri"] == {"margin": 0.4, "norm_feat": False, "hard_mining": False, "scale": 2.0}
    losses = reid_losses(outputs, labels, kwargs)
    assert list(losses) == ["loss_cls", "loss_triplet", "loss_circle", "loss_cosface"]
    feats = outputs["features"]
    expected = {
        "loss_cls": cross_entropy_loss(outputs["cls_outputs"], labels, 0.1) * 0.7,
        "loss_triplet": triplet_loss(feats, labels, 0.4, False, False) * 2.0,
        "loss_circle": pairwise_circleloss(feats, labels, 0.25, 16) * 0.1,
        "loss_cosface": pairwise_cosface(feats, labels, 0.35, 128) * 0.3,
    }
    for key, value in expected.items():
        assert rel_err(losses[key].asnumpy(), value.asnumpy()) < RTOL, key


def test_acl_cls_accuracy_reproduces_global_label_quirk():
    num_classes = (2, 2, 2)
    n = 4
    labels = np.array([0, 1, 2, 3])  # two rows of domain 0, two of domain 1 (local labels 0, 1)
    perfect = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]] * 5
    outputs = {f"pred_class_logits{i + 1}": Tensor(perfect) for i in range(3)}
    outputs.update({f"cls_outputs{i + 1}": Tensor(np.zeros((n, 2), np.float32)) for i in range(3)})
    assert acl_cls_accuracy(outputs, labels, num_classes) == {0: 1.0, 1: 0.0}
    assert acl_cls_accuracy(outputs, labels, num_classes, subtract_domain_offset=True) == {0: 1.0, 1: 1.0}
