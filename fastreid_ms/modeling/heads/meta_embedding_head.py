"""ACL-DGReID's ``MetaEmbeddingHead``: GeM pooling, BNNeck and one classifier per source domain.

Training output (``construct(features, targets, opt)`` in train mode) is a dict:

* ``cls_outputs1..3`` / ``pred_class_logits1..3``: ``neck @ weight_d.T`` times the Linear cls layer's scale, for
  the three source domains (classes ``NUM_CLASSES1/2/3``);
* ``center_distmat``: squared distances of the un-normalised neck feature to the ``C1+C2+C3`` class centres
  (:class:`~fastreid_ms.modeling.ops.MetaParam`);
* ``features``: ``normalize(neck feature)`` (NECK_FEAT 'after'; the pooled feature for 'before').

Eval output: the neck feature (N, D), not normalised. Every layer can run on fast weights (``opt``).
"""
from mindspore import nn
from mindspore.common.initializer import Normal

from fastreid_ms.config import configurable
from fastreid_ms.layers import any_softmax
from fastreid_ms.modeling.losses.utils import l2_normalize
from fastreid_ms.modeling.ops import MetaBNNorm, MetaConv2d, MetaLinear, MetaParam, MetaSequential, init_tensor
from .build import REID_HEADS_REGISTRY
from .embedding_head import check_neck_feat, build_pool_layer

__all__ = ["MetaEmbeddingHead"]


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
            neck.append(MetaConv2d(feat_dim, embedding_dim, 1, bias=False))
            feat_dim = embedding_dim
        if with_bnneck:
            neck.append(MetaBNNorm(feat_dim, bias_freeze=True))
        self.bottleneck = MetaSequential(neck)
        for i, c in enumerate(self.num_classes, 1):
            classifier = MetaLinear(feat_dim, c)
            classifier.weight.set_data(init_tensor(Normal(sigma=0.01), (c, feat_dim)))
            setattr(self, f"weight{i}", classifier)
            setattr(self, f"cls_layer{i}", any_softmax.Linear(c, scale, margin))
        self.center = MetaParam(feat_dim, sum(self.num_classes))

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

    def construct(self, features, targets=None, opt=None):
        pool_feat = self.pool_layer(features)
        neck_feat = self.bottleneck(pool_feat, opt)
        neck_feat = neck_feat.reshape(neck_feat.shape[0], neck_feat.shape[1])
        if not self.training:
            return neck_feat
        outputs = {}
        for i in (1, 2, 3):
            logits = getattr(self, f"weight{i}")(neck_feat, opt)
            cls_layer = getattr(self, f"cls_layer{i}")
            outputs[f"cls_outputs{i}"] = cls_layer(logits, targets)
            outputs[f"pred_class_logits{i}"] = logits * cls_layer.s
        outputs["center_distmat"] = self.center(neck_feat, opt)
        feat = neck_feat if self.neck_feat == "after" else pool_feat.reshape(pool_feat.shape[0], pool_feat.shape[1])
        outputs["features"] = l2_normalize(feat, 1)
        return outputs
