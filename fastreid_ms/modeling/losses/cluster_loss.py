"""Routing-path clustering terms of ACL-DGReID (``losses/cluster_loss.py``: ``intraCluster``, ``interCluster``).

Reference quirks kept by default, each with a switch:

* the domain "centroid" is ``x.mean()`` over ALL elements of the domain's (n_d, 16) block, a scalar, not the
  per-dimension centroid. ``per_dimension_centroid=True`` uses ``x.mean(0)`` instead (changes the numbers);
* ``interCluster`` with fewer than two domains present returns ``domain_ids.float().mean()``: a constant (the domain
  id when one domain is present) without gradient that inflates the logged loss. ``zero_if_single_domain=True``
  returns 0 instead.

Only domain ids ``0 .. num_domains - 1`` (3 in the reference) are considered.

Graph-compilable: the domains are that static set; each domain's centroid and mean are masked means
(``sum(mask * x) / max(count, 1)``), the averages run over the domains (pairs) present, and ``interCluster``'s
single-domain value is selected with ``ops.where``. A batch without any domain id in range (the reference's
``intraCluster`` divides by zero there) is reported on the host by :func:`check_cluster_domains`.
"""
import numpy as np
from mindspore import Tensor, ops

from .utils import l2_norm, l2_normalize, label_array, label_tensor, safe_count

__all__ = ["intraCluster", "interCluster", "check_cluster_domains"]


def check_cluster_domains(domain_ids, num_domains: int = 3) -> np.ndarray:
    """Host-side check for :func:`intraCluster` / :func:`interCluster`: at least one sample must have a domain id in
    ``[0, num_domains)`` (``ValueError`` listing the ids otherwise). Ids outside the range are ignored by both
    losses, as in the reference."""
    domains = label_array(domain_ids, "domain_ids")
    if not ((domains >= 0) & (domains < num_domains)).any():
        raise ValueError(f"cluster losses: no sample has a domain id in [0, {num_domains}) (num_domains="
                         f"{num_domains}); got ids {np.unique(domains).tolist()}")
    return domains


def _domain_stats(feature: Tensor, domain_ids: Tensor, num_domains: int, per_dimension_centroid: bool):
    """Per domain ``d`` in ``0 .. num_domains - 1``: float row mask (N,), ``max(count, 1)``, presence (bool scalar)
    and centroid (masked mean: a scalar of the whole (n_d, P) block, or (1, P) with ``per_dimension_centroid``; 0
    for an absent domain)."""
    if feature.ndim != 2 or feature.shape[0] != domain_ids.shape[0]:
        raise ValueError(f"cluster losses expect features of shape (N, P) matching {domain_ids.shape[0]} domain ids, "
                         f"got {feature.shape}")
    dtype = feature.dtype
    stats = []
    for i in range(num_domains):
        mask = (domain_ids == i).astype(dtype)
        count = mask.sum()
        denom = safe_count(count)
        masked_sum = (feature * mask.reshape(-1, 1)).sum(0, keepdims=True)
        if per_dimension_centroid:
            centroid = masked_sum / denom
        else:
            centroid = masked_sum.sum() / (denom * feature.shape[1])
        stats.append((mask, denom, count > 0, centroid))
    return stats


def intraCluster(feature: Tensor, domain_ids, margin: float = 0.1, *, per_dimension_centroid: bool = False,
                 num_domains: int = 3) -> Tensor:
    """``mean_d mean_{i in d} relu(||p_i - mu_d||_2 - margin)^2`` over the domains present, with ``p`` the
    ``F.normalize``-d rows of ``feature`` and ``mu_d`` the domain centroid (a SCALAR by default: see the module
    docstring; ``per_dimension_centroid=True`` for the per-dimension mean). 0 when no domain is present (validate
    on the host with :func:`check_cluster_domains`)."""
    domains = label_tensor(domain_ids, "domain_ids")
    feature = l2_normalize(feature, axis=1)
    loss = ops.zeros((), feature.dtype)
    num_present = ops.zeros((), feature.dtype)
    for mask, denom, present, centroid in _domain_stats(feature, domains, num_domains, per_dimension_centroid):
        dist = l2_norm(feature - centroid, 1)
        loss = loss + (ops.square(ops.relu(dist - margin)) * mask).sum() / denom
        num_present = num_present + present.astype(feature.dtype)
    return loss / safe_count(num_present)


def interCluster(feature: Tensor, domain_ids, margin: float = 0.3, *, per_dimension_centroid: bool = False,
                 zero_if_single_domain: bool = False, num_domains: int = 3) -> Tensor:
    """``mean_{d<e} relu(margin - ||mu_d - mu_e||)^2`` over pairs of present domains (``mu`` as in
    :func:`intraCluster`; the norm of scalar centroids is ``|mu_d - mu_e|``). With fewer than two domains present it
    returns the reference's gradient-free ``domain_ids.float().mean()``, or 0 with ``zero_if_single_domain=True``
    (both candidates are computed and selected with ``ops.where``; the pair mean is finite in every case, so the
    unselected branch contributes an exact zero gradient)."""
    domains = label_tensor(domain_ids, "domain_ids")
    feature = l2_normalize(feature, axis=1)
    dtype = feature.dtype
    stats = _domain_stats(feature, domains, num_domains, per_dimension_centroid)
    loss = ops.zeros((), dtype)
    num_pairs = ops.zeros((), dtype)
    for i in range(num_domains):
        for j in range(i + 1, num_domains):
            pair = ops.logical_and(stats[i][2], stats[j][2])
            diff = stats[i][3] - stats[j][3]
            dist = l2_norm(diff.reshape(-1), 0)
            loss = loss + ops.where(pair, ops.square(ops.relu(margin - dist)), ops.zeros((), dtype))
            num_pairs = num_pairs + pair.astype(dtype)
    pair_mean = loss / safe_count(num_pairs)
    if zero_if_single_domain:
        single = ops.zeros((), dtype)
    else:
        single = ops.stop_gradient(domains.astype(dtype).mean())
    return ops.where(num_pairs > 0, pair_mean, single)
