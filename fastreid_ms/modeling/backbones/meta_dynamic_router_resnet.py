"""ACL-DGReID's dynamic-router ResNet ("DR50", reference ``backbones/meta_dynamic_router_resnet.py``).

An IBN-a ResNet whose stages have one Bottleneck fewer than the plain ResNet; the missing last block of every stage
is replaced by a domain-invariant / domain-specific pair:

* ``adaptorN_base``: an instance-norm Bottleneck (identity residual);
* ``adaptorN_sub``: :class:`ExpertBottleneck` - K = 4 grouped "expert" Bottlenecks on the K-fold repeated input,
  mixed per sample with softmax weights from ``routerN`` (:class:`~fastreid_ms.modeling.ops.HyperRouter`);
* the two branches go through ``invariant_normN`` / ``specific_normN``, are fused by ``meta_fuseN`` (MetaGate),
  re-weighted by ``meta_seN`` and a side feature ``normalize(mapN(GAP(x)))`` is produced.

``construct(x, opt=None)`` returns ``(x, paths, side_features)`` with ``paths`` the (N, 4K) routing weights of the
four stages and ``side_features`` the four normalised per-stage features (unused by Baseline, kept for fidelity).
Every parameter and running statistic is named like the reference's ``state_dict()``.
"""
import math

from mindspore import nn, ops
from mindspore.common.initializer import Normal

from fastreid_ms.layers.conv import conv2d
from fastreid_ms.modeling.ops import (HyperRouter, MetaBNNorm, MetaConv2d, MetaGate, MetaIBNNorm, MetaINNorm,
                                      MetaSELayer, MetaSequential, fast_param, global_avg_pool, init_tensor)
from fastreid_ms.modeling.losses.utils import l2_normalize
from .build import BACKBONE_REGISTRY
from .resnet import max_pool_3x3_s2_ceil

NUM_EXPERTS = 4  # K, a module constant in the reference
NUM_DOMAINS = 3  # outputs of the routers' (unused) domain classifiers

__all__ = ["Bottleneck", "ExpertBottleneck", "DynamicRouterResNet", "build_meta_dynamic_router_resnet_backbone",
           "STAGE_BLOCKS"]

# Blocks per stage of the plain ResNet of each depth; DR stages have one fewer (the adaptors take the last slot).
STAGE_BLOCKS = {"50x": (3, 4, 6, 3), "101x": (3, 4, 23, 3)}


def _norm(bn_norm, channels):
    return MetaINNorm(channels) if bn_norm == "IN" else MetaBNNorm(channels)


class Bottleneck(nn.Cell):
    """ResNet Bottleneck (expansion 4), stride on the 3x3 conv; ``bn1`` is IBN-a when ``with_ibn``; all three norms
    are instance norms when ``bn_norm == 'IN'`` (the adaptor base). ``downsample`` is a MetaSequential(conv, BN)."""
    expansion = 4

    def __init__(self, inplanes, planes, bn_norm, with_ibn=False, stride=1, downsample=None):
        super().__init__()
        self.conv1 = MetaConv2d(inplanes, planes, 1, bias=False)
        self.bn1 = MetaIBNNorm(planes) if with_ibn else _norm(bn_norm, planes)
        self.conv2 = MetaConv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = _norm(bn_norm, planes)
        self.conv3 = MetaConv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = _norm(bn_norm, planes * self.expansion)
        self.downsample = downsample

    def construct(self, x, opt=None):
        out = ops.relu(self.bn1(self.conv1(x, opt), opt))
        out = ops.relu(self.bn2(self.conv2(out, opt), opt))
        out = self.bn3(self.conv3(out, opt), opt)
        residual = x if self.downsample is None else self.downsample(x, opt)
        return ops.relu(out + residual)


class ExpertBottleneck(nn.Cell):
    """The reference's ``Bottleneck2``: K grouped expert Bottlenecks applied to ``x.repeat(1, K, 1, 1)``.

    conv1 (groups K, 4C -> p, expert k: C -> p/K) -> IBN (first p/2 channels = experts 0..K/2-1 instance-normed)
    -> ReLU -> conv2 3x3 (groups K) -> BN -> ReLU -> conv3 (groups K, p -> K*C) -> BN -> + repeated input -> ReLU.
    Output (N, K*C, H, W); expert k = channels [k*C, (k+1)*C).

    conv1 is computed as an ungrouped 1x1 conv of ``x`` with the same (p, C, 1, 1) weight: with every group seeing
    the same copy of ``x`` the two are the same sums, without materialising the repeated input for it.
    """

    def __init__(self, inplanes, planes, bn_norm, num_experts=NUM_EXPERTS):
        super().__init__()
        k = num_experts
        self.num_experts = k
        self.conv1 = MetaConv2d(inplanes * k, planes, 1, groups=k, bias=False)
        self.bn1 = MetaIBNNorm(planes)
        self.conv2 = MetaConv2d(planes, planes, 3, padding=1, groups=k, bias=False)
        self.bn2 = _norm(bn_norm, planes)
        self.conv3 = MetaConv2d(planes, inplanes * k, 1, groups=k, bias=False)
        self.bn3 = _norm(bn_norm, inplanes * k)

    def construct(self, x, opt=None):
        # conv1 on x.repeat(1, K, 1, 1) with groups K == ungrouped conv1 of x (see the class docstring).
        out = conv2d(x, fast_param(self.conv1.weight, opt))
        out = ops.relu(self.bn1(out, opt))
        out = ops.relu(self.bn2(self.conv2(out, opt), opt))
        out = self.bn3(self.conv3(out, opt), opt)
        # x.repeat(1, K, 1, 1) as a concat: same values, and its backward (slices) is much cheaper than Tile's.
        return ops.relu(out + ops.cat((x,) * self.num_experts, 1))


def mix_experts(expert_out, weights):
    """sum_k weights[:, k] * expert_out[:, k*C:(k+1)*C] for expert_out (N, K*C, H, W) and weights (N, K)."""
    n, kc, h, w = expert_out.shape
    k = weights.shape[1]
    mixed = ops.bmm(weights.reshape(n, 1, k), expert_out.reshape(n, k, (kc // k) * h * w))
    return mixed.reshape(n, kc // k, h, w)


class DynamicRouterResNet(nn.Cell):
    """The DR ResNet trunk (see the module docstring). ``layers`` = blocks per main stage (R50: 2, 3, 5, 2)."""

    def __init__(self, last_stride, bn_norm, with_ibn, layers, num_experts=NUM_EXPERTS):
        super().__init__()
        self.num_experts = num_experts
        self.inplanes = 64
        self.conv1 = MetaConv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = MetaBNNorm(64)
        strides = (1, 2, 2, last_stride)
        for i, (planes, blocks, stride) in enumerate(zip((64, 128, 256, 512), layers, strides)):
            s = i + 1
            channels = planes * Bottleneck.expansion
            # IBN-a in stages 1-3; stage 4 is plain BN (the reference does not pass with_ibn to layer4).
            setattr(self, f"layer{s}", self._make_layer(planes, blocks, stride, bn_norm, with_ibn and s < 4))
            setattr(self, f"adaptor{s}_base", Bottleneck(channels, planes, "IN", with_ibn=False))
            setattr(self, f"adaptor{s}_sub", ExpertBottleneck(channels, planes, bn_norm, num_experts))
            setattr(self, f"router{s}", HyperRouter(channels, num_experts, NUM_DOMAINS))
            setattr(self, f"invariant_norm{s}", MetaBNNorm(channels))
            setattr(self, f"specific_norm{s}", MetaBNNorm(channels))
            setattr(self, f"meta_fuse{s}", MetaGate(channels))
            setattr(self, f"meta_se{s}", MetaSELayer(channels))
            setattr(self, f"map{s}", MetaBNNorm(channels, bias_freeze=True))
        self.random_init()

    def _make_layer(self, planes, blocks, stride, bn_norm, with_ibn):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = MetaSequential([
                MetaConv2d(self.inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                MetaBNNorm(planes * Bottleneck.expansion),
            ])
        blocks_list = [Bottleneck(self.inplanes, planes, bn_norm, with_ibn, stride, downsample)]
        self.inplanes = planes * Bottleneck.expansion
        for _ in range(1, blocks):
            blocks_list.append(Bottleneck(self.inplanes, planes, bn_norm, with_ibn))
        return MetaSequential(blocks_list)

    def random_init(self):
        """Reference ``random_init``: every conv weight ~ N(0, sqrt(2 / (k*k*out_channels))); norms 1/0 (their
        constructors); linear layers keep PyTorch's default; gates N(0, 0.1)."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, MetaConv2d):
                n = cell.kernel_size * cell.kernel_size * cell.out_channels
                cell.weight.set_data(init_tensor(Normal(sigma=math.sqrt(2.0 / n)), cell.weight.shape))

    def construct(self, x, opt=None):
        x = self.conv1(x, opt)
        x = ops.relu(self.bn1(x, opt))
        x = max_pool_3x3_s2_ceil(x)
        paths, side_features = [], []
        for s in range(1, 5):
            x = getattr(self, f"layer{s}")(x, opt)
            x_inv = getattr(self, f"adaptor{s}_base")(x, opt)
            x_spec = getattr(self, f"adaptor{s}_sub")(x, opt)
            weights, _ = getattr(self, f"router{s}")(x, opt)
            x_spec = mix_experts(x_spec, weights)
            x_inv = getattr(self, f"invariant_norm{s}")(x_inv, opt)
            x_spec = getattr(self, f"specific_norm{s}")(x_spec, opt)
            x = getattr(self, f"meta_fuse{s}")(x_inv, x_spec, opt)
            x = getattr(self, f"meta_se{s}")(x, opt)
            pooled = global_avg_pool(x)
            side = getattr(self, f"map{s}")(pooled.reshape(pooled.shape[0], pooled.shape[1], 1, 1), opt)
            side_features.append(l2_normalize(side.reshape(side.shape[0], side.shape[1]), 1))
            paths.append(weights)
        return x, ops.cat(paths, -1), side_features


@BACKBONE_REGISTRY.register()
def build_meta_dynamic_router_resnet_backbone(cfg):
    """DR ResNet from ``MODEL.BACKBONE`` (DEPTH 50x/101x, LAST_STRIDE, NORM, WITH_IBN); with PRETRAIN, the IBN-a
    ResNet weights at PRETRAIN_PATH go through the reference's adaptor surgery (:mod:`.dr_pretrained`)."""
    bb = cfg.MODEL.BACKBONE
    depth = bb.DEPTH
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"MODEL.BACKBONE.DEPTH={depth!r} is not supported by build_meta_dynamic_router_resnet_backbone;"
                         f" expected one of {sorted(STAGE_BLOCKS)}")
    if bb.WITH_NL or bb.WITH_SE:
        raise ValueError("MODEL.BACKBONE.WITH_NL / WITH_SE are not supported by the dynamic-router ResNet (the "
                         "reference configuration runs without them); set them to False")
    layers = tuple(n - 1 for n in STAGE_BLOCKS[depth])
    model = DynamicRouterResNet(bb.LAST_STRIDE, bb.NORM, bb.WITH_IBN, layers)
    if bb.PRETRAIN:
        from .dr_pretrained import load_dr_pretrained
        load_dr_pretrained(model, bb.PRETRAIN_PATH, depth=depth, with_ibn=bb.WITH_IBN)
    return model
