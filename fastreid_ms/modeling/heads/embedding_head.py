"""FastReID's ``EmbeddingHead``: pooling -> optional 1x1 conv to EMBEDDING_DIM -> optional BNNeck -> classifier.

Training output (``construct(features, targets)`` in train mode): ``cls_outputs`` (the CLS_LAYER's logits, with the
margin of ArcSoftmax / CosSoftmax / CircleSoftmax on the target class), ``pred_class_logits`` (logits x scale) and
``features`` (the pooled feature for NECK_FEAT 'before', the neck output for 'after'; not normalised). Eval output:
the neck feature (N, D). ``Linear`` classifies ``neck @ weight.T``; the margin layers classify cosine similarities
``normalize(neck) @ normalize(weight).T``.
"""
from mindspore import Parameter, nn
from mindspore.common.initializer import Normal

from fastreid_ms.config import configurable
from fastreid_ms.layers import NormSequential, any_softmax, get_norm, pooling, weights_init_kaiming
from fastreid_ms.layers.conv import Conv2d
from fastreid_ms.layers.helpers import l2_normalize, linear
from fastreid_ms.layers.weight_init import init_tensor
from .build import REID_HEADS_REGISTRY

__all__ = ["EmbeddingHead", "build_pool_layer", "build_cls_layer", "check_neck_feat"]


def build_pool_layer(pool_type):
    """The pooling Cell named ``pool_type`` (MODEL.HEADS.POOL_LAYER) from :mod:`fastreid_ms.layers.pooling`."""
    if pool_type not in pooling.__all__:
        raise ValueError(f"MODEL.HEADS.POOL_LAYER={pool_type!r} is not a pooling layer; expected one of "
                         f"{', '.join(pooling.__all__)}")
    return getattr(pooling, pool_type)()


def build_cls_layer(cls_type, num_classes, scale, margin):
    """The logit layer named ``cls_type`` (MODEL.HEADS.CLS_LAYER) from :mod:`fastreid_ms.layers.any_softmax`."""
    if cls_type not in any_softmax.__all__:
        raise ValueError(f"MODEL.HEADS.CLS_LAYER={cls_type!r} is not a classification layer; expected one of "
                         f"{', '.join(any_softmax.__all__)}")
    return getattr(any_softmax, cls_type)(num_classes, scale, margin)


def check_neck_feat(neck_feat):
    """Raise for a MODEL.HEADS.NECK_FEAT other than 'before' / 'after'."""
    if neck_feat not in ("before", "after"):
        raise ValueError(f"MODEL.HEADS.NECK_FEAT={neck_feat!r}; expected 'before' or 'after'")


@REID_HEADS_REGISTRY.register()
class EmbeddingHead(nn.Cell):
    """See the module docstring. Parameters: ``bottleneck.*`` (FastReID's kaiming init), ``weight``
    (NUM_CLASSES, D) ~ N(0, 0.01)."""

    @configurable
    def __init__(self, *, feat_dim, embedding_dim, num_classes, neck_feat, pool_type, cls_type, scale, margin,
                 with_bnneck, norm_type):
        super().__init__()
        check_neck_feat(neck_feat)
        self.neck_feat = neck_feat
        self.num_classes = int(num_classes)
        self.pool_layer = build_pool_layer(pool_type)
        neck = []
        if embedding_dim > 0:
            neck.append(Conv2d(feat_dim, embedding_dim, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            neck.append(get_norm(norm_type, feat_dim, bias_freeze=True))
        self.bottleneck = NormSequential(neck)
        self.bottleneck.apply(weights_init_kaiming)
        self.weight = Parameter(init_tensor(Normal(sigma=0.01), (num_classes, feat_dim)), name="weight")
        self.cls_layer = build_cls_layer(cls_type, num_classes, scale, margin)
        self.cosine_logits = cls_type != "Linear"

    @classmethod
    def from_config(cls, cfg):
        heads = cfg.MODEL.HEADS
        return {
            "feat_dim": cfg.MODEL.BACKBONE.FEAT_DIM,
            "embedding_dim": heads.EMBEDDING_DIM,
            "num_classes": heads.NUM_CLASSES,
            "neck_feat": heads.NECK_FEAT,
            "pool_type": heads.POOL_LAYER,
            "cls_type": heads.CLS_LAYER,
            "scale": heads.SCALE,
            "margin": heads.MARGIN,
            "with_bnneck": heads.WITH_BNNECK,
            "norm_type": heads.NORM,
        }

    def construct(self, features, targets=None, update_stats=True):
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat, update_stats)
        neck_feat = neck_feat.reshape(neck_feat.shape[0], neck_feat.shape[1])
        if not self.training:
            return neck_feat
        if self.cosine_logits:
            logits = linear(l2_normalize(neck_feat, 1), l2_normalize(self.weight, 1))
        else:
            logits = linear(neck_feat, self.weight)
        if self.neck_feat == "after":
            feat = neck_feat
        else:
            feat = pool_feat.reshape(pool_feat.shape[0], pool_feat.shape[1])
        return {
            "cls_outputs": self.cls_layer(logits, targets),
            "pred_class_logits": logits * self.cls_layer.s,
            "features": feat,
        }
