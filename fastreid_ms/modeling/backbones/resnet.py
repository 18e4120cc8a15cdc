"""FastReID's ResNet backbone (``build_resnet_backbone``): depths 18x/34x (BasicBlock) and 50x/101x (Bottleneck),
optional IBN-a (stages 1-3), squeeze-and-excitation and non-local blocks, configurable last stride and norm.

Stem: 7x7/2 conv, norm, ReLU, MaxPool(3, 2, padding 0, ceil_mode=True) (FastReID's pooling, not torchvision's).
``construct(x)`` returns the last feature map (N, 512 * expansion, H/16 or H/32, ...). Parameter names follow the
PyTorch state_dict (``layer1.0.bn1.IN.weight``, ``layer2.0.downsample.1.running_mean``, ``NL_2.0.W.1.weight`` ...).
"""

from mindspore import nn, ops

from fastreid_ms.layers import IBN, NormSequential, Non_local, SELayer, get_norm
from fastreid_ms.layers.conv import Conv2d, random_init_convs
from fastreid_ms.layers.helpers import max_pool_3x3_s2_ceil
from fastreid_ms.utils.pretrained import load_pretrained_backbone
from .build import BACKBONE_REGISTRY


__all__ = ["BasicBlock", "Bottleneck", "ResNet", "build_resnet_backbone", "downsample_layer"]


def _first_norm(planes, bn_norm, with_ibn, **norm_kwargs):
    return IBN(planes, bn_norm, **norm_kwargs) if with_ibn else get_norm(bn_norm, planes, **norm_kwargs)


class _Identity(nn.Cell):
    def construct(self, x):
        return x


def downsample_layer(inplanes, planes, stride, bn_norm):
    """The residual projection of a stage's first block: 1x1 conv (stride) + norm, PyTorch names
    ``downsample.0`` / ``downsample.1``."""
    return NormSequential([Conv2d(inplanes, planes, 1, stride=stride, bias=False), get_norm(bn_norm, planes)])


class BasicBlock(nn.Cell):
    """Two 3x3 convs (stride on the first), optional IBN-a first norm and SE, identity / downsample residual."""
    expansion = 1
    takes_update_stats = True

    def __init__(self, inplanes, planes, bn_norm, with_ibn=False, with_se=False, stride=1, downsample=None,
                 reduction=16):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = _first_norm(planes, bn_norm, with_ibn)
        self.conv2 = Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = get_norm(bn_norm, planes)
        self.se = SELayer(planes, reduction) if with_se else _Identity()
        self.downsample = downsample

    def construct(self, x, update_stats=True):
        out = ops.relu(self.bn1(self.conv1(x), update_stats))
        out = self.se(self.bn2(self.conv2(out), update_stats))
        residual = x if self.downsample is None else self.downsample(x, update_stats)
        return ops.relu(out + residual)


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels) with norms, optional IBN-a first norm and SE, residual, ReLU.
    ``norm_kwargs`` go to every norm (e.g. ``zero_if_height_one`` for ACL-DGReID's instance norms)."""
    expansion = 4
    takes_update_stats = True

    def __init__(self, inplanes, planes, bn_norm, with_ibn=False, with_se=False, stride=1, downsample=None,
                 reduction=16, **norm_kwargs):
        super().__init__()
        self.conv1 = Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _first_norm(planes, bn_norm, with_ibn, **norm_kwargs)
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = get_norm(bn_norm, planes, **norm_kwargs)
        self.conv3 = Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = get_norm(bn_norm, planes * self.expansion, **norm_kwargs)
        self.se = SELayer(planes * self.expansion, reduction) if with_se else _Identity()
        self.downsample = downsample

    def construct(self, x, update_stats=True):
        out = ops.relu(self.bn1(self.conv1(x), update_stats))
        out = ops.relu(self.bn2(self.conv2(out), update_stats))
        out = self.se(self.bn3(self.conv3(out), update_stats))
        residual = x if self.downsample is None else self.downsample(x, update_stats)
        return ops.relu(out + residual)


class ResNet(nn.Cell):
    """FastReID ResNet trunk; ``layers`` blocks per stage, ``non_layers`` non-local blocks per stage (inserted
    after the last ``non_layers[s]`` blocks of stage s when ``with_nl``). Stage 4 never uses IBN (upstream)."""

    def __init__(self, last_stride, bn_norm, with_ibn, with_se, with_nl, block, layers, non_layers):
        super().__init__()
        self.inplanes = 64
        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = get_norm(bn_norm, 64)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, bn_norm, with_ibn, with_se)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, bn_norm, with_ibn, with_se)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, bn_norm, with_ibn, with_se)
        self.layer4 = self._make_layer(block, 512, layers[3], last_stride, bn_norm, False, with_se)
        self.random_init()
        self.nl_indices = ((), (), (), ())
        if with_nl:
            self._build_nonlocal(layers, non_layers, bn_norm, block.expansion)

    def _make_layer(self, block, planes, blocks, stride, bn_norm, with_ibn, with_se):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = downsample_layer(self.inplanes, planes * block.expansion, stride, bn_norm)
        cells = [block(self.inplanes, planes, bn_norm, with_ibn, with_se, stride, downsample)]
        self.inplanes = planes * block.expansion
        cells += [block(self.inplanes, planes, bn_norm, with_ibn, with_se) for _ in range(1, blocks)]
        return nn.SequentialCell(cells)

    def _build_nonlocal(self, layers, non_layers, bn_norm, expansion):
        indices = []
        for s, (blocks, count) in enumerate(zip(layers, non_layers), 1):
            channels = 64 * 2 ** (s - 1) * expansion
            setattr(self, f"NL_{s}", nn.CellList([Non_local(channels, bn_norm) for _ in range(count)]))
            indices.append(tuple(sorted(blocks - (i + 1) for i in range(count))))
        self.nl_indices = tuple(indices)

    def random_init(self):
        """Upstream's ``random_init`` (:func:`fastreid_ms.layers.conv.random_init_convs`)."""
        random_init_convs(self)

    def construct(self, x, update_stats=True):
        x = max_pool_3x3_s2_ceil(ops.relu(self.bn1(self.conv1(x), update_stats)))
        for s, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4), 1):
            nl_index = self.nl_indices[s - 1]
            for i, block in enumerate(layer.cell_list):
                x = block(x, update_stats)
                if i in nl_index:
                    x = getattr(self, "NL_" + str(s))[nl_index.index(i)](x, update_stats)
        return x


_STAGE_BLOCKS = {"18x": (2, 2, 2, 2), "34x": (3, 4, 6, 3), "50x": (3, 4, 6, 3), "101x": (3, 4, 23, 3)}
_NL_BLOCKS = {"18x": (0, 0, 0, 0), "34x": (0, 0, 0, 0), "50x": (0, 2, 3, 0), "101x": (0, 2, 9, 0)}
_BLOCK = {"18x": BasicBlock, "34x": BasicBlock, "50x": Bottleneck, "101x": Bottleneck}


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg):
    """ResNet from ``MODEL.BACKBONE`` (DEPTH, LAST_STRIDE, NORM, WITH_IBN, WITH_SE, WITH_NL); with PRETRAIN, the
    PyTorch ImageNet weights at PRETRAIN_PATH are loaded non-strictly (missing / unexpected keys are logged)."""
    bb = cfg.MODEL.BACKBONE
    depth = bb.DEPTH
    if depth not in _STAGE_BLOCKS:
        raise ValueError(f"MODEL.BACKBONE.DEPTH={depth!r} is not supported by build_resnet_backbone; expected one of "
                         f"{sorted(_STAGE_BLOCKS)}")
    model = ResNet(bb.LAST_STRIDE, bb.NORM, bb.WITH_IBN, bb.WITH_SE, bb.WITH_NL, _BLOCK[depth], _STAGE_BLOCKS[depth],
                   _NL_BLOCKS[depth])
    if bb.PRETRAIN:
        key = ("se_" if bb.WITH_SE else "") + ("ibn_" if bb.WITH_IBN else "") + depth
        load_pretrained_backbone(model, bb.PRETRAIN_PATH, f"for {key!r}")
    return model
