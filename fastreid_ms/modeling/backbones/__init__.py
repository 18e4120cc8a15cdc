"""Backbones: the registry and every registered builder (importing this package registers them)."""
from .build import BACKBONE_REGISTRY, build_backbone  # noqa: F401
from .meta_dynamic_router_resnet import build_meta_dynamic_router_resnet_backbone  # noqa: F401
from .resnest import build_resnest_backbone  # noqa: F401
from .resnet import build_resnet_backbone  # noqa: F401
