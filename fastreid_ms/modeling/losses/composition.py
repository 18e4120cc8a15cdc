"""Loss compositions of the Baseline meta-architecture.

* :func:`acl_losses` - ACL-DGReID ``Baseline.losses`` for the phases ``basic`` / ``mtrain`` / ``mtest``;
* :func:`acl_regularizers` - the routing-path cluster terms and the centre term that ACL-DGReID's
  ``Baseline.forward`` adds after ``losses`` (so ``{**acl_losses(...), **acl_regularizers(...)}`` is the reference's
  loss dict, keys in the reference's order);
* :func:`reid_losses` - upstream FastReID ``Baseline.losses`` (single classifier);
* :func:`acl_loss_names` / :func:`reid_loss_names` - the ordered keys those dicts will have (pure Python, so compiled
  code knows its outputs before running anything);
* :func:`check_acl_batch` / :func:`check_reid_batch` - host-side validation of a batch's labels (numpy), to call
  before running the compiled losses: the losses themselves do no data-dependent checks;
* :func:`loss_kwargs_from_cfg` - the ``loss_kwargs`` dict that ``Baseline.from_config`` builds from
  ``cfg.MODEL.LOSSES``;
* :func:`acl_cls_accuracy` - the per-domain accuracy ACL-DGReID logs (logging only, host side).

The loss functions compile under ``mindspore.jit`` (graph mode, static shapes): labels are int Tensors, ``phase``,
``num_classes``, ``num_domains`` and ``loss_kwargs`` are compile-time constants, and whatever depends on which
domains/classes a batch holds is a masked computation over the static domain set ``0 .. num_domains - 1``.

The reference has exactly three source domains; here there are D >= 1: ``num_classes`` holds one class count per
domain (the head's ``cls_outputs1..D``) and D is its length. Every per-domain term (the CE per classifier, the
cluster and SCT terms, the host-side checks) runs over ``0 .. D - 1``; D = 3 is the reference, number for number.
"""
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from mindspore import Tensor, ops

from .center_loss import centerLoss, check_center_labels
from .circle_loss import pairwise_circleloss
from .cluster_loss import check_cluster_domains, interCluster, intraCluster
from .cosface_loss import pairwise_cosface
from .cross_entroy_loss import check_cross_entropy_labels, cross_entropy_loss, log_accuracy, masked_cross_entropy_loss
from .domain_sct_loss import check_domain_sct_domains, domain_SCT_loss
from .triplet_loss import triplet_loss
from .triplet_loss_meta import check_triplet_meta_rows, triplet_loss_Meta
from .utils import label_array, label_tensor, safe_count

__all__ = ["acl_losses", "acl_regularizers", "reid_losses", "acl_loss_names", "reid_loss_names", "check_acl_batch",
           "check_reid_batch", "loss_kwargs_from_cfg", "acl_cls_accuracy", "ACL_PHASES", "REID_LOSS_NAMES"]

ACL_PHASES = ("basic", "mtrain", "mtest")
REID_LOSS_NAMES = ("CrossEntropyLoss", "TripletLoss", "CircleLoss", "Cosface")
# Number of source domains of the released ACL-DGReID (domain ids 0 .. 2): the default static domain set of the
# cluster / SCT terms when no class counts tell the number.
NUM_DOMAINS = 3
# MODEL.LOSSES.NAME entry -> loss key of the metric terms, in FastReID's order.
_METRIC_LOSS_KEYS = (("TripletLoss", "loss_triplet"), ("CircleLoss", "loss_circle"), ("Cosface", "loss_cosface"))
_CLUSTER_SWITCHES = ("per_dimension_centroid", "zero_if_single_domain")

# Arguments ACL-DGReID's Baseline.losses hard-codes for the meta-learning triplet terms (not read from the config).
# Plain dicts (treat as read-only): graph mode cannot unpack a MappingProxyType.
TRIPLET_ADD_ARGS = dict(margin=0.0, norm_feat=False, hard_mining=True, dist_type="euclidean", loss_type="logistic",
                        pos_flag=(0, 0, 1), neg_flag=(0, 1, 0))
TRIPLET_META_ARGS = dict(margin=0.3, norm_feat=False, hard_mining=True, dist_type="euclidean", loss_type="logistic",
                         pos_flag=(1, 0, 0), neg_flag=(0, 1, 1))
# Weights ACL-DGReID's Baseline.forward gives centerLoss per phase (no centre term in mtrain).
CENTER_LOSS_WEIGHTS = {"basic": 5e-4, "mtest": 1e-3}


def _check_phase(phase: str) -> str:
    if phase not in ACL_PHASES:
        raise ValueError(f"phase must be one of {ACL_PHASES}, got {phase!r}")
    return phase


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


def _acl_basic_names(loss_kwargs: Optional[Mapping]) -> Tuple[str, ...]:
    if loss_kwargs is None:
        raise ValueError("acl_losses: phase 'basic' needs loss_kwargs (see loss_kwargs_from_cfg)")
    names = _loss_names(loss_kwargs, REID_LOSS_NAMES + ("CenterLoss",))
    if "CenterLoss" in names:
        raise ValueError("MODEL.LOSSES.NAME 'CenterLoss' is not supported: the reference's Baseline.losses calls "
                         "a self.center_loss it never defines; ACL-DGReID's centre term is added by "
                         "acl_regularizers (loss_Center)")
    return names


def _cluster_switches(loss_kwargs: Optional[Mapping]) -> Tuple[bool, bool]:
    """``(per_dimension_centroid, zero_if_single_domain)`` from ``loss_kwargs['cluster']`` (both False when absent)."""
    cluster = {}
    if loss_kwargs is not None and "cluster" in loss_kwargs:
        cluster = loss_kwargs["cluster"]
    unknown = [k for k in cluster if k not in _CLUSTER_SWITCHES]
    if unknown:
        raise ValueError(f"loss_kwargs['cluster'] has unknown key(s) {sorted(unknown)}; "
                         f"known: per_dimension_centroid, zero_if_single_domain")
    per_dim = bool(cluster["per_dimension_centroid"]) if "per_dimension_centroid" in cluster else False
    zero_single = bool(cluster["zero_if_single_domain"]) if "zero_if_single_domain" in cluster else False
    return per_dim, zero_single


def _metric_loss_names(names: Sequence[str]) -> Tuple[str, ...]:
    return tuple([key for name, key in _METRIC_LOSS_KEYS if name in names])


def _metric_losses(loss_dict: Dict[str, Tensor], names: Sequence[str], features: Tensor, labels: Tensor,
                   loss_kwargs: Mapping) -> Dict[str, Tensor]:
    """``loss_dict`` with the triplet, circle and cosface terms added in FastReID's order, each times its SCALE.

    Returns the dict: callers must use the return value, because in graph mode a dict mutated inside a called
    function is not mutated for the caller (the in-place update would silently drop the terms)."""
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
    return loss_dict


def _cls_output_keys(num_domains: int) -> Tuple[str, ...]:
    """``('cls_outputs1', ..., 'cls_outputs<num_domains>')``."""
    return tuple(["cls_outputs" + str(d) for d in range(1, num_domains + 1)])


def _count_cls_outputs(outputs: Mapping) -> int:
    """(host side) The number D of consecutive ``cls_outputs1..D`` in ``outputs`` (0 when there is none)."""
    count = 0
    while "cls_outputs" + str(count + 1) in outputs:
        count += 1
    return count


def _resolve_num_domains(num_domains: Optional[int], num_classes: Optional[Sequence[int]],
                         outputs: Optional[Mapping] = None) -> int:
    """D: ``num_domains`` when given (it must equal ``len(num_classes)`` when both are), else ``len(num_classes)``,
    else the number of ``cls_outputs1..D`` in ``outputs`` (host side), else :data:`NUM_DOMAINS`."""
    if num_classes is not None and num_domains is not None and len(num_classes) != num_domains:
        raise ValueError(f"num_domains={num_domains} does not match the {len(num_classes)} class counts "
                         f"num_classes={tuple(num_classes)}")
    if num_domains is not None:
        resolved = int(num_domains)
    elif num_classes is not None:
        resolved = len(num_classes)
    elif outputs is not None and _count_cls_outputs(outputs):
        resolved = _count_cls_outputs(outputs)
    else:
        resolved = NUM_DOMAINS
    if resolved < 1:
        raise ValueError(f"the ACL-DGReID losses need at least one source domain, got num_domains={resolved}")
    return resolved


def _domain_class_bounds(outputs: Mapping, num_classes: Optional[Sequence[int]],
                         num_domains: Optional[int] = None) -> Tuple[int, ...]:
    """``(0, C1, C1+C2, ..., C1+...+CD)`` from the widths of ``cls_outputs1..D`` (static shapes), checked against
    ``num_classes`` when given (D: :func:`_resolve_num_domains`)."""
    keys = _cls_output_keys(_resolve_num_domains(num_domains, num_classes, outputs))
    widths = tuple([int(_require(outputs, key, "outputs").shape[-1]) for key in keys])
    if num_classes is not None and tuple([int(c) for c in num_classes]) != widths:
        raise ValueError(f"num_classes {tuple(num_classes)} does not match the widths of cls_outputs1..{len(keys)} "
                         f"{widths}")
    return _class_bounds(widths)


def _class_bounds(num_classes: Sequence[int]) -> Tuple[int, ...]:
    bounds = [0]
    for width in num_classes:
        bounds.append(bounds[-1] + int(width))
    return tuple(bounds)


def _domain_rows(labels: np.ndarray, bounds: Sequence[int]):
    """(host side) Rows of each domain selected BY LABEL RANGE as the reference does (``labels < C1``,
    ``C1 <= labels < C1+C2``, ...), not by the domain ids."""
    for i in range(len(bounds) - 1):
        lower = labels >= bounds[i] if i else np.ones_like(labels, dtype=bool)
        yield i, np.flatnonzero(lower & (labels < bounds[i + 1]))


def _domain_cross_entropy(outputs: Mapping[str, Tensor], labels: Tensor, bounds: Sequence[int],
                          ce: Mapping) -> Tensor:
    """Mean over the domains present (selected BY LABEL RANGE) of the label-smoothed CE of classifier d on domain
    d's rows with local labels, times CE scale; static shapes (see :func:`acl_losses`)."""
    keys = _cls_output_keys(len(bounds) - 1)
    dtype = outputs[keys[0]].dtype
    total = ops.zeros((), dtype)
    num_present = ops.zeros((), dtype)
    for i in range(len(bounds) - 1):
        lower, upper = bounds[i], bounds[i + 1]
        rows = labels < upper  # the reference's domain 0 test is only `labels < C1`
        if i:
            rows = ops.logical_and(labels >= lower, rows)
        local = ops.clip(labels - lower, 0, upper - lower - 1)
        loss = masked_cross_entropy_loss(outputs[keys[i]], local, rows, ce["eps"], ce["alpha"])
        present = rows.any()
        total = total + ops.where(present, loss * ce["scale"], ops.zeros((), dtype))
        num_present = num_present + present.astype(dtype)
    return total / safe_count(num_present)


def acl_losses(outputs: Mapping[str, Tensor], gt_labels, domain_labels, phase: str = "basic",
               num_classes: Optional[Sequence[int]] = None, loss_kwargs: Optional[Mapping] = None, *,
               num_domains: Optional[int] = None) -> Dict[str, Tensor]:
    """ACL-DGReID ``Baseline.losses``; graph-compilable (``phase``, ``num_classes``, ``loss_kwargs`` and
    ``num_domains`` are compile-time constants; labels int Tensors, numpy accepted in PyNative).

    Args:
        outputs: MetaEmbeddingHead training dict (``cls_outputs1..D``, ``features``; the ``pred_class_logits*``
            are only used for accuracy, see :func:`acl_cls_accuracy`).
        gt_labels: global person ids (N,); domain d's classes are ``[C1+..+C_d, C1+..+C_{d+1})``.
        domain_labels: domain ids (N,) in ``0 .. D - 1``, used by the meta-learning terms.
        phase: 'basic' / 'mtrain' / 'mtest'.
        num_classes: (C1, ..., CD), one count per source domain; checked against the widths of
            ``cls_outputs1..D`` (taken from them when None).
        loss_kwargs: :func:`loss_kwargs_from_cfg` dict; required for 'basic'.
        num_domains: D, the static domain set of ``loss_stc``; default ``len(num_classes)``, else the number of
            ``cls_outputs`` in ``outputs``, else 3 (the reference). Must equal ``len(num_classes)`` when both given.

    Returns, in the reference's key order (:func:`acl_loss_names`):
        basic: ``loss_cls`` = mean over the domains present (selected BY LABEL RANGE) of
        ``cross_entropy_loss(cls_outputs{d+1}[rows_d], y[rows_d] - offset_d, eps, alpha) * CE.scale``;
        then ``loss_triplet`` / ``loss_circle`` / ``loss_cosface`` for the names in ``loss_names``.
        mtrain: ``loss_triplet_add`` (pos = self or other domain, neg = same domain other id, soft margin),
        ``loss_triplet_mtrain`` (same/other id, margin 0.3), ``loss_stc`` (``domain_SCT_loss(f, d, True,
        'cosine_sim')``). mtest: ``loss_triplet_mtest`` (as loss_triplet_mtrain). These arguments are hard-coded
        in the reference (TRIPLET_ADD_ARGS, TRIPLET_META_ARGS), not taken from the config.

    The per-domain CE keeps static shapes: classifier d's CE is computed on every row with the local label
    ``clip(y - offset_d, 0, C_d - 1)``, rows outside domain d's class range are masked out (value and gradient),
    and the normaliser counts the non-zero per-sample losses of domain d's rows only (at least 1), as the reference
    does on the gathered rows. With no label in any class range ``loss_cls`` is 0 (the reference fails there):
    validate batches on the host with :func:`check_acl_batch`.
    """
    _check_phase(phase)
    num_domains = _resolve_num_domains(num_domains, num_classes, outputs)
    labels = label_tensor(gt_labels, "gt_labels")
    features = _require(outputs, "features", "outputs")
    loss_dict: Dict[str, Tensor] = {}
    if phase == "basic":
        names = _acl_basic_names(loss_kwargs)
        if "CrossEntropyLoss" in names:
            ce = _require(loss_kwargs, "ce", "loss_kwargs")
            bounds = _domain_class_bounds(outputs, num_classes, num_domains)
            loss_dict["loss_cls"] = _domain_cross_entropy(outputs, labels, bounds, ce)
        loss_dict = _metric_losses(loss_dict, names, features, labels, loss_kwargs)
    elif phase == "mtrain":
        domains = label_tensor(domain_labels, "domain_labels")
        loss_dict["loss_triplet_add"] = triplet_loss_Meta(features, labels, domain_labels=domains, **TRIPLET_ADD_ARGS)
        loss_dict["loss_triplet_mtrain"] = triplet_loss_Meta(features, labels, domain_labels=domains,
                                                             **TRIPLET_META_ARGS)
        loss_dict["loss_stc"] = domain_SCT_loss(features, domains, True, "cosine_sim", num_domains=num_domains)
    else:
        domains = label_tensor(domain_labels, "domain_labels")
        loss_dict["loss_triplet_mtest"] = triplet_loss_Meta(features, labels, domain_labels=domains,
                                                            **TRIPLET_META_ARGS)
    return loss_dict


def acl_regularizers(paths: Tensor, domain_labels, center_distmat: Tensor, gt_labels, phase: str = "basic",
                     loss_kwargs: Optional[Mapping] = None, *, num_domains: int = NUM_DOMAINS) -> Dict[str, Tensor]:
    """The terms ACL-DGReID's ``Baseline.forward`` adds after ``losses``: ``loss_domain_intra`` =
    ``intraCluster(paths, d)``, ``loss_domain_inter`` = ``interCluster(paths, d)`` (every phase) and
    ``loss_Center`` = ``centerLoss(center_distmat, y)`` times 5e-4 ('basic') or 1e-3 ('mtest'), absent in 'mtrain'.
    Graph-compilable, like :func:`acl_losses`. The cluster terms run over the domains ``0 .. num_domains - 1``
    (the number of source domains; 3 in the reference).

    ``loss_kwargs['cluster']`` (optional) holds the cluster-loss switches ``per_dimension_centroid`` and
    ``zero_if_single_domain`` (both False = reference behaviour; see ``cluster_loss``)."""
    _check_phase(phase)
    per_dim, zero_single = _cluster_switches(loss_kwargs)
    domains = label_tensor(domain_labels, "domain_labels")
    losses = {
        "loss_domain_intra": intraCluster(paths, domains, per_dimension_centroid=per_dim, num_domains=num_domains),
        "loss_domain_inter": interCluster(paths, domains, per_dimension_centroid=per_dim,
                                          zero_if_single_domain=zero_single, num_domains=num_domains),
    }
    if phase in CENTER_LOSS_WEIGHTS:
        losses["loss_Center"] = centerLoss(center_distmat, gt_labels) * CENTER_LOSS_WEIGHTS[phase]
    return losses


def acl_loss_names(phase: str, loss_kwargs: Optional[Mapping] = None) -> Tuple[str, ...]:
    """The ordered keys of ``{**acl_losses(..., phase, ..., loss_kwargs), **acl_regularizers(..., phase,
    loss_kwargs)}`` (pure Python; raises the same configuration errors as those functions)."""
    _check_phase(phase)
    if phase == "basic":
        names = _acl_basic_names(loss_kwargs)
        keys = (("loss_cls",) if "CrossEntropyLoss" in names else ()) + _metric_loss_names(names)
    elif phase == "mtrain":
        keys = ("loss_triplet_add", "loss_triplet_mtrain", "loss_stc")
    else:
        keys = ("loss_triplet_mtest",)
    _cluster_switches(loss_kwargs)
    keys = keys + ("loss_domain_intra", "loss_domain_inter")
    if phase in CENTER_LOSS_WEIGHTS:
        keys = keys + ("loss_Center",)
    return keys


def reid_loss_names(loss_kwargs: Mapping) -> Tuple[str, ...]:
    """The ordered keys of ``reid_losses(..., loss_kwargs)`` (pure Python)."""
    names = _loss_names(loss_kwargs, REID_LOSS_NAMES)
    return (("loss_cls",) if "CrossEntropyLoss" in names else ()) + _metric_loss_names(names)


# ------------------------------------------------------------------------------------------ host-side checks
def _batch_arrays(targets, domainids=None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    labels = label_array(targets, "targets")
    if labels.size == 0:
        raise ValueError("the batch is empty (no targets)")
    if domainids is None:
        return labels, None
    domains = label_array(domainids, "domainids")
    if domains.shape != labels.shape:
        raise ValueError(f"domainids shape {domains.shape} does not match targets shape {labels.shape}")
    return labels, domains


def check_acl_batch(targets, domainids, phase: str, num_classes: Sequence[int],
                    num_domains: Optional[int] = None) -> None:
    """Host-side validation of an ACL-DGReID batch before the compiled ``acl_losses`` + ``acl_regularizers`` of
    ``phase`` run on it (numpy int arrays or Tensors in). Raises ``ValueError`` naming the offending rows/labels:

    ``num_classes`` holds one class count per source domain; ``num_domains`` defaults to its length.

    * basic: no label in any domain's class range ``[0, C1+...+CD)`` (the reference's ``loss_cls`` has no domain to
      average over), a negative label (the reference selects it into domain 0 and its CE fails);
    * mtrain: an anchor without positive or negative under the flags of ``loss_triplet_add`` /
      ``loss_triplet_mtrain`` (:func:`check_triplet_meta_rows`), a domain id outside ``0 .. num_domains - 1``
      (``loss_stc``, :func:`check_domain_sct_domains`);
    * mtest: an anchor without positive/negative for ``loss_triplet_mtest``;
    * every phase: no domain id in ``0 .. num_domains - 1`` (cluster terms, :func:`check_cluster_domains`); basic and
      mtest: a label outside ``[0, C1+...+CD)`` (the centre term's columns, :func:`check_center_labels`).
    """
    _check_phase(phase)
    num_domains = _resolve_num_domains(num_domains, num_classes)
    labels, domains = _batch_arrays(targets, domainids)
    bounds = _class_bounds(num_classes)
    if phase == "basic":
        in_any = (labels >= 0) & (labels < bounds[-1])
        if not in_any.any():
            raise ValueError(f"basic batch: no target lies in a domain's class range [0, {bounds[-1]}) "
                             f"(num_classes {tuple(num_classes)}); got targets {labels.tolist()}")
        negative = np.flatnonzero(labels < 0)
        if negative.size:
            raise ValueError(f"basic batch: negative target(s) {labels[negative].tolist()} at row(s) "
                             f"{negative.tolist()}; the reference selects them into domain 0 (targets < "
                             f"{bounds[1]}) where they are no class of cls_outputs1 (expected [0, {bounds[1]}))")
    elif phase == "mtrain":
        for args in (TRIPLET_ADD_ARGS, TRIPLET_META_ARGS):
            check_triplet_meta_rows(labels, domains, args["pos_flag"], args["neg_flag"])
        check_domain_sct_domains(domains, num_domains)
    else:
        check_triplet_meta_rows(labels, domains, TRIPLET_META_ARGS["pos_flag"], TRIPLET_META_ARGS["neg_flag"])
    check_cluster_domains(domains, num_domains)
    if phase in CENTER_LOSS_WEIGHTS:
        check_center_labels(labels, bounds[-1])


def check_reid_batch(targets, num_classes: int, loss_kwargs: Optional[Mapping] = None) -> None:
    """Host-side validation of a FastReID (single classifier) batch before the compiled :func:`reid_losses`: the
    cross-entropy labels must lie in ``[0, num_classes)`` (skipped when ``loss_kwargs`` is given and names no
    CrossEntropyLoss). Raises ``ValueError`` naming the offending rows and labels."""
    labels, _ = _batch_arrays(targets)
    if loss_kwargs is None or "CrossEntropyLoss" in _loss_names(loss_kwargs, REID_LOSS_NAMES):
        check_cross_entropy_labels(labels, int(num_classes), "targets")


def reid_losses(outputs: Mapping[str, Tensor], gt_labels, loss_kwargs: Mapping) -> Dict[str, Tensor]:
    """Upstream FastReID ``Baseline.losses``: ``loss_cls`` = ``cross_entropy_loss(cls_outputs, y, eps, alpha) *
    CE.scale``, ``loss_triplet``, ``loss_circle``, ``loss_cosface`` (each times its scale), for the names in
    ``loss_kwargs['loss_names']`` (MODEL.LOSSES.NAME). Graph-compilable (keys: :func:`reid_loss_names`; validate
    labels on the host with :func:`check_reid_batch`)."""
    labels = label_tensor(gt_labels, "gt_labels")
    names = _loss_names(loss_kwargs, REID_LOSS_NAMES)
    loss_dict: Dict[str, Tensor] = {}
    if "CrossEntropyLoss" in names:
        ce = _require(loss_kwargs, "ce", "loss_kwargs")
        loss_dict["loss_cls"] = cross_entropy_loss(_require(outputs, "cls_outputs", "outputs"), labels, ce["eps"],
                                                   ce["alpha"]) * ce["scale"]
    return _metric_losses(loss_dict, names, _require(outputs, "features", "outputs"), labels, loss_kwargs)


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

    Reference quirk, kept by default: the predictions (local class indices of domain d) are compared with the
    GLOBAL labels, so every domain but the first reports wrong accuracies; the reference writes all values to the
    same ``cls_accuracy`` scalar, so the last domain present is what it logs.
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
