"""ACL-DGReID's ``MetaEmbeddingHead``: GeM pooling, BNNeck and one classifier per source domain.

The reference has exactly three source domains; here there are D >= 1, one per class count (D = 3 builds the
reference's head, same parameter names and numbers). Training output (``construct(features, targets,
update_stats)`` in train mode) is a dict, in this key order:

* ``cls_outputs{d}`` / ``pred_class_logits{d}`` for d = 1..D: ``neck @ weight{d}.T`` times the Linear cls layer's
  scale (classes of domain d: ``MODEL.HEADS.NUM_CLASSES_PER_DOMAIN[d-1]``, or ``NUM_CLASSES{d}`` for three domains,
  :func:`fastreid_ms.config.domain_class_counts`);
* ``center_distmat``: squared distances of the un-normalised neck feature to the ``C1+...+CD`` class centres
  (:class:`ClassCenters`);
* ``features``: ``normalize(neck feature)`` (NECK_FEAT 'after'; the pooled feature for 'before').

Eval output: the neck feature (N, D), not normalised. ``update_stats`` goes to the BNNeck (False in the meta-learning
passes).
"""
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal

from fastreid_ms.config import configurable, domain_class_counts
from fastreid_ms.layers import BatchNorm, Conv2d, NormSequential, any_softmax
from fastreid_ms.layers.helpers import l2_normalize, linear
from fastreid_ms.layers.weight_init import init_tensor
from .build import REID_HEADS_REGISTRY
from .embedding_head import build_pool_layer, check_neck_feat

__all__ = ["MetaEmbeddingHead", "DomainClassifier", "ClassCenters"]


class DomainClassifier(nn.Cell):
    """``x @ weight.T`` without bias, ``weight`` (num_classes, feat_dim) ~ N(0, 0.01) (the reference's
    ``MetaLinear(feat_dim, C)`` with the head's initialisation; 0 classes allowed for evaluation-only builds)."""

    def __init__(self, feat_dim, num_classes):
        super().__init__()
        self.weight = Parameter(init_tensor(Normal(sigma=0.01), (num_classes, feat_dim)), name="weight")

    def construct(self, x):
        return linear(x, self.weight)


class ClassCenters(nn.Cell):
    """Class centres ``centers`` (num_classes, feat_dim) ~ N(0, 0.01) and the squared Euclidean distance matrix
    ``||x||^2 + ||c||^2 - 2 x c^T`` (N, num_classes) (the reference's ``MetaParam``)."""

    def __init__(self, feat_dim, num_classes):
        super().__init__()
        self.centers = Parameter(init_tensor(Normal(sigma=0.01), (num_classes, feat_dim)), name="centers")

    def construct(self, x):
        x_sq = (x * x).sum(1, keepdims=True)
        c_sq = ops.square(self.centers).sum(1).reshape(1, -1)
        return x_sq + c_sq - 2.0 * linear(x, self.centers)


@REID_HEADS_REGISTRY.register()
class MetaEmbeddingHead(nn.Cell):
    """See the module docstring. ``num_classes``: the class count of every source domain (D >= 1 of them).
    Parameters: ``bottleneck.*`` (optional 1x1 conv to ``embedding_dim``, then the BNNeck with a frozen bias),
    ``weight{d}.weight`` (C_d, feat) ~ N(0, 0.01) for d = 1..D, ``center.centers`` (C1+...+CD, feat)."""

    @configurable
    def __init__(self, *, feat_dim, embedding_dim, num_classes, neck_feat, pool_type, cls_type, scale, margin,
                 with_bnneck):
        super().__init__()
        check_neck_feat(neck_feat)
        if cls_type != "Linear":
            raise ValueError(f"MetaEmbeddingHead supports MODEL.HEADS.CLS_LAYER 'Linear' only (the reference's "
                             f"other branch is broken), got {cls_type!r}")
        if len(num_classes) < 1:
            raise ValueError("MetaEmbeddingHead needs one class count per source domain (MODEL.HEADS."
                             "NUM_CLASSES_PER_DOMAIN or NUM_CLASSES1/2/3), got none")
        self.neck_feat = neck_feat
        self.num_classes = tuple(int(c) for c in num_classes)
        self.num_domains = len(self.num_classes)
        self._domain_cells = tuple((f"weight{d}", f"cls_layer{d}") for d in range(1, self.num_domains + 1))
        self.pool_layer = build_pool_layer(pool_type)
        neck = []
        if embedding_dim > 0:
            neck.append(Conv2d(feat_dim, embedding_dim, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            neck.append(BatchNorm(feat_dim, bias_freeze=True))
        self.bottleneck = NormSequential(neck)
        for (weight, cls_layer), c in zip(self._domain_cells, self.num_classes):
            setattr(self, weight, DomainClassifier(feat_dim, c))
            setattr(self, cls_layer, any_softmax.Linear(c, scale, margin))
        self.center = ClassCenters(feat_dim, sum(self.num_classes))

    @classmethod
    def from_config(cls, cfg):
        heads = cfg.MODEL.HEADS
        return {
            "feat_dim": cfg.MODEL.BACKBONE.FEAT_DIM,
            "embedding_dim": heads.EMBEDDING_DIM,
            "num_classes": domain_class_counts(cfg),
            "neck_feat": heads.NECK_FEAT,
            "pool_type": heads.POOL_LAYER,
            "cls_type": heads.CLS_LAYER,
            "scale": heads.SCALE,
            "margin": heads.MARGIN,
            "with_bnneck": heads.WITH_BNNECK,
        }

    def construct(self, features, targets=None, update_stats=True):
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat, update_stats)
        neck_feat = neck_feat.reshape(neck_feat.shape[0], neck_feat.shape[1])
        if not self.training:
            return neck_feat
        if self.neck_feat == "after":
            feat = neck_feat
        else:
            feat = pool_feat.reshape(pool_feat.shape[0], pool_feat.shape[1])
        outputs = {}
        for d, (weight, cls_layer) in enumerate(self._domain_cells):
            logits = getattr(self, weight)(neck_feat)
            layer = getattr(self, cls_layer)
            outputs["cls_outputs" + str(d + 1)] = layer(logits, targets)
            outputs["pred_class_logits" + str(d + 1)] = logits * layer.s
        outputs["center_distmat"] = self.center(neck_feat)
        outputs["features"] = l2_normalize(feat, 1)
        return outputs
