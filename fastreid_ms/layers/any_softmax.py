"""FastReID's classification-logit layers (``MODEL.HEADS.CLS_LAYER``): plain scaling and the margin softmaxes.

Each Cell takes ``construct(logits, targets)`` and returns the scaled logits fed to the cross-entropy loss. For the
margin layers ``logits`` must be cosine similarities (the head computes them from L2-normalised features and weights);
``targets`` are the class indices, and a row whose target is ``-1`` (a class held by another model-parallel rank in
upstream) gets no positive-class margin, exactly like upstream. ``targets=None`` is treated as all ``-1``.

Upstream modifies a clone of the logits in place; these versions are functional and give the same values and
gradients.
"""
import mindspore
from mindspore import Tensor, nn, ops

__all__ = ["Linear", "CosSoftmax", "ArcSoftmax", "CircleSoftmax"]


def _target_mask(logits, targets):
    """Float (N, C) mask with 1 at ``(i, targets[i])`` for every row with ``targets[i] != -1``."""
    if targets is None:
        return ops.zeros_like(logits)
    if not isinstance(targets, Tensor):
        targets = Tensor(targets)
    classes = ops.arange(logits.shape[1], dtype=mindspore.int64).reshape(1, -1)
    return (targets.astype(mindspore.int64).reshape(-1, 1) == classes).astype(logits.dtype)


class Linear(nn.Cell):
    """``logits * scale`` (the margin is unused). ACL-DGReID's head uses it with scale 1."""

    def __init__(self, num_classes, scale, margin):
        super().__init__()
        self.num_classes = num_classes
        self.s = scale
        self.m = margin

    def construct(self, logits, targets=None):
        return logits * self.s

    def extend_repr(self):
        return f"num_classes={self.num_classes}, scale={self.s}, margin={self.m}"


class CosSoftmax(Linear):
    """CosFace (large-margin cosine): ``s * (cos - m)`` for the target class, ``s * cos`` elsewhere."""

    def construct(self, logits, targets=None):
        return (logits - self.m * _target_mask(logits, targets)) * self.s


class ArcSoftmax(Linear):
    """ArcFace (additive angular margin): ``s * cos(acos(cos) + m)`` for the target class, ``s * cos`` elsewhere
    (computed as ``cos(acos(.))`` for every entry, like upstream)."""

    def construct(self, logits, targets=None):
        theta = ops.acos(logits) + self.m * _target_mask(logits, targets)
        return ops.cos(theta) * self.s


class CircleSoftmax(Linear):
    """Circle loss logits: target class ``s * alpha_p * (cos - (1 - m))`` with ``alpha_p = relu(1 + m - cos)``, other
    classes ``s * alpha_n * (cos - m)`` with ``alpha_n = relu(cos + m)``; the alphas are detached as upstream."""

    def construct(self, logits, targets=None):
        detached = ops.stop_gradient(logits)
        alpha_p = ops.relu(-detached + 1 + self.m)
        alpha_n = ops.relu(detached + self.m)
        logits_p = alpha_p * (logits - (1 - self.m))
        logits_n = alpha_n * (logits - self.m)
        mask = _target_mask(logits, targets)
        return (logits_p * mask + logits_n * (1 - mask)) * self.s
