"""FastReID's ResNeSt backbone (``build_resnest_backbone``, the model zoo's "S50"; Zhang et al., "ResNeSt:
Split-Attention Networks", 2020): depths 50x / 101x / 200x / 269x.

As upstream builds it: radix 2, cardinality 1, bottleneck width 64, a deep stem (three 3x3 convs, ``stem_width`` 32
for 50x and 64 otherwise), average-pool downsampling in the residual projections (``avg_down``), the stride of a
stage's first block done by a 3x3 average pool after the split-attention conv (``avd``), and
``MODEL.BACKBONE.LAST_STRIDE`` 1 turning layer4 into a stride-1 stage whose blocks after the first are dilated by 2.
Stem pooling: MaxPool(3, 2, padding 1). ``construct(x)`` returns layer4's map (N, 2048, H/16 or H/32, ...).
Parameter names follow the PyTorch state_dict (``conv1.0.weight``, ``layer1.0.conv2.fc1.bias``,
``layer2.0.downsample.1.weight`` ...), so upstream's ``resnest50-528c19ca.pth`` loads by name.
"""
import logging

from mindspore import nn, ops

from fastreid_ms.layers import NormSequential, SplAtConv2d, get_norm
from fastreid_ms.layers.conv import Conv2d, random_init_convs
from fastreid_ms.utils.pretrained import load_pretrained_backbone
from .build import BACKBONE_REGISTRY

logger = logging.getLogger(__name__)

__all__ = ["ResNeSt", "ResNeStBottleneck", "build_resnest_backbone"]

_STAGE_BLOCKS = {"50x": (3, 4, 6, 3), "101x": (3, 4, 23, 3), "200x": (3, 24, 36, 3), "269x": (3, 30, 48, 8)}
_STEM_WIDTH = {"50x": 32, "101x": 64, "200x": 64, "269x": 64}


class _ReLU(nn.Cell):
    def construct(self, x):
        return ops.relu(x)


class AvgPool(nn.Cell):
    """PyTorch ``nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)`` for the two forms ResNeSt
    uses: ``(3, s, padding=1)`` counting the zero padding, and ``(k, k, ceil_mode=True, count_include_pad=False)``
    (windows past the border average their valid elements only). ``kernel`` 1 with stride 1 is the identity."""

    def __init__(self, kernel, stride, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        if ceil_mode and (padding or count_include_pad or kernel != stride):
            raise ValueError("AvgPool: ceil_mode is supported with kernel == stride, no padding and "
                             "count_include_pad=False only")
        self.kernel, self.stride, self.padding, self.ceil_mode = kernel, stride, padding, ceil_mode
        self.pool = ops.AvgPool(kernel_size=kernel, strides=stride, pad_mode="VALID")

    def construct(self, x):
        if self.kernel == 1 and self.stride == 1:
            return x
        if not self.ceil_mode:
            if self.padding:
                p = self.padding
                x = ops.pad(x, (p, p, p, p))
            return self.pool(x)
        h, w = x.shape[2], x.shape[3]
        pad_h, pad_w = -h % self.kernel, -w % self.kernel
        if pad_h == 0 and pad_w == 0:
            return self.pool(x)
        summed = self.pool(ops.pad(x, (0, pad_w, 0, pad_h)))
        counts = self.pool(ops.pad(ops.ones((1, 1, h, w), x.dtype), (0, pad_w, 0, pad_h)))
        return summed / counts


class ResNeStBottleneck(nn.Cell):
    """ResNeSt bottleneck: 1x1 conv, norm, ReLU -> :class:`SplAtConv2d` (3x3, radix, its own norms) -> 3x3 average
    pool with the block's stride when ``avd`` applies (stride > 1 or the first block of a stage after layer1) ->
    1x1 conv (x4 channels), norm -> + residual (``downsample``) -> ReLU."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, radix=1, cardinality=1, bottleneck_width=64,
                 avd=False, dilation=1, is_first=False, norm_layer="BN"):
        super().__init__()
        group_width = int(planes * (bottleneck_width / 64.)) * cardinality
        self.conv1 = Conv2d(inplanes, group_width, 1, bias=False)
        self.bn1 = get_norm(norm_layer, group_width)
        self.avd = avd and (stride > 1 or is_first)
        if self.avd:
            self.avd_layer = AvgPool(3, stride, padding=1)
            stride = 1
        self.conv2 = SplAtConv2d(group_width, group_width, 3, stride=stride, padding=dilation, dilation=dilation,
                                 groups=cardinality, bias=False, radix=radix, norm_layer=norm_layer)
        self.conv3 = Conv2d(group_width, planes * 4, 1, bias=False)
        self.bn3 = get_norm(norm_layer, planes * 4)
        self.downsample = downsample

    def construct(self, x, update_stats=True):
        out = ops.relu(self.bn1(self.conv1(x), update_stats))
        out = self.conv2(out, update_stats)
        if self.avd:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out), update_stats)
        residual = x if self.downsample is None else self.downsample(x, update_stats)
        return ops.relu(out + residual)


class ResNeSt(nn.Cell):
    """The ResNeSt trunk as FastReID's ``build_resnest_backbone`` configures it (see the module docstring)."""

    def __init__(self, last_stride, layers, stem_width, norm_layer="BN", radix=2, groups=1, bottleneck_width=64):
        super().__init__()
        self.cardinality = groups
        self.bottleneck_width = bottleneck_width
        self.radix = radix
        self.inplanes = stem_width * 2
        self.conv1 = NormSequential([
            Conv2d(3, stem_width, 3, stride=2, padding=1, bias=False), get_norm(norm_layer, stem_width), _ReLU(),
            Conv2d(stem_width, stem_width, 3, stride=1, padding=1, bias=False), get_norm(norm_layer, stem_width),
            _ReLU(), Conv2d(stem_width, stem_width * 2, 3, stride=1, padding=1, bias=False)])
        self.bn1 = get_norm(norm_layer, self.inplanes)
        self.maxpool = ops.MaxPool(kernel_size=3, strides=2, pad_mode="VALID")
        self.layer1 = self._make_layer(64, layers[0], 1, 1, norm_layer, is_first=False)
        self.layer2 = self._make_layer(128, layers[1], 2, 1, norm_layer)
        self.layer3 = self._make_layer(256, layers[2], 2, 1, norm_layer)
        # upstream: last stride 1 -> a stride-1 layer4 dilated by 2 after its first block
        stride4, dilation4 = (1, 2) if last_stride == 1 else (2, 1)
        self.layer4 = self._make_layer(512, layers[3], stride4, dilation4, norm_layer)
        self.random_init()

    def _make_layer(self, planes, blocks, stride, dilation, norm_layer, is_first=True):
        downsample = None
        out_planes = planes * ResNeStBottleneck.expansion
        if stride != 1 or self.inplanes != out_planes:
            pool = AvgPool(stride, stride, ceil_mode=True, count_include_pad=False) if dilation == 1 else \
                AvgPool(1, 1)
            downsample = NormSequential([pool, Conv2d(self.inplanes, out_planes, 1, bias=False),
                                         get_norm(norm_layer, out_planes)])
        common = dict(radix=self.radix, cardinality=self.cardinality, bottleneck_width=self.bottleneck_width,
                      avd=True, norm_layer=norm_layer)
        cells = [ResNeStBottleneck(self.inplanes, planes, stride, downsample, dilation=1, is_first=is_first,
                                   **common)]
        self.inplanes = out_planes
        cells += [ResNeStBottleneck(self.inplanes, planes, dilation=dilation, **common) for _ in range(1, blocks)]
        return nn.SequentialCell(cells)

    def random_init(self):
        """Upstream's ``random_init`` (:func:`fastreid_ms.layers.conv.random_init_convs`)."""
        random_init_convs(self)

    def construct(self, x, update_stats=True):
        x = ops.relu(self.bn1(self.conv1(x, update_stats), update_stats))
        x = self.maxpool(ops.pad(x, (1, 1, 1, 1), value=float("-inf")))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer.cell_list:
                x = block(x, update_stats)
        return x


@BACKBONE_REGISTRY.register()
def build_resnest_backbone(cfg):
    """ResNeSt from ``MODEL.BACKBONE`` (DEPTH, LAST_STRIDE, NORM); with PRETRAIN, the PyTorch ImageNet weights at
    PRETRAIN_PATH (e.g. ``resnest50-528c19ca.pth``) are loaded non-strictly (missing / unexpected keys are logged).

    WITH_IBN, WITH_SE and WITH_NL are not read, as upstream: the AGW and SBS S50 recipes inherit WITH_NL True and
    their published results come from a ResNeSt without non-local blocks (a log line says so)."""
    bb = cfg.MODEL.BACKBONE
    if bb.DEPTH not in _STAGE_BLOCKS:
        raise ValueError(f"MODEL.BACKBONE.DEPTH={bb.DEPTH!r} is not supported by build_resnest_backbone; expected one "
                         f"of {sorted(_STAGE_BLOCKS)}")
    ignored = [key for key in ("WITH_IBN", "WITH_SE", "WITH_NL") if bb[key]]
    if ignored:
        logger.info("build_resnest_backbone does not use MODEL.BACKBONE.%s (as upstream FastReID)",
                    ", ".join(ignored))
    model = ResNeSt(bb.LAST_STRIDE, _STAGE_BLOCKS[bb.DEPTH], _STEM_WIDTH[bb.DEPTH], bb.NORM)
    if bb.PRETRAIN:
        load_pretrained_backbone(model, bb.PRETRAIN_PATH, f"resnest{bb.DEPTH[:-1]}-*.pth")
    return model
