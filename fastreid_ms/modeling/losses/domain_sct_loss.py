"""Domain shuffle-and-compactness term of ACL-DGReID / MetaBIN (``losses/domain_SCT_loss.py``)."""
import numpy as np
from mindspore import Tensor, ops

from .utils import cosine_dist, cosine_sim, euclidean_dist, label_array, normalize

__all__ = ["domain_SCT_loss"]

_METRICS = ("euclidean", "cosine", "cosine_sim")


def domain_SCT_loss(embedding: Tensor, domain_labels, norm_feat: bool = True, metric: str = "cosine_sim") -> Tensor:
    """Mean over the domains present (ascending id) of a per-domain spread term around the domain centre
    ``c_d = mean(f_i : d_i = d)``:

    * ``'cosine_sim'``: ``mean_i cos(c_d, f_i)`` (reference ``cosine_sim``, no epsilon);
    * ``'cosine'``: ``-mean_i (2 - 2 cos(c_d, f_i))``;
    * ``'euclidean'``: ``-mean_i ||c_d - f_i||``.

    Minimising it spreads each domain's features around its centre. ``norm_feat`` first applies the reference's
    ``normalize`` (``x / (||x|| + 1e-12)``). ACL-DGReID calls it with ``(features, domains, True, 'cosine_sim')``.
    """
    if metric not in _METRICS:
        raise ValueError(f"domain_SCT_loss metric must be one of {_METRICS}, got {metric!r}")
    domains = label_array(domain_labels, "domain_labels")
    if embedding.ndim != 2 or embedding.shape[0] != domains.shape[0]:
        raise ValueError(f"domain_SCT_loss expects embeddings of shape (N, D) matching {domains.shape[0]} domain "
                         f"labels, got {tuple(embedding.shape)}")
    if domains.size == 0:
        raise ValueError("domain_SCT_loss got an empty batch")
    if norm_feat:
        embedding = normalize(embedding, axis=-1)
    loss_all = []
    for domain in np.unique(domains):
        feat = ops.gather(embedding, Tensor(np.flatnonzero(domains == domain)), 0)
        center_feat = feat.mean(0).reshape(1, -1)
        if metric == "euclidean":
            loss_all.append(-euclidean_dist(center_feat, feat).mean())
        elif metric == "cosine":
            loss_all.append(-cosine_dist(center_feat, feat).mean())
        else:
            loss_all.append(cosine_sim(center_feat, feat).mean())
    return ops.stack(loss_all).mean()

