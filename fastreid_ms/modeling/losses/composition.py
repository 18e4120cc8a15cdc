"""Loss compositions of the Baseline meta-architecture.

* :func:`acl_losses` - ACL-DGReID ``Baseline.losses`` for the opt types ``basic`` / ``mtrain`` / ``mtest``;
* :func:`acl_regularizers` - the routing-path cluster terms and the centre term that ACL-DGReID's
  ``Baseline.forward`` adds after ``losses`` (so ``{**acl_losses(...), **acl_regularizers(...)}`` is the reference's
  loss dict, keys in the reference's order);
* :func:`reid_losses` - upstream FastReID ``Baseline.losses`` (single classifier);
* :func:`loss_kwargs_from_cfg` - the ``loss_kwargs`` dict that ``Baseline.from_config`` builds from
  ``cfg.MODEL.LOSSES``;
* :func:`acl_cls_accuracy` - the per-domain accuracy ACL-DGReID logs (logging only).
"""
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from mindspore import Tensor, ops

from .center_loss import centerLoss
from .circle_loss import pairwise_circleloss
from .cluster_loss import interCluster, intraCluster
from .cosface_loss import pairwise_cosface
from .cross_entroy_loss import cross_entropy_loss, log_accuracy
from .domain_sct_loss import domain_SCT_loss
from .triplet_loss import triplet_loss
from .triplet_loss_meta import triplet_loss_Meta
from .utils import label_array

__all__ = ["acl_losses", "acl_regularizers", "reid_losses", "loss_kwargs_from_cfg", "acl_cls_accuracy",
           "acl_opt_type", "ACL_OPT_TYPES", "REID_LOSS_NAMES"]

ACL_OPT_TYPES = ("basic", "mtrain", "mtest")
REID_LOSS_NAMES = ("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")

# Arguments ACL-DGReID's Baseline.losses hard-codes for the meta-learning triplet terms (not read from the config).
TRIPLET_ADD_ARGS = MappingProxyType(dict(margin=0.0, norm_feat=False, hard_mining=True, dist_type="euclidean",
                                         loss_type="logistic", pos_flag=(0, 0, 1), neg_flag=(0, 1, 0)))
TRIPLET_META_ARGS = MappingProxyType(dict(margin=0.3, norm_feat=False, hard_mining=True, dist_type="euclidean",
                                          loss_type="logistic", pos_flag=(1, 0, 0), neg_flag=(0, 1, 1)))
# Weights ACL-DGReID's Baseline.forward gives centerLoss per opt type (no centre term in mtrain).
CENTER_LOSS_WEIGHTS = MappingProxyType({"basic": 5e-4, "mtest": 1e-3})


def acl_opt_type(opt: Any) -> str:
    """The opt type ('basic', 'mtrain' or 'mtest') of ``opt``: None (= 'basic', as the reference treats
    ``opt is None``), a string, a mapping with key ``'type'`` or an object with a ``type`` attribute (MetaOpt)."""
    if opt is None:
        return "basic"
    if isinstance(opt, str):
        kind = opt
    elif isinstance(opt, Mapping):
        kind = opt.get("type")
    else:
        kind = getattr(opt, "type", None)
    if kind not in ACL_OPT_TYPES:
        raise ValueError(f"opt type must be one of {ACL_OPT_TYPES} (or opt None for 'basic'), got {kind!r}")
    return kind


def _require(mapping: Mapping, key: str, where: str) -> Any:
    if key not in mapping:
        raise KeyError(f"{where} is missing key {key!r} (has {sorted(mapping)})")
    return mapping[key]


def _loss_names(loss_kwargs: Mapping, allowed: Sequence[str]) -> Tuple[str, ...]:
    names = tuple(_require(loss_kwargs, "loss_names", "loss_kwargs"))
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ValueError(f"loss_kwargs['loss_names'] (MODEL.LOSSES.NAME) has unsupported loss(es) {unknown}; "
                         f"supported: {list(allowed)}")
    return names


def _metric_losses(loss_dict: Dict[str, Tensor], names: Sequence[str], features: Tensor, labels: np.ndarray,
                   loss_kwargs: Mapping) -> None:
    """Triplet, circle and cosface terms in FastReID's order, each times its SCALE."""
    if "TripletLoss" in names:
        tri = _require(loss_kwargs, "tri", "loss_kwargs")
        loss_dict["loss_triplet"] = triplet_loss(features, labels, tri["margin"], tri["norm_feat"],
                                                 tri["hard_mining"]) * tri["scale"]
    if "CircleLoss" in names:
        circle = _require(loss_kwargs, "circle", "loss_kwargs")
        loss_dict["loss_circle"] = pairwise_circleloss(features, labels, circle["margin"],
                                                       circle["gamma"]) * circle["scale"]
    if "Cosface" in names:
        cosface = _require(loss_kwargs, "cosface", "loss_kwargs")
        loss_dict["loss_cosface"] = pairwise_cosface(features, labels, cosface["margin"],
                                                     cosface["gamma"]) * cosface["scale"]


def _domain_class_bounds(outputs: Mapping, num_classes: Optional[Sequence[int]]) -> np.ndarray:
    widths = [int(_require(outputs, f"cls_outputs{i}", "outputs").shape[-1]) for i in (1, 2, 3)]
    if num_classes is not None and [int(c) for c in num_classes] != widths:
        raise ValueError(f"num_classes {tuple(num_classes)} does not match the widths of cls_outputs1..3 "
                         f"{tuple(widths)}")
    return np.cumsum([0] + widths)


def _domain_rows(labels: np.ndarray, bounds: np.ndarray):
    """Rows of each domain selected BY LABEL RANGE as the reference does (``labels < C1``, ``C1 <= labels < C1+C2``,
    ...), not by the domain ids."""
    for i in range(3):
        lower = labels >= bounds[i] if i else np.ones_like(labels, dtype=bool)
        yield i, np.flatnonzero(lower & (labels < bounds[i + 1]))


def acl_losses(outputs: Mapping[str, Tensor], gt_labels, domain_labels, opt_type: Any = "basic",
               num_classes: Optional[Sequence[int]] = None,
               loss_kwargs: Optional[Mapping] = None) -> Dict[str, Tensor]:
    """ACL-DGReID ``Baseline.losses``.

    Args:
        outputs: MetaEmbeddingHead training dict (``cls_outputs1..3``, ``features``; the ``pred_class_logits*``
            are only used for accuracy, see :func:`acl_cls_accuracy`).
        gt_labels: global person ids (N,); domain d's classes are ``[C1+..+C_d, C1+..+C_{d+1})``.
        domain_labels: domain ids (N,), used by the meta-learning terms.
        opt_type: 'basic' / 'mtrain' / 'mtest' (or None, an opt dict or a MetaOpt; see :func:`acl_opt_type`).
        num_classes: (C1, C2, C3); checked against the widths of ``cls_outputs1..3`` (taken from them when None).
        loss_kwargs: :func:`loss_kwargs_from_cfg` dict; required for 'basic'.

    Returns, in the reference's key order:
        basic: ``loss_cls`` = mean over the domains present (selected BY LABEL RANGE) of
        ``cross_entropy_loss(cls_outputs{d+1}[rows_d], y[rows_d] - offset_d, eps, alpha) * CE.scale``;
        then ``loss_triplet`` / ``loss_circle`` / ``loss_cosface`` for the names in ``loss_names``.
        mtrain: ``loss_triplet_add`` (pos = self or other domain, neg = same domain other id, soft margin),
        ``loss_triplet_mtrain`` (same/other id, margin 0.3), ``loss_stc`` (``domain_SCT_loss(f, d, True,
        'cosine_sim')``). mtest: ``loss_triplet_mtest`` (as loss_triplet_mtrain). These arguments are hard-coded
        in the reference (TRIPLET_ADD_ARGS, TRIPLET_META_ARGS), not taken from the config.
    """
    kind = acl_opt_type(opt_type)
    labels = label_array(gt_labels, "gt_labels")
    features = _require(outputs, "features", "outputs")
    loss_dict: Dict[str, Tensor] = {}
    if kind == "basic":
        if loss_kwargs is None:
            raise ValueError("acl_losses: opt type 'basic' needs loss_kwargs (see loss_kwargs_from_cfg)")
        names = _loss_names(loss_kwargs, REID_LOSS_NAMES + ("CenterLoss",))
        if "CenterLoss" in names:
            raise ValueError("MODEL.LOSSES.NAME 'CenterLoss' is not supported: the reference's Baseline.losses calls "
                             "a self.center_loss it never defines; ACL-DGReID's centre term is added by "
                             "acl_regularizers (loss_Center)")
        if "CrossEntropyLoss" in names:
            ce = _require(loss_kwargs, "ce", "loss_kwargs")
            bounds = _domain_class_bounds(outputs, num_classes)
            total, count = 0, 0
            for i, rows in _domain_rows(labels, bounds):
                if rows.size == 0:
                    continue
                logits = ops.gather(outputs[f"cls_outputs{i + 1}"], Tensor(rows), 0)
                total = total + cross_entropy_loss(logits, labels[rows] - bounds[i], ce["eps"], ce["alpha"]) * ce["scale"]
                count += 1
            if count == 0:
                raise ValueError(f"acl_losses: no gt_label lies in a domain's class range [0, {bounds[-1]}); "
                                 f"got labels {np.unique(labels).tolist()}")
            loss_dict["loss_cls"] = total / count
        _metric_losses(loss_dict, names, features, labels, loss_kwargs)
    elif kind == "mtrain":
        domains = label_array(domain_labels, "domain_labels")
        loss_dict["loss_triplet_add"] = triplet_loss_Meta(features, labels, domain_labels=domains, **TRIPLET_ADD_ARGS)
        loss_dict["loss_triplet_mtrain"] = triplet_loss_Meta(features, labels, domain_labels=domains,
                                                             **TRIPLET_META_ARGS)
        loss_dict["loss_stc"] = domain_SCT_loss(features, domains, True, "cosine_sim")
    else:
        domains = label_array(domain_labels, "domain_labels")
        loss_dict["loss_triplet_mtest"] = triplet_loss_Meta(features, labels, domain_labels=domains,
                                                            **TRIPLET_META_ARGS)
    return loss_dict


def acl_regularizers(paths: Tensor, domain_labels, center_distmat: Tensor, gt_labels, opt_type: Any = "basic",
                     loss_kwargs: Optional[Mapping] = None) -> Dict[str, Tensor]:
    """The terms ACL-DGReID's ``Baseline.forward`` adds after ``losses``: ``loss_domain_intra`` =
    ``intraCluster(paths, d)``, ``loss_domain_inter`` = ``interCluster(paths, d)`` (every opt type) and
    ``loss_Center`` = ``centerLoss(center_distmat, y)`` times 5e-4 ('basic') or 1e-3 ('mtest'), absent in 'mtrain'.

    ``loss_kwargs['cluster']`` (optional) holds the cluster-loss switches ``per_dimension_centroid`` and
    ``zero_if_single_domain`` (both False = reference behaviour; see ``cluster_loss``)."""
    kind = acl_opt_type(opt_type)
    cluster = dict((loss_kwargs or {}).get("cluster", {}))
    unknown = set(cluster) - {"per_dimension_centroid", "zero_if_single_domain"}
    if unknown:
        raise ValueError(f"loss_kwargs['cluster'] has unknown key(s) {sorted(unknown)}; "
                         f"known: per_dimension_centroid, zero_if_single_domain")
    per_dim = bool(cluster.get("per_dimension_centroid", False))
    losses = {
        "loss_domain_intra": intraCluster(paths, domain_labels, per_dimension_centroid=per_dim),
        "loss_domain_inter": interCluster(paths, domain_labels, per_dimension_centroid=per_dim,
                                          zero_if_single_domain=bool(cluster.get("zero_if_single_domain", False))),
    }
    if kind in CENTER_LOSS_WEIGHTS:
        losses["loss_Center"] = centerLoss(center_distmat, gt_labels) * CENTER_LOSS_WEIGHTS[kind]
    return losses


def reid_losses(outputs: Mapping[str, Tensor], gt_labels, loss_kwargs: Mapping) -> Dict[str, Tensor]:
    """Upstream FastReID ``Baseline.losses``: ``loss_cls`` = ``cross_entropy_loss(cls_outputs, y, eps, alpha) *
    CE.scale``, ``loss_triplet``, ``loss_circle``, ``loss_cosface`` (each times its scale), for the names in
    ``loss_kwargs['loss_names']`` (MODEL.LOSSES.NAME)."""
    labels = label_array(gt_labels, "gt_labels")
    names = _loss_names(loss_kwargs, REID_LOSS_NAMES)
    loss_dict: Dict[str, Tensor] = {}
    if "CrossEntropyLoss" in names:
        ce = _require(loss_kwargs, "ce", "loss_kwargs")
        loss_dict["loss_cls"] = cross_entropy_loss(_require(outputs, "cls_outputs", "outputs"), labels, ce["eps"],
                                                   ce["alpha"]) * ce["scale"]
    _metric_losses(loss_dict, names, _require(outputs, "features", "outputs"), labels, loss_kwargs)
    return loss_dict


def loss_kwargs_from_cfg(cfg) -> Dict[str, Any]:
    """``loss_kwargs`` as FastReID's ``Baseline.from_config`` builds it from ``cfg.MODEL.LOSSES`` (names, ce, tri,
    circle, cosface), plus fastreid_ms's ``cluster`` switches (``MODEL.LOSSES.CLUSTER``)."""
    losses = cfg.MODEL.LOSSES
    return {
        "loss_names": tuple(losses.NAME),
        "ce": {"eps": losses.CE.EPSILON, "alpha": losses.CE.ALPHA, "scale": losses.CE.SCALE},
        "tri": {"margin": losses.TRI.MARGIN, "norm_feat": losses.TRI.NORM_FEAT,
                "hard_mining": losses.TRI.HARD_MINING, "scale": losses.TRI.SCALE},
        "circle": {"margin": losses.CIRCLE.MARGIN, "gamma": losses.CIRCLE.GAMMA, "scale": losses.CIRCLE.SCALE},
        "cosface": {"margin": losses.COSFACE.MARGIN, "gamma": losses.COSFACE.GAMMA, "scale": losses.COSFACE.SCALE},
        "cluster": {"per_dimension_centroid": losses.CLUSTER.PER_DIMENSION_CENTROID,
                    "zero_if_single_domain": losses.CLUSTER.ZERO_IF_SINGLE_DOMAIN},
    }


def acl_cls_accuracy(outputs: Mapping[str, Tensor], gt_labels, num_classes: Optional[Sequence[int]] = None, *,
                     subtract_domain_offset: bool = False) -> Dict[int, float]:
    """Top-1 accuracy of ``pred_class_logits{d+1}`` on the rows of each domain present (selected by label range),
    as ``{domain index: accuracy}`` in domain order. Logging only.

    Reference quirk (REFERENCE.md section 9, item 8), kept by default: the predictions (local class indices of
    domain d) are compared with the GLOBAL labels, so domains 1 and 2 report wrong accuracies; the reference writes
    all values to the same ``cls_accuracy`` scalar, so the last domain present is what it logs.
    ``subtract_domain_offset=True`` compares with the local labels instead."""
    labels = label_array(gt_labels, "gt_labels")
    bounds = _domain_class_bounds(outputs, num_classes)
    result = {}
    for i, rows in _domain_rows(labels, bounds):
        if rows.size == 0:
            continue
        logits = _require(outputs, f"pred_class_logits{i + 1}", "outputs")
        logits = logits.asnumpy() if isinstance(logits, Tensor) else np.asarray(logits)
        target = labels[rows] - bounds[i] if subtract_domain_offset else labels[rows]
        result[i] = log_accuracy(logits[rows], target)[0]
    return result
