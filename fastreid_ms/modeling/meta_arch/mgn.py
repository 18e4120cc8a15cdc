"""``MGN``: FastReID's Multiple Granularity Network (Wang et al., "Learning Discriminative Features with Multiple
Granularities for Person Re-Identification", 2018), ``MODEL.META_ARCHITECTURE: MGN``.

Structure (upstream ``fastreid/modeling/meta_arch/mgn.py``), from a ResNet built by ``MODEL.BACKBONE`` (Bottleneck
depths 50x / 101x, no non-local blocks):

* ``backbone`` - the shared stem: conv1, bn1, ReLU, max pool, layer1, layer2, layer3[0];
* ``b1`` / ``b2`` / ``b3`` - three branches, each with its own copy of layer3[1:]; the global branch ``b1``
  continues with a copy of the backbone's layer4 as built (stride ``MODEL.BACKBONE.LAST_STRIDE``, so 1 with the
  shipped configs, as in upstream's code; the MGN paper uses 2), ``b2`` and ``b3`` with a stride-1 layer4 copy (same
  initial weights as layer4, no IBN), whose map is cut along the height into 2 (``b21``, ``b22``) and 3 (``b31``,
  ``b32``, ``b33``) stripes as ``torch.chunk`` cuts it;
* eight ``MODEL.HEADS`` heads ``b1_head``, ``b2_head``, ``b21_head``, ``b22_head``, ``b3_head``, ``b31_head``,
  ``b32_head``, ``b33_head``.

``construct(images, targets=None, domainids=None, phase="basic", update_stats=None)`` takes the same Tensors as
:class:`~fastreid_ms.modeling.meta_arch.Baseline` (``domainids`` is ignored; ``phase`` must be 'basic'), so the
trainer's passes (:mod:`fastreid_ms.modeling.passes`) run it unchanged, compiled or op by op. Eval mode returns the
concatenation of the eight heads' features in upstream's order b1, b2, b3, b21, b22, b31, b32, b33 (8 x D). Train
mode returns upstream's loss dict: ``loss_cls_<branch>`` (cross entropy x ``CE.SCALE`` x 0.125) for the eight heads
and ``loss_triplet_<b1|b2|b3|b22|b33>`` (triplet x ``TRI.SCALE`` x 0.2) on the b1, b2 and b3 features and on the
concatenated stripe features (b21, b22) and (b31, b32, b33).

Parameter names follow upstream's state_dict (``backbone.0.weight`` is conv1, ``backbone.4`` layer1, ``backbone.6``
layer3[0], ``b1.0.<i>`` the layer3[1:] copy, ``b1.1`` the layer4 copy, ``b1_head.*``). Note (as upstream): the
optimizer's ``MODEL.FREEZE_LAYERS`` patterns match parameter names from their start, so Base-MGN's
``[backbone, b1, b2, b3]`` also freezes the ``b*_head`` parameters for ``SOLVER.FREEZE_ITERS`` iterations.
"""
import copy

from mindspore import nn, ops

from fastreid_ms.config import configurable
from fastreid_ms.layers import NormSequential, max_pool_3x3_s2_ceil
from fastreid_ms.modeling.backbones import build_backbone
from fastreid_ms.modeling.backbones.resnet import Bottleneck, ResNet, downsample_layer
from fastreid_ms.modeling.heads import build_heads
from fastreid_ms.modeling.losses import check_reid_batch, cross_entropy_loss, loss_kwargs_from_cfg, triplet_loss
from .build import META_ARCH_REGISTRY
from .pixel_norm import pixel_constants

__all__ = ["MGN", "chunk_bounds"]

BRANCHES = ("b1", "b2", "b21", "b22", "b3", "b31", "b32", "b33")
# Upstream's eval concatenation order.
EVAL_ORDER = ("b1", "b2", "b3", "b21", "b22", "b31", "b32", "b33")
# Triplet terms: loss key suffix -> the branches whose features are concatenated.
TRIPLET_TERMS = (("b1", ("b1",)), ("b2", ("b2",)), ("b3", ("b3",)), ("b22", ("b21", "b22")),
                 ("b33", ("b31", "b32", "b33")))
CE_WEIGHT = 0.125
TRIPLET_WEIGHT = 0.2
SUPPORTED_LOSSES = ("CrossEntropyLoss", "TripletLoss")


def chunk_bounds(size: int, chunks: int):
    """``(start, stop)`` of ``torch.chunk(x, chunks)`` along an axis of ``size``: pieces of ``ceil(size / chunks)``,
    the last one shorter. Raises ValueError when that does not give exactly ``chunks`` pieces (upstream's
    unpacking would fail), naming the input height that would work."""
    step = -(-size // chunks)
    bounds = tuple((start, min(start + step, size)) for start in range(0, size, step))
    if len(bounds) != chunks:
        raise ValueError(f"MGN cuts the part branches' feature map (height {size}) into {chunks} stripes as "
                         f"torch.chunk does, which gives {len(bounds)}; use an input height (INPUT.SIZE_TRAIN / "
                         f"SIZE_TEST) whose stride-16 feature height splits into 2 and 3 stripes (e.g. a multiple "
                         f"of 48)")
    return bounds


class _MaxPoolCeil(nn.Cell):
    """FastReID's stem max pooling (3x3, stride 2, ceil mode), as a Cell so the stem is one sequence."""

    def construct(self, x):
        return max_pool_3x3_s2_ceil(x)


class _ReLU(nn.Cell):
    def construct(self, x):
        return ops.relu(x)


def _copy_values(source: nn.Cell, target: nn.Cell) -> None:
    """Copy every parameter value of ``source`` into the same-named parameter of ``target`` (PyTorch's
    ``target.load_state_dict(source.state_dict())``); the two must have the same names and shapes."""
    src = dict(source.parameters_and_names())
    dst = dict(target.parameters_and_names())
    if sorted(src) != sorted(dst):
        raise ValueError(f"MGN: cannot copy layer4 into the stride-1 part branch: parameter names differ "
                         f"({sorted(set(src) ^ set(dst))[:5]})")
    for name, param in dst.items():
        if tuple(param.shape) != tuple(src[name].shape):
            raise ValueError(f"MGN: parameter {name} has shape {param.shape} in the part branch, {src[name].shape} "
                             f"in layer4")
        param.set_data(src[name].value().copy())


def _part_layer4(layer4: nn.SequentialCell, bn_norm: str, with_se: bool) -> NormSequential:
    """Upstream's ``res_p_conv5``: three Bottlenecks like layer4 but with stride 1 (no IBN), loaded with layer4's
    weights."""
    blocks = [Bottleneck(1024, 512, bn_norm, False, with_se, downsample=downsample_layer(1024, 2048, 1, bn_norm))]
    blocks += [Bottleneck(2048, 512, bn_norm, False, with_se) for _ in range(len(layer4.cell_list) - 1)]
    part = NormSequential(blocks)
    _copy_values(layer4, part)
    return part


def _check_resnet(resnet, cfg) -> None:
    bb = cfg.MODEL.BACKBONE
    if not isinstance(resnet, ResNet) or not isinstance(resnet.layer4.cell_list[0], Bottleneck):
        raise ValueError(f"MODEL.META_ARCHITECTURE MGN needs a Bottleneck ResNet backbone (MODEL.BACKBONE.NAME "
                         f"build_resnet_backbone with DEPTH 50x or 101x), got NAME={bb.NAME!r} DEPTH={bb.DEPTH!r}")
    if any(resnet.nl_indices):
        raise ValueError("MODEL.META_ARCHITECTURE MGN does not run the backbone's non-local blocks (upstream builds "
                         "its stem from the ResNet stages only); set MODEL.BACKBONE.WITH_NL False")
    if len(resnet.layer4.cell_list) != 3:
        raise ValueError(f"MGN expects a 3-block layer4, got {len(resnet.layer4.cell_list)}")


@META_ARCH_REGISTRY.register()
class MGN(nn.Cell):
    """See the module docstring."""

    @configurable
    def __init__(self, *, backbone, neck1, neck2, neck3, heads, pixel_mean, pixel_std, loss_kwargs):
        super().__init__()
        names = tuple(loss_kwargs["loss_names"])
        unsupported = [n for n in names if n not in SUPPORTED_LOSSES]
        if unsupported:
            raise ValueError(f"MODEL.LOSSES.NAME {list(names)}: MGN computes {list(SUPPORTED_LOSSES)} only (as "
                             f"upstream); remove {unsupported}")
        if len(heads) != len(BRANCHES):
            raise ValueError(f"MGN needs {len(BRANCHES)} heads ({', '.join(BRANCHES)}), got {len(heads)}")
        self.backbone = backbone
        self.b1 = neck1
        self.b2 = neck2
        self.b3 = neck3
        for branch, head in zip(BRANCHES, heads):
            setattr(self, branch + "_head", head)
        self.loss_kwargs = loss_kwargs
        self.is_meta = False
        self.num_channels, self.pixel_mean, self.pixel_std = pixel_constants(pixel_mean, pixel_std)

    @classmethod
    def from_config(cls, cfg):
        resnet = build_backbone(cfg)
        _check_resnet(resnet, cfg)
        bn_norm = cfg.MODEL.BACKBONE.NORM
        stem = NormSequential([resnet.conv1, resnet.bn1, _ReLU(), _MaxPoolCeil(),
                               NormSequential(resnet.layer1.cell_list), NormSequential(resnet.layer2.cell_list),
                               resnet.layer3.cell_list[0]])
        res_conv4 = NormSequential(resnet.layer3.cell_list[1:])
        res_g_conv5 = NormSequential(resnet.layer4.cell_list)
        res_p_conv5 = _part_layer4(resnet.layer4, bn_norm, cfg.MODEL.BACKBONE.WITH_SE)
        neck1 = NormSequential([copy.deepcopy(res_conv4), copy.deepcopy(res_g_conv5)])
        neck2 = NormSequential([copy.deepcopy(res_conv4), copy.deepcopy(res_p_conv5)])
        neck3 = NormSequential([copy.deepcopy(res_conv4), copy.deepcopy(res_p_conv5)])
        return {
            "backbone": stem,
            "neck1": neck1,
            "neck2": neck2,
            "neck3": neck3,
            "heads": [build_heads(cfg) for _ in BRANCHES],
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_kwargs": loss_kwargs_from_cfg(cfg),
        }

    @property
    def num_classes(self) -> int:
        return self.b1_head.num_classes

    def phases(self):
        """MGN trains with the ordinary step only: ('basic',)."""
        return ("basic",)

    def loss_names(self, phase="basic"):
        """The keys of the training loss dict, in upstream's order."""
        if phase != "basic":
            raise ValueError(f"phase={phase!r}: MGN trains with phases ('basic',)")
        names = self.loss_kwargs["loss_names"]
        keys = []
        if "CrossEntropyLoss" in names:
            keys += ["loss_cls_" + b for b in BRANCHES]
        if "TripletLoss" in names:
            keys += ["loss_triplet_" + key for key, _ in TRIPLET_TERMS]
        return tuple(keys)

    def check_labels(self, targets, domainids=None, phase="basic"):
        """Host-side check of a training batch's labels: cross-entropy targets within ``[0, NUM_CLASSES)``."""
        check_reid_batch(targets, self.num_classes, self.loss_kwargs)

    def preprocess_image(self, images):
        """``(images - pixel_mean) / pixel_std`` as a new tensor."""
        return (images - self.pixel_mean) / self.pixel_std

    def branch_features(self, images, update_stats=True):
        """The eight branches' feature maps, keyed by branch name."""
        features = self.backbone(self.preprocess_image(images), update_stats)
        b2_feat = self.b2(features, update_stats)
        b3_feat = self.b3(features, update_stats)
        maps = {"b1": self.b1(features, update_stats), "b2": b2_feat, "b3": b3_feat}
        for i, (start, stop) in enumerate(chunk_bounds(b2_feat.shape[2], 2)):
            maps["b2" + str(i + 1)] = b2_feat[:, :, start:stop]
        for i, (start, stop) in enumerate(chunk_bounds(b3_feat.shape[2], 3)):
            maps["b3" + str(i + 1)] = b3_feat[:, :, start:stop]
        return maps

    def construct(self, images, targets=None, domainids=None, phase="basic", update_stats=None):
        if update_stats is None:
            update_stats = phase == "basic"
        maps = self.branch_features(images, update_stats)
        if not self.training:
            return ops.concat([getattr(self, b + "_head")(maps[b]) for b in EVAL_ORDER], 1)
        outputs = {}
        for b in BRANCHES:
            outputs[b] = getattr(self, b + "_head")(maps[b], targets, update_stats)
        return self.losses(outputs, targets)

    def losses(self, outputs, gt_labels):
        """Upstream ``MGN.losses`` from the heads' training outputs (a dict branch -> head output dict)."""
        names = self.loss_kwargs["loss_names"]
        loss_dict = {}
        if "CrossEntropyLoss" in names:
            ce = self.loss_kwargs["ce"]
            for b in BRANCHES:
                loss_dict["loss_cls_" + b] = cross_entropy_loss(outputs[b]["cls_outputs"], gt_labels, ce["eps"],
                                                                ce["alpha"]) * ce["scale"] * CE_WEIGHT
        if "TripletLoss" in names:
            tri = self.loss_kwargs["tri"]
            for key, parts in TRIPLET_TERMS:
                feats = outputs[parts[0]]["features"]
                if len(parts) > 1:
                    feats = ops.concat([outputs[p]["features"] for p in parts], 1)
                loss_dict["loss_triplet_" + key] = triplet_loss(feats, gt_labels, tri["margin"], tri["norm_feat"],
                                                                tri["hard_mining"]) * tri["scale"] * TRIPLET_WEIGHT
        return loss_dict
