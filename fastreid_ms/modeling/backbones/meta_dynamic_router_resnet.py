"""ACL-DGReID's dynamic-router ResNet ("DR50", reference ``backbones/meta_dynamic_router_resnet.py``).

An IBN-a ResNet whose stages have one Bottleneck fewer than the plain ResNet; the missing last block of every stage
is replaced by a domain-invariant / domain-specific pair:

* ``adaptorN_base``: an instance-norm Bottleneck (identity residual);
* ``adaptorN_sub``: :class:`ExpertBottleneck` - K = 4 grouped "expert" Bottlenecks on the K-fold repeated input,
  mixed per sample with softmax weights from ``routerN`` (:class:`HyperRouter`);
* the two branches go through ``invariant_normN`` / ``specific_normN``, are fused by ``meta_fuseN``
  (:class:`Gate`), re-weighted by ``meta_seN`` (squeeze-and-excitation) and a side feature
  ``normalize(mapN(GAP(x)))`` is produced.

``construct(x, update_stats=True)`` returns ``(x, paths, side_features)`` with ``paths`` the (N, 4K) routing weights
of the four stages and ``side_features`` the four normalised per-stage features (unused by Baseline, kept for
fidelity: the ``map`` norms' running statistics are updated like the reference's). ``update_stats`` is passed to
every batch norm (False: batch statistics without touching the running ones, the meta-learning passes). Every
parameter and running statistic is named like the reference's ``state_dict()``; its instance norms keep the
reference's quirk of zeroing an input of height 1.
"""
import math

from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal

from fastreid_ms.config import num_source_domains
from fastreid_ms.layers import IBN, BatchNorm, Conv2d, Dense, SELayer, get_norm
from fastreid_ms.layers.conv import conv2d
from fastreid_ms.layers.helpers import global_avg_pool, l2_normalize, max_pool_3x3_s2_ceil
from fastreid_ms.layers.weight_init import init_tensor
from .build import BACKBONE_REGISTRY
from .dr_pretrained import load_dr_pretrained
from .resnet import Bottleneck, downsample_layer

NUM_EXPERTS = 4  # K, a module constant in the reference
NUM_DOMAINS = 3  # the reference's number of source domains: outputs of the routers' (unused) domain classifiers
# ACL-DGReID's instance norms (MetaINNorm) zero an input of height 1 instead of normalising it
DR_NORM_KWARGS = {"zero_if_height_one": True}

__all__ = ["Gate", "HyperRouter", "ExpertBottleneck", "DynamicRouterResNet",
           "build_meta_dynamic_router_resnet_backbone", "STAGE_BLOCKS", "mix_experts"]

# Blocks per stage of the plain ResNet of each depth; DR stages have one fewer (the adaptors take the last slot).
STAGE_BLOCKS = {"50x": (3, 4, 6, 3), "101x": (3, 4, 23, 3)}


class Gate(nn.Cell):
    """Per-channel sigmoid fusion ``g * x1 + (1 - g) * x2`` with ``g = sigmoid(gate)``, ``gate`` (C,) ~ N(0, 0.1)
    (the reference's ``MetaGate``)."""

    def __init__(self, feat_dim):
        super().__init__()
        self.gate = Parameter(init_tensor(Normal(sigma=0.1), (feat_dim,)), name="gate")

    def construct(self, x1, x2):
        g = ops.sigmoid(self.gate).reshape(1, -1, 1, 1)
        return g * x1 + (1.0 - g) * x2


class HyperRouter(nn.Cell):
    """Per-sample expert weights: ``v = GAP(x)``; ``h = relu(normalize(fc1(v)))``; ``W = fc2(h).reshape(N, C, K)``;
    ``weights = softmax_K(v @ W)`` (the reference's einsum 'bi,bil->bl', as a batched matmul). Also returns the
    domain logits ``fc_classifier(W.reshape(N, C*K))`` (one per source domain: ``num_domains``, 3 in the
    reference), which the reference computes and never uses. All three fully connected layers have no bias."""

    def __init__(self, planes, num_experts=4, num_domains=NUM_DOMAINS, reduction=16):
        super().__init__()
        self.planes, self.num_experts = planes, num_experts
        self.fc1 = Dense(planes, int(planes / reduction), bias=False)
        self.fc2 = Dense(int(planes / reduction), planes * num_experts, bias=False)
        self.fc_classifier = Dense(planes * num_experts, num_domains, bias=False)

    def construct(self, x):
        n = x.shape[0]
        v = global_avg_pool(x)
        h = ops.relu(l2_normalize(self.fc1(v), 1))
        w = self.fc2(h).reshape(n, self.planes, self.num_experts)
        domain_logits = self.fc_classifier(w.reshape(n, self.planes * self.num_experts))
        logits = ops.bmm(v.reshape(n, 1, self.planes), w).reshape(n, self.num_experts)
        return ops.softmax(logits, -1), domain_logits


class ExpertBottleneck(nn.Cell):
    """The reference's ``Bottleneck2``: K grouped expert Bottlenecks applied to ``x.repeat(1, K, 1, 1)``.

    conv1 (groups K, K*C -> p, expert k: C -> p/K) -> IBN (first p/2 channels = experts 0..K/2-1 instance-normed)
    -> ReLU -> conv2 3x3 (groups K) -> BN -> ReLU -> conv3 (groups K, p -> K*C) -> BN -> + repeated input -> ReLU.
    Output (N, K*C, H, W); expert k = channels [k*C, (k+1)*C).

    conv1 is computed as an ungrouped 1x1 conv of ``x`` with the same (p, C, 1, 1) weight: with every group seeing
    the same copy of ``x`` the two are the same sums, without materialising the repeated input for it.
    """

    def __init__(self, inplanes, planes, bn_norm, num_experts=NUM_EXPERTS):
        super().__init__()
        k = num_experts
        self.num_experts = k
        self.conv1 = Conv2d(inplanes * k, planes, 1, groups=k, bias=False)
        self.bn1 = IBN(planes, bn_norm, **DR_NORM_KWARGS)
        self.conv2 = Conv2d(planes, planes, 3, padding=1, groups=k, bias=False)
        self.bn2 = get_norm(bn_norm, planes, **DR_NORM_KWARGS)
        self.conv3 = Conv2d(planes, inplanes * k, 1, groups=k, bias=False)
        self.bn3 = get_norm(bn_norm, inplanes * k, **DR_NORM_KWARGS)

    def construct(self, x, update_stats=True):
        # conv1 on x.repeat(1, K, 1, 1) with groups K == ungrouped conv1 of x (see the class docstring).
        out = ops.relu(self.bn1(conv2d(x, self.conv1.weight), update_stats))
        out = ops.relu(self.bn2(self.conv2(out), update_stats))
        out = self.bn3(self.conv3(out), update_stats)
        # x.repeat(1, K, 1, 1) as a concat: same values, and its backward (slices) is much cheaper than Tile's.
        return ops.relu(out + ops.cat((x,) * self.num_experts, 1))


def mix_experts(expert_out, weights):
    """sum_k weights[:, k] * expert_out[:, k*C:(k+1)*C] for expert_out (N, K*C, H, W) and weights (N, K)."""
    n, kc, h, w = expert_out.shape
    k = weights.shape[1]
    mixed = ops.bmm(weights.reshape(n, 1, k), expert_out.reshape(n, k, (kc // k) * h * w))
    return mixed.reshape(n, kc // k, h, w)


class DynamicRouterResNet(nn.Cell):
    """The DR ResNet trunk (see the module docstring). ``layers`` = blocks per main stage (R50: 2, 3, 5, 2);
    ``num_domains`` = source domains, the width of the routers' unused domain classifiers."""

    def __init__(self, last_stride, bn_norm, with_ibn, layers, num_experts=NUM_EXPERTS, num_domains=NUM_DOMAINS):
        super().__init__()
        if num_domains < 1:
            raise ValueError(f"DynamicRouterResNet needs at least one source domain, got num_domains={num_domains}")
        self.num_experts = num_experts
        self.num_domains = int(num_domains)
        self.inplanes = 64
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = get_norm(bn_norm, 64, **DR_NORM_KWARGS)
        strides = (1, 2, 2, last_stride)
        for i, (planes, blocks, stride) in enumerate(zip((64, 128, 256, 512), layers, strides)):
            s = i + 1
            channels = planes * Bottleneck.expansion
            # IBN-a in stages 1-3; stage 4 is plain BN (the reference does not pass with_ibn to layer4).
            setattr(self, f"layer{s}", self._make_layer(planes, blocks, stride, bn_norm, with_ibn and s < 4))
            setattr(self, f"adaptor{s}_base", Bottleneck(channels, planes, "IN", **DR_NORM_KWARGS))
            setattr(self, f"adaptor{s}_sub", ExpertBottleneck(channels, planes, bn_norm, num_experts))
            setattr(self, f"router{s}", HyperRouter(channels, num_experts, self.num_domains))
            setattr(self, f"invariant_norm{s}", get_norm(bn_norm, channels))
            setattr(self, f"specific_norm{s}", get_norm(bn_norm, channels))
            setattr(self, f"meta_fuse{s}", Gate(channels))
            setattr(self, f"meta_se{s}", SELayer(channels, names="fc1_fc2"))
            setattr(self, f"map{s}", BatchNorm(channels, bias_freeze=True))
        self.random_init()

    def _make_layer(self, planes, blocks, stride, bn_norm, with_ibn):
        downsample = None
        if stride != 1 or self.inplanes != planes * Bottleneck.expansion:
            downsample = downsample_layer(self.inplanes, planes * Bottleneck.expansion, stride, bn_norm)
        cells = [Bottleneck(self.inplanes, planes, bn_norm, with_ibn, False, stride, downsample, **DR_NORM_KWARGS)]
        self.inplanes = planes * Bottleneck.expansion
        cells += [Bottleneck(self.inplanes, planes, bn_norm, with_ibn, **DR_NORM_KWARGS) for _ in range(1, blocks)]
        return nn.SequentialCell(cells)

    def random_init(self):
        """Reference ``random_init``: every conv weight ~ N(0, sqrt(2 / (k*k*out_channels))); norms 1/0 (their
        constructors); fully connected layers keep PyTorch's default; gates N(0, 0.1)."""
        for _, cell in self.cells_and_names():
            if isinstance(cell, Conv2d):
                n = cell.kernel_size[0] * cell.kernel_size[1] * cell.out_channels
                cell.weight.set_data(init_tensor(Normal(sigma=math.sqrt(2.0 / n)), cell.weight.shape))

    def construct(self, x, update_stats=True):
        x = max_pool_3x3_s2_ceil(ops.relu(self.bn1(self.conv1(x), update_stats)))
        x, paths1, side1 = self._stage(x, self.layer1, self.adaptor1_base, self.adaptor1_sub, self.router1,
                                       self.invariant_norm1, self.specific_norm1, self.meta_fuse1, self.meta_se1,
                                       self.map1, update_stats)
        x, paths2, side2 = self._stage(x, self.layer2, self.adaptor2_base, self.adaptor2_sub, self.router2,
                                       self.invariant_norm2, self.specific_norm2, self.meta_fuse2, self.meta_se2,
                                       self.map2, update_stats)
        x, paths3, side3 = self._stage(x, self.layer3, self.adaptor3_base, self.adaptor3_sub, self.router3,
                                       self.invariant_norm3, self.specific_norm3, self.meta_fuse3, self.meta_se3,
                                       self.map3, update_stats)
        x, paths4, side4 = self._stage(x, self.layer4, self.adaptor4_base, self.adaptor4_sub, self.router4,
                                       self.invariant_norm4, self.specific_norm4, self.meta_fuse4, self.meta_se4,
                                       self.map4, update_stats)
        return x, ops.cat((paths1, paths2, paths3, paths4), -1), (side1, side2, side3, side4)

    def _stage(self, x, layer, base, sub, router, invariant_norm, specific_norm, fuse, se, side_norm, update_stats):
        for block in layer.cell_list:
            x = block(x, update_stats)
        x_inv = invariant_norm(base(x, update_stats), update_stats)
        weights, _ = router(x)
        x_spec = specific_norm(mix_experts(sub(x, update_stats), weights), update_stats)
        x = se(fuse(x_inv, x_spec))
        pooled = global_avg_pool(x)
        side = side_norm(pooled.reshape(pooled.shape[0], pooled.shape[1], 1, 1), update_stats)
        return x, weights, l2_normalize(side.reshape(side.shape[0], side.shape[1]), 1)


@BACKBONE_REGISTRY.register()
def build_meta_dynamic_router_resnet_backbone(cfg):
    """DR ResNet from ``MODEL.BACKBONE`` (DEPTH 50x/101x, LAST_STRIDE, NORM, WITH_IBN) with one router domain
    logit per source domain (``len(DATASETS.NAMES)``); with PRETRAIN, the IBN-a ResNet weights at PRETRAIN_PATH go
    through the reference's adaptor surgery (:mod:`.dr_pretrained`)."""
    bb = cfg.MODEL.BACKBONE
    depth = bb.DEPTH
    if depth not in STAGE_BLOCKS:
        raise ValueError(f"MODEL.BACKBONE.DEPTH={depth!r} is not supported by build_meta_dynamic_router_resnet_backbone;"
                         f" expected one of {sorted(STAGE_BLOCKS)}")
    if bb.WITH_NL or bb.WITH_SE:
        raise ValueError("MODEL.BACKBONE.WITH_NL / WITH_SE are not supported by the dynamic-router ResNet (the "
                         "reference configuration runs without them); set them to False")
    layers = tuple(n - 1 for n in STAGE_BLOCKS[depth])
    model = DynamicRouterResNet(bb.LAST_STRIDE, bb.NORM, bb.WITH_IBN, layers, num_domains=num_source_domains(cfg))
    if bb.PRETRAIN:
        load_dr_pretrained(model, bb.PRETRAIN_PATH, depth=depth, with_ibn=bb.WITH_IBN)
    return model
