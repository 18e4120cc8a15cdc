"""Routing-path clustering terms of ACL-DGReID (``losses/cluster_loss.py``: ``intraCluster``, ``interCluster``).

Reference quirks kept by default (REFERENCE.md section 9, item 6), each with a switch:

* the domain "centroid" is ``x.mean()`` over ALL elements of the domain's (n_d, 16) block, a scalar, not the
  per-dimension centroid. ``per_dimension_centroid=True`` uses ``x.mean(0)`` instead (changes the numbers);
* ``interCluster`` with fewer than two domains present returns ``domain_ids.float().mean()``: a constant (the domain
  id when one domain is present) without gradient that inflates the logged loss. ``zero_if_single_domain=True``
  returns 0 instead.

Only domain ids ``0 .. num_domains - 1`` (3 in the reference) are considered.
"""
import numpy as np
from mindspore import Tensor, ops

from .utils import l2_norm, l2_normalize, label_array

__all__ = ["intraCluster", "interCluster"]


def _domain_blocks(feature: Tensor, domain_ids: np.ndarray, num_domains: int):
    if feature.ndim != 2 or feature.shape[0] != domain_ids.shape[0]:
        raise ValueError(f"cluster losses expect features of shape (N, P) matching {domain_ids.shape[0]} domain ids, "
                         f"got {tuple(feature.shape)}")
    return [ops.gather(feature, Tensor(np.flatnonzero(domain_ids == i)), 0)
            for i in range(num_domains) if (domain_ids == i).any()]


def _centroid(block: Tensor, per_dimension_centroid: bool) -> Tensor:
    return block.mean(0, keep_dims=True) if per_dimension_centroid else block.mean()


def intraCluster(feature: Tensor, domain_ids, margin: float = 0.1, *, per_dimension_centroid: bool = False,
                 num_domains: int = 3) -> Tensor:
    """``mean_d mean_{i in d} relu(||p_i - mu_d||_2 - margin)^2`` over the domains present, with ``p`` the
    ``F.normalize``-d rows of ``feature`` and ``mu_d`` the domain centroid (a SCALAR by default: see the module
    docstring; ``per_dimension_centroid=True`` for the per-dimension mean)."""
    domains = label_array(domain_ids, "domain_ids")
    feature = l2_normalize(feature, axis=1)
    blocks = _domain_blocks(feature, domains, num_domains)
    if not blocks:
        raise ValueError(f"intraCluster: no sample has a domain id in [0, {num_domains}) "
                         f"(got ids {np.unique(domains).tolist()})")
    loss = 0
    for block in blocks:
        dist = l2_norm(block - _centroid(block, per_dimension_centroid), 1)
        loss = loss + ops.square(ops.relu(dist - margin)).mean()
    return loss / len(blocks)


def interCluster(feature: Tensor, domain_ids, margin: float = 0.3, *, per_dimension_centroid: bool = False,
                 zero_if_single_domain: bool = False, num_domains: int = 3) -> Tensor:
    """``mean_{d<e} relu(margin - ||mu_d - mu_e||)^2`` over pairs of present domains (``mu`` as in
    :func:`intraCluster`; the norm of scalar centroids is ``|mu_d - mu_e|``). With fewer than two domains present it
    returns the reference's gradient-free ``domain_ids.float().mean()``, or 0 with ``zero_if_single_domain=True``."""
    domains = label_array(domain_ids, "domain_ids")
    feature = l2_normalize(feature, axis=1)
    centroids = [_centroid(block, per_dimension_centroid) for block in _domain_blocks(feature, domains, num_domains)]
    loss = 0
    count = 0
    for i in range(len(centroids)):
        for j in range(i + 1, len(centroids)):
            count += 1
            diff = centroids[i] - centroids[j]
            dist = l2_norm(diff.reshape(-1), 0)
            loss = loss + ops.square(ops.relu(margin - dist))
    if count:
        return loss / count
    if zero_if_single_domain:
        return Tensor(0.0, feature.dtype)
    return Tensor(np.float32(domains.astype(np.float32).mean()), feature.dtype)

