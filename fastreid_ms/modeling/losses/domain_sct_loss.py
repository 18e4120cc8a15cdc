"""Domain shuffle-and-compactness term of ACL-DGReID / MetaBIN (``losses/domain_SCT_loss.py``)."""
import numpy as np
from mindspore import Tensor, ops

from .utils import cosine_dist, cosine_sim, euclidean_dist, label_array, label_tensor, normalize, safe_count

__all__ = ["domain_SCT_loss", "check_domain_sct_domains"]

_METRICS = ("euclidean", "cosine", "cosine_sim")


def check_domain_sct_domains(domain_labels, num_domains: int = 3) -> np.ndarray:
    """Host-side check for :func:`domain_SCT_loss`: a non-empty batch whose domain ids all lie in
    ``0 .. num_domains - 1``. The reference averages over ``torch.unique(domain_labels)``; the compiled loss
    averages over the static set ``0 .. num_domains - 1``, so an id outside it would silently be dropped.
    Raises ``ValueError`` naming the offending rows and ids."""
    domains = label_array(domain_labels, "domain_labels")
    if domains.size == 0:
        raise ValueError("domain_SCT_loss got an empty batch")
    bad = np.flatnonzero((domains < 0) | (domains >= num_domains))
    if bad.size:
        raise ValueError(f"domain_SCT_loss domain ids must lie in [0, {num_domains}) (num_domains={num_domains}), "
                         f"got {domains[bad].tolist()} at row(s) {bad.tolist()}")
    return domains


def domain_SCT_loss(embedding: Tensor, domain_labels, norm_feat: bool = True, metric: str = "cosine_sim", *,
                    num_domains: int = 3) -> Tensor:
    """Mean over the domains present (ascending id) of a per-domain spread term around the domain centre
    ``c_d = mean(f_i : d_i = d)``:

    * ``'cosine_sim'``: ``mean_i cos(c_d, f_i)`` (reference ``cosine_sim``, no epsilon);
    * ``'cosine'``: ``-mean_i (2 - 2 cos(c_d, f_i))``;
    * ``'euclidean'``: ``-mean_i ||c_d - f_i||``.

    Minimising it spreads each domain's features around its centre. ``norm_feat`` first applies the reference's
    ``normalize`` (``x / (||x|| + 1e-12)``). ACL-DGReID calls it with ``(features, domains, True, 'cosine_sim')``.

    Graph-compilable: the domains are the static set ``0 .. num_domains - 1`` (3, the reference's value); each
    domain's centre and mean are masked means (``sum(mask * x) / max(count, 1)``) and the result is the mean over
    the domains present. Ids outside that set are ignored (the reference would include them): validate on the host
    with :func:`check_domain_sct_domains`.
    """
    if metric not in _METRICS:
        raise ValueError(f"domain_SCT_loss metric must be one of {_METRICS}, got {metric!r}")
    domains = label_tensor(domain_labels, "domain_labels")
    if embedding.ndim != 2 or embedding.shape[0] != domains.shape[0]:
        raise ValueError(f"domain_SCT_loss expects embeddings of shape (N, D) matching {domains.shape[0]} domain "
                         f"labels, got {embedding.shape}")
    dtype = embedding.dtype
    if norm_feat:
        embedding = normalize(embedding, axis=-1)
    total = ops.zeros((), dtype)
    num_present = ops.zeros((), dtype)
    for domain in range(num_domains):
        in_domain = domains == domain
        mask = in_domain.astype(dtype)
        count = mask.sum()
        present = count > 0
        denom = safe_count(count)
        center_feat = (embedding * mask.reshape(-1, 1)).sum(0).reshape(1, -1) / denom
        # An absent domain has a zero centre; cosine_sim (no epsilon) would give 0/0 = NaN there, which would leak
        # through the masked sums and their gradient, so the centre of an absent domain is replaced by ones.
        center_feat = ops.where(present, center_feat, ops.ones_like(center_feat))
        if metric == "euclidean":
            term = -euclidean_dist(center_feat, embedding)
        elif metric == "cosine":
            term = -cosine_dist(center_feat, embedding)
        else:
            term = cosine_sim(center_feat, embedding)
        term = ops.where(in_domain, term.reshape(-1), ops.zeros_like(mask)).sum() / denom
        total = total + ops.where(present, term, ops.zeros_like(term))
        num_present = num_present + present.astype(dtype)
    return total / safe_count(num_present)
