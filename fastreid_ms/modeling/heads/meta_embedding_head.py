"""ACL-DGReID's ``MetaEmbeddingHead``: GeM pooling, BNNeck and one classifier per source domain.

Training output (``construct(features, targets, update_stats)`` in train mode) is a dict:

* ``cls_outputs1..3`` / ``pred_class_logits1..3``: ``neck @ weight_d.T`` times the Linear cls layer's scale, for
  the three source domains (classes ``NUM_CLASSES1/2/3``);
* ``center_distmat``: squared distances of the un-normalised neck feature to the ``C1+C2+C3`` class centres
  (:class:`ClassCenters`);
* ``features``: ``normalize(neck feature)`` (NECK_FEAT 'after'; the pooled feature for 'before').

Eval output: the neck feature (N, D), not normalised. ``update_stats`` goes to the BNNeck (False in the meta-learning
passes).
"""
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal

from fastreid_ms.config import configurable
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
    """See the module docstring. Parameters: ``bottleneck.*`` (optional 1x1 conv to ``embedding_dim``, then the
    BNNeck with a frozen bias), ``weight1..3.weight`` (C_d, D) ~ N(0, 0.01), ``center.centers`` (C1+C2+C3, D)."""

    @configurable
    def __init__(self, *, feat_dim, embedding_dim, num_classes, neck_feat, pool_type, cls_type, scale, margin,
                 with_bnneck):
        super().__init__()
        check_neck_feat(neck_feat)
        if cls_type != "Linear":
            raise ValueError(f"MetaEmbeddingHead supports MODEL.HEADS.CLS_LAYER 'Linear' only (the reference's "
                             f"other branch is broken), got {cls_type!r}")
        if len(num_classes) != 3:
            raise ValueError(f"MetaEmbeddingHead needs three class counts (NUM_CLASSES1/2/3), got {num_classes}")
        self.neck_feat = neck_feat
        self.num_classes = tuple(int(c) for c in num_classes)
        self.pool_layer = build_pool_layer(pool_type)
        neck = []
        if embedding_dim > 0:
            neck.append(Conv2d(feat_dim, embedding_dim, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            neck.append(BatchNorm(feat_dim, bias_freeze=True))
        self.bottleneck = NormSequential(neck)
        for i, c in enumerate(self.num_classes, 1):
            setattr(self, f"weight{i}", DomainClassifier(feat_dim, c))
            setattr(self, f"cls_layer{i}", any_softmax.Linear(c, scale, margin))
        self.center = ClassCenters(feat_dim, sum(self.num_classes))

    @classmethod
    def from_config(cls, cfg):
        heads = cfg.MODEL.HEADS
        return {
            "feat_dim": cfg.MODEL.BACKBONE.FEAT_DIM,
            "embedding_dim": heads.EMBEDDING_DIM,
            "num_classes": (heads.NUM_CLASSES1, heads.NUM_CLASSES2, heads.NUM_CLASSES3),
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
        logits1 = self.weight1(neck_feat)
        logits2 = self.weight2(neck_feat)
        logits3 = self.weight3(neck_feat)
        if self.neck_feat == "after":
            feat = neck_feat
        else:
            feat = pool_feat.reshape(pool_feat.shape[0], pool_feat.shape[1])
        return {
            "cls_outputs1": self.cls_layer1(logits1, targets),
            "pred_class_logits1": logits1 * self.cls_layer1.s,
            "cls_outputs2": self.cls_layer2(logits2, targets),
            "pred_class_logits2": logits2 * self.cls_layer2.s,
            "cls_outputs3": self.cls_layer3(logits3, targets),
            "pred_class_logits3": logits3 * self.cls_layer3.s,
            "center_distmat": self.center(neck_feat),
            "features": l2_normalize(feat, 1),
        }
